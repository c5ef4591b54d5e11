import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startVllmStandIn, type VllmStandIn } from '../../helpers/vllm-stand-in.js';
import { BASE, pool, run, servedName, startFleet, type Fleet } from './fleet-helpers.js';

const MAX_LORAS = 2;

let replicas: VllmStandIn[];
let fleet: Fleet;
const adapterDir = mkdtempSync(join(tmpdir(), 'resolver-adapters-'));

beforeAll(async () => {
  // Both replicas resolve from the folder the service writes into: VLLM_LORA_RESOLVER_CACHE_DIR=adapter_dir.
  replicas = await Promise.all([1, 2].map(() => startVllmStandIn({ servedModel: 'llama', model: BASE, maxLoras: MAX_LORAS, resolverDir: adapterDir })));
  fleet = await startFleet(
    { type: 'vllm', replicas: replicas.map((r) => r.url), adapter_loading: 'resolver', max_loras: MAX_LORAS, refresh_ms: 100, served_model: 'llama' },
    6,
    adapterDir,
  );
}, 120_000);
afterAll(async () => {
  await fleet.t.close();
  await Promise.all(replicas.map((r) => r.close()));
});

describe("vLLM's filesystem resolver", () => {
  it('lets each replica load an adapter on the first request naming it: the service writes the files and routes', async () => {
    const first = await run(fleet.t, fleet.acme, { lora: fleet.finetunes[0] });
    expect(first.status).toBe(200);
    const name = servedName(first.text);
    expect(name).toMatch(/^ft-[0-9a-f-]{36}-[0-9a-f]{12}$/);
    expect(replicas.flatMap((r) => r.resolved)).toEqual([name]);
    expect(replicas.flatMap((r) => r.loads)).toEqual([]);
    // The resolver takes the adapter only when base_model_name_or_path is vLLM's --model.
    expect(JSON.parse(readFileSync(join(adapterDir, name, 'adapter_config.json'), 'utf8'))).toMatchObject({ base_model_name_or_path: BASE });
  });

  it('unloads the least recently used adapter to keep each replica within max_loras', async () => {
    const order = [0, 1, 2, 3, 4, 5, 0, 1, 2, 3, 4, 5, 5, 4, 3, 2, 1, 0];
    const results = await pool(order.map((i) => () => run(fleet.t, fleet.acme, { lora: fleet.finetunes[i], stream: i % 2 === 0 })), 3);
    expect(results.filter((r) => r.status !== 200 || r.ended === 'error')).toEqual([]);
    expect(replicas.flatMap((r) => r.loads)).toEqual([]);
    for (const replica of replicas) {
      expect(replica.peakLoaded()).toBeLessThanOrEqual(MAX_LORAS);
      expect(replica.refusals()).toBe(0);
    }
    expect(replicas.reduce((sum, r) => sum + r.unloads.length, 0)).toBeGreaterThan(0);
    // Every unload made room for a resolution that followed.
    expect(replicas.reduce((sum, r) => sum + r.resolved.length, 0)).toBeGreaterThan(4);
  });
});
