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

export type EngineConfig =
  | { type: 'llama-cpp'; model_path: string; context_size?: number; parallel?: number; threads?: number }
  | { type: 'vllm'; base_url: string; served_model: string; adapter_dir: string; api_key?: string; timeout_ms?: number };

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
