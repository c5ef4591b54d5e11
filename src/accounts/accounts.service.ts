import { Injectable } from '@nestjs/common';
import { ApiError } from '../common/errors.js';
import { AccountsRepository } from './accounts.repository.js';
import {
  mapAccount,
  mapCreatedToken,
  mapToken,
  type AccountResponseDto,
  type ApiTokenResponseDto,
  type ApiTokenSummaryResponseDto,
} from './dto.js';
import { generateAccountId, generateTokenSecret, hashSecret } from './secrets.js';
import { TokenCache } from './token-cache.js';
import { TOKEN_REVOKED_CHANNEL, TokenRevocations, type RevocationDelivery } from './token-revocations.js';

@Injectable()
export class AccountsService {
  constructor(
    private readonly accounts: AccountsRepository,
    private readonly cache: TokenCache,
    private readonly revocations: TokenRevocations,
  ) {}

  async createAccount(name: string): Promise<AccountResponseDto> {
    return mapAccount(await this.accounts.createAccount(generateAccountId(), name));
  }

  async listAccounts(): Promise<AccountResponseDto[]> {
    return (await this.accounts.listAccounts()).map(mapAccount);
  }

  /** Creates a token; its secret is returned here once and only its hash (and last four characters) kept. */
  async createToken(accountId: string, name: string): Promise<ApiTokenResponseDto> {
    await this.requireAccount(accountId);
    const value = generateTokenSecret();
    const token = await this.accounts.createToken(accountId, name, hashSecret(value), value.slice(-4));
    return mapCreatedToken(token, value);
  }

  async listTokens(accountId: string): Promise<ApiTokenSummaryResponseDto[]> {
    await this.requireAccount(accountId);
    return (await this.accounts.listTokens(accountId)).map(mapToken);
  }

  /**
   * Deletes a token of this account. It is refused from then on by every replica on the database: the answer
   * comes once each one has confirmed it dropped the token from its cache (TokenRevocations).
   */
  async revokeToken(accountId: string, tokenId: string): Promise<ApiTokenSummaryResponseDto> {
    const token = await this.accounts.findToken(accountId, tokenId);
    if (token === null) throw tokenNotFound(accountId, tokenId);
    const delivery = this.revocations.track(token.tokenHash);
    if (!(await this.accounts.deleteToken(token, TOKEN_REVOKED_CHANNEL).catch(cancelled(delivery)))) {
      delivery.cancel();
      throw tokenNotFound(accountId, tokenId);
    }
    this.cache.drop(token.tokenHash);
    await delivery.confirmed();
    return mapToken(token);
  }

  /** The account a bearer secret belongs to, or null. Cached to keep the hot path off the database. */
  async authenticate(secret: string): Promise<string | null> {
    const cached = this.cache.get(secret);
    if (cached !== undefined) return cached;
    const hash = hashSecret(secret);
    const ticket = this.cache.ticket();
    const accountId = await this.accounts.accountIdForTokenHash(hash);
    if (accountId !== null) this.cache.set(secret, hash, accountId, ticket);
    return accountId;
  }

  private async requireAccount(accountId: string): Promise<void> {
    if (!(await this.accounts.findAccount(accountId))) throw new ApiError('objectNotFound', `account ${accountId} not found`);
  }
}

/** Rethrows after stopping the count of confirmations that will not come. */
function cancelled(delivery: RevocationDelivery) {
  return (error: unknown): never => {
    delivery.cancel();
    throw error;
  };
}

function tokenNotFound(accountId: string, tokenId: string): ApiError {
  return new ApiError('objectNotFound', `token ${tokenId} not found in account ${accountId}`);
}
