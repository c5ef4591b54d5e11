import { Injectable } from '@nestjs/common';
import { PrismaService } from '../database/prisma.service.js';

export interface WindowCount {
  /** Whether this request fitted in the current window's budget (it was counted only if so). */
  admitted: boolean;
  /** Whole seconds until the current window ends (at least 1). */
  secondsLeft: number;
}

/** Shared state behind the rate limits: per-minute counters and the admin's per-account overrides. */
@Injectable()
export class LimitsRepository {
  constructor(private readonly prisma: PrismaService) {}

  /**
   * Counts a request in the current one-minute window unless `limit` requests are already counted there, in one
   * statement: the row lock of the upsert makes concurrent callers on any replica take turns, and the database's
   * clock decides the window so replicas with skewed clocks still agree.
   */
  async countRequest(accountId: string, model: string, limit: number): Promise<WindowCount> {
    const [row] = await this.prisma.$queryRaw<{ count: number | null; seconds_left: number }[]>`
      WITH w AS (SELECT date_trunc('minute', clock_timestamp()) AS start, clock_timestamp() AS now),
      hit AS (
        INSERT INTO "rate_limit_windows" ("account_id", "model", "window_start", "count")
        SELECT ${accountId}, ${model}, w.start, 1 FROM w
        ON CONFLICT ("account_id", "model", "window_start")
        DO UPDATE SET "count" = "rate_limit_windows"."count" + 1 WHERE "rate_limit_windows"."count" < ${limit}::int
        RETURNING "count"
      )
      SELECT (SELECT "count" FROM hit) AS count,
             ceil(extract(epoch FROM w.start + interval '1 minute' - w.now))::int AS seconds_left
      FROM w`;
    return { admitted: row!.count !== null, secondsLeft: Math.max(1, row!.seconds_left) };
  }

  /** Drops counters of windows that ended more than a minute ago. */
  pruneWindows(): Promise<number> {
    return this.prisma.$executeRaw`
      DELETE FROM "rate_limit_windows" WHERE "window_start" < date_trunc('minute', clock_timestamp()) - interval '1 minute'`;
  }

  allOverrides() {
    return this.prisma.accountModelLimit.findMany();
  }

  overridesOf(accountId: string) {
    return this.prisma.accountModelLimit.findMany({ where: { accountId }, orderBy: { model: 'asc' } });
  }

  setOverride(accountId: string, model: string, maxRequestsPerMin: number) {
    return this.prisma.accountModelLimit.upsert({
      where: { accountId_model: { accountId, model } },
      create: { accountId, model, maxRequestsPerMin },
      update: { maxRequestsPerMin },
    });
  }

  async removeOverride(accountId: string, model: string): Promise<void> {
    await this.prisma.accountModelLimit.deleteMany({ where: { accountId, model } });
  }
}
