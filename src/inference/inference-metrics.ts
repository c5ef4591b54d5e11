import { Injectable } from '@nestjs/common';
import { Counter, Gauge } from 'prom-client';
import { CatalogService } from '../catalog/catalog.service.js';
import type { AdapterCacheCounts } from './engine.js';
import { ModelGates } from '../limits/model-gates.service.js';
import { MetricsService } from '../observability/metrics.service.js';
import { EngineRegistry } from './engine-registry.service.js';
import { fleetMetrics } from './fleet/fleet-metrics.js';

/**
 * Metrics read when Prometheus scrapes, rather than recorded as things happen. They live with inference and
 * register on the shared registry, so observability never depends on inference (nor on a concrete engine).
 */
@Injectable()
export class InferenceMetrics {
  constructor(metrics: MetricsService, catalog: CatalogService, gates: ModelGates, engines: EngineRegistry) {
    const registers = [metrics.registry];
    const served = catalog.all().filter((m) => m.engine !== null).map((m) => m.name);

    new Gauge({
      name: 'inference_active_requests',
      help: 'Requests generating right now, by model',
      labelNames: ['model'],
      registers,
      collect() {
        for (const model of served) this.set({ model }, gates.activeRequests(model));
      },
    });

    new Gauge({
      name: 'inference_queue_depth',
      help: 'Requests waiting for a generation slot, by model',
      labelNames: ['model'],
      registers,
      collect() {
        for (const model of served) this.set({ model }, gates.queuedRequests(model));
      },
    });

    // Counted by each engine that has an adapter cache (llama.cpp) since it started; an engine that restarts starts
    // again from 0, as Prometheus counters may.
    const adapterCache = (name: string, help: string, pick: (cache: AdapterCacheCounts) => number) =>
      new Counter({
        name,
        help,
        labelNames: ['model'],
        registers,
        collect() {
          this.reset();
          for (const [model, engine] of engines.started()) {
            if (engine.adapterCache) this.inc({ model }, pick(engine.adapterCache));
          }
        },
      });
    adapterCache('adapter_cache_hits_total', 'Adapter uses served by the converted-adapter cache (llama.cpp), by model', (c) => c.hits);
    adapterCache('adapter_cache_misses_total', 'Adapter uses that converted the adapter first (llama.cpp), by model', (c) => c.misses);

    fleetMetrics(registers, engines);
  }
}
