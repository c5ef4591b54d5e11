import { Injectable, OnApplicationShutdown } from '@nestjs/common';
import { performance } from 'node:perf_hooks';
import { ApiError } from '../common/errors.js';
import { CatalogService } from '../catalog/catalog.service.js';
import type { ModelDefinition } from '../catalog/model-definition.js';
import { FinetuneEvents } from '../finetunes/finetune-events.js';
import { CHAT_TEMPLATE_STOPS, CHAT_TEMPLATES, ChatTemplateError } from '../formats/chat-templates.js';
import type { UsageStatus } from '../generated/prisma/client.js';
import { ModelGates } from '../limits/model-gates.service.js';
import { isDeterministic, ResponseCache, responseCacheKey, type RunAnswer } from '../limits/response-cache.js';
import { MetricsService } from '../observability/metrics.service.js';
import { UsageRecorder } from '../usage/usage-recorder.service.js';
import { AdapterResolver } from './adapter-resolver.service.js';
import type { GenerationRequest, GenerationResult, InferenceEngine, Usage } from './engine.js';
import { EngineRegistry } from './engine-registry.service.js';
import { parseRunInput, type RunInput } from './run-input.js';

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

/**
 * A run from request to answer: parses the input, resolves the adapter (AdapterResolver), passes the model's
 * gates (ModelGates), answers from the response cache or the engine, and records usage and metrics.
 */
@Injectable()
export class RunService implements OnApplicationShutdown {
  private readonly running = new Set<Promise<GenerationResult>>();

  constructor(
    private readonly catalog: CatalogService,
    private readonly adapters: AdapterResolver,
    private readonly engines: EngineRegistry,
    private readonly gates: ModelGates,
    private readonly cache: ResponseCache,
    private readonly usage: UsageRecorder,
    private readonly metrics: MetricsService,
    events: FinetuneEvents,
  ) {
    events.onDeleted((finetuneId) => this.cache.dropFinetune(finetuneId));
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
    const adapter = input.lora === undefined ? undefined : await this.adapters.resolve(accountId, model, input.lora);
    // Raw prompts go verbatim; the family's end-of-turn still ends generation.
    const prompt = input.raw ? input.prompt! : this.template(model, input);
    const stop = [...CHAT_TEMPLATE_STOPS[model.chat_template]];
    const engine = await this.engines.get(model);
    await this.gates.admit(accountId, model, { prompt, maxTokens: input.maxTokens, countTokens: (text) => engine.countTokens(text) });
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
      if (error instanceof ChatTemplateError) throw new ApiError('validation', `messages: ${error.message}`);
      throw error;
    }
  }

  /** Runs within the model's concurrency bound (ModelGates.slot) and records usage. */
  async generate(prepared: PreparedRun, signal: AbortSignal, onText?: (piece: string) => void): Promise<GenerationResult> {
    const release = await this.gates.slot(prepared.model, prepared.input.rejectIfBusy);
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
      const { prompt, stop, maxTokens, sampling, adapter } = prepared.request;
      result = await prepared.engine.generate({ prompt, stop, maxTokens, sampling, adapter, signal }, onText);
    } catch (error) {
      this.metrics.countRun(prepared.model.name, 'error');
      this.record(prepared, 'error', NO_USAGE, false);
      throw error;
    }
    this.metrics.countRun(prepared.model.name, result.finishReason);
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
}
