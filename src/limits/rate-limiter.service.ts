import { Injectable, Logger, OnApplicationBootstrap, OnApplicationShutdown } from '@nestjs/common';
import { Prisma } from '../generated/prisma/client.js';
import { ApiError } from '../common/errors.js';
import { CatalogService } from '../catalog/catalog.service.js';
import type { ModelDefinition } from '../catalog/model-definition.js';
import { LimitsRepository } from './limits.repository.js';

/** How stale another replica's view of the admin overrides may get. */
const OVERRIDES_REFRESH_MS = 10_000;
const PRUNE_INTERVAL_MS = 5 * 60_000;

export interface LimitOverrideView {
  account_id: string;
  model: string;
  /** The admin's override; null when there is none. */
  max_requests_per_min: number | null;
  /** What applies to this account now: the override, else the catalog's per-account value, else the model's. */
  effective_max_requests_per_min: number | null;
}

const overrideKey = (accountId: string, model: string) => `${accountId}\u0000${model}`;

/**
 * Requests per minute per account and model, in fixed one-minute windows counted in PostgreSQL so that every
 * replica draws on one budget. Models without a limit (and no override for the caller) never touch the database:
 * the admin overrides are held in memory and re-read every OVERRIDES_REFRESH_MS.
 */
@Injectable()
export class RateLimiter implements OnApplicationBootstrap, OnApplicationShutdown {
  private readonly logger = new Logger(RateLimiter.name);
  private overrides = new Map<string, number>();
  /** Bumped by every local change, so a refresh that read before it does not undo it. */
  private changes = 0;
  private timers: NodeJS.Timeout[] = [];

  constructor(
    private readonly limits: LimitsRepository,
    private readonly catalog: CatalogService,
  ) {}

  async onApplicationBootstrap(): Promise<void> {
    await this.refreshOverrides();
    this.timers = [
      setInterval(() => void this.refreshOverrides(), OVERRIDES_REFRESH_MS),
      setInterval(() => void this.limits.pruneWindows().catch((e) => this.logger.warn(`pruning rate windows: ${e}`)), PRUNE_INTERVAL_MS),
    ];
    for (const timer of this.timers) timer.unref();
  }

  onApplicationShutdown(): void {
    for (const timer of this.timers) clearInterval(timer);
  }

  limitFor(accountId: string, model: ModelDefinition): number | null {
    return this.overrides.get(overrideKey(accountId, model.name)) ?? model.limits.accounts[accountId] ?? model.limits.max_requests_per_min;
  }

  /** Counts the request against the caller's budget for the model, or rateLimited (429) with Retry-After to the window's end. */
  async admit(accountId: string, model: ModelDefinition): Promise<void> {
    const limit = this.limitFor(accountId, model);
    if (limit === null) return;
    const { admitted, secondsLeft } = await this.limits.countRequest(accountId, model.name, limit);
    if (!admitted) {
      throw new ApiError(
        'rateLimited',
        `rate limit reached: ${limit} requests per minute to ${model.name} for this account; retry in ${secondsLeft} s`,
        { retryAfter: secondsLeft },
      );
    }
  }

  async overridesOf(accountId: string): Promise<LimitOverrideView[]> {
    const rows = await this.limits.overridesOf(accountId);
    return rows.map((row) => this.view(accountId, row.model, row.maxRequestsPerMin));
  }

  /** Sets (or with null removes) an account's requests/min for a model; this replica applies it at once. */
  async setOverride(accountId: string, modelName: string, maxRequestsPerMin: number | null): Promise<LimitOverrideView> {
    const model = this.catalog.get(modelName);
    if (maxRequestsPerMin === null) {
      await this.limits.removeOverride(accountId, model.name);
    } else {
      try {
        await this.limits.setOverride(accountId, model.name, maxRequestsPerMin);
      } catch (error) {
        if (error instanceof Prisma.PrismaClientKnownRequestError && error.code === 'P2003') {
          throw new ApiError('objectNotFound', `account ${accountId} not found`);
        }
        throw error;
      }
    }
    this.changes += 1;
    const key = overrideKey(accountId, model.name);
    if (maxRequestsPerMin === null) this.overrides.delete(key);
    else this.overrides.set(key, maxRequestsPerMin);
    return this.view(accountId, model.name, maxRequestsPerMin);
  }

  private view(accountId: string, modelName: string, override: number | null): LimitOverrideView {
    const model = this.catalog.find(modelName);
    return {
      account_id: accountId,
      model: modelName,
      max_requests_per_min: override,
      // An override may outlive its model in the catalog (MODELS_FILE changed); it then limits nothing.
      effective_max_requests_per_min: model ? this.limitFor(accountId, model) : null,
    };
  }

  private async refreshOverrides(): Promise<void> {
    const changesBefore = this.changes;
    try {
      const rows = await this.limits.allOverrides();
      if (this.changes !== changesBefore) return;
      this.overrides = new Map(rows.map((row) => [overrideKey(row.accountId, row.model), row.maxRequestsPerMin]));
    } catch (error) {
      this.logger.warn(`reading rate limit overrides failed, keeping the previous ones: ${error}`);
    }
  }
}
