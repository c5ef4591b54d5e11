import { mkdir, writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { buildPeftAdapter } from './peft-adapter.js';
import { buildTinyModel, TINY_MODELS, TINY_SAMPLE_ADAPTERS, tinyArchitecture, tinyModelCatalogEntry } from './tiny-model.js';

export interface TinyModelFiles {
  /** A MODELS_FILE describing the tiny models, with llama-cpp engines pointing at their GGUF files. */
  modelsFile: string;
  /** Sample adapter folders (adapter_config.json + adapter_model.safetensors), by adapter name. */
  adapters: Record<string, string>;
}

/** Writes the tiny models, their catalog entries and sample PEFT adapters under `outDir`, deterministically. */
export async function writeTinyModels(outDir: string): Promise<TinyModelFiles> {
  const root = resolve(outDir);
  await mkdir(root, { recursive: true });
  const entries = [];
  for (const { file, name, description, spec } of TINY_MODELS) {
    const model = buildTinyModel(spec);
    const modelPath = join(root, file);
    await writeFile(modelPath, model.gguf);
    entries.push(tinyModelCatalogEntry({ name, description, architecture: model.architecture, modelPath }));
  }
  const modelsFile = join(root, 'models.json');
  await writeFile(modelsFile, `${JSON.stringify(entries, null, 2)}\n`);

  const adapters: Record<string, string> = {};
  for (const { name, model, adapter } of TINY_SAMPLE_ADAPTERS) {
    const spec = TINY_MODELS.find((m) => m.name === model)!.spec;
    const { configJson, safetensors } = buildPeftAdapter({ ...adapter, architecture: tinyArchitecture(spec), baseModelNameOrPath: model });
    const dir = join(root, 'adapters', name);
    await mkdir(dir, { recursive: true });
    await writeFile(join(dir, 'adapter_config.json'), configJson);
    await writeFile(join(dir, 'adapter_model.safetensors'), safetensors);
    adapters[name] = dir;
  }
  return { modelsFile, adapters };
}
