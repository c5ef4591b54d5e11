/**
 * Routing benchmark: what choosing a replica costs per request, and how often a request lands on a replica that
 * already holds its adapter, under skewed traffic (a few hot adapters, a long cold tail).
 *
 * Usage (from the repository root; needs nothing else running):
 *
 *   npx tsx bench/routing.ts [--requests N] [--adapters A] [--replicas R] [--max-loras M] [--concurrency C]
 *
 *   --requests N     skewed requests after the warm-up (default 2000)
 *   --adapters A     distinct adapters (default 20); adapter i is drawn with weight 1/(i+1)^1.3
 *   --replicas R     vLLM stand-ins (default 3)
 *   --max-loras M    adapter slots per replica (default 6: fewer slots than adapters, so eviction happens)
 *   --concurrency C  requests in flight (default 8)
 *
 * What it does: starts R vLLM stand-ins (test/helpers/vllm-stand-in.ts, with a max_loras limit that refuses a load
 * beyond it) and one VllmEngine over them (the real engine: routing, loads, LRU eviction), sends every adapter once
 * (warm-up), then N skewed requests. It reports:
 *
 * - the routing decision cost: Fleet#place timed around each call the engine made during the run (placement
 *   and slot reservation; median, since a garbage collection that lands in one call inflates the mean), and the
 *   router alone replayed 100,000 times on the fleet's final state against a round-robin pick over the same
 *   replicas in the same loop; and as a share of a request's time through the engine;
 * - the adapter-hit ratio after warm-up, from the fleet's own counters and cross-checked against the stand-ins'
 *   load calls, against a plain round-robin load balancer replayed on the same request sequence (each replica an
 *   LRU of M adapters: what placement without adapter affinity would hit).
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { Readable } from 'node:stream';
import { parseArgs } from 'node:util';
import { BUILTIN_MODELS } from '../src/catalog/builtin-models.js';
import type { ModelDefinition } from '../src/catalog/model-definition.js';
import type { AdapterRef, GenerationRequest } from '../src/inference/engine.js';
import { VllmEngine } from '../src/inference/engines/vllm.engine.js';
import type { Fleet } from '../src/inference/fleet/fleet.js';
import { place as route } from '../src/inference/fleet/router.js';
import { startVllmStandIn } from '../test/helpers/vllm-stand-in.js';

const { values } = parseArgs({
  options: {
    requests: { type: 'string', default: '2000' },
    adapters: { type: 'string', default: '20' },
    replicas: { type: 'string', default: '3' },
    'max-loras': { type: 'string', default: '6' },
    concurrency: { type: 'string', default: '8' },
  },
});
const REQUESTS = Number(values.requests);
const ADAPTERS = Number(values.adapters);
const REPLICAS = Number(values.replicas);
const MAX_LORAS = Number(values['max-loras']);
const CONCURRENCY = Number(values.concurrency);

function skewed(n: number, count: number, seed = 7): number[] {
  const weights = Array.from({ length: n }, (_, i) => 1 / (i + 1) ** 1.3);
  const total = weights.reduce((a, b) => a + b, 0);
  let state = seed;
  const random = () => (state = (Math.imul(state, 1103515245) + 12345) >>> 0) / 2 ** 32;
  return Array.from({ length: count }, () => {
    let r = random() * total;
    for (const [i, w] of weights.entries()) if ((r -= w) < 0) return i;
    return n - 1;
  });
}

/** A plain load balancer: round robin, each replica an LRU of `slots` adapters; the share of requests that hit. */
function roundRobinHits(sequence: readonly number[], warmup: readonly number[]): number {
  const lrus = Array.from({ length: REPLICAS }, () => new Map<number, true>());
  let next = 0;
  let hits = 0;
  const send = (adapter: number, counted: boolean) => {
    const lru = lrus[next++ % REPLICAS]!;
    if (lru.delete(adapter)) hits += counted ? 1 : 0;
    else if (lru.size >= MAX_LORAS) lru.delete(lru.keys().next().value!);
    lru.set(adapter, true);
  };
  for (const adapter of warmup) send(adapter, false);
  for (const adapter of sequence) send(adapter, true);
  return hits / sequence.length;
}

async function pool(jobs: (() => Promise<unknown>)[], concurrency: number): Promise<void> {
  let next = 0;
  await Promise.all(Array.from({ length: concurrency }, async () => {
    while (next < jobs.length) await jobs[next++]!();
  }));
}

async function main(): Promise<void> {
  const dir = await mkdtemp(join(tmpdir(), 'bench-routing-'));
  const servers = await Promise.all(Array.from({ length: REPLICAS }, () => startVllmStandIn({ servedModel: 'bench/base', maxLoras: MAX_LORAS })));
  const base = BUILTIN_MODELS.find((m) => m.lora)!;
  const model: ModelDefinition = {
    ...base,
    engine: { type: 'vllm', replicas: servers.map((s) => s.url), served_model: 'bench/base', adapter_dir: join(dir, 'adapters'), max_loras: MAX_LORAS },
  };
  const content = (key: string) => (key.endsWith('.json') ? '{"peft_type":"LORA"}' : 'weights');
  const files = {
    readToFile: (key: string, path: string) => writeFile(path, content(key)),
    readStream: async (key: string) => Readable.from([Buffer.from(content(key))]),
  };
  const engine = new VllmEngine({ model, files, cacheDir: join(dir, 'cache') });
  const fleet: Fleet = engine.fleet;

  // Time each placement the engine makes: the routing decision.
  const place = fleet.place.bind(fleet);
  let timings: number[] = [];
  fleet.place = (adapter, exclude) => {
    const started = performance.now();
    try {
      return place(adapter, exclude);
    } finally {
      timings.push(performance.now() - started);
    }
  };

  const adapters: AdapterRef[] = Array.from({ length: ADAPTERS }, (_, i) => ({
    finetuneId: `00000000-0000-4000-8000-${String(i).padStart(12, '0')}`,
    version: 'a'.repeat(64),
    configKey: 'config.json',
    weightsKey: 'weights.safetensors',
  }));
  const request = (i: number): GenerationRequest => ({ prompt: 'hello bench', stop: [], maxTokens: 4, sampling: {}, adapter: adapters[i], signal: new AbortController().signal });

  const warmup = adapters.map((_, i) => i);
  await pool(warmup.map((i) => () => engine.generate(request(i))), CONCURRENCY);
  const hitsBefore = fleet.replicas.reduce((sum, r) => sum + r.counters.hits, 0);
  const servedBefore = fleet.replicas.reduce((sum, r) => sum + r.counters.adapterRequests, 0);
  const loadsBefore = servers.reduce((sum, s) => sum + s.loads.length, 0);
  timings = [];

  const sequence = skewed(ADAPTERS, REQUESTS);
  const started = performance.now();
  await pool(sequence.map((i) => () => engine.generate(request(i))), CONCURRENCY);
  const elapsed = performance.now() - started;

  const hits = fleet.replicas.reduce((sum, r) => sum + r.counters.hits, 0) - hitsBefore;
  const served = fleet.replicas.reduce((sum, r) => sum + r.counters.adapterRequests, 0) - servedBefore;
  const loads = servers.reduce((sum, s) => sum + s.loads.length, 0) - loadsBefore;

  // The router alone on the final state, and the baseline pick, in the same loop shape.
  const names = adapters.map((a) => `ft-${a.finetuneId}-${a.version.slice(0, 12)}`);
  const capacity = () => MAX_LORAS;
  const none = new Set<never>();
  const ROUNDS = 100_000;
  let sink = 0;
  const loop = (pick: (i: number) => { url: string }) => {
    const t0 = performance.now();
    for (let i = 0; i < ROUNDS; i++) sink += pick(i).url.length;
    return ((performance.now() - t0) / ROUNDS) * 1000;
  };
  const replicas = fleet.replicas;
  let routerUs = Infinity;
  let pickUs = Infinity;
  for (let round = 0; round < 5; round++) {
    routerUs = Math.min(routerUs, loop((i) => route(replicas, names[sequence[i % sequence.length]!], capacity, none, String(i))!.replica));
    pickUs = Math.min(pickUs, loop((i) => replicas[i % replicas.length]!));
  }

  timings.sort((a, b) => a - b);
  const decisionUs = timings[Math.floor(timings.length / 2)]! * 1000;
  const perRequestMs = (elapsed / REQUESTS) * CONCURRENCY;
  console.log(`routing ${REQUESTS} skewed requests over ${REPLICAS} replicas x max_loras ${MAX_LORAS}, ${ADAPTERS} adapters, ${CONCURRENCY} in flight`);
  console.log(
    `routing decision in the engine: ${decisionUs.toFixed(2)} µs/request (median), ` +
      `${((decisionUs / 1000 / perRequestMs) * 100).toFixed(3)}% of a request's ${perRequestMs.toFixed(2)} ms through the engine`,
  );
  console.log(
    `router alone: ${routerUs.toFixed(3)} µs/decision, round-robin pick ${pickUs.toFixed(3)} µs, ratio ${(routerUs / pickUs).toFixed(1)}`,
  );
  console.log(
    `adapter-hit ratio after warm-up: router ${(hits / served).toFixed(3)} (loads ${loads}: at least ${((REQUESTS - loads) / REQUESTS).toFixed(3)}), ` +
      `round-robin ${roundRobinHits(sequence, warmup).toFixed(3)}; refused loads ${servers.reduce((sum, s) => sum + s.refusals(), 0)}, ` +
      `peak adapters per replica ${Math.max(...servers.map((s) => s.peakLoaded()))}${sink < 0 ? '' : ''}`,
  );

  await engine.close();
  await Promise.all(servers.map((s) => s.close()));
  await rm(dir, { recursive: true, force: true });
}

await main();
