import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { join } from 'node:path';
import { startTestApp, type TestApp } from '../../helpers/app.js';
import { parsePrometheusText, sampleValue } from '../../helpers/prometheus-text.js';
import { startVllmStandIn, type VllmStandIn } from '../../helpers/vllm-stand-in.js';
import { BASE, MODEL, pool, rootOf, run, servedName, skewed, startFleet, until, type Fleet } from './fleet-helpers.js';

const MAX_LORAS = 6;
const ADAPTERS = 20;

let replicas: VllmStandIn[];
let fleet: Fleet;
/** Served adapter name of each finetune, learned from the warm-up answers. */
const names: string[] = [];

const totalLoads = () => replicas.reduce((sum, r) => sum + r.loads.length, 0);
const holderOf = (name: string) => replicas.filter((r) => r.loaded().includes(name));

beforeAll(async () => {
  replicas = await Promise.all([1, 2, 3].map(() => startVllmStandIn({ servedModel: BASE, maxLoras: MAX_LORAS, chunkDelayMs: 2 })));
  fleet = await startFleet({ type: 'vllm', replicas: replicas.map((r) => r.url), max_loras: MAX_LORAS, refresh_ms: 100 }, ADAPTERS);
}, 120_000);
afterAll(async () => {
  await fleet.t.close();
  await Promise.all(replicas.map((r) => r.close()));
});

describe('three vLLM replicas, twenty adapters', () => {
  it('places skewed traffic where its adapter already is, and never loads a replica beyond max_loras', async () => {
    // Warm-up: every adapter once, so that each is (or was) somewhere.
    const warm = await pool(fleet.finetunes.map((lora) => () => run(fleet.t, fleet.acme, { lora })), 4);
    expect(warm.map((r) => r.status)).toEqual(fleet.finetunes.map(() => 200));
    names.push(...warm.map((r) => servedName(r.text)));
    expect(new Set(names).size).toBe(ADAPTERS);

    const loadsBefore = totalLoads();
    const draws = skewed(ADAPTERS, 300);
    const results = await pool(draws.map((i) => () => run(fleet.t, fleet.acme, { lora: fleet.finetunes[i], stream: i % 2 === 0 })), 8);

    expect(results.filter((r) => r.status !== 200 || r.ended === 'error')).toEqual([]);
    // Each answer came from its own adapter.
    expect(results.map((r) => servedName(r.text))).toEqual(draws.map((i) => names[i]));
    // A request lands on a replica without its adapter only when a load follows: loads bound the misses.
    const misses = totalLoads() - loadsBefore;
    expect((draws.length - misses) / draws.length).toBeGreaterThanOrEqual(0.9);
    for (const replica of replicas) {
      expect(replica.peakLoaded()).toBeLessThanOrEqual(MAX_LORAS);
      expect(replica.refusals()).toBe(0);
    }
    const metrics = parsePrometheusText(await (await fetch(`${rootOf(fleet.t)}/metrics`)).text());
    const perReplica = (name: string) => replicas.reduce((sum, r) => sum + sampleValue(metrics, name, { model: MODEL, replica: r.url }), 0);
    // No replica fell meanwhile (which would send its adapters' traffic elsewhere)...
    expect([perReplica('engine_replica_down_total'), perReplica('engine_replica_errors_total')]).toEqual([0, 0]);
    // ...so hot adapters stayed put: each is on exactly one replica.
    for (const hot of names.slice(0, 3)) expect(holderOf(hot).map((r) => r.url)).toHaveLength(1);

    expect(sampleValue(metrics, 'engine_adapter_hit_ratio', { model: MODEL })).toBeGreaterThanOrEqual(0.85);
    expect(perReplica('engine_replica_requests_total')).toBe(ADAPTERS + draws.length);
    expect(perReplica('engine_replica_adapter_loads_total')).toBe(totalLoads());
    expect(perReplica('engine_replica_adapter_evictions_total')).toBe(replicas.reduce((sum, r) => sum + r.unloads.length, 0));
    expect(perReplica('engine_replica_in_flight')).toBe(0);
  });

  it('moves requests without output off a replica that dies, ends its started streams with an error event, and uses it again once back', async () => {
    const hot = fleet.finetunes[0]!;
    const [victim] = holderOf(names[0]!);
    expect(victim).toBeDefined();
    // Long enough (about half a second at 2 ms a token) that all twelve are still running at the kill.
    const long = { lora: hot, max_tokens: 250, prompt: Array.from({ length: 300 }, (_, i) => `w${i}`).join(' ') };
    const streams = Array.from({ length: 6 }, () => run(fleet.t, fleet.acme, { ...long, stream: true }));
    const plain = Array.from({ length: 6 }, () => run(fleet.t, fleet.acme, long));
    await until(() => victim!.running() >= 12, 'requests running on the replica');
    await victim!.kill();
    // Requests that arrive while it is down.
    const during = await Promise.all(fleet.finetunes.slice(0, 6).map((lora) => run(fleet.t, fleet.acme, { lora })));

    const streamed = await Promise.all(streams);
    const answered = await Promise.all(plain);
    // Nothing had left for these: each was answered in full by another replica.
    expect(answered.map((r) => [r.status, servedName(r.text)])).toEqual(answered.map(() => [200, names[0]]));
    expect(during.map((r) => r.status)).toEqual(during.map(() => 200));
    // Streams already sending text from the dead replica end with an error event after that text.
    for (const stream of streamed) {
      expect(stream.status).toBe(200);
      if (stream.ended === 'error') {
        expect(stream.pieces).toBeGreaterThan(0);
        expect(stream.error).toMatchObject({ code: 90503, message: expect.stringContaining(victim!.url) });
      }
    }
    expect(streamed.filter((s) => s.ended === 'error').length).toBeGreaterThan(0);

    const down = (await (await fetch(`${rootOf(fleet.t)}/readyz`)).json()) as { status: string; checks: { replicas: Record<string, Record<string, string>> } };
    expect(down.status).toBe('ready');
    expect(down.checks.replicas[MODEL]![victim!.url]).toContain('ECONNREFUSED');
    for (const other of replicas.filter((r) => r !== victim)) expect(down.checks.replicas[MODEL]![other.url]).toBe('ok');

    await victim!.revive();
    const before = victim!.completions.length;
    await until(async () => {
      const outcome = await run(fleet.t, fleet.acme, {});
      expect(outcome.status).toBe(200);
      return victim!.completions.length > before;
    }, 'the revived replica to serve again');
    const metrics = parsePrometheusText(await (await fetch(`${rootOf(fleet.t)}/metrics`)).text());
    expect(sampleValue(metrics, 'engine_replica_up', { model: MODEL, replica: victim!.url })).toBe(1);
    expect(sampleValue(metrics, 'engine_replica_errors_total', { model: MODEL, replica: victim!.url })).toBeGreaterThan(0);
    expect(sampleValue(metrics, 'engine_replica_down_total', { model: MODEL, replica: victim!.url })).toBeGreaterThan(0);
  });

  it('two service processes on one database put an adapter where the other already placed it', async () => {
    const second: TestApp = await startTestApp({ ...fleet.env, CACHE_DIR: join(fleet.tiny.dir, 'cache-2') }, { database: fleet.t.db });
    try {
      // What the replicas hold now, as they report it: the second process has loaded nothing itself.
      const held = names.map((name) => holderOf(name));
      const loadsBefore = totalLoads();
      const placed = names.flatMap((name, i) => (held[i]!.length === 1 ? [{ i, replica: held[i]![0]! }] : []));
      // Two replicas kept theirs through the previous test; the revived one restarted empty.
      expect(placed.length).toBeGreaterThanOrEqual(MAX_LORAS);
      for (const { i, replica } of placed) {
        const completions = replica.completions.length;
        const outcome = await run(second, fleet.acme, { lora: fleet.finetunes[i] });
        expect([outcome.status, servedName(outcome.text)]).toEqual([200, names[i]]);
        expect(replica.completions.length).toBe(completions + 1);
      }
      expect(totalLoads()).toBe(loadsBefore);

      // An adapter the second process brings onto a replica is then served there by the first one, without a load.
      const fresh = names.findIndex((_, i) => held[i]!.length === 0);
      expect(fresh).toBeGreaterThanOrEqual(0);
      expect((await run(second, fleet.acme, { lora: fleet.finetunes[fresh] })).status).toBe(200);
      const [home] = holderOf(names[fresh]!);
      const loads = totalLoads();
      await new Promise((resolve) => setTimeout(resolve, 300)); // the first process's next read of the replicas
      const completions = home!.completions.length;
      expect((await run(fleet.t, fleet.acme, { lora: fleet.finetunes[fresh] })).status).toBe(200);
      expect(home!.completions.length).toBe(completions + 1);
      expect(totalLoads()).toBe(loads);
    } finally {
      await second.close();
    }
  });
});
