import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { writeTinyModels, type TinyModelFiles } from '../../src/demo/tiny-model-files.js';

export const TINY_LLAMA = '@cf/tiny/tiny-llama-lora';
export const TINY_GEMMA = '@cf/tiny/tiny-gemma-lora';

export interface TinySetup extends TinyModelFiles {
  dir: string;
  read(adapter: string): { config: Buffer; safetensors: Buffer };
}

/** The tiny models in a temp dir; `extraEntries` are appended to their MODELS_FILE. */
export async function tinySetup(extraEntries: object[] = []): Promise<TinySetup> {
  const dir = mkdtempSync(join(tmpdir(), 'tiny-'));
  const files = await writeTinyModels(dir);
  if (extraEntries.length) {
    const entries = JSON.parse(readFileSync(files.modelsFile, 'utf8'));
    writeFileSync(files.modelsFile, JSON.stringify([...entries, ...extraEntries]));
  }
  return {
    ...files,
    dir,
    read: (adapter) => ({
      config: readFileSync(join(files.adapters[adapter]!, 'adapter_config.json')),
      safetensors: readFileSync(join(files.adapters[adapter]!, 'adapter_model.safetensors')),
    }),
  };
}
