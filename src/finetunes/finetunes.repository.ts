import { Injectable } from '@nestjs/common';
import type { Finetune, Prisma } from '../generated/prisma/client.js';
import { PrismaService } from '../database/prisma.service.js';

export const UUID_PATTERN = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

export type PublicOrder = { column: 'createdAt' | 'modifiedAt' | 'name'; direction: 'asc' | 'desc' };

@Injectable()
export class FinetunesRepository {
  constructor(private readonly prisma: PrismaService) {}

  /**
   * Inserts unless the account already has `max` finetunes of this model. The per-account
   * advisory lock makes the count and the insert one step for concurrent creators.
   */
  async createWithinQuota(data: Prisma.FinetuneUncheckedCreateInput, max: number): Promise<Finetune | null> {
    return this.prisma.$transaction(async (tx) => {
      await tx.$executeRaw`SELECT pg_advisory_xact_lock(hashtext(${data.accountId}))`;
      const count = await tx.finetune.count({ where: { accountId: data.accountId, model: data.model } });
      if (count >= max) return null;
      return tx.finetune.create({ data });
    });
  }

  listOwn(accountId: string) {
    return this.prisma.finetune.findMany({ where: { accountId }, orderBy: { createdAt: 'asc' } });
  }

  listPublic(limit: number, offset: number, order: PublicOrder) {
    return this.prisma.finetune.findMany({
      where: { public: true },
      orderBy: [{ [order.column]: order.direction }, { id: 'asc' }],
      take: limit,
      skip: offset,
    });
  }

  /** The caller's own finetune by id or name. */
  findOwn(accountId: string, idOrName: string) {
    return this.prisma.finetune.findFirst({
      where: UUID_PATTERN.test(idOrName) ? { id: idOrName.toLowerCase(), accountId } : { name: idOrName, accountId },
    });
  }

  /** By id: own or public. By name: own first, then the oldest public one of that name. */
  async findVisible(accountId: string, idOrName: string): Promise<Finetune | null> {
    if (UUID_PATTERN.test(idOrName)) {
      return this.prisma.finetune.findFirst({
        where: { id: idOrName.toLowerCase(), OR: [{ accountId }, { public: true }] },
      });
    }
    return (
      (await this.prisma.finetune.findFirst({ where: { name: idOrName, accountId } })) ??
      this.prisma.finetune.findFirst({ where: { name: idOrName, public: true }, orderBy: { createdAt: 'asc' } })
    );
  }

  /**
   * Deletes the finetune and its asset rows, recording their objects as orphans in the same
   * transaction; returns the object keys to delete now.
   */
  async deleteRecordingOrphans(id: string): Promise<string[]> {
    return this.prisma.$transaction(async (tx) => {
      const assets = await tx.finetuneAsset.findMany({ where: { finetuneId: id }, select: { storageKey: true } });
      const keys = assets.map((a) => a.storageKey);
      await tx.orphanObject.createMany({ data: keys.map((key) => ({ key })), skipDuplicates: true });
      await tx.finetune.delete({ where: { id } });
      return keys;
    });
  }
}
