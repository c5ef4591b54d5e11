import { Injectable } from '@nestjs/common';
import { createHash } from 'node:crypto';
import { AdapterAssetsService } from '../adapters/adapter-assets.service.js';
import type { ModelDefinition } from '../catalog/model-definition.js';
import { ApiError } from '../common/errors.js';
import { FinetuneEvents } from '../finetunes/finetune-events.js';
import { FinetunesService } from '../finetunes/finetunes.service.js';
import type { AdapterRef } from './engine.js';

/** Ready adapters are immutable, so a resolved `lora` is safe to reuse briefly (deletes invalidate at once). */
const RESOLVED_TTL_MS = 10_000;

/** A run's `lora` to the adapter an engine loads, kept briefly so the hot path mostly stays off the database. */
@Injectable()
export class AdapterResolver {
  private readonly resolved = new Map<string, { ref: AdapterRef; finetuneId: string; expires: number }>();

  constructor(
    private readonly finetunes: FinetunesService,
    private readonly assets: AdapterAssetsService,
    events: FinetuneEvents,
  ) {
    events.onDeleted((finetuneId) => {
      for (const [key, entry] of this.resolved) if (entry.finetuneId === finetuneId) this.resolved.delete(key);
    });
  }

  /** `lora` by id (own or public), then own by name, then public by name. */
  async resolve(accountId: string, model: ModelDefinition, lora: string): Promise<AdapterRef> {
    if (!model.lora) {
      throw new ApiError('runLoraUnsupported', `model ${model.name} does not support LoRA adapters: remove "lora" or use a LoRA base model`);
    }
    const key = `${accountId}\u0000${model.name}\u0000${lora}`;
    const cached = this.resolved.get(key);
    if (cached && cached.expires > Date.now()) return cached.ref;

    const finetune = await this.finetunes.getVisible(accountId, lora);
    if (finetune.model !== model.name) {
      throw new ApiError('validation', `lora: finetune "${finetune.name}" was made for ${finetune.model}, not ${model.name}`);
    }
    const assets = await this.assets.assetsOf(finetune.id);
    const config = assets.find((a) => a.fileName === 'adapter_config.json');
    const weights = assets.find((a) => a.fileName === 'adapter_model.safetensors');
    if (finetune.status !== 'ready' || !config || !weights) {
      const missing = [!config && 'adapter_config.json', !weights && 'adapter_model.safetensors'].filter(Boolean).join(' and ');
      throw new ApiError('finetuneNotReady', `lora: finetune "${finetune.name}" is not ready: ${missing ? `missing ${missing}` : 'its files do not agree'}`);
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
