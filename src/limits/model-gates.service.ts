import { Injectable } from '@nestjs/common';
import { ApiError } from '../common/errors.js';
import type { ModelDefinition } from '../catalog/model-definition.js';
import { checkContextLimits } from './context-limits.js';
import { RateLimiter } from './rate-limiter.service.js';
import { Semaphore, SemaphoreTimeoutError } from './semaphore.js';

const DEFAULT_CONCURRENCY = 4;

/** What a request asks of the gates: the prompt as the engine will see it, and how many tokens it may add. */
export interface AdmissionRequest {
  prompt: string;
  maxTokens: number;
  countTokens: (text: string) => Promise<number>;
}

/** The per-model gates a run passes: context limits and the caller's rate limit first, then a generation slot. */
@Injectable()
export class ModelGates {
  private readonly slots = new Map<string, Semaphore>();

  constructor(private readonly rateLimiter: RateLimiter) {}

  /** Context limits (400), then the rate limit (429/3036). */
  async admit(accountId: string, model: ModelDefinition, request: AdmissionRequest): Promise<void> {
    await checkContextLimits(model, request.prompt, request.maxTokens, request.countTokens);
    // Counted last, so that a request rejected for its content does not use up the caller's budget.
    await this.rateLimiter.admit(accountId, model);
  }

  /**
   * A generation slot of the model on this replica: queues up to its max_queue_wait_ms, then 429/3040; with
   * `rejectIfBusy` a request that would queue gets the 429 at once.
   */
  async slot(model: ModelDefinition, rejectIfBusy: boolean): Promise<() => void> {
    const gate = this.gate(model);
    if (rejectIfBusy) {
      const release = gate.tryAcquire();
      if (release) return release;
      throw new ApiError('atCapacity', `${model.name} is at capacity (${gate.limit} concurrent requests) and rejectIfBusy is set; try again shortly`, { retryAfter: 1 });
    }
    try {
      return await gate.acquire();
    } catch (error) {
      if (error instanceof SemaphoreTimeoutError) {
        throw new ApiError('atCapacity', `${model.name} is at capacity (${gate.limit} concurrent requests); try again shortly`, { retryAfter: 1 });
      }
      throw error;
    }
  }

  /** Requests of this model generating right now on this replica. */
  activeRequests(modelName: string): number {
    return this.slots.get(modelName)?.inUse ?? 0;
  }

  /** Requests of this model waiting for a generation slot on this replica. */
  queuedRequests(modelName: string): number {
    return this.slots.get(modelName)?.queued ?? 0;
  }

  private gate(model: ModelDefinition): Semaphore {
    let gate = this.slots.get(model.name);
    if (!gate) {
      gate = new Semaphore(model.limits.max_concurrent_requests ?? DEFAULT_CONCURRENCY, model.limits.max_queue_wait_ms);
      this.slots.set(model.name, gate);
    }
    return gate;
  }
}
