import { resolve } from 'node:path';
import type { EngineConfig } from '../../catalog/model-definition.js';
import type { AdapterRef, EngineContext } from '../engine.js';
import { adapterServedName, FleetEngine, setConfigField } from '../fleet/fleet-engine.js';
import type { ReplicaDriver } from '../fleet/fleet.js';
import { samplesOf, sumOf } from '../fleet/prometheus-text.js';
import type { EngineGauges } from '../fleet/replica.js';
import { AdapterRejectedError, CapacityRefusedError, ReplicaHttpError } from '../fleet/remote-client.js';
import { errorMessage } from './engine-http.js';

type VllmConfig = Extract<EngineConfig, { type: 'vllm' }>;

/** The served LoRA name: one per finetune version, so changed files are a name vLLM has never loaded. */
export function vllmLoraName(adapter: AdapterRef): string {
  return adapterServedName(adapter);
}

const GAUGES = new Set(['vllm:num_requests_running', 'vllm:num_requests_waiting', 'vllm:lora_requests_info']);

/**
 * Generates on one or more vLLM OpenAI-compatible servers (`vllm serve --enable-lora`, with
 * VLLM_ALLOW_RUNTIME_LORA_UPDATING=True). Adapters are written under `adapter_dir`, which every replica sees at the
 * same path (a shared volume). Explicit loading (default): the service loads an adapter onto the replica the router
 * picked with `/v1/load_lora_adapter`, and unloads the least recently used one when the replica is full. Resolver
 * mode: the replicas run vLLM's filesystem LoRA resolver over `adapter_dir` and load an adapter themselves on the
 * first request naming it; the service only writes the files, routes, and unloads to make room.
 */
export class VllmEngine extends FleetEngine {
  protected readonly label = 'vLLM';
  protected readonly tokenizePath = '/tokenize';

  constructor(ctx: EngineContext) {
    const engine = ctx.model.engine;
    if (engine?.type !== 'vllm') throw new Error(`${ctx.model.name} is not configured for a vLLM engine`);
    super(ctx, engine, { loadsAdapters: engine.adapter_loading !== 'resolver' });
  }

  protected modelField(adapter: string | undefined): string {
    return adapter ?? this.config.served_model;
  }

  /**
   * 404 "The model `<name>` does not exist.": vLLM restarted (or another process evicted the adapter). In resolver
   * mode, 400 "...was found but could not be loaded" is the resolver finding the replica full.
   */
  protected adapterMissing(status: number, message: string): boolean {
    return status === 404 || (status === 400 && message.includes('could not be loaded'));
  }

  /** The filesystem resolver only takes an adapter whose base_model_name_or_path is vLLM's own `--model`. */
  protected override async adjustConfig(path: string): Promise<void> {
    // Read at call time: the subclass field is not set yet while the base constructor runs.
    const engine = this.ctx.model.engine as VllmConfig;
    if (engine.adapter_loading !== 'resolver') return;
    const base = engine.resolver_base_model ?? this.ctx.model.base_model ?? engine.served_model;
    await setConfigField(path, 'base_model_name_or_path', base);
  }

  protected driver(): ReplicaDriver {
    const client = this.client;
    const served = this.config.served_model;
    const adapterDir = this.adapterDir;
    return {
      async health(url, signal) {
        const response = await client.get(url, '/health', signal);
        await response.body.dump();
        if (!response.ok) throw new ReplicaHttpError(response.status, '/health', `vLLM answered ${response.status}`);
      },
      async adapters(url, signal) {
        const body = await client.json<{ data?: { id: string; parent?: string | null }[] }>(await client.get(url, '/v1/models', signal), '/v1/models');
        return (body.data ?? []).filter((m) => m.parent === served).map((m) => m.id);
      },
      async gauges(url, signal) {
        const response = await client.get(url, '/metrics', signal);
        if (response.status === 404) return undefined;
        if (!response.ok) throw new ReplicaHttpError(response.status, '/metrics', await errorMessage(response));
        return vllmGauges(await response.body.text());
      },
      async load(url, name, signal) {
        const path = '/v1/load_lora_adapter';
        // Absolute: vLLM would resolve a relative path against its own working directory.
        const response = await client.post(url, path, { lora_name: name, lora_path: resolve(adapterDir, name) }, signal);
        if (response.ok) {
          await response.body.text();
          return;
        }
        const message = await errorMessage(response);
        // Loaded by another process of this service, or before this process restarted.
        if (response.status === 400 && message.includes('has already been loaded')) return;
        if (response.status === 404 && message === 'Not Found') {
          throw new ReplicaHttpError(404, path, 'Not Found (start vLLM with --enable-lora and VLLM_ALLOW_RUNTIME_LORA_UPDATING=True)');
        }
        // vLLM reports an engine-side failure to add the adapter as a 500 with its text; the replica itself is fine.
        if (response.status === 500 && message.includes('max_loras')) throw new CapacityRefusedError(500, path, message);
        throw new (response.status === 500 ? AdapterRejectedError : ReplicaHttpError)(response.status, path, message);
      },
      async unload(url, name, signal) {
        const path = '/v1/unload_lora_adapter';
        const response = await client.post(url, path, { lora_name: name }, signal);
        if (response.ok || response.status === 404) {
          await response.body.text();
          return;
        }
        throw new ReplicaHttpError(response.status, path, await errorMessage(response));
      },
    };
  }
}

/**
 * vLLM's gauges: requests running and waiting (summed over engine cores), and `vllm:lora_requests_info`, one
 * series per label combination ever seen whose value is when it was last set: the newest is the current one.
 */
export function vllmGauges(text: string): EngineGauges {
  const samples = samplesOf(text, GAUGES);
  const lora = samples.filter((s) => s.name === 'vllm:lora_requests_info').sort((a, b) => b.value - a.value)[0];
  const names = (list: string | undefined) => (list ?? '').split(',').map((n) => n.trim()).filter((n) => n !== '');
  const maxLora = Number(lora?.labels.max_lora);
  return {
    running: sumOf(samples, 'vllm:num_requests_running') ?? 0,
    waiting: sumOf(samples, 'vllm:num_requests_waiting') ?? 0,
    ...(lora && {
      activeAdapters: [...names(lora.labels.running_lora_adapters), ...names(lora.labels.waiting_lora_adapters)],
      ...(Number.isSafeInteger(maxLora) && maxLora > 0 && { maxLoras: maxLora }),
    }),
  };
}
