import { Injectable } from '@nestjs/common';
import type { ModelDefinition } from '../catalog/model-definition.js';

type WaitForEngine = (model: ModelDefinition, waitMs: number) => Promise<void>;

/**
 * Whether a model's in-process engine has loaded, as the module that starts engines (src/inference) reports it,
 * so that readiness waits for it without observability depending on inference.
 */
@Injectable()
export class EngineReadiness {
  private waitFor: WaitForEngine | null = null;

  /** Set by the engine owner: resolves once the engine is up, rejects with why not (or that it is still loading). */
  register(waitFor: WaitForEngine): void {
    this.waitFor = waitFor;
  }

  async ready(model: ModelDefinition, waitMs: number): Promise<void> {
    await this.waitFor?.(model, waitMs);
  }
}
