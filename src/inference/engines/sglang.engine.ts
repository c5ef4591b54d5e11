import { resolve } from 'node:path';
import type { EngineContext } from '../engine.js';
import { FleetEngine } from '../fleet/fleet-engine.js';
import type { ReplicaDriver } from '../fleet/fleet.js';
import { samplesOf, sumOf } from '../fleet/prometheus-text.js';
import type { EngineGauges } from '../fleet/replica.js';
import { CapacityRefusedError, ReplicaHttpError } from '../fleet/remote-client.js';
import { errorMessage } from './engine-http.js';

const GAUGES = new Set(['sglang:num_running_reqs', 'sglang:num_queue_reqs']);

interface LoraUpdateOutput {
  success?: boolean;
  error_message?: string;
}

/**
 * Generates on one or more SGLang servers (`python -m sglang.launch_server --enable-lora`), loading adapters with
 * SGLang's dynamic LoRA API (`/load_lora_adapter`, `/unload_lora_adapter`) and selecting one per request with the
 * OpenAI `model` field as `<served model>:<adapter name>`. Adapter files are written under `adapter_dir`, which
 * every replica sees at the same path. Routing, eviction and failover are the fleet's, as for vLLM.
 */
export class SglangEngine extends FleetEngine {
  protected readonly label = 'SGLang';
  protected readonly tokenizePath = '/v1/tokenize';

  constructor(ctx: EngineContext) {
    const engine = ctx.model.engine;
    if (engine?.type !== 'sglang') throw new Error(`${ctx.model.name} is not configured for an SGLang engine`);
    super(ctx, engine, { loadsAdapters: true });
  }

  protected modelField(adapter: string | undefined): string {
    return adapter === undefined ? this.config.served_model : `${this.config.served_model}:${adapter}`;
  }

  /** 400 "The following requested LoRA adapters are not loaded: ...": SGLang restarted, or another process evicted it. */
  protected adapterMissing(status: number, message: string): boolean {
    return status === 400 && message.includes('are not loaded');
  }

  protected driver(): ReplicaDriver {
    const client = this.client;
    const served = this.config.served_model;
    const adapterDir = this.adapterDir;
    /** SGLang answers LoRA updates 200 `{success: true}`, or 400 `{success: false, error_message}`. */
    const update = async (url: string, path: string, body: object, signal: AbortSignal): Promise<LoraUpdateOutput & { status: number }> => {
      const response = await client.post(url, path, body, signal);
      if (response.status !== 200 && response.status !== 400) throw new ReplicaHttpError(response.status, path, await errorMessage(response));
      const text = await response.body.text();
      try {
        return { status: response.status, ...(JSON.parse(text) as LoraUpdateOutput) };
      } catch {
        throw new ReplicaHttpError(response.status, path, text.slice(0, 500));
      }
    };
    return {
      async health(url, signal) {
        const response = await client.get(url, '/health', signal);
        await response.body.dump();
        if (!response.ok) throw new ReplicaHttpError(response.status, '/health', `SGLang answered ${response.status}`);
      },
      async adapters(url, signal) {
        const body = await client.json<{ data?: { id: string; parent?: string | null }[] }>(await client.get(url, '/v1/models', signal), '/v1/models');
        return (body.data ?? []).filter((m) => m.parent === served).map((m) => m.id);
      },
      async gauges(url, signal): Promise<EngineGauges | undefined> {
        // Only served with --enable-metrics.
        const response = await client.get(url, '/metrics', signal);
        if (response.status === 404) return undefined;
        if (!response.ok) throw new ReplicaHttpError(response.status, '/metrics', await errorMessage(response));
        const samples = samplesOf(await response.body.text(), GAUGES);
        return { running: sumOf(samples, 'sglang:num_running_reqs') ?? 0, waiting: sumOf(samples, 'sglang:num_queue_reqs') ?? 0 };
      },
      async load(url, name, signal) {
        const path = '/load_lora_adapter';
        const result = await update(url, path, { lora_name: name, lora_path: resolve(adapterDir, name) }, signal);
        if (result.success === true) return;
        const message = result.error_message ?? 'load failed';
        // Loaded by another process of this service, or before this process restarted.
        if (message.includes('already loaded') || message.includes('already exists')) return;
        if (message.includes('Maximum number of loaded LoRA adapters')) throw new CapacityRefusedError(result.status, path, message);
        throw new ReplicaHttpError(result.status, path, message);
      },
      async unload(url, name, signal) {
        const path = '/unload_lora_adapter';
        const result = await update(url, path, { lora_name: name }, signal);
        if (result.success === true || (result.error_message ?? '').includes('does not exist')) return;
        throw new ReplicaHttpError(result.status, path, result.error_message ?? 'unload failed');
      },
    };
  }
}
