import { randomUUID } from 'node:crypto';
import { access, mkdir, rename, rm } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import type { EngineConfig } from '../../catalog/model-definition.js';
import { ApiError } from '../../common/errors.js';
import type {
  AdapterRef,
  EngineContext,
  GenerationRequest,
  GenerationResult,
  InferenceEngine,
  SamplingOptions,
  Usage,
} from '../engine.js';
import { EngineHttp, errorBodyMessage, errorMessage, sseData, transportFailure, type EngineResponse } from './engine-http.js';

type VllmConfig = Extract<EngineConfig, { type: 'vllm' }>;

const DEFAULT_TIMEOUT_MS = 120_000;
const CONFIG_FILE = 'adapter_config.json';
const WEIGHTS_FILE = 'adapter_model.safetensors';
const ZERO_USAGE: Usage = { prompt_tokens: 0, completion_tokens: 0, total_tokens: 0 };

/** The served LoRA name: one per finetune version, so changed files are a name vLLM has never loaded. */
export function vllmLoraName(adapter: AdapterRef): string {
  return `ft-${adapter.finetuneId}-${adapter.version.slice(0, 12)}`;
}

/** A non-2xx answer (or an error event in a stream) from vLLM. */
class VllmHttpError extends Error {
  constructor(
    readonly status: number,
    readonly path: string,
    message: string,
  ) {
    super(message);
  }
}

/** vLLM's 404 for a LoRA name it does not know: it restarted and lost its runtime-loaded adapters. */
class AdapterForgotten extends VllmHttpError {}

interface VllmUsage {
  prompt_tokens?: number | null;
  completion_tokens?: number | null;
  total_tokens?: number | null;
}

interface VllmCompletion {
  choices?: { text?: string; finish_reason?: string | null }[];
  usage?: VllmUsage | null;
  error?: unknown;
}

/** What a generation has produced so far: returned as is when the caller aborts. */
interface Progress {
  text: string;
  usage?: Usage;
}

/**
 * Generates through a remote vLLM OpenAI-compatible server that loads LoRA adapters at runtime
 * (`vllm serve --enable-lora` with VLLM_ALLOW_RUNTIME_LORA_UPDATING=True). Adapters are written under
 * `adapter_dir`, which vLLM must see at the same path (a shared volume), then loaded once by name.
 */
export class VllmEngine implements InferenceEngine {
  private readonly config: VllmConfig;
  private readonly baseUrl: string;
  private readonly timeoutMs: number;
  /** Adapters vLLM has or is loading, by served name: concurrent first uses share one load. */
  private readonly loads = new Map<string, Promise<void>>();
  /** Keep-alive connections to vLLM; closing it ends in-flight requests, the only thing this engine holds. */
  private readonly http: EngineHttp;

  constructor(private readonly ctx: EngineContext) {
    const engine = ctx.model.engine;
    if (engine?.type !== 'vllm') throw new Error(`${ctx.model.name} is not configured for a vLLM engine`);
    this.config = engine;
    this.timeoutMs = engine.timeout_ms ?? DEFAULT_TIMEOUT_MS;
    this.http = new EngineHttp(engine.base_url, { timeoutMs: this.timeoutMs, apiKey: engine.api_key });
    this.baseUrl = this.http.baseUrl;
  }

  async generate(request: GenerationRequest, onText?: (piece: string) => void): Promise<GenerationResult> {
    const progress: Progress = { text: '' };
    const aborted = (): GenerationResult => ({ text: progress.text, usage: progress.usage ?? ZERO_USAGE, finishReason: 'aborted' });
    if (request.signal.aborted) return aborted();
    // The caller's signal alone: timeouts and close() are the HTTP pool's (a composed signal per request costs CPU,
    // and AbortSignal.any on a long-lived signal kept an entry per call on it).
    const signal = request.signal;
    try {
      if (request.adapter === undefined) return await this.complete(this.config.served_model, request, signal, progress, onText);
      const name = vllmLoraName(request.adapter);
      const load = this.ensureLoaded(request.adapter, name);
      await untilAborted(load, signal);
      try {
        return await this.complete(name, request, signal, progress, onText);
      } catch (error) {
        if (!(error instanceof AdapterForgotten)) throw error;
        // vLLM loses runtime-loaded adapters when it restarts: load this one again and retry once.
        this.forget(name, load);
        await untilAborted(this.ensureLoaded(request.adapter, name), signal);
        return await this.complete(name, request, signal, progress, onText);
      }
    } catch (error) {
      if (request.signal.aborted) return aborted();
      throw this.explain(error);
    }
  }

  async countTokens(prompt: string): Promise<number> {
    try {
      // The same defaults as a completion (special tokens added), so the count is what generation will see.
      const response = await this.http.postJson('/tokenize', { model: this.config.served_model, prompt });
      if (!response.ok) throw new VllmHttpError(response.status, '/tokenize', await errorMessage(response));
      return ((await response.body.json()) as { count: number }).count;
    } catch (error) {
      throw this.explain(error);
    }
  }

  async close(): Promise<void> {
    await this.http.close();
  }

  private async complete(
    model: string,
    request: GenerationRequest,
    signal: AbortSignal,
    progress: Progress,
    onText?: (piece: string) => void,
  ): Promise<GenerationResult> {
    const path = '/v1/completions';
    const stream = onText !== undefined;
    const response = await this.http.postJson(
      path,
      {
        model,
        prompt: request.prompt,
        max_tokens: request.maxTokens,
        stop: request.stop,
        ...samplingFields(request.sampling),
        stream,
        // Running usage on every chunk, so an aborted stream still knows what it cost.
        ...(stream ? { stream_options: { include_usage: true, continuous_usage_stats: true } } : {}),
      },
      signal,
    );
    if (!response.ok) {
      const message = await errorMessage(response);
      const forgotten = response.status === 404 && model !== this.config.served_model;
      throw new (forgotten ? AdapterForgotten : VllmHttpError)(response.status, path, message);
    }
    if (!stream) {
      const body = (await response.body.json()) as VllmCompletion;
      const choice = body.choices?.[0];
      return { text: choice?.text ?? '', usage: toUsage(body.usage), finishReason: toFinishReason(choice?.finish_reason) };
    }
    return readStream(response, path, signal, progress, onText);
  }

  private ensureLoaded(adapter: AdapterRef, name: string): Promise<void> {
    let load = this.loads.get(name);
    if (load === undefined) {
      const started = this.materialise(adapter, name).then(() => this.load(name));
      started.catch(() => this.forget(name, started));
      this.loads.set(name, started);
      load = started;
    }
    return load;
  }

  /** Drops a load, unless another request has already replaced it with a newer one. */
  private forget(name: string, load: Promise<void>): void {
    if (this.loads.get(name) === load) this.loads.delete(name);
  }

  /** Puts both files in `<adapter_dir>/<name>/`, via a staging folder renamed into place: vLLM never sees half an adapter. */
  private async materialise(adapter: AdapterRef, name: string): Promise<void> {
    const folder = join(this.config.adapter_dir, name);
    if (await hasAdapterFiles(folder)) return;
    const staging = join(this.config.adapter_dir, `.${name}.${randomUUID()}`);
    await mkdir(staging, { recursive: true });
    try {
      await this.ctx.files.readToFile(adapter.configKey, join(staging, CONFIG_FILE));
      await this.ctx.files.readToFile(adapter.weightsKey, join(staging, WEIGHTS_FILE));
      await rename(staging, folder);
    } catch (error) {
      // Another process sharing adapter_dir put the same version in place first.
      const lostRace = (hasCode(error, 'ENOTEMPTY') || hasCode(error, 'EEXIST')) && (await hasAdapterFiles(folder));
      if (!lostRace) throw error;
    } finally {
      await rm(staging, { recursive: true, force: true });
    }
  }

  private async load(name: string): Promise<void> {
    const path = '/v1/load_lora_adapter';
    // Not tied to one request's signal: the load is shared by every request waiting for it.
    // Absolute: vLLM would resolve a relative path against its own working directory.
    const lora_path = resolve(this.config.adapter_dir, name);
    const response = await this.http.postJson(path, { lora_name: name, lora_path });
    if (response.ok) {
      await response.body.dump();
      return;
    }
    const message = await errorMessage(response);
    // Loaded by another replica of this service, or before this process restarted.
    if (response.status === 400 && message.includes('has already been loaded')) return;
    if (response.status === 404 && message === 'Not Found') {
      throw new VllmHttpError(404, path, 'Not Found (start vLLM with --enable-lora and VLLM_ALLOW_RUNTIME_LORA_UPDATING=True)');
    }
    throw new VllmHttpError(response.status, path, message);
  }

  /** vLLM's failures as the contract's 503; anything else (a storage outage, a local file error) passes through. */
  private explain(error: unknown): unknown {
    const at = `vLLM at ${this.baseUrl}`;
    if (error instanceof ApiError) return error;
    if (error instanceof VllmHttpError) return new ApiError('engineUnavailable', `${at} answered ${error.status} to ${error.path}: ${error.message}`);
    if (this.http.closed) return new ApiError('engineUnavailable', `${at}: the engine is closed`);
    const failure = transportFailure(error, this.timeoutMs);
    if (failure === undefined) return error;
    return new ApiError(failure.timeout ? 'timeout' : 'engineUnavailable', `${at} ${failure.message}`);
  }
}

/** Reads vLLM's SSE stream (`data: <json>` events, then `data: [DONE]`). */
async function readStream(
  response: EngineResponse,
  path: string,
  signal: AbortSignal,
  progress: Progress,
  onText: (piece: string) => void,
): Promise<GenerationResult> {
  let finishReason: string | null | undefined;
  for await (const data of sseData(response.body)) {
    // Events already received are not handed on once the caller has gone.
    signal.throwIfAborted();
    if (data === '[DONE]') return { text: progress.text, usage: progress.usage ?? ZERO_USAGE, finishReason: toFinishReason(finishReason) };
    const chunk = JSON.parse(data) as VllmCompletion;
    // A failure after the 200 went out arrives as an event: `{"error": {...}}`.
    if (chunk.error !== undefined) throw new VllmHttpError(response.status, path, errorBodyMessage(chunk) ?? data);
    if (chunk.usage) progress.usage = toUsage(chunk.usage);
    const choice = chunk.choices?.[0];
    if (choice?.text) {
      progress.text += choice.text;
      onText(choice.text);
    }
    if (choice?.finish_reason) finishReason = choice.finish_reason;
  }
  throw new VllmHttpError(response.status, path, 'the stream ended before data: [DONE]');
}

function samplingFields(sampling: SamplingOptions): Record<string, number | undefined> {
  return {
    temperature: sampling.temperature,
    top_p: sampling.topP,
    top_k: sampling.topK,
    seed: sampling.seed,
    repetition_penalty: sampling.repetitionPenalty,
    frequency_penalty: sampling.frequencyPenalty,
    presence_penalty: sampling.presencePenalty,
  };
}

function toUsage(usage: VllmUsage | null | undefined): Usage {
  const prompt = usage?.prompt_tokens ?? 0;
  const completion = usage?.completion_tokens ?? 0;
  return { prompt_tokens: prompt, completion_tokens: completion, total_tokens: usage?.total_tokens ?? prompt + completion };
}

function toFinishReason(reason: string | null | undefined): 'stop' | 'length' {
  return reason === 'length' ? 'length' : 'stop';
}

/** Waits for a shared promise, but lets this caller's signal stop the wait (the promise goes on for others). */
function untilAborted<T>(promise: Promise<T>, signal: AbortSignal): Promise<T> {
  if (signal.aborted) return Promise.reject(signal.reason);
  return new Promise<T>((resolve, reject) => {
    const onAbort = () => reject(signal.reason);
    signal.addEventListener('abort', onAbort, { once: true });
    promise.then(resolve, reject).finally(() => signal.removeEventListener('abort', onAbort));
  });
}

async function hasAdapterFiles(folder: string): Promise<boolean> {
  try {
    await Promise.all([access(join(folder, CONFIG_FILE)), access(join(folder, WEIGHTS_FILE))]);
    return true;
  } catch {
    return false;
  }
}

function hasCode(error: unknown, code: string): boolean {
  return (error as NodeJS.ErrnoException | undefined)?.code === code;
}
