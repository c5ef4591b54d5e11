/**
 * In-process llama.cpp engine (node-llama-cpp, CPU). One base model per engine; PEFT adapters are converted to
 * GGUF once per version and applied through per-adapter contexts kept in a small LRU.
 */
import { randomBytes, randomInt } from 'node:crypto';
import { mkdir, readFile, rename, rm, stat } from 'node:fs/promises';
import { availableParallelism } from 'node:os';
import { join } from 'node:path';
import {
  getLlama,
  LlamaLogLevel,
  type Llama,
  type LlamaContext,
  type LlamaContextSequence,
  type LlamaModel,
  type SequenceEvaluateOptions,
  type Token,
} from 'node-llama-cpp';
import { ApiError } from '../../common/errors.js';
import { convertPeftToGguf } from '../../formats/lora-to-gguf.js';
import { parsePeftConfig } from '../../formats/peft-config.js';
import type {
  AdapterRef,
  EngineContext,
  GenerationRequest,
  GenerationResult,
  InferenceEngine,
  SamplingOptions,
} from '../engine.js';

/** One core is left to the JS thread: llama.cpp's workers busy-wait and starve it otherwise (~100x slower on 2 cores). */
const DEFAULT_THREADS = Math.max(1, availableParallelism() - 1);
const DEFAULT_MAX_CONTEXTS = 2;
const DEFAULT_CONTEXT_SIZE = 4096;
/** llama.cpp's default penalty window (`repeat_last_n`), over prompt and output alike. */
const PENALTY_LAST_N = 64;
/** Longest UTF-8 sequence: a byte-fallback character never spans more tokens. */
const MAX_CHAR_TOKENS = 4;
const REPLACEMENT_CHAR = '\uFFFD';
/** Preceding tokens given to the detokenizer, so that a piece keeps its leading space. */
const DETOKENIZER_CONTEXT = 4;
/** See `retainedAdapterBytes`. */
const DEFAULT_RETAINED_ADAPTER_BYTES = 512 * 1024 * 1024;

export interface LlamaCppEngineOptions {
  /**
   * llama.cpp keeps every adapter ever applied in the model until the model itself is freed (node-llama-cpp never
   * releases them when their context is disposed). When the adapters loaded but no longer in any context exceed
   * this many bytes (their GGUF size), the model is reloaded as soon as it is idle, before the next new adapter is
   * loaded. Default 512 MiB.
   */
  retainedAdapterBytes?: number;
}

/** A context for one adapter version ('' for the base model) with its single sequence. */
interface Slot {
  version: string;
  busy: boolean;
  /** Settles once the context exists (or failed to be created). */
  ready: Promise<LlamaContextSequence>;
}

type FinishReason = GenerationResult['finishReason'];

interface Waiter {
  version: string;
  loraPath: string | undefined;
  resolve: (slot: Slot) => void;
  reject: (error: unknown) => void;
  signal: AbortSignal;
  onAbort: () => void;
}

let sharedLlama: Promise<Llama> | undefined;

/** One llama.cpp runtime per process: its thread budget is shared by every context of every engine. */
function llamaRuntime(): Promise<Llama> {
  sharedLlama ??= getLlama({
    gpu: false,
    build: 'never',
    logLevel: LlamaLogLevel.error,
    maxThreads: DEFAULT_THREADS,
  }).catch((error: Error) => {
    throw new ApiError('engineUnavailable', `the llama.cpp runtime cannot be loaded: ${error.message}`);
  });
  return sharedLlama;
}

async function fileSize(path: string): Promise<number | null> {
  try {
    return (await stat(path)).size;
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw error;
  }
}

async function loadModel(llama: Llama, modelPath: string, vocabOnly = false): Promise<LlamaModel> {
  if ((await fileSize(modelPath)) === null) throw new ApiError('engineUnavailable', `model file ${modelPath} does not exist`);
  try {
    return await llama.loadModel({ modelPath, vocabOnly });
  } catch (error) {
    throw new ApiError('engineUnavailable', `cannot load model file ${modelPath}: ${(error as Error).message}`);
  }
}

/**
 * Generated text cut at the first stop string. Text is released only when no stop string can still start in
 * it, so a stop string never reaches the caller, even split across pieces.
 */
class StopCutter {
  text = '';
  private released = 0;
  private readonly longest: number;

  constructor(private readonly stops: string[]) {
    this.longest = Math.max(0, ...stops.map((s) => s.length));
  }

  /** Appends a piece; true when a stop string appeared (the text then ends before it). */
  push(piece: string): boolean {
    const from = Math.max(0, this.text.length - this.longest + 1);
    this.text += piece;
    let cut = -1;
    for (const stop of this.stops) {
      const at = this.text.indexOf(stop, from);
      if (at !== -1 && (cut === -1 || at < cut)) cut = at;
    }
    if (cut === -1) return false;
    this.text = this.text.slice(0, cut);
    return true;
  }

  /** Text not yet released; unless `final`, minus a tail that may be the beginning of a stop string. */
  release(final: boolean): string {
    let end = this.text.length;
    if (!final) {
      for (const stop of this.stops) {
        // A stop string cannot start in released text (it would have been held), so k stops there.
        for (let k = Math.min(stop.length - 1, this.text.length - this.released); k > 0; k--) {
          if (this.text.endsWith(stop.slice(0, k))) {
            end = Math.min(end, this.text.length - k);
            break;
          }
        }
      }
    }
    const out = this.text.slice(this.released, end);
    this.released = Math.max(this.released, end);
    return out;
  }
}

export class LlamaCppEngine implements InferenceEngine {
  /** LRU order: least recently granted first. */
  private readonly slots = new Map<string, Slot>();
  private readonly queue: Waiter[] = [];
  private readonly conversions = new Map<string, Promise<string>>();
  /** GGUF bytes of each adapter version loaded into the current model instance. */
  private readonly loadedAdapters = new Map<string, number>();
  private reloadPending = false;
  private reloading: Promise<void> | null = null;
  private failure: Error | null = null;
  private closed = false;
  private adapterCacheHits = 0;
  private adapterCacheMisses = 0;

  private constructor(
    private readonly ctx: EngineContext,
    private readonly llama: Llama,
    private readonly modelPath: string,
    /** Tokenizer only: stays valid while the full model is reloaded. */
    private readonly vocab: LlamaModel,
    private model: LlamaModel,
    private readonly contextSize: number,
    private readonly maxContexts: number,
    private readonly threads: number,
    private readonly retainedAdapterBytes: number,
  ) {}

  static async create(ctx: EngineContext, options: LlamaCppEngineOptions = {}): Promise<LlamaCppEngine> {
    const engine = ctx.model.engine;
    if (engine?.type !== 'llama-cpp') throw new Error(`model ${ctx.model.name} is not configured for llama-cpp`);
    const llama = await llamaRuntime();
    const threads = engine.threads ?? DEFAULT_THREADS;
    // An explicit thread count above the default budget is the operator's choice.
    if (threads > llama.maxThreads) llama.maxThreads = threads;
    const vocab = await loadModel(llama, engine.model_path, true);
    let model: LlamaModel;
    try {
      model = await loadModel(llama, engine.model_path);
    } catch (error) {
      await vocab.dispose();
      throw error;
    }
    return new LlamaCppEngine(
      ctx,
      llama,
      engine.model_path,
      vocab,
      model,
      engine.context_size ?? Math.min(model.trainContextSize, DEFAULT_CONTEXT_SIZE),
      engine.max_contexts ?? DEFAULT_MAX_CONTEXTS,
      threads,
      options.retainedAdapterBytes ?? DEFAULT_RETAINED_ADAPTER_BYTES,
    );
  }

  /** Adapter uses served by an already converted GGUF or a conversion under way (hits), or that converted it (misses). */
  get adapterCache(): { hits: number; misses: number } {
    return { hits: this.adapterCacheHits, misses: this.adapterCacheMisses };
  }

  async countTokens(prompt: string): Promise<number> {
    this.ensureUsable();
    return this.promptTokens(prompt).length;
  }

  async generate(request: GenerationRequest, onText?: (piece: string) => void): Promise<GenerationResult> {
    this.ensureUsable();
    const tokens = this.promptTokens(request.prompt);
    const result = (text: string, completion: number, finishReason: FinishReason): GenerationResult => ({
      text,
      usage: { prompt_tokens: tokens.length, completion_tokens: completion, total_tokens: tokens.length + completion },
      finishReason,
    });
    const loraPath = request.adapter && (await this.adapterGguf(request.adapter));
    const slot = await this.acquire(request.adapter?.version ?? '', loraPath, request.signal);
    if (!slot) return result('', 0, 'aborted');
    try {
      return await this.run(await slot.ready, tokens, request, onText, result);
    } finally {
      slot.busy = false;
      this.pump();
    }
  }

  async close(): Promise<void> {
    this.closed = true;
    this.rejectWaiters(new ApiError('engineUnavailable', `engine of ${this.ctx.model.name} is closed`));
    await this.reloading;
    await this.disposeContexts();
    await this.model.dispose();
    await this.vocab.dispose();
  }

  /**
   * Templates carry the BOS marker as text, which `tokenize(text, true)` turns into the BOS token. A raw prompt
   * without it gets one when the model asks for it (add_bos_token), so BOS is there exactly once.
   */
  private promptTokens(prompt: string): Token[] {
    const tokens = this.vocab.tokenize(prompt, true);
    const { bos, shouldPrependBosToken } = this.vocab.tokens;
    if (bos !== null && shouldPrependBosToken && tokens[0] !== bos) tokens.unshift(bos);
    return tokens;
  }

  private async run(
    sequence: LlamaContextSequence,
    tokens: Token[],
    request: GenerationRequest,
    onText: ((piece: string) => void) | undefined,
    result: (text: string, completion: number, finishReason: FinishReason) => GenerationResult,
  ): Promise<GenerationResult> {
    const { signal } = request;
    const room = sequence.contextSize - tokens.length;
    if (room < 1) {
      const size = sequence.contextSize;
      throw new ApiError('validation', `prompt: ${tokens.length} tokens do not fit the model's context of ${size} tokens`);
    }
    // Every request starts from an empty state: no reuse of an earlier prefix, so output never depends on history.
    await sequence.clearHistory();
    // All prompt tokens but the last, one batch at a time so that an abort is noticed between batches.
    const batch = sequence.context.batchSize;
    for (let i = 0; i < tokens.length - 1; i += batch) {
      if (signal.aborted) return result('', 0, 'aborted');
      await sequence.evaluateWithoutGeneratingNewTokens(tokens.slice(i, Math.min(i + batch, tokens.length - 1)));
    }

    const model = sequence.model;
    const history = tokens.slice();
    const cutter = new StopCutter(request.stop.filter((s) => s.length > 0));
    const maxTokens = Math.min(request.maxTokens, room);
    /** Generated tokens not yet turned into text. */
    const pending: Token[] = [];
    const decode = () =>
      model.detokenize(pending, false, history.slice(-pending.length - DETOKENIZER_CONTEXT, -pending.length));
    let completion = 0;
    let finishReason: FinishReason = 'stop';
    for await (const token of sequence.evaluate(tokens.slice(-1), this.samplerOptions(request.sampling, history))) {
      completion++;
      if (signal.aborted) {
        finishReason = 'aborted';
        break;
      }
      if (model.isEogToken(token)) break;
      history.push(token);
      pending.push(token);
      const piece = decode();
      // A byte-fallback character arrives one byte per token: wait for the rest of it.
      if (!piece.endsWith(REPLACEMENT_CHAR) || pending.length === MAX_CHAR_TOKENS) {
        pending.length = 0;
        const stopped = cutter.push(piece);
        const text = cutter.release(false);
        if (text) onText?.(text);
        if (stopped) break;
      }
      if (completion >= maxTokens) {
        finishReason = 'length';
        break;
      }
    }
    if (finishReason !== 'aborted') {
      if (pending.length > 0) cutter.push(decode());
      const rest = cutter.release(true);
      if (rest) onText?.(rest);
    }
    return result(cutter.text, completion, finishReason);
  }

  /**
   * Absent options are neutral (temperature 1, no top-k/top-p cut, no penalties). repetition_penalty has
   * llama.cpp's (and Hugging Face's) meaning: positive logits of recent tokens are divided by it, negative ones
   * multiplied; frequency/presence penalties subtract count·f and p. All three look at the last 64 tokens.
   */
  private samplerOptions(s: SamplingOptions, history: Token[]): SequenceEvaluateOptions {
    // The cards allow 0, which llama.cpp would divide by: treated as no penalty.
    const penalty = s.repetitionPenalty && s.repetitionPenalty > 0 ? s.repetitionPenalty : 1;
    const frequencyPenalty = s.frequencyPenalty ?? 0;
    const presencePenalty = s.presencePenalty ?? 0;
    const penalize = penalty !== 1 || frequencyPenalty !== 0 || presencePenalty !== 0;
    return {
      temperature: s.temperature ?? 1,
      topK: s.topK ?? 0,
      topP: s.topP ?? 1,
      // node-llama-cpp's own default is the current second, which repeats across concurrent requests.
      seed: s.seed ?? randomInt(2 ** 32),
      repeatPenalty: penalize
        ? {
            punishTokens: () => history.slice(-PENALTY_LAST_N),
            maxPunishTokens: PENALTY_LAST_N,
            penalty,
            frequencyPenalty,
            presencePenalty,
          }
        : undefined,
      yieldEogToken: true,
    };
  }

  /** The adapter as GGUF: converted once per version and kept on disk, so later uses and restarts reuse it. */
  private adapterGguf(adapter: AdapterRef): Promise<string> {
    const { version } = adapter;
    let conversion = this.conversions.get(version);
    if (conversion) this.adapterCacheHits++;
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
      this.adapterCacheHits++;
      return ggufPath;
    }
    this.adapterCacheMisses++;

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
      await convertPeftToGguf({ safetensors: await readFile(weightsPath), config, architecture }, tmpPath);
      // Atomic: a crash mid-write never leaves a truncated file under the final name.
      await rename(tmpPath, ggufPath);
      return ggufPath;
    } finally {
      await rm(tmpPath, { force: true });
      // Only the GGUF is used from now on.
      await rm(downloadDir, { recursive: true, force: true });
    }
  }

  /** Waits (FIFO) for the context of `version`; null when the signal aborts first. */
  private async acquire(version: string, loraPath: string | undefined, signal: AbortSignal): Promise<Slot | null> {
    this.ensureUsable();
    if (signal.aborted) return null;
    return new Promise<Slot | null>((resolve, reject) => {
      const waiter: Waiter = {
        version,
        loraPath,
        resolve,
        reject,
        signal,
        onAbort: () => {
          const at = this.queue.indexOf(waiter);
          if (at === -1) return;
          this.queue.splice(at, 1);
          resolve(null);
        },
      };
      signal.addEventListener('abort', waiter.onAbort, { once: true });
      this.queue.push(waiter);
      this.pump();
    });
  }

  private ensureUsable(): void {
    if (this.failure) throw new ApiError('engineUnavailable', this.failure.message);
    if (this.closed) throw new ApiError('engineUnavailable', `engine of ${this.ctx.model.name} is closed`);
  }

  /**
   * Grants waiters in arrival order. A waiter is skipped only while its own context is busy or every context is
   * busy; neither can be taken by a later waiter, so nobody is overtaken for good. A pending reload starts once
   * nothing is busy.
   */
  private pump(): void {
    if (this.closed) return;
    for (let i = 0; i < this.queue.length; ) {
      const waiter = this.queue[i];
      const slot = this.grant(waiter);
      if (!slot) {
        i++;
        continue;
      }
      this.queue.splice(i, 1);
      waiter.signal.removeEventListener('abort', waiter.onAbort);
      waiter.resolve(slot);
    }
    if (this.reloadPending && !this.reloading && [...this.slots.values()].every((s) => !s.busy)) {
      this.reloading = this.reload().finally(() => {
        this.reloading = null;
        this.reloadPending = false;
        this.pump();
      });
    }
  }

  private grant({ version, loraPath }: Waiter): Slot | null {
    if (this.reloadPending || this.closed) return null;
    const existing = this.slots.get(version);
    if (existing) {
      if (existing.busy) return null;
      existing.busy = true;
      this.slots.delete(version);
      this.slots.set(version, existing);
      return existing;
    }
    let victim: Slot | undefined;
    if (this.slots.size >= this.maxContexts) {
      victim = [...this.slots.values()].find((s) => !s.busy);
      if (!victim) return null;
    }
    if (version !== '' && !this.loadedAdapters.has(version) && this.retainedBytes(victim) > this.retainedAdapterBytes) {
      this.reloadPending = true;
      return null;
    }
    if (victim) this.slots.delete(victim.version);
    const slot: Slot = { version, busy: true, ready: this.createContext(version, loraPath, victim) };
    this.slots.set(version, slot);
    // A context that could not be created leaves no slot behind; the request that asked for it gets the error.
    slot.ready.catch(() => {
      if (this.slots.get(version) === slot) this.slots.delete(version);
    });
    return slot;
  }

  /** Bytes of adapters held by the model without a context, once `victim` is evicted too. */
  private retainedBytes(victim: Slot | undefined): number {
    let bytes = 0;
    for (const [version, size] of this.loadedAdapters) {
      if (!this.slots.has(version) || version === victim?.version) bytes += size;
    }
    return bytes;
  }

  private async createContext(
    version: string,
    loraPath: string | undefined,
    victim: Slot | undefined,
  ): Promise<LlamaContextSequence> {
    if (victim) await (await victim.ready.catch(() => null))?.context.dispose();
    let context: LlamaContext;
    try {
      context = await this.model.createContext({
        contextSize: this.contextSize,
        threads: this.threads,
        ...(loraPath && { lora: { adapters: [{ filePath: loraPath, scale: 1 }] } }),
      });
    } catch (error) {
      const what = loraPath ? `adapter ${version}` : 'the base model';
      throw new ApiError('engineUnavailable', `cannot create a llama.cpp context for ${what}: ${(error as Error).message}`);
    }
    if (loraPath) this.loadedAdapters.set(version, (await fileSize(loraPath)) ?? 0);
    return context.getSequence();
  }

  /** Frees the adapters llama.cpp retains by disposing the model and loading it again. */
  private async reload(): Promise<void> {
    try {
      await this.disposeContexts();
      await this.model.dispose();
      this.loadedAdapters.clear();
      this.model = await loadModel(this.llama, this.modelPath);
    } catch (error) {
      this.failure = error as Error;
      this.rejectWaiters(error);
    }
  }

  private rejectWaiters(error: unknown): void {
    for (const waiter of this.queue.splice(0)) {
      waiter.signal.removeEventListener('abort', waiter.onAbort);
      waiter.reject(error);
    }
  }

  private async disposeContexts(): Promise<void> {
    const slots = [...this.slots.values()];
    this.slots.clear();
    await Promise.all(slots.map(async (s) => (await s.ready.catch(() => null))?.context.dispose()));
  }
}
