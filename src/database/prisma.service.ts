import { Inject, Injectable, OnApplicationShutdown } from '@nestjs/common';
import { PrismaPg } from '@prisma/adapter-pg';
import { PrismaPGlite } from 'pglite-prisma-adapter';
import { Prisma, PrismaClient } from '../generated/prisma/client.js';
import { ApiError } from '../common/errors.js';
import { APP_CONFIG, type AppConfig } from '../config/app-config.js';
import { EmbeddedDatabase } from './embedded-database.js';

/**
 * Outages rather than bad queries: the server unreachable or gone mid-query (socket errors, Prisma's P1001/P1002/
 * P1017), refusing connections (53300 too many connections, 57P01 admin shutdown, 57P02 crash shutdown, 57P03 cannot
 * connect now, class 08 connection exceptions, P2037 Prisma's too many connections) and the driver's kinds for them.
 */
const UNAVAILABLE = new Set([
  'ECONNREFUSED', 'ECONNRESET', 'ETIMEDOUT', 'ENOTFOUND', 'EHOSTUNREACH',
  '53300', '57P01', '57P02', '57P03', '08000', '08001', '08003', '08004', '08006',
  'P1001', 'P1002', 'P1017', 'P2037',
  'DatabaseNotReachable', 'ConnectionClosed', 'SocketTimeout', 'TooManyConnections',
]);
/**
 * Prisma errors known by their text, which quotes the SQLSTATE of errors it has no code of its own for (Prisma's
 * "Database error. Code: `57P01`"); 55000 is also raised by queries, so only its connection refusal counts.
 */
const UNAVAILABLE_MESSAGE =
  /Code: `(53300|57P0[123]|08\d{3}|08P01)`|ECONNREFUSED|Connection terminated|connect ETIMEDOUT|terminating connection|Can't reach database|is not currently accepting connections|Unable to start a transaction in the given time/;
/** pg and pg-pool errors the driver adapter passes on as they are: no connection within the pool's wait, or a connection lost. */
const DRIVER_MESSAGE = /^(timeout exceeded when trying to connect|Connection terminated unexpectedly|Connection terminated due to connection timeout)$/;

/** True for errors raised by Prisma, its driver adapter or the pg pool because the database cannot serve queries. */
export function isDatabaseUnavailable(error: unknown): boolean {
  if (error instanceof Prisma.PrismaClientInitializationError) return true;
  if (error instanceof Error && DRIVER_MESSAGE.test(error.message)) return true;
  // Only the database layer's errors by code: a client's aborted request also says ECONNRESET.
  const fromDatabase =
    error instanceof Prisma.PrismaClientKnownRequestError ||
    error instanceof Prisma.PrismaClientUnknownRequestError ||
    (error as { name?: string })?.name === 'DriverAdapterError';
  if (!fromDatabase) return false;
  const e = error as { code?: string; cause?: { code?: string; originalCode?: string; kind?: string }; message?: string };
  const codes = [e.code, e.cause?.code, e.cause?.originalCode, e.cause?.kind];
  return codes.some((code) => code !== undefined && UNAVAILABLE.has(code)) || UNAVAILABLE_MESSAGE.test(e.message ?? '');
}

/** For the exception filter: database outages answer databaseUnavailable (503) on every route. */
export function databaseOutage(error: unknown): ApiError | undefined {
  return isDatabaseUnavailable(error) ? new ApiError('databaseUnavailable', undefined, { cause: error }) : undefined;
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
