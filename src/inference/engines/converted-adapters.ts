/**
 * Stored PEFT adapters converted to GGUF LoRA for llama.cpp, once per version, kept on disk under the engine's cache
 * directory so that later uses and restarts reuse them. Concurrent first uses share one conversion.
 */
import { randomBytes } from 'node:crypto';
import { mkdir, rename, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import type { Readable } from 'node:stream';
import { buffer } from 'node:stream/consumers';
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

/** A converted adapter: its GGUF file and size. */
export interface ConvertedAdapter {
  path: string;
  bytes: number;
}

export class ConvertedAdapters {
  private readonly conversions = new Map<string, Promise<ConvertedAdapter>>();
  private readonly ggufDir: string;
  /** Uses served by an already converted GGUF or a conversion under way. */
  hits = 0;
  /** Uses that converted the adapter. */
  misses = 0;

  constructor(private readonly ctx: EngineContext) {
    this.ggufDir = join(ctx.cacheDir, 'gguf');
  }

  /** The adapter's GGUF file, converting it first if needed. */
  gguf(adapter: AdapterRef): Promise<ConvertedAdapter> {
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

  /**
   * Streams both files from storage straight into the conversion: nothing is downloaded to disk first, and the
   * weights are converted while they arrive.
   */
  private async convert({ version, configKey, weightsKey }: AdapterRef): Promise<ConvertedAdapter> {
    if (!/^[\w-]+$/.test(version)) throw new Error(`adapter version ${JSON.stringify(version)} is not a safe file name`);
    const ggufPath = join(this.ggufDir, `${version}.gguf`);
    const existing = await fileSize(ggufPath);
    if (existing !== null) {
      this.hits++;
      return { path: ggufPath, bytes: existing };
    }
    this.misses++;

    const { architecture, limits, base_model } = this.ctx.model;
    if (!architecture) throw new Error(`model ${this.ctx.model.name} has no architecture to apply adapters to`);
    await mkdir(this.ggufDir, { recursive: true });
    // Both requests at once: the weights start arriving while the config is read and parsed.
    const [configStream, weights] = await openAll([this.ctx.files.readStream(configKey), this.ctx.files.readStream(weightsKey)]);
    const tmpPath = `${ggufPath}.${randomBytes(6).toString('hex')}.tmp`;
    try {
      const { config } = parsePeftConfig(await buffer(configStream), {
        architecture,
        maxLoraRank: limits.max_lora_rank,
        baseModelName: base_model ?? undefined,
      });
      const bytes = await convertPeftToGguf({ safetensors: weights, config, architecture }, tmpPath);
      // Atomic: a crash mid-write never leaves a truncated file under the final name.
      await rename(tmpPath, ggufPath);
      return { path: ggufPath, bytes };
    } catch (error) {
      await rm(tmpPath, { force: true });
      throw error;
    } finally {
      // Read to the end by now unless something failed first: then this releases the connection.
      configStream.destroy();
      weights.destroy();
    }
  }
}

/** Opens every stream, or none: when one cannot be opened, those that could are released. */
async function openAll(opening: Promise<Readable>[]): Promise<Readable[]> {
  const results = await Promise.allSettled(opening);
  const failed = results.find((r): r is PromiseRejectedResult => r.status === 'rejected');
  if (failed === undefined) return results.map((r) => (r as PromiseFulfilledResult<Readable>).value);
  for (const r of results) if (r.status === 'fulfilled') r.value.destroy();
  throw failed.reason;
}
