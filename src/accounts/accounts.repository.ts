import { Injectable } from '@nestjs/common';
import { PrismaService } from '../database/prisma.service.js';

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

  createToken(accountId: string, name: string, tokenHash: string) {
    return this.prisma.apiToken.create({ data: { accountId, name, tokenHash } });
  }

  async accountIdForTokenHash(tokenHash: string): Promise<string | null> {
    const token = await this.prisma.apiToken.findUnique({ where: { tokenHash }, select: { accountId: true } });
    return token?.accountId ?? null;
  }
}
