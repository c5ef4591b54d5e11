import { Injectable } from '@nestjs/common';
import { collectDefaultMetrics, Counter, Histogram, Registry } from 'prom-client';
import type { Usage } from '../inference/engine.js';

/** The route label of a request that matched no route (404s): never its URL, which would make a series per URL. */
export const UNMATCHED_ROUTE = 'unmatched';

/** This process's Prometheus metrics: the recording side. Values read from other services at scrape time are in InferenceMetrics. */
@Injectable()
export class MetricsService {
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

  constructor() {
    collectDefaultMetrics({ register: this.registry });
  }

  observeRequest(method: string, route: string, status: number, seconds: number): void {
    this.requestDuration.observe({ method, route, status: String(status) }, seconds);
  }

  countUpload(fileName: string, bytes: number): void {
    this.uploadBytes.inc({ file_name: fileName }, bytes);
  }

  /** One finished (or aborted) generation: what the engine did, whether or not the client stayed. */
  recordGeneration(model: string, usage: Usage, seconds: number): void {
    this.tokens.inc({ model, kind: 'prompt' }, usage.prompt_tokens);
    this.tokens.inc({ model, kind: 'completion' }, usage.completion_tokens);
    this.generationDuration.observe({ model }, seconds);
  }

  async scrape(): Promise<{ contentType: string; text: string }> {
    return { contentType: this.registry.contentType, text: await this.registry.metrics() };
  }
}
