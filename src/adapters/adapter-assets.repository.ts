import { Injectable } from '@nestjs/common';
import type { FinetuneAsset, Prisma } from '../generated/prisma/client.js';
import { PrismaService } from '../database/prisma.service.js';

export interface AssetWrite {
  finetuneId: string;
  fileName: string;
  bytes: number;
  sha256: string;
  storageKey: string;
  summary: Prisma.InputJsonValue;
}

export type AssetTransaction = Prisma.TransactionClient;

@Injectable()
export class AdapterAssetsRepository {
  constructor(private readonly prisma: PrismaService) {}

  /**
   * Runs `work` with the finetune row locked, so concurrent uploads to one finetune see each other's
   * assets and exactly one of them can make it ready.
   */
  withLockedFinetune<T>(finetuneId: string, work: (tx: AssetTransaction, status: string | null) => Promise<T>): Promise<T> {
    return this.prisma.$transaction(async (tx) => {
      const rows = await tx.$queryRaw<{ status: string }[]>`SELECT status::text FROM finetunes WHERE id = ${finetuneId}::uuid FOR UPDATE`;
      return work(tx, rows[0]?.status ?? null);
    });
  }

  assetsOf(tx: AssetTransaction, finetuneId: string): Promise<FinetuneAsset[]> {
    return tx.finetuneAsset.findMany({ where: { finetuneId } });
  }

  async replaceAsset(tx: AssetTransaction, asset: AssetWrite, previous: FinetuneAsset | undefined): Promise<FinetuneAsset> {
    if (previous && previous.storageKey !== asset.storageKey) {
      // The replaced object is deleted after commit; recording it first means it is never lost track of.
      await tx.orphanObject.upsert({ where: { key: previous.storageKey }, create: { key: previous.storageKey }, update: {} });
    }
    // The upload's own record (kept in case the process died before this commit) is no longer needed.
    await tx.orphanObject.deleteMany({ where: { key: asset.storageKey } });
    const data = { ...asset, bytes: BigInt(asset.bytes) };
    return tx.finetuneAsset.upsert({
      where: { finetuneId_fileName: { finetuneId: asset.finetuneId, fileName: asset.fileName } },
      create: data,
      update: { ...data, createdAt: new Date() },
    });
  }

  markReady(tx: AssetTransaction, finetuneId: string) {
    return tx.finetune.update({ where: { id: finetuneId }, data: { status: 'ready' } });
  }

  async isReferenced(storageKey: string): Promise<boolean> {
    return (await this.prisma.finetuneAsset.count({ where: { storageKey } })) > 0;
  }

  assetsOfFinetune(finetuneId: string): Promise<FinetuneAsset[]> {
    return this.prisma.finetuneAsset.findMany({ where: { finetuneId } });
  }
}
