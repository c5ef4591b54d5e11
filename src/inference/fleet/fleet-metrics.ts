/** Per-replica metrics of the vLLM and SGLang engines, read from their fleets when Prometheus scrapes. */
import { Counter, Gauge, type Registry } from 'prom-client';
import type { InferenceEngine } from '../engine.js';
import { FleetEngine } from './fleet-engine.js';
import type { ReplicaCounters } from './replica.js';

function* fleets(engines: { started(): ReadonlyMap<string, InferenceEngine> }) {
  for (const [model, engine] of engines.started()) if (engine instanceof FleetEngine) yield { model, fleet: engine.fleet };
}

export function fleetMetrics(registers: Registry[], engines: { started(): ReadonlyMap<string, InferenceEngine> }): void {
  // Counted by each engine since it started; one that restarts starts again from 0, as Prometheus counters may.
  const counter = (name: string, help: string, pick: keyof ReplicaCounters) =>
    new Counter({
      name,
      help,
      labelNames: ['model', 'replica'],
      registers,
      collect() {
        this.reset();
        for (const { model, fleet } of fleets(engines)) {
          for (const replica of fleet.replicas) this.inc({ model, replica: replica.url }, replica.counters[pick]);
        }
      },
    });
  counter('engine_replica_requests_total', 'Generation attempts placed on a replica (a retried request counts on both)', 'requests');
  counter('engine_replica_errors_total', 'Generation attempts that failed on a replica', 'errors');
  counter('engine_replica_down_total', 'Times a replica was marked down (refused, reset, timed out, or answered 5xx)', 'downs');
  counter('engine_replica_adapter_loads_total', 'Adapters a replica loaded for this process', 'loads');
  counter('engine_replica_adapter_evictions_total', 'Adapters this process unloaded from a replica to make room', 'evictions');

  new Gauge({
    name: 'engine_replica_in_flight',
    help: "This process's requests running on a replica now",
    labelNames: ['model', 'replica'],
    registers,
    collect() {
      this.reset();
      for (const { model, fleet } of fleets(engines)) for (const r of fleet.replicas) this.set({ model, replica: r.url }, r.inFlight);
    },
  });
  new Gauge({
    name: 'engine_replica_up',
    help: 'Whether a replica is in rotation (1) or marked down and being probed (0)',
    labelNames: ['model', 'replica'],
    registers,
    collect() {
      this.reset();
      for (const { model, fleet } of fleets(engines)) for (const r of fleet.replicas) this.set({ model, replica: r.url }, r.healthy ? 1 : 0);
    },
  });
  new Gauge({
    name: 'engine_adapter_hit_ratio',
    help: 'Share of requests with an adapter served by a replica that already held it, by model',
    labelNames: ['model'],
    registers,
    collect() {
      this.reset();
      for (const { model, fleet } of fleets(engines)) {
        const requests = fleet.replicas.reduce((sum, r) => sum + r.counters.adapterRequests, 0);
        const hits = fleet.replicas.reduce((sum, r) => sum + r.counters.hits, 0);
        if (requests > 0) this.set({ model }, hits / requests);
      }
    },
  });
}
