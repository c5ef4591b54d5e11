import { createHash } from 'node:crypto';
import type { Usage } from '../usage/token-usage.js';

/** A non-streaming run's answer, as the run endpoint returns it. */
export interface RunAnswer {
  response: string;
  usage: Usage;
}

export interface ResponseCacheBounds {
  maxEntries: number;
  maxBytes: number;
}

const DEFAULT_BOUNDS: ResponseCacheBounds = { maxEntries: 1000, maxBytes: 32 * 1024 * 1024 };

/** What makes a generation's output: the engine's request minus its abort signal (typed here so limits stays below inference). */
export interface CacheableRequest {
  prompt: string;
  stop: string[];
  maxTokens: number;
  /** Every sampling field shapes the output; only these two decide whether it can repeat. */
  sampling: Record<string, number | undefined> & { temperature?: number; seed?: number };
  adapter?: { finetuneId: string; version: string };
}

/** Only these can repeat: greedy decoding, or sampling from a fixed seed. */
export function isDeterministic(sampling: CacheableRequest['sampling']): boolean {
  return sampling.temperature === 0 || sampling.seed !== undefined;
}

/**
 * Identifies a generation: the model, the adapter's exact version (finetune id and a digest of both files' sha256)
 * and everything that shapes the output, with the prompt as the engine sees it (so a bare prompt and its
 * templated raw form share an entry).
 */
export function responseCacheKey(model: string, request: CacheableRequest): string {
  const sampling = Object.entries(request.sampling)
    .filter(([, value]) => value !== undefined)
    .sort(([a], [b]) => a.localeCompare(b));
  const identity = [model, request.adapter?.finetuneId ?? null, request.adapter?.version ?? null, request.prompt, request.stop, request.maxTokens, sampling];
  return createHash('sha256').update(JSON.stringify(identity)).digest('hex');
}

interface Entry {
  answer: RunAnswer;
  bytes: number;
  finetuneId: string | null;
}

/** In-memory LRU of run answers, bounded by entry count and by bytes (key and answer JSON). */
export class ResponseCache {
  /** Map order is recency order: least recently used first. */
  private readonly entries = new Map<string, Entry>();
  private totalBytes = 0;

  constructor(private readonly bounds: ResponseCacheBounds = DEFAULT_BOUNDS) {}

  get size(): number {
    return this.entries.size;
  }

  get bytes(): number {
    return this.totalBytes;
  }

  get(key: string): RunAnswer | undefined {
    const entry = this.entries.get(key);
    if (!entry) return undefined;
    this.entries.delete(key);
    this.entries.set(key, entry);
    return entry.answer;
  }

  set(key: string, answer: RunAnswer, finetuneId: string | null): void {
    const bytes = key.length + Buffer.byteLength(JSON.stringify(answer));
    // An answer bigger than the whole budget would only evict everything else and then itself.
    if (bytes > this.bounds.maxBytes) return;
    this.delete(key);
    this.entries.set(key, { answer, bytes, finetuneId });
    this.totalBytes += bytes;
    while (this.entries.size > this.bounds.maxEntries || this.totalBytes > this.bounds.maxBytes) {
      this.delete(this.entries.keys().next().value!);
    }
  }

  /** Forgets every answer made with this finetune's adapter. */
  dropFinetune(finetuneId: string): void {
    for (const [key, entry] of this.entries) if (entry.finetuneId === finetuneId) this.delete(key);
  }

  private delete(key: string): void {
    const entry = this.entries.get(key);
    if (!entry) return;
    this.entries.delete(key);
    this.totalBytes -= entry.bytes;
  }
}
