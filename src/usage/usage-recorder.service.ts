import { Injectable, Logger, OnApplicationBootstrap, OnApplicationShutdown, OnModuleDestroy } from '@nestjs/common';
import type { UsageStatus } from '../generated/prisma/client.js';
import type { ModelDefinition } from '../catalog/model-definition.js';
import type { Usage } from './token-usage.js';
import { UsageRepository, type UsageRow } from './usage.repository.js';

const FLUSH_INTERVAL_MS = 1000;
/** Rows per insert; also the buffer size that triggers a flush before the interval is up. */
const BATCH = 500;
/** While the database is unreachable records wait in memory, up to this many (the oldest are dropped first). */
const MAX_BUFFERED = 100_000;

export interface RunRecord {
  accountId: string;
  model: ModelDefinition;
  finetuneId: string | null;
  usage: Usage;
  status: UsageStatus;
  /** Answered from the response cache: no engine work, so no neurons. */
  cached: boolean;
  latencyMs: number;
}

/** Neurons for a run: tokens times the model's per-token costs (a model without costs is free). */
export function neuronsFor(model: ModelDefinition, usage: Usage): number {
  const costs = model.neuron_costs;
  if (!costs) return 0;
  return usage.prompt_tokens * costs.input_tokens + usage.completion_tokens * costs.output_tokens;
}

/**
 * Buffers usage records and writes them in batches, so recording adds no database round trip to a response.
 * Flushes every second, when a batch is full, and on shutdown: once before the database client disconnects,
 * and again at the very end for runs that finished while the HTTP server drained.
 */
@Injectable()
export class UsageRecorder implements OnApplicationBootstrap, OnModuleDestroy, OnApplicationShutdown {
  private readonly logger = new Logger(UsageRecorder.name);
  private buffer: UsageRow[] = [];
  private flushing: Promise<void> = Promise.resolve();
  private timer?: NodeJS.Timeout;

  constructor(private readonly usage: UsageRepository) {}

  onApplicationBootstrap(): void {
    this.timer = setInterval(() => void this.flush(), FLUSH_INTERVAL_MS);
    this.timer.unref();
  }

  onModuleDestroy(): Promise<void> {
    return this.flush();
  }

  onApplicationShutdown(): Promise<void> {
    clearInterval(this.timer);
    return this.flush();
  }

  record(run: RunRecord): void {
    this.buffer.push({
      account_id: run.accountId,
      model: run.model.name,
      finetune_id: run.finetuneId,
      prompt_tokens: run.usage.prompt_tokens,
      completion_tokens: run.usage.completion_tokens,
      neurons: run.cached ? 0 : neuronsFor(run.model, run.usage),
      status: run.status,
      cached: run.cached,
      latency_ms: Math.round(run.latencyMs),
      created_ms: Date.now(),
    });
    if (this.buffer.length === BATCH) void this.flush();
  }

  /** Resolves once everything recorded before the call is stored (or, if the database failed, kept for a retry). */
  flush(): Promise<void> {
    this.flushing = this.flushing.then(() => this.write());
    return this.flushing;
  }

  private async write(): Promise<void> {
    while (this.buffer.length > 0) {
      const batch = this.buffer.splice(0, BATCH);
      try {
        await this.usage.insertMany(batch);
      } catch (error) {
        this.buffer.unshift(...batch);
        const dropped = this.buffer.length - MAX_BUFFERED;
        if (dropped > 0) {
          this.buffer.splice(0, dropped);
          this.logger.error(`dropped ${dropped} usage record(s): the database has been unreachable too long`);
        }
        this.logger.warn(`writing ${batch.length} usage record(s) failed, will retry: ${error}`);
        return;
      }
    }
  }
}
