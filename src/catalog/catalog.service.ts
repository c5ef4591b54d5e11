import { Inject, Injectable } from '@nestjs/common';
import { ApiError } from '../common/errors.js';
import { APP_CONFIG, type AppConfig } from '../config/app-config.js';
import type { ModelDefinition } from './model-definition.js';
import { loadModels } from './models-file.js';

/** The models this service offers: built-ins merged with MODELS_FILE, loaded once at start-up. */
@Injectable()
export class CatalogService {
  private readonly byName: ReadonlyMap<string, ModelDefinition>;

  constructor(@Inject(APP_CONFIG) config: AppConfig) {
    this.byName = new Map(loadModels(config.modelsFile).map((model) => [model.name, model]));
  }

  all(): ModelDefinition[] {
    return [...this.byName.values()];
  }

  find(name: string): ModelDefinition | undefined {
    return this.byName.get(name);
  }

  /** The named model, or 400/5007. */
  get(name: string): ModelDefinition {
    const model = this.byName.get(name);
    if (!model) throw new ApiError('unknownModel', `model: unknown model "${name}"`);
    return model;
  }

  /** The named model if it takes LoRA adapters, or 400/5005 (400/5007 if unknown). */
  getLoraBase(name: string): ModelDefinition {
    const model = this.get(name);
    if (!model.lora || !model.architecture) {
      throw new ApiError('finetuneLoraUnsupported', `model: "${name}" does not support LoRA adapters`);
    }
    return model;
  }
}
