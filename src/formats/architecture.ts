/** Transformer shape of a base model, named as in Hugging Face `config.json`. */
export type ModelFamily = 'llama' | 'mistral' | 'gemma';

export const MODEL_FAMILIES: readonly ModelFamily[] = ['llama', 'mistral', 'gemma'];

export interface ModelArchitecture {
  model_type: ModelFamily;
  hidden_size: number;
  intermediate_size: number;
  num_hidden_layers: number;
  num_attention_heads: number;
  num_key_value_heads: number;
  head_dim: number;
  vocab_size: number;
}

/** Linear modules of a decoder layer that a LoRA adapter may target, in PEFT's naming. */
export const LORA_MODULES = ['q_proj', 'k_proj', 'v_proj', 'o_proj', 'gate_proj', 'up_proj', 'down_proj'] as const;
export type LoraModule = (typeof LORA_MODULES)[number];

/** The sub-module path PEFT puts each target under (`self_attn.q_proj`, `mlp.up_proj`). */
export const MODULE_PARENT: Record<LoraModule, 'self_attn' | 'mlp'> = {
  q_proj: 'self_attn',
  k_proj: 'self_attn',
  v_proj: 'self_attn',
  o_proj: 'self_attn',
  gate_proj: 'mlp',
  up_proj: 'mlp',
  down_proj: 'mlp',
};

/** in/out features of a module; q_proj is not hidden->hidden in general (gemma-7b is 3072 -> 4096). */
export function moduleFeatures(arch: ModelArchitecture, module: LoraModule): { in: number; out: number } {
  const q = arch.num_attention_heads * arch.head_dim;
  const kv = arch.num_key_value_heads * arch.head_dim;
  switch (module) {
    case 'q_proj':
      return { in: arch.hidden_size, out: q };
    case 'k_proj':
    case 'v_proj':
      return { in: arch.hidden_size, out: kv };
    case 'o_proj':
      return { in: q, out: arch.hidden_size };
    case 'gate_proj':
    case 'up_proj':
      return { in: arch.hidden_size, out: arch.intermediate_size };
    case 'down_proj':
      return { in: arch.intermediate_size, out: arch.hidden_size };
  }
}

// The LoRA bases' shapes, from each model's config.json.
export const LLAMA_2_7B: ModelArchitecture = {
  model_type: 'llama',
  hidden_size: 4096,
  intermediate_size: 11008,
  num_hidden_layers: 32,
  num_attention_heads: 32,
  num_key_value_heads: 32,
  head_dim: 128,
  vocab_size: 32000,
};

export const MISTRAL_7B: ModelArchitecture = {
  model_type: 'mistral',
  hidden_size: 4096,
  intermediate_size: 14336,
  num_hidden_layers: 32,
  num_attention_heads: 32,
  num_key_value_heads: 8,
  head_dim: 128,
  vocab_size: 32000,
};

export const GEMMA_7B: ModelArchitecture = {
  model_type: 'gemma',
  hidden_size: 3072,
  intermediate_size: 24576,
  num_hidden_layers: 28,
  num_attention_heads: 16,
  num_key_value_heads: 16,
  head_dim: 256,
  vocab_size: 256000,
};

export const GEMMA_2B: ModelArchitecture = {
  model_type: 'gemma',
  hidden_size: 2048,
  intermediate_size: 16384,
  num_hidden_layers: 18,
  num_attention_heads: 8,
  num_key_value_heads: 1,
  head_dim: 256,
  vocab_size: 256000,
};
