/**
 * In-process llama.cpp engine (node-llama-cpp, CPU). One base model per engine and one context with a sequence per
 * request generating at once. Requests on the same adapter are decoded together in one batch per token, adapters
 * take turns (StepScheduler); PEFT adapters are converted to GGUF once per version (ConvertedAdapters) and set on
 * the context for the steps of their requests.
 */
import { randomInt } from 'node:crypto';
import { availableParallelism } from 'node:os';
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
import type {
  EngineContext,
  GenerationRequest,
  GenerationResult,
  InferenceEngine,
  SamplingOptions,
} from '../engine.js';
import { ConvertedAdapters, fileSize, type ConvertedAdapter } from './converted-adapters.js';
import { StepScheduler, type Seat } from './step-scheduler.js';
import { StopCutter } from './stop-cutter.js';
import { TokenText } from './token-text.js';

/**
 * One core is left to the JS thread and the rest of the machine: llama.cpp's threads wait for each other by
 * spinning, so one of them preempted stalls the whole decode (measured: README, Performance).
 */
const DEFAULT_THREADS = Math.max(1, availableParallelism() - 1);
/** Requests generating at once when the model sets no max_concurrent_requests. */
const DEFAULT_PARALLEL = 8;
const DEFAULT_CONTEXT_SIZE = 4096;
/**
 * Prompt tokens evaluated in one step at most, over all its requests: llama.cpp's default physical batch (n_ubatch),
 * which llama-server uses, so a long prompt is split where llama-server splits it. Requests already generating
 * decode a token between two chunks.
 */
const PROMPT_CHUNK = 512;
/** llama.cpp's default penalty window (`repeat_last_n`), over prompt and output alike. */
const PENALTY_LAST_N = 64;
/** See `retainedAdapterBytes`. */
const DEFAULT_RETAINED_ADAPTER_BYTES = 512 * 1024 * 1024;

export interface LlamaCppEngineOptions {
  /**
   * llama.cpp keeps every adapter ever applied in the model until the model itself is freed. When the adapters
   * loaded but used by no running request exceed this many bytes (their GGUF size), the model is reloaded as soon
   * as it is idle, before the next new adapter is loaded. Default 512 MiB.
   */
  retainedAdapterBytes?: number;
}

type FinishReason = GenerationResult['finishReason'];

/** A sequence of the context and the request's seat in the steps that decode it. */
interface Grant {
  sequence: LlamaContextSequence;
  seat: Seat;
}

/** What a request needs from the pool: a sequence, for a given adapter ('' for the base model). */
interface Waiter {
  version: string;
  adapter: ConvertedAdapter | undefined;
  resolve: (grant: Grant | null) => void;
  reject: (error: unknown) => void;
  signal: AbortSignal;
  onAbort: () => void;
}

/**
 * node-llama-cpp sets LoRA adapters only when a context is created; llama.cpp itself sets them per decode. This is
 * the one internal method the engine uses (node-llama-cpp 3.22): it loads the adapter into the model once and sets
 * the context's adapters, which then apply to every decode until set again.
 */
interface LoraSettableContext {
  _setLoras(loras: { filePath: string; scale?: number }[]): Promise<void>;
}

let sharedLlama: Promise<Llama> | undefined;

/** One llama.cpp runtime per process. */
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

async function loadModel(llama: Llama, modelPath: string, vocabOnly = false): Promise<LlamaModel> {
  if ((await fileSize(modelPath)) === null) throw new ApiError('engineUnavailable', `model file ${modelPath} does not exist`);
  try {
    return await llama.loadModel({ modelPath, vocabOnly });
  } catch (error) {
    throw new ApiError('engineUnavailable', `cannot load model file ${modelPath}: ${(error as Error).message}`);
  }
}

export class LlamaCppEngine implements InferenceEngine {
  private readonly adapters: ConvertedAdapters;
  private readonly steps: StepScheduler<string>;
  private readonly free: LlamaContextSequence[] = [];
  /** llama.cpp's id of each sequence: node-llama-cpp numbers them 0, 1, … as they are created. */
  private readonly sequenceIds = new Map<LlamaContextSequence, number>();
  private readonly queue: Waiter[] = [];
  /** Running requests by adapter version. */
  private readonly running = new Map<string, number>();
  /** GGUF path and bytes of each adapter version loaded into the current model instance. */
  private readonly loadedAdapters = new Map<string, ConvertedAdapter>();
  private context!: LlamaContext;
  /** The adapter version set on the context ('' none; null unknown). */
  private contextAdapter: string | null = '';
  private reloadPending = false;
  private reloading: Promise<void> | null = null;
  private failure: Error | null = null;
  private closed = false;

  private constructor(
    private readonly ctx: EngineContext,
    private readonly llama: Llama,
    private readonly modelPath: string,
    /** Tokenizer only: stays valid while the full model is reloaded. */
    private readonly vocab: LlamaModel,
    private model: LlamaModel,
    private readonly contextSize: number,
    private readonly parallel: number,
    private readonly threads: number,
    private readonly retainedAdapterBytes: number,
  ) {
    this.adapters = new ConvertedAdapters(ctx);
    this.steps = new StepScheduler((version) => this.setAdapter(version), PROMPT_CHUNK);
  }

  static async create(ctx: EngineContext, options: LlamaCppEngineOptions = {}): Promise<LlamaCppEngine> {
    const engine = ctx.model.engine;
    if (engine?.type !== 'llama-cpp') throw new Error(`model ${ctx.model.name} is not configured for llama-cpp`);
    const llama = await llamaRuntime();
    const threads = engine.threads ?? DEFAULT_THREADS;
    // An explicit thread count above the default budget is the operator's choice.
    if (threads > llama.maxThreads) llama.maxThreads = threads;
    const vocab = await loadModel(llama, engine.model_path, true);
    let model: LlamaModel | undefined;
    try {
      model = await loadModel(llama, engine.model_path);
      const created = new LlamaCppEngine(
        ctx,
        llama,
        engine.model_path,
        vocab,
        model,
        engine.context_size ?? Math.min(model.trainContextSize, DEFAULT_CONTEXT_SIZE),
        engine.parallel ?? ctx.model.limits.max_concurrent_requests ?? DEFAULT_PARALLEL,
        threads,
        options.retainedAdapterBytes ?? DEFAULT_RETAINED_ADAPTER_BYTES,
      );
      await created.createContext();
      return created;
    } catch (error) {
      await model?.dispose();
      await vocab.dispose();
      throw error;
    }
  }

  /** Adapter uses served by an already converted GGUF or a conversion under way (hits), or that converted it (misses). */
  get adapterCache(): { hits: number; misses: number } {
    return { hits: this.adapters.hits, misses: this.adapters.misses };
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
    if (tokens.length >= this.contextSize) {
      const size = this.contextSize;
      throw new ApiError('validation', `prompt: ${tokens.length} tokens do not fit the model's context of ${size} tokens`);
    }
    const version = request.adapter?.version ?? '';
    // A converted adapter's file and size are known from its conversion: no file read per request.
    const adapter = request.adapter ? await this.adapters.gguf(request.adapter) : undefined;
    const grant = await this.acquire(version, adapter, request.signal);
    if (!grant) return result('', 0, 'aborted');
    try {
      return await this.run(grant, tokens, request, onText, result);
    } finally {
      grant.seat.leave();
      this.release(version, grant.sequence);
    }
  }

  async close(): Promise<void> {
    this.closed = true;
    this.rejectWaiters(new ApiError('engineUnavailable', `engine of ${this.ctx.model.name} is closed`));
    await this.reloading;
    await this.context.dispose();
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

  /**
   * One token per step. The prompt is evaluated first, in chunks of PROMPT_CHUNK tokens (one step each) with logits
   * for its last token only, as llama-server does (a different split changes the floating-point sums, and greedy
   * output on near-ties with them).
   */
  private async run(
    { sequence, seat }: Grant,
    tokens: Token[],
    request: GenerationRequest,
    onText: ((piece: string) => void) | undefined,
    result: (text: string, completion: number, finishReason: FinishReason) => GenerationResult,
  ): Promise<GenerationResult> {
    const { signal } = request;
    // Every request starts from an empty state: no reuse of an earlier prefix, so output never depends on history.
    await sequence.clearHistory();
    const history = tokens.slice();
    const cutter = new StopCutter(request.stop.filter((s) => s.length > 0));
    const decoder = new TokenText((t) => this.vocab.detokenize(t, false), tokens.at(-1)!);
    const maxTokens = Math.min(request.maxTokens, this.contextSize - tokens.length);
    const emit = (piece: string): boolean => {
      const stopped = cutter.push(piece);
      const text = cutter.release(false);
      if (text) onText?.(text);
      return stopped;
    };
    const last = Math.floor((tokens.length - 1) / PROMPT_CHUNK) * PROMPT_CHUNK;
    for (let start = 0; start < last; start += PROMPT_CHUNK) {
      if (!(await seat.next(signal, PROMPT_CHUNK))) return result('', 0, 'aborted');
      await sequence.evaluateWithoutGeneratingNewTokens(tokens.slice(start, start + PROMPT_CHUNK));
    }
    const generator = sequence.evaluate(tokens.slice(last), this.samplerOptions(request.sampling, history));
    let promptTokens = tokens.length - last;
    let completion = 0;
    let finishReason: FinishReason = 'stop';
    try {
      while (true) {
        if (!(await seat.next(signal, promptTokens))) {
          finishReason = 'aborted';
          break;
        }
        promptTokens = 0;
        const next = await generator.next();
        if (next.done) break;
        const token = next.value;
        completion++;
        if (signal.aborted) {
          finishReason = 'aborted';
          break;
        }
        if (this.model.isEogToken(token)) break;
        history.push(token);
        if (emit(decoder.push(token))) break;
        if (completion >= maxTokens) {
          finishReason = 'length';
          break;
        }
      }
    } finally {
      await generator.return(undefined);
    }
    if (finishReason !== 'aborted') {
      cutter.push(decoder.flush());
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

  /** Sets the adapter of `version` on the context for the next step (loading it into the model the first time). */
  private async setAdapter(version: string): Promise<void> {
    if (version === this.contextAdapter) return;
    const adapter = this.loadedAdapters.get(version);
    const context = this.context as unknown as LoraSettableContext;
    try {
      await context._setLoras(adapter ? [{ filePath: adapter.path, scale: 1 }] : []);
    } catch (error) {
      this.loadedAdapters.delete(version);
      this.contextAdapter = null;
      throw new ApiError('engineUnavailable', `cannot load adapter ${version} into llama.cpp: ${(error as Error).message}`);
    }
    this.contextAdapter = version;
  }

  /** Waits (FIFO) for a free sequence; null when the signal aborts first. */
  private acquire(version: string, adapter: ConvertedAdapter | undefined, signal: AbortSignal): Promise<Grant | null> {
    this.ensureUsable();
    if (signal.aborted) return Promise.resolve(null);
    return new Promise<Grant | null>((resolve, reject) => {
      const waiter: Waiter = {
        version,
        adapter,
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

  private release(version: string, sequence: LlamaContextSequence): void {
    const count = (this.running.get(version) ?? 1) - 1;
    if (count === 0) this.running.delete(version);
    else this.running.set(version, count);
    this.free.push(sequence);
    this.pump();
  }

  private ensureUsable(): void {
    if (this.failure) throw new ApiError('engineUnavailable', this.failure.message);
    if (this.closed) throw new ApiError('engineUnavailable', `engine of ${this.ctx.model.name} is closed`);
  }

  /**
   * Grants sequences in arrival order; nobody is overtaken. A new adapter that would push the adapters retained
   * by llama.cpp over the budget stops granting until the model has been reloaded, which happens once no request
   * runs.
   */
  private pump(): void {
    if (this.closed) return;
    while (!this.reloadPending && this.free.length > 0 && this.queue.length > 0) {
      const waiter = this.queue[0];
      const { version, adapter } = waiter;
      if (adapter && !this.loadedAdapters.has(version)) {
        if (this.retainedBytes() > this.retainedAdapterBytes) {
          this.reloadPending = true;
          break;
        }
        this.loadedAdapters.set(version, adapter);
      }
      this.queue.shift();
      waiter.signal.removeEventListener('abort', waiter.onAbort);
      this.running.set(version, (this.running.get(version) ?? 0) + 1);
      // The lowest free sequence id, so that the running ones stay consecutive (see StepScheduler.seat).
      this.free.sort((a, b) => this.sequenceIds.get(a)! - this.sequenceIds.get(b)!);
      const sequence = this.free.shift()!;
      // Seated now, in the same tick: a step about to start waits for this request's prompt.
      waiter.resolve({ sequence, seat: this.steps.seat(version, this.sequenceIds.get(sequence)!) });
    }
    if (this.reloadPending && !this.reloading && this.running.size === 0) {
      this.reloading = this.reload().finally(() => {
        this.reloading = null;
        this.reloadPending = false;
        this.pump();
      });
    }
  }

  /** Bytes of adapters loaded into the model that no running request uses. */
  private retainedBytes(): number {
    let bytes = 0;
    for (const [version, adapter] of this.loadedAdapters) if (!this.running.has(version)) bytes += adapter.bytes;
    return bytes;
  }

  private async createContext(): Promise<void> {
    try {
      this.context = await this.model.createContext({
        contextSize: this.contextSize,
        sequences: this.parallel,
        // A step's tokens: prompt tokens up to a chunk and one token of every other sequence, in one decode.
        batchSize: PROMPT_CHUNK + this.parallel,
        threads: this.threads,
      });
    } catch (error) {
      throw new ApiError('engineUnavailable', `cannot create a llama.cpp context: ${(error as Error).message}`);
    }
    if (typeof (this.context as unknown as Partial<LoraSettableContext>)._setLoras !== 'function') {
      throw new ApiError('engineUnavailable', 'this node-llama-cpp version cannot set LoRA adapters on a context (3.22 can)');
    }
    this.contextAdapter = '';
    this.free.length = 0;
    this.sequenceIds.clear();
    for (let i = 0; i < this.parallel; i++) {
      const sequence = this.context.getSequence();
      this.sequenceIds.set(sequence, i);
      this.free.push(sequence);
    }
  }

  /** Frees the adapters llama.cpp retains by disposing the model and loading it again. */
  private async reload(): Promise<void> {
    try {
      await this.context.dispose();
      await this.model.dispose();
      this.loadedAdapters.clear();
      this.model = await loadModel(this.llama, this.modelPath);
      await this.createContext();
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
}
