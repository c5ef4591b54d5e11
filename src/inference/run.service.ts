import { Injectable } from '@nestjs/common';
import { createHash } from 'node:crypto';
import { ApiError, TooManyRequestsError, ValidationError } from '../common/api-error.js';
import { AdapterAssetsService } from '../adapters/adapter-assets.service.js';
import { CatalogService } from '../catalog/catalog.service.js';
import type { ModelDefinition } from '../catalog/model-definition.js';
import { FinetuneEvents } from '../finetunes/finetune-events.js';
import { FinetunesService } from '../finetunes/finetunes.service.js';
import { CHAT_TEMPLATE_STOPS, CHAT_TEMPLATES, ChatTemplateError } from '../formats/chat-templates.js';
import { Semaphore, SemaphoreTimeoutError } from '../limits/semaphore.js';
import type { AdapterRef, GenerationRequest, GenerationResult, InferenceEngine } from './engine.js';
import { EngineRegistry } from './engine-registry.service.js';
import { parseRunInput, type RunInput } from './run-input.js';

const DEFAULT_CONCURRENCY = 4;
/** How long a request may queue for a free slot before it is told the model is at capacity. */
const QUEUE_WAIT_MS = 10_000;
/** Ready adapters are immutable, so a resolved `lora` is safe to reuse briefly (deletes invalidate at once). */
const RESOLVED_TTL_MS = 10_000;

export interface PreparedRun {
  model: ModelDefinition;
  input: RunInput;
  engine: InferenceEngine;
  request: Omit<GenerationRequest, 'signal'>;
}

@Injectable()
export class RunService {
  private readonly gates = new Map<string, Semaphore>();
  private readonly finishes = new Map<string, Record<GenerationResult['finishReason'], number>>();
  private readonly resolved = new Map<string, { ref: AdapterRef; finetuneId: string; expires: number }>();

  constructor(
    private readonly catalog: CatalogService,
    private readonly finetunes: FinetunesService,
    private readonly assets: AdapterAssetsService,
    private readonly engines: EngineRegistry,
    events: FinetuneEvents,
  ) {
    events.onDeleted((finetuneId) => {
      for (const [key, entry] of this.resolved) if (entry.finetuneId === finetuneId) this.resolved.delete(key);
    });
  }

  /** Everything that can fail before generation starts: input, adapter, template, engine. */
  async prepare(accountId: string, modelName: string, body: unknown): Promise<PreparedRun> {
    const model = this.catalog.get(modelName);
    const input = parseRunInput(body, model);
    const adapter = input.lora === undefined ? undefined : await this.resolveAdapter(accountId, model, input.lora);
    // Raw prompts go verbatim; the family's end-of-turn still ends generation.
    const prompt = input.raw ? input.prompt! : this.template(model, input);
    const stop = [...CHAT_TEMPLATE_STOPS[model.chat_template]];
    const engine = await this.engines.get(model);
    return { model, input, engine, request: { prompt, stop, maxTokens: input.maxTokens, sampling: input.sampling, adapter } };
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

  /** How this replica's generations of a model ended, by reason. */
  finishCounts(modelName: string): Record<GenerationResult['finishReason'], number> {
    return { stop: 0, length: 0, aborted: 0, ...this.finishes.get(modelName) };
  }

  /** Runs within the model's concurrency bound: queues briefly, then 429/3044. */
  async generate(prepared: PreparedRun, signal: AbortSignal, onText?: (piece: string) => void): Promise<GenerationResult> {
    const release = await this.slot(prepared.model);
    try {
      const result = await prepared.engine.generate({ ...prepared.request, signal }, onText);
      const counts = this.finishCounts(prepared.model.name);
      counts[result.finishReason] += 1;
      this.finishes.set(prepared.model.name, counts);
      return result;
    } finally {
      release();
    }
  }

  private async slot(model: ModelDefinition): Promise<() => void> {
    let gate = this.gates.get(model.name);
    if (!gate) {
      gate = new Semaphore(model.limits.max_concurrent_requests ?? DEFAULT_CONCURRENCY, QUEUE_WAIT_MS);
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
