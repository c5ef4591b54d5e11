import { Injectable, OnModuleDestroy, OnModuleInit } from '@nestjs/common';
import { collectDefaultMetrics, Counter, Histogram, Registry } from 'prom-client';
import type { Usage } from '../usage/token-usage.js';

/** The route label of a request that matched no route (404s): never its URL, which would make a series per URL. */
export const UNMATCHED_ROUTE = 'unmatched';

/** Observations that wait before reaching prom-client, at most (see MetricsService.defer). */
const BATCH = 256;

type FinishReason = 'stop' | 'length' | 'aborted' | 'error';

type Observation =
  | { kind: 'request'; method: string; route: string; status: number; seconds: number }
  | { kind: 'run'; model: string; finishReason: FinishReason }
  | { kind: 'generation'; model: string; usage: Usage; seconds: number };

/** How often the event-loop delay is summed up into one observation of its maximum. */
const EVENT_LOOP_WINDOW_MS = 1000;
const EVENT_LOOP_TICK_MS = 10;

/**
 * This process's Prometheus metrics: the recording side, and the registry other modules add their own metrics to
 * (inference adds what it reads at scrape time). It imports no feature: features depend on it, never the reverse.
 */
@Injectable()
export class MetricsService implements OnModuleInit, OnModuleDestroy {
  readonly registry = new Registry();

  private readonly requestDuration = new Histogram({
    name: 'http_request_duration_seconds',
    help: 'HTTP requests by method, route pattern and status, until the response ended (streams included)',
    labelNames: ['method', 'route', 'status'],
    buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60],
    registers: [this.registry],
  });

  private readonly uploadBytes = new Counter({
    name: 'adapter_upload_bytes_total',
    help: 'Bytes of adapter files accepted, by file name',
    labelNames: ['file_name'],
    registers: [this.registry],
  });

  private readonly tokens = new Counter({
    name: 'inference_tokens_total',
    help: 'Tokens processed by the engines, by model and kind (prompt or completion)',
    labelNames: ['model', 'kind'],
    registers: [this.registry],
  });

  private readonly generationDuration = new Histogram({
    name: 'inference_generation_duration_seconds',
    help: 'Time engines spent generating, by model (from a free slot to the last token)',
    labelNames: ['model'],
    buckets: [0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300],
    registers: [this.registry],
  });

  private readonly runs = new Counter({
    name: 'inference_runs_total',
    help: 'Generations by model and how they ended (stop, length, aborted by the client, or error)',
    labelNames: ['model', 'finish_reason'],
    registers: [this.registry],
  });

  /**
   * prom-client's nodejs_eventloop_lag_* gauges cover the time since the previous scrape, so a stall shows only if
   * no other scrape came in between; this histogram keeps every second's worst delay, so "no stall over X ms in a
   * window" is the difference of two scrapes' bucket counts.
   */
  private readonly eventLoopMaxDelay = new Histogram({
    name: 'nodejs_eventloop_max_delay_seconds',
    help: `Largest event-loop delay within each ${EVENT_LOOP_WINDOW_MS / 1000} s interval`,
    buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5],
    registers: [this.registry],
  });

  private eventLoopTimer?: NodeJS.Timeout;
  private pending: Observation[] = [];

  constructor() {
    collectDefaultMetrics({ register: this.registry });
  }

  onModuleInit(): void {
    // A tick that comes late measures how long the loop was held. Node's monitorEventLoopDelay cannot be used per
    // window: its reset() also forgets the last tick, so a stall that ends just as the window closes is lost.
    let last = performance.now();
    let windowEnd = last + EVENT_LOOP_WINDOW_MS;
    let worst = 0;
    this.eventLoopTimer = setInterval(() => {
      const now = performance.now();
      worst = Math.max(worst, now - last - EVENT_LOOP_TICK_MS);
      last = now;
      // A stall counts in the window it ended in.
      if (now < windowEnd) return;
      this.eventLoopMaxDelay.observe(worst / 1000);
      worst = 0;
      windowEnd = now + EVENT_LOOP_WINDOW_MS;
    }, EVENT_LOOP_TICK_MS);
    this.eventLoopTimer.unref();
  }

  onModuleDestroy(): void {
    clearInterval(this.eventLoopTimer);
  }

  observeRequest(method: string, route: string, status: number, seconds: number): void {
    this.defer({ kind: 'request', method, route, status, seconds });
  }

  countUpload(fileName: string, bytes: number): void {
    this.uploadBytes.inc({ file_name: fileName }, bytes);
  }

  /** One finished (or aborted) generation: what the engine did, whether or not the client stayed. */
  recordGeneration(model: string, usage: Usage, seconds: number): void {
    this.defer({ kind: 'generation', model, usage, seconds });
  }

  countRun(model: string, finishReason: FinishReason): void {
    this.defer({ kind: 'run', model, finishReason });
  }

  async scrape(): Promise<{ contentType: string; text: string }> {
    this.apply();
    return { contentType: this.registry.contentType, text: await this.registry.metrics() };
  }

  /**
   * Per-request observations reach prom-client in batches, at a scrape or soon after BATCH have gathered, off the
   * requests' path. prom-client checks and hashes the labels of every call: made one by one, between requests that
   * leave its code and data cold, the calls cost several times what they cost in a batch.
   */
  private defer(observation: Observation): void {
    if (this.pending.push(observation) === BATCH) setImmediate(() => this.apply());
  }

  private apply(): void {
    const pending = this.pending;
    this.pending = [];
    for (const o of pending) {
      if (o.kind === 'request') {
        this.requestDuration.observe({ method: o.method, route: o.route, status: String(o.status) }, o.seconds);
      } else if (o.kind === 'run') {
        this.runs.inc({ model: o.model, finish_reason: o.finishReason });
      } else {
        this.tokens.inc({ model: o.model, kind: 'prompt' }, o.usage.prompt_tokens);
        this.tokens.inc({ model: o.model, kind: 'completion' }, o.usage.completion_tokens);
        this.generationDuration.observe({ model: o.model }, o.seconds);
      }
    }
  }
}
