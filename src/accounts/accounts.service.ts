import { Injectable } from '@nestjs/common';
import { NotFoundError } from '../common/api-error.js';
import { AccountsRepository } from './accounts.repository.js';
import { generateAccountId, generateTokenSecret, hashSecret } from './secrets.js';

/** How long a verified token is trusted without asking the database again. */
const TOKEN_CACHE_TTL_MS = 60_000;
const TOKEN_CACHE_MAX = 10_000;

export interface AccountView {
  id: string;
  name: string;
  created_at: string;
}

@Injectable()
export class AccountsService {
  private readonly tokenCache = new Map<string, { accountId: string; expires: number }>();

  constructor(private readonly accounts: AccountsRepository) {}

  async createAccount(name: string): Promise<AccountView> {
    const account = await this.accounts.createAccount(generateAccountId(), name);
    return { id: account.id, name: account.name, created_at: account.createdAt.toISOString() };
  }

  async listAccounts(): Promise<AccountView[]> {
    const accounts = await this.accounts.listAccounts();
    return accounts.map((a) => ({ id: a.id, name: a.name, created_at: a.createdAt.toISOString() }));
  }

  /** Creates a token; its secret is returned here once and only its hash is kept. */
  async createToken(accountId: string, name: string) {
    if (!(await this.accounts.findAccount(accountId))) {
      throw new NotFoundError(`account ${accountId} not found`, 7000);
    }
    const value = generateTokenSecret();
    const token = await this.accounts.createToken(accountId, name, hashSecret(value));
    return { id: token.id, name: token.name, account_id: accountId, value, created_at: token.createdAt.toISOString() };
  }

  /** The account a bearer secret belongs to, or null. Cached briefly to keep the hot path off the database. */
  async authenticate(secret: string): Promise<string | null> {
    const hash = hashSecret(secret);
    const now = Date.now();
    const cached = this.tokenCache.get(hash);
    if (cached && cached.expires > now) return cached.accountId;
    const accountId = await this.accounts.accountIdForTokenHash(hash);
    if (accountId === null) return null;
    if (this.tokenCache.size >= TOKEN_CACHE_MAX) this.tokenCache.delete(this.tokenCache.keys().next().value!);
    this.tokenCache.set(hash, { accountId, expires: now + TOKEN_CACHE_TTL_MS });
    return accountId;
  }
}
