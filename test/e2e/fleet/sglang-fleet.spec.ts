import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { startSglangStandIn, type SglangStandIn } from '../../helpers/sglang-stand-in.js';
import { BASE, pool, run, servedName, skewed, startFleet, until, type Fleet } from './fleet-helpers.js';

const MAX_LOADED = 3;
const ADAPTERS = 8;

let replicas: SglangStandIn[];
let fleet: Fleet;

beforeAll(async () => {
  replicas = await Promise.all([1, 2, 3].map(() => startSglangStandIn({ servedModel: BASE, maxLoadedLoras: MAX_LOADED, chunkDelayMs: 2 })));
  fleet = await startFleet({ type: 'sglang', replicas: replicas.map((r) => r.url), max_loras: MAX_LOADED, refresh_ms: 100 }, ADAPTERS);
}, 120_000);
afterAll(async () => {
  await fleet.t.close();
  await Promise.all(replicas.map((r) => r.close()));
});

describe('three SGLang replicas', () => {
  it("loads adapters with SGLang's dynamic LoRA API, selects them as <base>:<adapter>, and keeps each replica within --max-loaded-loras", async () => {
    const draws = skewed(ADAPTERS, 120);
    const results = await pool(draws.map((i) => () => run(fleet.t, fleet.acme, { lora: fleet.finetunes[i], stream: i % 3 === 0 })), 6);

    expect(results.filter((r) => r.status !== 200 || r.ended === 'error')).toEqual([]);
    // Each finetune always answered as the same served adapter, and different finetunes as different ones.
    const byFinetune = new Map<number, Set<string>>();
    for (const [n, i] of draws.entries()) byFinetune.set(i, (byFinetune.get(i) ?? new Set()).add(servedName(results[n]!.text)));
    expect([...byFinetune.values()].every((names) => names.size === 1)).toBe(true);
    expect(new Set([...byFinetune.values()].map((names) => [...names][0])).size).toBe(byFinetune.size);

    const completions = replicas.flatMap((r) => r.completions);
    expect(completions.every((c) => typeof c.model === 'string' && c.model.startsWith(`${BASE}:ft-`))).toBe(true);
    for (const replica of replicas) {
      expect(replica.peakLoaded()).toBeLessThanOrEqual(MAX_LOADED);
      expect(replica.refusals()).toBe(0);
    }
    // Eight adapters in nine slots: each loaded once, wherever the router put it first.
    expect(replicas.reduce((sum, r) => sum + r.loads.length, 0)).toBe(byFinetune.size);
  });

  it('retries on another replica when the one holding the adapter is down, and uses it again once it is back', async () => {
    const hot = fleet.finetunes[0]!;
    const name = servedName((await run(fleet.t, fleet.acme, { lora: hot })).text);
    const victim = replicas.find((r) => r.loaded().includes(name))!;
    await victim.kill();

    const outcomes = await Promise.all([1, 2, 3, 4].map(() => run(fleet.t, fleet.acme, { lora: hot })));
    expect(outcomes.map((o) => [o.status, servedName(o.text)])).toEqual(outcomes.map(() => [200, name]));
    expect(replicas.filter((r) => r !== victim && r.loaded().includes(name))).toHaveLength(1);

    await victim.revive();
    const before = victim.completions.length;
    await until(async () => {
      expect((await run(fleet.t, fleet.acme, {})).status).toBe(200);
      return victim.completions.length > before;
    }, 'the revived replica to serve again');
  });
});

