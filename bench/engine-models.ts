/**
 * The engine benchmark's inputs: a random llama of about 363 MiB (F32) and four r=16 PEFT adapters for it, made with
 * the project's tiny-model generator at a larger size, plus each adapter converted to GGUF (what llama-server loads
 * and what the engine's cache holds). Written once per directory and reused.
 */
import { createReadStream } from 'node:fs';
import { mkdir, readFile, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { convertPeftToGguf } from '../src/formats/lora-to-gguf.js';
import { buildPeftAdapter } from '../src/demo/peft-adapter.js';
import { parsePeftConfig } from '../src/formats/peft-config.js';
import { buildTinyModel, tinyArchitecture, type TinyModelSpec } from '../src/demo/tiny-model.js';
import type { ModelArchitecture } from '../src/formats/architecture.js';
import type { LoraModule } from '../src/formats/architecture.js';

/** 8 layers of 1024 wide with 3072 feed-forward: 95 M parameters, 363 MiB in F32. */
export const BENCH_SPEC: TinyModelSpec = {
  family: 'llama',
  seed: 7,
  hiddenSize: 1024,
  layers: 8,
  heads: 16,
  kvHeads: 2,
  intermediateSize: 3072,
  contextLength: 4096,
};

const ALL: LoraModule[] = ['q_proj', 'k_proj', 'v_proj', 'o_proj', 'gate_proj', 'up_proj', 'down_proj'];
export const BENCH_ADAPTERS: { name: string; targetModules: LoraModule[]; seed: number }[] = [
  { name: 'a-attn', targetModules: ['q_proj', 'k_proj', 'v_proj', 'o_proj'], seed: 201 },
  { name: 'b-all', targetModules: ALL, seed: 202 },
  { name: 'c-qv', targetModules: ['q_proj', 'v_proj'], seed: 203 },
  { name: 'd-mlp', targetModules: ['gate_proj', 'up_proj', 'down_proj'], seed: 204 },
];

export interface BenchModels {
  modelPath: string;
  architecture: ModelArchitecture;
  adapters: { name: string; dir: string; config: Buffer; safetensors: Buffer; gguf: string }[];
}

const exists = (path: string) => stat(path).then(() => true, () => false);

export async function benchModels(dir: string): Promise<BenchModels> {
  await mkdir(dir, { recursive: true });
  const architecture = tinyArchitecture(BENCH_SPEC);
  const modelPath = join(dir, 'bench-llama.gguf');
  if (!(await exists(modelPath))) await writeFile(modelPath, buildTinyModel(BENCH_SPEC).gguf);
  const adapters = [];
  for (const { name, targetModules, seed } of BENCH_ADAPTERS) {
    const adapterDir = join(dir, name);
    const configPath = join(adapterDir, 'adapter_config.json');
    const weightsPath = join(adapterDir, 'adapter_model.safetensors');
    const gguf = join(dir, `${name}.gguf`);
    if (!(await exists(gguf))) {
      const built = buildPeftAdapter({ architecture, r: 16, loraAlpha: 32, targetModules, dtype: 'F16', seed, magnitude: 0.05 });
      await mkdir(adapterDir, { recursive: true });
      await writeFile(configPath, built.configJson);
      await writeFile(weightsPath, built.safetensors);
      const { config } = parsePeftConfig(built.configJson, { architecture, maxLoraRank: 64 });
      await convertPeftToGguf({ safetensors: createReadStream(weightsPath), config, architecture }, gguf);
    }
    adapters.push({ name, dir: adapterDir, config: await readFile(configPath), safetensors: await readFile(weightsPath), gguf });
  }
  return { modelPath, architecture, adapters };
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const models = await benchModels(process.argv[2] ?? '/work/bench-models');
  console.log(JSON.stringify({ ...models, adapters: models.adapters.map((a) => ({ name: a.name, gguf: a.gguf })) }, null, 2));
}
