import { Inject, Injectable, OnApplicationShutdown } from '@nestjs/common';
import { PrismaPg } from '@prisma/adapter-pg';
import { PrismaPGlite } from 'pglite-prisma-adapter';
import { Prisma, PrismaClient } from '../generated/prisma/client.js';
import { APP_CONFIG, type AppConfig } from '../config/app-config.js';
import { EmbeddedDatabase } from './embedded-database.js';

/** Connection-level failures, as opposed to a bad query. */
const UNAVAILABLE = new Set(['ECONNREFUSED', 'ECONNRESET', 'ETIMEDOUT', 'ENOTFOUND', 'EHOSTUNREACH', '57P01', '57P03', 'P1001', 'P1002', 'P1017']);
const UNAVAILABLE_MESSAGE = /ECONNREFUSED|Connection terminated|connect ETIMEDOUT|terminating connection|Can't reach database/;

/** True for errors raised by Prisma or its driver adapter because the database cannot be reached. */
export function isDatabaseUnavailable(error: unknown): boolean {
  if (error instanceof Prisma.PrismaClientInitializationError) return true;
  const fromDatabase =
    error instanceof Prisma.PrismaClientKnownRequestError ||
    error instanceof Prisma.PrismaClientUnknownRequestError ||
    (error as { name?: string })?.name === 'DriverAdapterError';
  if (!fromDatabase) return false;
  const e = error as { code?: string; cause?: { code?: string; originalCode?: string }; message?: string };
  const codes = [e.code, e.cause?.code, e.cause?.originalCode];
  return codes.some((code) => code !== undefined && UNAVAILABLE.has(code)) || UNAVAILABLE_MESSAGE.test(e.message ?? '');
}

@Injectable()
export class PrismaService extends PrismaClient implements OnApplicationShutdown {
  constructor(
    @Inject(APP_CONFIG) config: AppConfig,
    @Inject(EmbeddedDatabase) private readonly embedded: EmbeddedDatabase | null,
  ) {
    super({
      adapter: embedded
        ? new PrismaPGlite(embedded.pglite)
        : new PrismaPg({ connectionString: config.databaseUrl, max: 10, connectionTimeoutMillis: 5000 }),
      transactionOptions: { maxWait: 5000, timeout: 10000 },
    });
  }

  /**
   * Last of all: requests still draining and the final usage flush run before this; disconnecting earlier
   * (onModuleDestroy) would make them open a new pool that nothing closes.
   */
  async onApplicationShutdown(): Promise<void> {
    await this.$disconnect();
    await this.embedded?.close();
  }
}
