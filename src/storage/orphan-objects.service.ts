import { Injectable, Logger, OnApplicationBootstrap, OnApplicationShutdown } from '@nestjs/common';
import { PrismaService } from '../database/prisma.service.js';
import { ObjectStorage } from './object-storage.js';

const SWEEP_INTERVAL_MS = 5 * 60_000;
const SWEEP_BATCH = 1000;

/**
 * Deletes objects whose rows are gone. Callers record the keys in `orphan_objects` in the same
 * transaction that removes the rows, so a crash or a storage outage never loses track of them:
 * what fails now is retried by the periodic sweep.
 */
@Injectable()
export class OrphanObjectsService implements OnApplicationBootstrap, OnApplicationShutdown {
  private readonly logger = new Logger(OrphanObjectsService.name);
  private timer?: NodeJS.Timeout;

  constructor(
    private readonly prisma: PrismaService,
    private readonly storage: ObjectStorage,
  ) {}

  onApplicationBootstrap(): void {
    this.timer = setInterval(() => void this.sweep(), SWEEP_INTERVAL_MS);
    this.timer.unref();
  }

  onApplicationShutdown(): void {
    clearInterval(this.timer);
    this.storage.destroy();
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
