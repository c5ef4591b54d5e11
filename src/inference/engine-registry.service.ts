import { Inject, Injectable, Logger, OnApplicationBootstrap, OnApplicationShutdown } from '@nestjs/common';
import { join } from 'node:path';
import { ApiError } from '../common/errors.js';
import { CatalogService } from '../catalog/catalog.service.js';
import type { ModelDefinition } from '../catalog/model-definition.js';
import { APP_CONFIG, type AppConfig } from '../config/app-config.js';
import { EngineReadiness } from '../observability/engine-readiness.js';
import { ObjectStorage } from '../storage/object-storage.js';
import type { EngineContext, InferenceEngine } from './engine.js';
import { LlamaCppEngine } from './engines/llama-cpp.engine.js';
import { SglangEngine } from './engines/sglang.engine.js';
import { VllmEngine } from './engines/vllm.engine.js';

const HOW_TO_CONFIGURE =
  'give its MODELS_FILE entry an "engine", e.g. {"type": "llama-cpp", "model_path": "/models/base.gguf"} ' +
  'or {"type": "vllm", "base_url": "http://vllm:8000", "served_model": "<name>", "adapter_dir": "/shared/adapters"}';

/**
 * One engine per model, from the catalog entry's `engine`. In-process (llama.cpp) models are loaded at start-up,
 * in the background so that the process answers probes meanwhile; readiness waits for them.
 */
@Injectable()
export class EngineRegistry implements OnApplicationBootstrap, OnApplicationShutdown {
  private readonly logger = new Logger(EngineRegistry.name);
  private readonly engines = new Map<string, Promise<InferenceEngine>>();
  private readonly running = new Map<string, InferenceEngine>();

  constructor(
    @Inject(APP_CONFIG) private readonly config: AppConfig,
    private readonly storage: ObjectStorage,
    private readonly catalog: CatalogService,
    readiness: EngineReadiness,
  ) {
    readiness.register((model, waitMs) => this.ready(model, waitMs));
  }

  onApplicationBootstrap(): void {
    for (const model of this.catalog.all()) {
      if (model.engine?.type !== 'llama-cpp') continue;
      this.get(model).catch((error: Error) => this.logger.error(`cannot load ${model.name}: ${error.message}`));
    }
  }

  /**
   * Resolves once the model's engine has started (starting it if an earlier attempt failed); rejects with the
   * reason it cannot, or when it is still loading after `waitMs`.
   */
  async ready(model: ModelDefinition, waitMs: number): Promise<void> {
    let timer: NodeJS.Timeout | undefined;
    const loading = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error('the model is still loading')), waitMs);
    });
    try {
      await Promise.race([this.get(model), loading]);
    } finally {
      clearTimeout(timer);
    }
  }

  get(model: ModelDefinition): Promise<InferenceEngine> {
    const engine = model.engine;
    if (!engine) {
      return Promise.reject(new ApiError('engineUnavailable', `model ${model.name} has no inference engine configured: ${HOW_TO_CONFIGURE}`));
    }
    const existing = this.engines.get(model.name);
    if (existing) return existing;
    const ctx: EngineContext = { model, files: this.storage, cacheDir: join(this.config.cacheDir, 'engines', model.id) };
    const created: Promise<InferenceEngine> =
      engine.type === 'llama-cpp'
        ? LlamaCppEngine.create(ctx)
        : Promise.resolve(engine.type === 'vllm' ? new VllmEngine(ctx) : new SglangEngine(ctx));
    // A failed start is not cached: the next request tries again (the file may have appeared).
    created.then((e) => this.running.set(model.name, e), () => this.engines.delete(model.name));
    this.engines.set(model.name, created);
    return created;
  }

  /** The engines started so far, by model name; never starts one (metrics read them at scrape time). */
  started(): ReadonlyMap<string, InferenceEngine> {
    return this.running;
  }

  async onApplicationShutdown(): Promise<void> {
    for (const [name, engine] of this.engines) {
      await engine.then((e) => e.close()).catch((error) => this.logger.warn(`closing engine of ${name}: ${error}`));
    }
    this.engines.clear();
    this.running.clear();
  }
}
