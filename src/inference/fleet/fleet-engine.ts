/**
 * What the vLLM and SGLang engines share: OpenAI-style completions (streamed as SSE) on a fleet of replicas, adapter
 * files written once into the shared `adapter_dir`, and failover. A request goes to the replica the router picks;
 * if that replica fails before any text reached the caller (refused, reset, timed out, 5xx), the replica is marked
 * down and the request is tried once more on another one. Text already handed on cannot be taken back: a failure
 * after it is thrown, and the caller's stream ends with an error event.
 */
import { randomUUID } from 'node:crypto';
import { access, mkdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { engineReplicas, type RemoteEngineConfig } from '../../catalog/model-definition.js';
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
import { Fleet, NoReplicaError, type Lease, type ReplicaDriver } from './fleet.js';
import { errorBodyMessage, errorMessage, errorTextMessage, sseData, transportFailure, type EngineResponse } from '../engines/engine-http.js';
import { isReplicaFailure, remembered, RemoteClient, ReplicaHttpError, StreamCutError, untilAborted } from './remote-client.js';

const DEFAULT_TIMEOUT_MS = 120_000;
const DEFAULT_REFRESH_MS = 2_000;
const CONFIG_FILE = 'adapter_config.json';
const WEIGHTS_FILE = 'adapter_model.safetensors';
const ZERO_USAGE: Usage = { prompt_tokens: 0, completion_tokens: 0, total_tokens: 0 };
const STREAM_OPTIONS = { include_usage: true, continuous_usage_stats: true };

/** The served LoRA name: one per finetune version, so changed files are a name no replica has loaded. */
export function adapterServedName(adapter: AdapterRef): string {
  return `ft-${adapter.finetuneId}-${adapter.version.slice(0, 12)}`;
}

/** The replica answered that it does not hold the adapter the request named. */
export class AdapterMissingError extends ReplicaHttpError {}

interface CompletionBody {
  choices?: { text?: string; finish_reason?: string | null }[];
  usage?: { prompt_tokens?: number | null; completion_tokens?: number | null; total_tokens?: number | null } | null;
  error?: unknown;
}

/** What a generation has produced so far: returned as is when the caller aborts. */
interface Progress {
  text: string;
  usage?: Usage;
  /** Some text went to the caller: the request can no longer move to another replica. */
  started: boolean;
}

export abstract class FleetEngine implements InferenceEngine {
  readonly fleet: Fleet;
  protected readonly client: RemoteClient;
  protected readonly adapterDir: string;
  /** Adapter versions written under adapter_dir by this process (or found there): each is written once. */
  private readonly written = new Map<string, Promise<void>>();

  /** For messages: "vLLM", "SGLang". */
  protected abstract readonly label: string;
  /** The tokenizer endpoint. */
  protected abstract readonly tokenizePath: string;

  protected constructor(
    protected readonly ctx: EngineContext,
    protected readonly config: RemoteEngineConfig,
    options: { loadsAdapters: boolean },
  ) {
    this.adapterDir = config.adapter_dir;
    this.client = new RemoteClient(config.api_key, config.timeout_ms ?? DEFAULT_TIMEOUT_MS);
    this.fleet = new Fleet(engineReplicas(config), this.driver(), {
      maxLoras: config.max_loras,
      refreshMs: config.refresh_ms ?? DEFAULT_REFRESH_MS,
      timeoutMs: this.client.timeoutMs,
      loadsAdapters: options.loadsAdapters,
      closing: this.client.closing.signal,
    });
    this.fleet.start();
  }

  /** The replica calls this engine's API offers: load, unload, state. */
  protected abstract driver(): ReplicaDriver;
  /** The OpenAI `model` field of a completion with this adapter. */
  protected abstract modelField(adapter: string | undefined): string;
  /** Whether an error answer to a completion says the replica does not hold the named adapter. */
  protected abstract adapterMissing(status: number, message: string): boolean;

  async generate(request: GenerationRequest, onText?: (piece: string) => void): Promise<GenerationResult> {
    const progress: Progress = { text: '', started: false };
    const aborted = (): GenerationResult => ({ text: progress.text, usage: progress.usage ?? ZERO_USAGE, finishReason: 'aborted' });
    if (request.signal.aborted) return aborted();
    const adapter = request.adapter === undefined ? undefined : adapterServedName(request.adapter);
    try {
      if (request.adapter !== undefined) await untilAborted(this.materialise(request.adapter, adapter!), request.signal);
      return await this.onReplicas(adapter, request.signal, async (lease, signal) => {
        await this.fleet.prepare(lease, signal);
        try {
          return await this.complete(lease, request, signal, progress, onText);
        } catch (error) {
          if (!(error instanceof AdapterMissingError) || progress.started) throw error;
          // The replica lost the adapter (it restarted, or another process evicted it): bring it back and retry once.
          await this.fleet.recover(lease, signal);
          return await this.complete(lease, request, signal, progress, onText);
        }
      }, () => progress.started);
    } catch (error) {
      if (request.signal.aborted) return aborted();
      // The files may be what failed (someone emptied adapter_dir): the next request checks them again.
      if (adapter !== undefined) this.written.delete(adapter);
      throw error;
    }
  }

  async countTokens(prompt: string): Promise<number> {
    return this.onReplicas(undefined, new AbortController().signal, async ({ replica }, signal) => {
      // The same defaults as a completion (special tokens added), so the count is what generation will see.
      const response = await this.client.post(replica.url, this.tokenizePath, { model: this.config.served_model, prompt }, signal);
      return (await this.client.json<{ count: number }>(response, this.tokenizePath)).count;
    });
  }

  async close(): Promise<void> {
    this.fleet.stop();
    await this.client.close();
  }

  /**
   * Runs `attempt` on the replica the router picks; after a replica failure, once more on another one unless
   * `committed()` says output already left. Failures come out as the contract's 503 naming the replica.
   */
  private async onReplicas<T>(
    adapter: string | undefined,
    callerSignal: AbortSignal,
    attempt: (lease: Lease, signal: AbortSignal) => Promise<T>,
    committed: () => boolean = () => false,
  ): Promise<T> {
    await untilAborted(this.fleet.ready, callerSignal);
    const tried = new Set<Lease['replica']>();
    for (;;) {
      let lease: Lease;
      try {
        lease = this.fleet.place(adapter, tried);
      } catch (error) {
        if (error instanceof NoReplicaError) throw new ApiError('engineUnavailable', `${this.label}: no replica left to try`);
        throw error;
      }
      // The caller's signal alone: timeouts and close() are the pools' (AbortSignal.any on the engine's long-lived
      // signal kept an entry per call on it), and each attempt gets the whole timeout.
      const signal = callerSignal;
      try {
        const result = await attempt(lease, signal);
        this.fleet.release(lease, 'served');
        return result;
      } catch (error) {
        this.fleet.release(lease, callerSignal.aborted ? 'aborted' : 'failed', error);
        if (callerSignal.aborted) throw error;
        tried.add(lease.replica);
        const retry = tried.size === 1 && this.fleet.replicas.length > 1 && isReplicaFailure(error) && !committed();
        if (!retry) throw this.explain(error, lease.replica.url);
      }
    }
  }

  private async complete(
    lease: Lease,
    request: GenerationRequest,
    signal: AbortSignal,
    progress: Progress,
    onText?: (piece: string) => void,
  ): Promise<GenerationResult> {
    const path = '/v1/completions';
    const stream = onText !== undefined;
    const { sampling } = request;
    // One literal, no spreads: spread objects take V8's slow path (new hidden classes) on every request.
    // Unset fields are undefined, which JSON leaves out.
    const body = {
      model: this.modelField(lease.adapter),
      prompt: request.prompt,
      max_tokens: request.maxTokens,
      stop: request.stop,
      temperature: sampling.temperature,
      top_p: sampling.topP,
      top_k: sampling.topK,
      seed: sampling.seed,
      repetition_penalty: sampling.repetitionPenalty,
      frequency_penalty: sampling.frequencyPenalty,
      presence_penalty: sampling.presencePenalty,
      stream,
      // Running usage on every chunk, so an aborted stream still knows what it cost.
      stream_options: stream ? STREAM_OPTIONS : undefined,
    };
    if (!stream) {
      const answer = await this.client.postForText(lease.replica.url, path, body, signal);
      if (!answer.ok) throw this.completionFailed(lease, path, answer.status, errorTextMessage(answer.text, answer.status));
      const parsed = JSON.parse(answer.text) as CompletionBody;
      const choice = parsed.choices?.[0];
      return { text: choice?.text ?? '', usage: toUsage(parsed.usage), finishReason: toFinishReason(choice?.finish_reason) };
    }
    const response = await this.client.post(lease.replica.url, path, body, signal);
    if (!response.ok) throw this.completionFailed(lease, path, response.status, await errorMessage(response));
    return readStream(response, path, signal, progress, onText);
  }

  /** A completion's error answer: the replica lacks the adapter it named, or it failed otherwise. */
  private completionFailed(lease: Lease, path: string, status: number, message: string): ReplicaHttpError {
    const missing = lease.adapter !== undefined && this.adapterMissing(status, message);
    return new (missing ? AdapterMissingError : ReplicaHttpError)(status, path, message);
  }

  /** Puts both files in `<adapter_dir>/<name>/`, via a staging folder renamed into place: no replica sees half an adapter. */
  private materialise(adapter: AdapterRef, name: string): Promise<void> {
    let written = this.written.get(name);
    if (written === undefined) {
      written = remembered(this.write(adapter, name));
      // A failure is not remembered: the next request tries again.
      written.catch(() => this.written.delete(name));
      this.written.set(name, written);
    }
    return written;
  }

  private async write(adapter: AdapterRef, name: string): Promise<void> {
    const folder = join(this.adapterDir, name);
    if (await hasAdapterFiles(folder)) return;
    const staging = join(this.adapterDir, `.${name}.${randomUUID()}`);
    await mkdir(staging, { recursive: true });
    try {
      await this.ctx.files.readToFile(adapter.configKey, join(staging, CONFIG_FILE));
      await this.ctx.files.readToFile(adapter.weightsKey, join(staging, WEIGHTS_FILE));
      await this.adjustConfig(join(staging, CONFIG_FILE));
      await rename(staging, folder);
    } catch (error) {
      // Another process sharing adapter_dir put the same version in place first.
      const lostRace = (hasCode(error, 'ENOTEMPTY') || hasCode(error, 'EEXIST')) && (await hasAdapterFiles(folder));
      if (!lostRace) throw error;
    } finally {
      await rm(staging, { recursive: true, force: true });
    }
  }

  /** Rewrites fields of the staged adapter_config.json for the engine; nothing by default. */
  protected async adjustConfig(_path: string): Promise<void> {}

  /** Replica failures as the contract's 503 (a timeout: 408); anything else (a storage outage, a local file error) passes through. */
  protected explain(error: unknown, url: string): unknown {
    const at = `${this.label} at ${url}`;
    if (error instanceof ApiError) return error;
    if (error instanceof ReplicaHttpError) return new ApiError('engineUnavailable', `${at} answered ${error.status} to ${error.path}: ${error.message}`);
    if (this.client.closed) return new ApiError('engineUnavailable', `${at}: the engine is closed`);
    const failure = transportFailure(error, this.client.timeoutMs);
    if (failure === undefined) return error;
    return new ApiError(failure.timeout ? 'timeout' : 'engineUnavailable', `${at} ${failure.message}`);
  }
}

/** Rewrites one field of a staged adapter_config.json (resolver mode: the base model name the resolver checks). */
export async function setConfigField(path: string, field: string, value: unknown): Promise<void> {
  const config = JSON.parse(await readFile(path, 'utf8')) as Record<string, unknown>;
  config[field] = value;
  await writeFile(path, JSON.stringify(config, null, 2));
}

/** Reads an OpenAI-style SSE stream (`data: <json>` events, then `data: [DONE]`). */
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
    const chunk = JSON.parse(data) as CompletionBody & { object?: unknown };
    // A failure after the 200 went out arrives as an event: `{"error": {...}}` (SGLang: `{"object": "error", ...}`).
    if (chunk.error !== undefined || chunk.object === 'error') throw new ReplicaHttpError(response.status, path, errorBodyMessage(chunk) ?? data);
    if (chunk.usage) progress.usage = toUsage(chunk.usage);
    const choice = chunk.choices?.[0];
    if (choice?.text) {
      progress.text += choice.text;
      progress.started = true;
      onText(choice.text);
    }
    if (choice?.finish_reason) finishReason = choice.finish_reason;
  }
  throw new StreamCutError(response.status, path, 'the stream ended before data: [DONE]');
}


function toUsage(usage: CompletionBody['usage']): Usage {
  const prompt = usage?.prompt_tokens ?? 0;
  const completion = usage?.completion_tokens ?? 0;
  return { prompt_tokens: prompt, completion_tokens: completion, total_tokens: usage?.total_tokens ?? prompt + completion };
}

function toFinishReason(reason: string | null | undefined): 'stop' | 'length' {
  return reason === 'length' ? 'length' : 'stop';
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
