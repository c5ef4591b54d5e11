import { Injectable } from '@nestjs/common';
import { PrismaService } from '../database/prisma.service.js';
import type { ApiToken } from '../generated/prisma/client.js';

@Injectable()
export class AccountsRepository {
  constructor(private readonly prisma: PrismaService) {}

  createAccount(id: string, name: string) {
    return this.prisma.account.create({ data: { id, name } });
  }

  findAccount(id: string) {
    return this.prisma.account.findUnique({ where: { id } });
  }

  listAccounts() {
    return this.prisma.account.findMany({ orderBy: { createdAt: 'asc' } });
  }

  createToken(accountId: string, name: string, tokenHash: string, lastFour: string) {
    return this.prisma.apiToken.create({ data: { accountId, name, tokenHash, lastFour } });
  }

  listTokens(accountId: string) {
    return this.prisma.apiToken.findMany({ where: { accountId }, orderBy: { createdAt: 'asc' } });
  }

  findToken(accountId: string, tokenId: string) {
    return this.prisma.apiToken.findFirst({ where: { id: tokenId, accountId } });
  }

  /**
   * Deletes a token and announces its hash on `channel` in one transaction: PostgreSQL sends the notification
   * only once the delete has committed. False when it was already gone.
   */
  async deleteToken(token: ApiToken, channel: string): Promise<boolean> {
    return this.prisma.$transaction(async (tx) => {
      const { count } = await tx.apiToken.deleteMany({ where: { id: token.id } });
      if (count === 0) return false;
      await tx.$executeRaw`SELECT pg_notify(${channel}, ${token.tokenHash})`;
      return true;
    });
  }

  async accountIdForTokenHash(tokenHash: string): Promise<string | null> {
    const token = await this.prisma.apiToken.findUnique({ where: { tokenHash }, select: { accountId: true } });
    return token?.accountId ?? null;
  }
}
