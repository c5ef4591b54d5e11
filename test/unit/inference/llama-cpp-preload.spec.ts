/**
 * EngineRegistry loads the llama.cpp models of the catalog at start-up, in the background, and reports them ready
 * only once loaded.
 */
import { readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, it } from '@jest/globals';
import { CatalogService } from '../../../src/catalog/catalog.service.js';
import type { AppConfig } from '../../../src/config/app-config.js';
import { EngineRegistry } from '../../../src/inference/engine-registry.service.js';
import { EngineReadiness } from '../../../src/observability/engine-readiness.js';
import type { ObjectStorage } from '../../../src/storage/object-storage.js';
import { TINY_GEMMA, TINY_LLAMA, tinySetup, type TinySetup } from '../../helpers/tiny.js';

let tiny: TinySetup;
let registry: EngineRegistry;
let catalog: CatalogService;
let readiness: EngineReadiness;
const missingPath = () => join(tiny.dir, 'missing.gguf');

beforeAll(async () => {
  tiny = await tinySetup();
  const entries = JSON.parse(await readFile(tiny.modelsFile, 'utf8')) as object[];
  const missing = { ...entries[0], name: '@cf/tiny/missing', engine: { type: 'llama-cpp', model_path: missingPath() } };
  await writeFile(tiny.modelsFile, JSON.stringify([...entries, missing]));
  const config = { modelsFile: tiny.modelsFile, cacheDir: join(tiny.dir, 'cache') } as AppConfig;
  catalog = new CatalogService(config);
  // Storage is only read for adapters, which this test does not use.
  readiness = new EngineReadiness();
  registry = new EngineRegistry(config, {} as ObjectStorage, catalog, readiness);
});

afterAll(async () => {
  await registry.onApplicationShutdown();
  await rm(tiny.dir, { recursive: true, force: true });
});

it('loads every llama.cpp model at start-up without a request, and is ready only once they are loaded', async () => {
  registry.onApplicationBootstrap();
  expect(registry.started().size).toBe(0);
  await expect(readiness.ready(catalog.get(TINY_LLAMA), 0)).rejects.toThrow('the model is still loading');
  for (let i = 0; i < 200 && registry.started().size < 2; i++) await new Promise((resolve) => setTimeout(resolve, 50));
  expect([...registry.started().keys()].sort()).toEqual([TINY_GEMMA, TINY_LLAMA]);
  await expect(readiness.ready(catalog.get(TINY_LLAMA), 0)).resolves.toBeUndefined();
  // A model that cannot load is never ready, and says why.
  await expect(registry.ready(catalog.get('@cf/tiny/missing'), 5_000)).rejects.toThrow(`model file ${missingPath()} does not exist`);
});
