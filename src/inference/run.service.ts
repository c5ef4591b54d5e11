import { Injectable, OnApplicationShutdown } from '@nestjs/common';
import { createHash } from 'node:crypto';
import { performance } from 'node:perf_hooks';
import { ApiError, TooManyRequestsError, ValidationError } from '../common/api-error.js';
import { AdapterAssetsService } from '../adapters/adapter-assets.service.js';
import { CatalogService } from '../catalog/catalog.service.js';
import type { ModelDefinition } from '../catalog/model-definition.js';
import { FinetuneEvents } from '../finetunes/finetune-events.js';
import { FinetunesService } from '../finetunes/finetunes.service.js';
import { CHAT_TEMPLATE_STOPS, CHAT_TEMPLATES, ChatTemplateError } from '../formats/chat-templates.js';
import type { UsageStatus } from '../generated/prisma/client.js';
import { checkContextLimits } from '../limits/context-limits.js';
import { RateLimiter } from '../limits/rate-limiter.service.js';
import { isDeterministic, ResponseCache, responseCacheKey, type RunAnswer } from '../limits/response-cache.js';
import { Semaphore, SemaphoreTimeoutError } from '../limits/semaphore.js';
import { MetricsService } from '../observability/metrics.service.js';
import { UsageRecorder } from '../usage/usage-recorder.service.js';
import type { AdapterRef, GenerationRequest, GenerationResult, InferenceEngine, Usage } from './engine.js';
import { EngineRegistry } from './engine-registry.service.js';
import { parseRunInput, type RunInput } from './run-input.js';

const DEFAULT_CONCURRENCY = 4;
/** Ready adapters are immutable, so a resolved `lora` is safe to reuse briefly (deletes invalidate at once). */
const RESOLVED_TTL_MS = 10_000;
/** What a failed generation is recorded with: the engine reported nothing. */
const NO_USAGE: Usage = { prompt_tokens: 0, completion_tokens: 0, total_tokens: 0 };

export interface PreparedRun {
  accountId: string;
  model: ModelDefinition;
  input: RunInput;
  engine: InferenceEngine;
  request: Omit<GenerationRequest, 'signal'>;
  /** Set when the answer may come from, and go to, the response cache. */
  cacheKey?: string;
  /** performance.now() when the request reached the service: usage latency counts from here. */
  startedAt: number;
}

/** `cache` is the response-cache outcome, absent when the request could not use the cache. */
export interface Answered {
  answer: RunAnswer;
  cache?: 'HIT' | 'MISS';
  /** How the generation ended; absent on a cache HIT (the cache keeps only the answer). */
  finishReason?: GenerationResult['finishReason'];
}

@Injectable()
export class RunService implements OnApplicationShutdown {
  private readonly gates = new Map<string, Semaphore>();
  private readonly finishes = new Map<string, Record<GenerationResult['finishReason'], number>>();
  private readonly resolved = new Map<string, { ref: AdapterRef; finetuneId: string; expires: number }>();
  private readonly running = new Set<Promise<GenerationResult>>();

  constructor(
    private readonly catalog: CatalogService,
    private readonly finetunes: FinetunesService,
    private readonly assets: AdapterAssetsService,
    private readonly engines: EngineRegistry,
    private readonly rateLimiter: RateLimiter,
    private readonly cache: ResponseCache,
    private readonly usage: UsageRecorder,
    private readonly metrics: MetricsService,
    events: FinetuneEvents,
  ) {
    events.onDeleted((finetuneId) => {
      for (const [key, entry] of this.resolved) if (entry.finetuneId === finetuneId) this.resolved.delete(key);
      this.cache.dropFinetune(finetuneId);
    });
  }

  /** By now the HTTP server has closed every connection, aborting what still ran: let those runs record their usage. */
  async onApplicationShutdown(): Promise<void> {
    await Promise.allSettled(this.running);
    await this.usage.flush();
  }

  /** Everything that can fail before generation starts: input, adapter, template, engine, context and rate limits. */
  async prepare(accountId: string, modelName: string, body: unknown): Promise<PreparedRun> {
    const startedAt = performance.now();
    const model = this.catalog.get(modelName);
    const input = parseRunInput(body, model);
    const adapter = input.lora === undefined ? undefined : await this.resolveAdapter(accountId, model, input.lora);
    // Raw prompts go verbatim; the family's end-of-turn still ends generation.
    const prompt = input.raw ? input.prompt! : this.template(model, input);
    const stop = [...CHAT_TEMPLATE_STOPS[model.chat_template]];
    const engine = await this.engines.get(model);
    await checkContextLimits(model, prompt, input.maxTokens, (text) => engine.countTokens(text));
    // Counted last, so that a request rejected for its content does not use up the caller's budget.
    await this.rateLimiter.admit(accountId, model);
    const request = { prompt, stop, maxTokens: input.maxTokens, sampling: input.sampling, adapter };
    const cacheable = model.response_cache && !input.stream && isDeterministic(input.sampling);
    return { accountId, model, input, engine, request, cacheKey: cacheable ? responseCacheKey(model.name, request) : undefined, startedAt };
  }

  /** A non-streaming run: the cached answer of an identical deterministic run if there is one, else a generation. */
  async answer(prepared: PreparedRun, signal: AbortSignal): Promise<Answered> {
    const { cacheKey } = prepared;
    const cached = cacheKey === undefined ? undefined : this.cache.get(cacheKey);
    if (cached) {
      this.record(prepared, 'ok', cached.usage, true);
      return { answer: cached, cache: 'HIT' };
    }
    const result = await this.generate(prepared, signal);
    const answer = { response: result.text, usage: result.usage };
    if (cacheKey === undefined) return { answer, finishReason: result.finishReason };
    if (result.finishReason !== 'aborted') this.cache.set(cacheKey, answer, prepared.request.adapter?.finetuneId ?? null);
    return { answer, cache: 'MISS', finishReason: result.finishReason };
  }

  private template(model: ModelDefinition, input: RunInput): string {
    try {
      return CHAT_TEMPLATES[model.chat_template]({ prompt: input.prompt, messages: input.messages }).text;
    } catch (error) {
      if (error instanceof ChatTemplateError) throw new ValidationError(`messages: ${error.message}`);
      throw error;
    }
  }

  /** Requests of this model generating right now on this replica. */
  activeRequests(modelName: string): number {
    return this.gates.get(modelName)?.inUse ?? 0;
  }

  /** Requests of this model waiting for a generation slot on this replica. */
  queuedRequests(modelName: string): number {
    return this.gates.get(modelName)?.queued ?? 0;
  }

  /** How this replica's generations of a model ended, by reason. */
  finishCounts(modelName: string): Record<GenerationResult['finishReason'], number> {
    return { stop: 0, length: 0, aborted: 0, ...this.finishes.get(modelName) };
  }

  /** Runs within the model's concurrency bound (queues up to its max_queue_wait_ms, then 429/3044) and records usage. */
  async generate(prepared: PreparedRun, signal: AbortSignal, onText?: (piece: string) => void): Promise<GenerationResult> {
    const release = await this.slot(prepared.model);
    const run = this.generateInSlot(prepared, signal, onText);
    this.running.add(run);
    try {
      return await run;
    } finally {
      this.running.delete(run);
      release();
    }
  }

  private async generateInSlot(prepared: PreparedRun, signal: AbortSignal, onText?: (piece: string) => void): Promise<GenerationResult> {
    const began = performance.now();
    let result: GenerationResult;
    try {
      result = await prepared.engine.generate({ ...prepared.request, signal }, onText);
    } catch (error) {
      this.record(prepared, 'error', NO_USAGE, false);
      throw error;
    }
    const counts = this.finishCounts(prepared.model.name);
    counts[result.finishReason] += 1;
    this.finishes.set(prepared.model.name, counts);
    this.metrics.recordGeneration(prepared.model.name, result.usage, (performance.now() - began) / 1000);
    this.record(prepared, result.finishReason === 'aborted' ? 'aborted' : 'ok', result.usage, false);
    return result;
  }

  private record(prepared: PreparedRun, status: UsageStatus, usage: Usage, cached: boolean): void {
    this.usage.record({
      accountId: prepared.accountId,
      model: prepared.model,
      finetuneId: prepared.request.adapter?.finetuneId ?? null,
      usage,
      status,
      cached,
      latencyMs: performance.now() - prepared.startedAt,
    });
  }

  private async slot(model: ModelDefinition): Promise<() => void> {
    let gate = this.gates.get(model.name);
    if (!gate) {
      gate = new Semaphore(model.limits.max_concurrent_requests ?? DEFAULT_CONCURRENCY, model.limits.max_queue_wait_ms);
      this.gates.set(model.name, gate);
    }
    try {
      return await gate.acquire();
    } catch (error) {
      if (error instanceof SemaphoreTimeoutError) {
        throw new TooManyRequestsError(`${model.name} is at capacity (${gate.limit} concurrent requests); try again shortly`, 3044, 1);
      }
      throw error;
    }
  }

  /** `lora` by id (own or public), then own by name, then public by name. */
  private async resolveAdapter(accountId: string, model: ModelDefinition, lora: string): Promise<AdapterRef> {
    if (!model.lora) {
      throw new ApiError(405, 5005, `model ${model.name} does not support LoRA adapters: remove "lora" or use a LoRA base model`);
    }
    const key = `${accountId}\u0000${model.name}\u0000${lora}`;
    const cached = this.resolved.get(key);
    if (cached && cached.expires > Date.now()) return cached.ref;

    const finetune = await this.finetunes.getVisible(accountId, lora);
    if (finetune.model !== model.name) {
      throw new ValidationError(`lora: finetune "${finetune.name}" was made for ${finetune.model}, not ${model.name}`);
    }
    const assets = await this.assets.assetsOf(finetune.id);
    const config = assets.find((a) => a.fileName === 'adapter_config.json');
    const weights = assets.find((a) => a.fileName === 'adapter_model.safetensors');
    if (finetune.status !== 'ready' || !config || !weights) {
      const missing = [!config && 'adapter_config.json', !weights && 'adapter_model.safetensors'].filter(Boolean).join(' and ');
      throw new ValidationError(`lora: finetune "${finetune.name}" is not ready: ${missing ? `missing ${missing}` : 'its files do not agree'}`, 3039);
    }
    const ref: AdapterRef = {
      finetuneId: finetune.id,
      version: createHash('sha256').update(`${config.sha256}:${weights.sha256}`).digest('hex').slice(0, 16),
      configKey: config.storageKey,
      weightsKey: weights.storageKey,
    };
    this.resolved.set(key, { ref, finetuneId: finetune.id, expires: Date.now() + RESOLVED_TTL_MS });
    return ref;
  }
}
