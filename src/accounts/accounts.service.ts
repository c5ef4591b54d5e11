import { Injectable } from '@nestjs/common';
import { NotFoundError } from '../common/api-error.js';
import { AccountsRepository } from './accounts.repository.js';
import { mapAccount, mapCreatedToken, type AccountResponseDto, type ApiTokenResponseDto } from './dto.js';
import { generateAccountId, generateTokenSecret, hashSecret } from './secrets.js';

/** How long a verified token is trusted without asking the database again. */
const TOKEN_CACHE_TTL_MS = 60_000;
const TOKEN_CACHE_MAX = 10_000;

@Injectable()
export class AccountsService {
  private readonly tokenCache = new Map<string, { accountId: string; expires: number }>();

  constructor(private readonly accounts: AccountsRepository) {}

  async createAccount(name: string): Promise<AccountResponseDto> {
    return mapAccount(await this.accounts.createAccount(generateAccountId(), name));
  }

  async listAccounts(): Promise<AccountResponseDto[]> {
    return (await this.accounts.listAccounts()).map(mapAccount);
  }

  /** Creates a token; its secret is returned here once and only its hash is kept. */
  async createToken(accountId: string, name: string): Promise<ApiTokenResponseDto> {
    if (!(await this.accounts.findAccount(accountId))) {
      throw new NotFoundError(`account ${accountId} not found`, 7000);
    }
    const value = generateTokenSecret();
    const token = await this.accounts.createToken(accountId, name, hashSecret(value));
    return mapCreatedToken(token, value);
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
