import { Injectable, Logger } from '@nestjs/common';
import { PrismaService } from '../database/prisma.service.js';
import { ObjectStorage } from './object-storage.js';

const SWEEP_BATCH = 1000;

/**
 * Deletes objects whose rows are gone. Callers record the keys in `orphan_objects` in the same
 * transaction that removes the rows, so a crash or a storage outage never loses track of them:
 * what fails now is retried by the periodic sweep (StorageSweeper).
 */
@Injectable()
export class OrphanObjectsService {
  private readonly logger = new Logger(OrphanObjectsService.name);

  constructor(
    private readonly prisma: PrismaService,
    private readonly storage: ObjectStorage,
  ) {}

  /** Deletes an object no row refers to; when that fails it is recorded, so the sweep deletes it later. */
  async discard(key: string): Promise<void> {
    try {
      await this.storage.delete(key);
    } catch (error) {
      const message = error instanceof Error ? error.message : String(error);
      this.logger.warn(`could not delete "${key}", will retry: ${message}`);
      await this.prisma.orphanObject
        .upsert({ where: { key }, create: { key, attempts: 1, lastError: message }, update: {} })
        .catch((recording: unknown) => this.logger.error(`could not record "${key}" for the sweep: ${recording}`));
    }
  }

  /** Deletes these orphaned keys now; on failure they stay recorded for the next sweep. */
  async remove(keys: string[]): Promise<boolean> {
    if (keys.length === 0) return true;
    try {
      await this.storage.deleteMany(keys);
      await this.prisma.orphanObject.deleteMany({ where: { key: { in: keys } } });
      return true;
    } catch (error) {
      const message = error instanceof Error ? error.message : String(error);
      this.logger.warn(`could not delete ${keys.length} object(s), will retry: ${message}`);
      await this.prisma.orphanObject
        .updateMany({ where: { key: { in: keys } }, data: { attempts: { increment: 1 }, lastError: message } })
        .catch(() => undefined);
      return false;
    }
  }

  async sweep(): Promise<void> {
    const orphans = await this.prisma.orphanObject
      .findMany({ orderBy: { createdAt: 'asc' }, take: SWEEP_BATCH, select: { key: true } })
      .catch(() => []);
    await this.remove(orphans.map((o) => o.key));
  }
}
