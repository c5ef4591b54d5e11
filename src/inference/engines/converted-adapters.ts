/**
 * Stored PEFT adapters converted to GGUF LoRA for llama.cpp, once per version, kept on disk under the engine's cache
 * directory so that later uses and restarts reuse them. Concurrent first uses share one conversion.
 */
import { randomBytes } from 'node:crypto';
import { mkdir, readFile, rename, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { convertPeftToGguf } from '../../formats/lora-to-gguf.js';
import { parsePeftConfig } from '../../formats/peft-config.js';
import type { AdapterRef, EngineContext } from '../engine.js';

export async function fileSize(path: string): Promise<number | null> {
  try {
    return (await stat(path)).size;
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw error;
  }
}

export class ConvertedAdapters {
  private readonly conversions = new Map<string, Promise<string>>();
  /** Uses served by an already converted GGUF or a conversion under way. */
  hits = 0;
  /** Uses that converted the adapter. */
  misses = 0;

  constructor(private readonly ctx: EngineContext) {}

  /** The adapter's GGUF path, converting it first if needed. */
  gguf(adapter: AdapterRef): Promise<string> {
    const { version } = adapter;
    let conversion = this.conversions.get(version);
    if (conversion) this.hits++;
    else {
      conversion = this.convert(adapter);
      this.conversions.set(version, conversion);
      // Only in-flight conversions are shared; afterwards the file is the cache, and a failure is retried.
      const forget = () => this.conversions.delete(version);
      conversion.then(forget, forget);
    }
    return conversion;
  }

  private async convert({ version, configKey, weightsKey }: AdapterRef): Promise<string> {
    if (!/^[\w-]+$/.test(version)) throw new Error(`adapter version ${JSON.stringify(version)} is not a safe file name`);
    const ggufDir = join(this.ctx.cacheDir, 'gguf');
    const ggufPath = join(ggufDir, `${version}.gguf`);
    if ((await fileSize(ggufPath)) !== null) {
      this.hits++;
      return ggufPath;
    }
    this.misses++;

    const downloadDir = join(this.ctx.cacheDir, 'adapters', version);
    const configPath = join(downloadDir, 'adapter_config.json');
    const weightsPath = join(downloadDir, 'adapter_model.safetensors');
    await mkdir(downloadDir, { recursive: true });
    await mkdir(ggufDir, { recursive: true });
    const tmpPath = `${ggufPath}.${randomBytes(6).toString('hex')}.tmp`;
    try {
      await Promise.all([
        this.ctx.files.readToFile(configKey, configPath),
        this.ctx.files.readToFile(weightsKey, weightsPath),
      ]);
      const { architecture, limits, base_model } = this.ctx.model;
      if (!architecture) throw new Error(`model ${this.ctx.model.name} has no architecture to apply adapters to`);
      const { config } = parsePeftConfig(await readFile(configPath), {
        architecture,
        maxLoraRank: limits.max_lora_rank,
        baseModelName: base_model ?? undefined,
      });
      await convertPeftToGguf({ safetensors: [await readFile(weightsPath)], config, architecture }, tmpPath);
      // Atomic: a crash mid-write never leaves a truncated file under the final name.
      await rename(tmpPath, ggufPath);
      return ggufPath;
    } finally {
      await rm(tmpPath, { force: true });
      // Only the GGUF is used from now on.
      await rm(downloadDir, { recursive: true, force: true });
    }
  }
}
