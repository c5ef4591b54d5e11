import { Injectable } from '@nestjs/common';
import { Counter, Gauge } from 'prom-client';
import { CatalogService } from '../catalog/catalog.service.js';
import { EngineRegistry } from '../inference/engine-registry.service.js';
import { LlamaCppEngine } from '../inference/engines/llama-cpp.engine.js';
import { RunService } from '../inference/run.service.js';
import { MetricsService } from './metrics.service.js';

/** Metrics read from the inference services when Prometheus scrapes, rather than recorded as things happen. */
@Injectable()
export class InferenceMetrics {
  constructor(metrics: MetricsService, catalog: CatalogService, runs: RunService, engines: EngineRegistry) {
    const registers = [metrics.registry];
    const served = catalog.all().filter((m) => m.engine !== null).map((m) => m.name);

    new Gauge({
      name: 'inference_active_requests',
      help: 'Requests generating right now, by model',
      labelNames: ['model'],
      registers,
      collect() {
        for (const model of served) this.set({ model }, runs.activeRequests(model));
      },
    });

    new Gauge({
      name: 'inference_queue_depth',
      help: 'Requests waiting for a generation slot, by model',
      labelNames: ['model'],
      registers,
      collect() {
        for (const model of served) this.set({ model }, runs.queuedRequests(model));
      },
    });

    // Counted by each llama.cpp engine since it started; an engine that restarts starts again from 0, as Prometheus counters may.
    const adapterCache = (name: string, help: string, pick: (cache: LlamaCppEngine['adapterCache']) => number) =>
      new Counter({
        name,
        help,
        labelNames: ['model'],
        registers,
        collect() {
          this.reset();
          for (const [model, engine] of engines.started()) {
            if (engine instanceof LlamaCppEngine) this.inc({ model }, pick(engine.adapterCache));
          }
        },
      });
    adapterCache('adapter_cache_hits_total', 'Adapter uses served by the converted-adapter cache (llama.cpp), by model', (c) => c.hits);
    adapterCache('adapter_cache_misses_total', 'Adapter uses that converted the adapter first (llama.cpp), by model', (c) => c.misses);
  }
}
