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
  /** Aborted by close(): the only thing this engine holds is in-flight requests. */
  private readonly closing = new AbortController();

  constructor(private readonly ctx: EngineContext) {
    const engine = ctx.model.engine;
    if (engine?.type !== 'vllm') throw new Error(`${ctx.model.name} is not configured for a vLLM engine`);
    this.config = engine;
    this.baseUrl = engine.base_url.replace(/\/+$/, '');
    this.timeoutMs = engine.timeout_ms ?? DEFAULT_TIMEOUT_MS;
  }

  async generate(request: GenerationRequest, onText?: (piece: string) => void): Promise<GenerationResult> {
    const progress: Progress = { text: '' };
    const aborted = (): GenerationResult => ({ text: progress.text, usage: progress.usage ?? ZERO_USAGE, finishReason: 'aborted' });
    if (request.signal.aborted) return aborted();
    const signal = AbortSignal.any([request.signal, AbortSignal.timeout(this.timeoutMs), this.closing.signal]);
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
      const response = await this.post('/tokenize', { model: this.config.served_model, prompt }, this.ownSignal());
      if (!response.ok) throw new VllmHttpError(response.status, '/tokenize', await errorMessage(response));
      return ((await response.json()) as { count: number }).count;
    } catch (error) {
      throw this.explain(error);
    }
  }

  async close(): Promise<void> {
    this.closing.abort();
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
    const response = await this.post(
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
      const body = (await response.json()) as VllmCompletion;
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
    const response = await this.post(path, { lora_name: name, lora_path }, this.ownSignal());
    if (response.ok) {
      await response.text();
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

  private post(path: string, body: object, signal: AbortSignal): Promise<Response> {
    const headers: Record<string, string> = { 'content-type': 'application/json' };
    if (this.config.api_key) headers.authorization = `Bearer ${this.config.api_key}`;
    return fetch(`${this.baseUrl}${path}`, { method: 'POST', headers, body: JSON.stringify(body), signal });
  }

  private ownSignal(): AbortSignal {
    return AbortSignal.any([AbortSignal.timeout(this.timeoutMs), this.closing.signal]);
  }

  /** vLLM's failures as the contract's 503; anything else (a storage outage, a local file error) passes through. */
  private explain(error: unknown): unknown {
    const at = `vLLM at ${this.baseUrl}`;
    if (error instanceof ApiError) return error;
    if (error instanceof VllmHttpError) return new ApiError('engineUnavailable', `${at} answered ${error.status} to ${error.path}: ${error.message}`);
    if (this.closing.signal.aborted) return new ApiError('engineUnavailable', `${at}: the engine is closed`);
    // Fields, not instanceof: fetch's errors and DOMExceptions may come from another realm.
    const { name, cause } = (error ?? {}) as { name?: unknown; cause?: { code?: unknown; message?: unknown } | null };
    if (name === 'TimeoutError') return new ApiError('timeout', `${at} did not answer within ${this.timeoutMs} ms`);
    // undici's network failures are TypeErrors carrying the socket error as their cause.
    if (name === 'TypeError' && typeof cause === 'object' && cause !== null) {
      return new ApiError('engineUnavailable', `${at} is unreachable (${String(cause.code ?? cause.message)})`);
    }
    return error;
  }
}

/** Reads vLLM's SSE stream (`data: <json>\n\n` events, then `data: [DONE]`), whose chunks can split anywhere. */
async function readStream(
  response: Response,
  path: string,
  signal: AbortSignal,
  progress: Progress,
  onText: (piece: string) => void,
): Promise<GenerationResult> {
  const decoder = new TextDecoder();
  let buffer = '';
  let finishReason: string | null | undefined;
  for await (const bytes of response.body ?? []) {
    buffer = (buffer + decoder.decode(bytes, { stream: true })).replace(/\r\n/g, '\n');
    let end: number;
    while ((end = buffer.indexOf('\n\n')) >= 0) {
      // Events already received are not handed on once the caller has gone.
      signal.throwIfAborted();
      const data = eventData(buffer.slice(0, end));
      buffer = buffer.slice(end + 2);
      if (data === undefined) continue;
      if (data === '[DONE]') return { text: progress.text, usage: progress.usage ?? ZERO_USAGE, finishReason: toFinishReason(finishReason) };
      const chunk = JSON.parse(data) as VllmCompletion;
      // A failure after the 200 went out arrives as an event: `{"error": {...}}`.
      if (chunk.error !== undefined) throw new VllmHttpError(response.status, path, messageOf(chunk) ?? data);
      if (chunk.usage) progress.usage = toUsage(chunk.usage);
      const choice = chunk.choices?.[0];
      if (choice?.text) {
        progress.text += choice.text;
        onText(choice.text);
      }
      if (choice?.finish_reason) finishReason = choice.finish_reason;
    }
  }
  throw new VllmHttpError(response.status, path, 'the stream ended before data: [DONE]');
}

/** The `data:` lines of one SSE event, joined; undefined for an event without data (a comment, say). */
function eventData(event: string): string | undefined {
  const lines = event
    .split('\n')
    .filter((line) => line.startsWith('data:'))
    .map((line) => line.slice(line.startsWith('data: ') ? 6 : 5));
  return lines.length === 0 ? undefined : lines.join('\n');
}

/** The message of any error body vLLM (or FastAPI under it) answers. */
function messageOf(body: unknown): string | undefined {
  if (typeof body !== 'object' || body === null) return undefined;
  const { error, message, detail } = body as { error?: unknown; message?: unknown; detail?: unknown };
  // vLLM >= 0.10.1 nests {message, type, param, code} under `error`; older versions answer it flat.
  if (typeof error === 'object' && error !== null && typeof (error as { message?: unknown }).message === 'string') {
    return (error as { message: string }).message;
  }
  // The API-key middleware answers {"error": "Unauthorized"}; FastAPI's own errors {"detail": ...}.
  if (typeof error === 'string') return error;
  if (typeof message === 'string') return message;
  if (typeof detail === 'string') return detail;
  return undefined;
}

async function errorMessage(response: Response): Promise<string> {
  const text = await response.text();
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    // Not JSON: a proxy's error page, say.
  }
  return messageOf(parsed) ?? (text.slice(0, 500) || response.statusText);
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
