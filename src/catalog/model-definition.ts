import type { ModelArchitecture } from '../formats/architecture.js';
import type { ChatTemplateName } from '../formats/chat-templates.js';

/** A JSON Schema document, kept as a parsed object (the seed cards ship them as strings). */
export type JsonSchema = { [key: string]: unknown };

export interface ModelTask {
  id: string;
  name: string;
  description: string;
}

/** Cloudflare's card properties: every value is a string, even booleans and numbers. */
export interface ModelProperty {
  property_id: string;
  value: string;
}

export interface ModelLimits {
  max_lora_rank: number;
  max_adapter_bytes: number;
  max_finetunes_per_account: number;
  /** null: no rate limit. */
  max_requests_per_min: number | null;
  /** Generations at once per replica; null: the service's default (4). */
  max_concurrent_requests: number | null;
  /** How long a request may queue for a free slot before it is answered 429/3040 (atCapacity). */
  max_queue_wait_ms: number;
  /** Per-account requests/min overrides, keyed by account id. */
  accounts: Record<string, number>;
}

/** An engine served by remote replicas that load LoRA adapters at runtime (vLLM, SGLang). */
export interface RemoteEngineConfig {
  /** The single-replica form; exactly one of `base_url` and `replicas` is given. */
  base_url?: string;
  /** Several replicas of the same base model, each with its own adapter slots. */
  replicas?: string[];
  served_model: string;
  /** A folder every replica also sees at the same path: adapters are written here for them to read. */
  adapter_dir: string;
  api_key?: string;
  timeout_ms?: number;
  /** Adapters one replica holds at most, as it was started (vLLM `--max-loras`, SGLang `--max-loaded-loras`). */
  max_loras?: number;
  /** How often each replica's own state (`/v1/models`, `/metrics`) is read again, and a down replica probed. */
  refresh_ms?: number;
}

/** The replicas of a remote engine entry: its `replicas`, or its single `base_url`, without trailing slashes. */
export function engineReplicas(config: RemoteEngineConfig): string[] {
  return (config.replicas ?? [config.base_url!]).map((url) => url.replace(/\/+$/, ''));
}

export type EngineConfig =
  | { type: 'llama-cpp'; model_path: string; context_size?: number; parallel?: number; threads?: number }
  | (RemoteEngineConfig & {
      type: 'vllm';
      /** `explicit` (default): the service loads adapters; `resolver`: vLLM's filesystem resolver loads them on first use. */
      adapter_loading?: 'explicit' | 'resolver';
      /** vLLM's `--model`, which its filesystem resolver compares with `base_model_name_or_path`. */
      resolver_base_model?: string;
    })
  | (RemoteEngineConfig & { type: 'sglang' });

export interface NeuronCosts {
  input_tokens: number;
  output_tokens: number;
}

export interface ModelDefinition {
  /** uuid */
  id: string;
  /** `@cf/<author>/<model>` */
  name: string;
  description: string;
  task: ModelTask;
  tags: string[];
  properties: ModelProperty[];
  schema: { input: JsonSchema; output: JsonSchema };
  lora: boolean;
  /** Required when `lora` is true: adapters are checked against these shapes. */
  architecture: ModelArchitecture | null;
  /** Hugging Face repo of the base weights, e.g. `meta-llama/Llama-2-7b-chat-hf`. */
  base_model: string | null;
  chat_template: ChatTemplateName;
  limits: ModelLimits;
  neuron_costs: NeuronCosts | null;
  response_cache: boolean;
  /** Mirrors the `context_length_limit` property. */
  context_length_limit: number | null;
  /** Mirrors the `sequence_length_limit` property. */
  sequence_length_limit: number | null;
  /** null until the operator configures one in MODELS_FILE. */
  engine: EngineConfig | null;
}
