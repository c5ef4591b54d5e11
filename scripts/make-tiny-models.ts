/**
 * Writes the tiny test models, a models.json catalog describing them and sample PEFT adapters, deterministically.
 * Usage: npx tsx scripts/make-tiny-models.ts <outDir>
 */
import { mkdir, writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { buildPeftAdapter } from '../src/formats/peft-adapter.js';
import {
  buildTinyModel,
  TINY_MODELS,
  TINY_SAMPLE_ADAPTERS,
  tinyArchitecture,
  tinyModelCatalogEntry,
} from '../src/formats/tiny-model.js';

const outArg = process.argv[2];
if (!outArg) {
  console.error('usage: npx tsx scripts/make-tiny-models.ts <outDir>');
  process.exit(2);
}
const outDir = resolve(outArg);
await mkdir(outDir, { recursive: true });

const entries = [];
for (const { file, name, description, spec } of TINY_MODELS) {
  const model = buildTinyModel(spec);
  const modelPath = join(outDir, file);
  await writeFile(modelPath, model.gguf);
  entries.push(tinyModelCatalogEntry({ name, description, architecture: model.architecture, modelPath }));
}
await writeFile(join(outDir, 'models.json'), `${JSON.stringify(entries, null, 2)}\n`);

for (const { name, model, adapter } of TINY_SAMPLE_ADAPTERS) {
  const spec = TINY_MODELS.find((m) => m.name === model)!.spec;
  const { configJson, safetensors } = buildPeftAdapter({
    ...adapter,
    architecture: tinyArchitecture(spec),
    baseModelNameOrPath: model,
  });
  const dir = join(outDir, 'adapters', name);
  await mkdir(dir, { recursive: true });
  await writeFile(join(dir, 'adapter_config.json'), configJson);
  await writeFile(join(dir, 'adapter_model.safetensors'), safetensors);
}
console.log(`wrote ${TINY_MODELS.length} models, models.json and ${TINY_SAMPLE_ADAPTERS.length} adapters to ${outDir}`);
