import { Inject, Injectable, Logger } from '@nestjs/common';
import { APP_CONFIG, type AppConfig } from '../config/app-config.js';
import { PrismaService } from '../database/prisma.service.js';
import { ObjectStorage } from './object-storage.js';

const SWEEP_BATCH = 1000;

/**
 * Deletes objects no row refers to. Callers record the keys in `orphan_objects` in the same transaction that
 * removes the rows, and an upload records its key before its first byte (its row's commit drops the record), so a
 * crash or a storage outage never loses track of an object: what fails now is retried by the periodic sweep
 * (StorageSweeper).
 */
@Injectable()
export class OrphanObjectsService {
  private readonly logger = new Logger(OrphanObjectsService.name);

  constructor(
    private readonly prisma: PrismaService,
    private readonly storage: ObjectStorage,
    @Inject(APP_CONFIG) private readonly config: AppConfig,
  ) {}

  /**
   * Records the key of an upload about to start: if the process dies before the upload's row is committed (which
   * drops the record in its transaction), the sweep deletes the object once the upload could no longer be running.
   */
  async expect(key: string): Promise<void> {
    await this.prisma.orphanObject.create({ data: { key, pending: true } });
  }

  /** Deletes an object no row refers to, and its record; when that fails it is kept for the next sweep. */
  async discard(key: string): Promise<void> {
    try {
      await this.storage.delete(key);
      await this.prisma.orphanObject.deleteMany({ where: { key } });
    } catch (error) {
      const message = error instanceof Error ? error.message : String(error);
      this.logger.warn(`could not delete "${key}", will retry: ${message}`);
      await this.prisma.orphanObject
        .upsert({ where: { key }, create: { key, attempts: 1, lastError: message }, update: { attempts: { increment: 1 }, lastError: message, pending: false } })
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
      .findMany({
        // An upload's record only once no upload could still be running (its multipart upload is swept by then).
        where: { OR: [{ pending: false }, { createdAt: { lt: new Date(Date.now() - this.config.incompleteUploadMaxAgeMs) } }] },
        orderBy: { createdAt: 'asc' },
        take: SWEEP_BATCH,
        select: { key: true },
      })
      .catch(() => []);
    await this.remove(orphans.map((o) => o.key));
  }
}
