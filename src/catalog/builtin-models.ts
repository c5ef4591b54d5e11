import { GEMMA_2B, GEMMA_7B, LLAMA_2_7B, MISTRAL_7B } from '../formats/architecture.js';
import type { JsonSchema, ModelDefinition, ModelLimits, ModelTask } from './model-definition.js';

/** Definitions share sub-objects (task, schemas, limits): freezing keeps one caller's edit from leaking into all. */
function deepFreeze<T>(value: T): T {
  if (typeof value === 'object' && value !== null && !Object.isFrozen(value)) {
    Object.freeze(value);
    for (const child of Object.values(value)) deepFreeze(child);
  }
  return value;
}

/** Cloudflare's task record, shared by every text-generation card. */
export const TEXT_GENERATION_TASK: ModelTask = deepFreeze({
  id: 'c329a1f9-323d-4e91-b2aa-582dd4188d34',
  name: 'Text Generation',
  description:
    'Family of generative text models, such as large language models (LLM), that can be adapted for a variety of natural language tasks.',
});

/**
 * Cloudflare's published fine-tune limits: rank <= 32, adapters up to "300MB", 100 LoRAs per account.
 * "300MB" is read as decimal megabytes (300 * 1000 * 1000), the stricter reading.
 */
export const DEFAULT_LORA_LIMITS: ModelLimits = deepFreeze({
  max_lora_rank: 32,
  max_adapter_bytes: 300 * 1000 * 1000,
  max_finetunes_per_account: 100,
  max_requests_per_min: null,
  max_concurrent_requests: null,
  max_queue_wait_ms: 10_000,
  accounts: {},
});

// The seed cards' JSON schemas, parsed. They differ only in the prompt/content limits and the sampling fields.
const STREAM = { type: 'boolean', default: false };
const MAX_TOKENS = { type: 'integer', default: 256 };

/** Sampling fields of the fp16 card. */
const SAMPLING: JsonSchema = {
  temperature: { type: 'number', minimum: 0, maximum: 5 },
  top_p: { type: 'number', minimum: 0, maximum: 2 },
  top_k: { type: 'integer', minimum: 1, maximum: 50 },
  seed: { type: 'integer', minimum: 1, maximum: 9999999999 },
  repetition_penalty: { type: 'number', minimum: 0, maximum: 2 },
  frequency_penalty: { type: 'number', minimum: 0, maximum: 2 },
  presence_penalty: { type: 'number', minimum: 0, maximum: 2 },
};

function textGenerationInput(prompt: JsonSchema, contentMaxLength: number, sampling: JsonSchema): JsonSchema {
  return {
    type: 'object',
    oneOf: [
      {
        properties: {
          prompt,
          raw: { type: 'boolean', default: false },
          stream: STREAM,
          max_tokens: MAX_TOKENS,
          ...sampling,
        },
        required: ['prompt'],
      },
      {
        properties: {
          messages: {
            type: 'array',
            items: {
              type: 'object',
              properties: { role: { type: 'string' }, content: { type: 'string', maxLength: contentMaxLength } },
              required: ['role', 'content'],
            },
          },
          stream: STREAM,
          max_tokens: MAX_TOKENS,
          ...sampling,
        },
        required: ['messages'],
      },
    ],
  };
}

const TEXT_GENERATION_OUTPUT: JsonSchema = {
  oneOf: [
    { type: 'object', contentType: 'application/json', properties: { response: { type: 'string' } } },
    { type: 'string', contentType: 'text/event-stream', format: 'binary' },
  ],
};

const LORA_CARD_SCHEMA = {
  input: textGenerationInput({ type: 'string', maxLength: 4096 }, 4096, {}),
  output: TEXT_GENERATION_OUTPUT,
};

const FP16_CARD_SCHEMA = {
  input: textGenerationInput({ type: 'string', minLength: 1, maxLength: 131072 }, 131072, SAMPLING),
  output: TEXT_GENERATION_OUTPUT,
};

/** For models added by MODELS_FILE: the LoRA card's input plus the fp16 card's sampling fields. */
export const DEFAULT_LORA_SCHEMA = deepFreeze({
  input: textGenerationInput({ type: 'string', maxLength: 4096 }, 4096, SAMPLING),
  output: TEXT_GENERATION_OUTPUT,
});

const LORA_PROPERTIES = [
  { property_id: 'beta', value: 'true' },
  { property_id: 'lora', value: 'true' },
];

const LLAMA_INFO = { property_id: 'info', value: 'https://ai.meta.com/llama/' };
const LLAMA_TERMS = { property_id: 'terms', value: 'https://ai.meta.com/resources/models-and-libraries/llama-downloads/' };

// The int8 card's constellation_config, verbatim; its values are transcribed into the typed fields below.
const INT8_CONSTELLATION_CONFIG = `infer_response_cache: in_memory

max_requests_per_min:
  default: 5
  accounts:
    32118455: 60 # ai.cloudflare.com staging
    50147400: 60 # ai.cloudflare.com
    48546443: 1000 # workers ai
    56599770: 1000 # talkmap

neurons:
  metrics:
    - name: input_tokens
      neuron_cost: 0.1836
    - name: output_tokens
      neuron_cost: 0.1836
max_concurrent_requests: 4`;

/**
 * Context lengths not stated on a card come from the base model's config.json `max_position_embeddings`
 * (Llama-2 4096, Mistral-7B-v0.2 32768, Gemma 8192). Sequence limits are only known for int8 (its card).
 */
const contextLength = (tokens: number) => ({ property_id: 'context_length_limit', value: String(tokens) });

const BUILTINS: ModelDefinition[] = [
  {
    id: '7ed8d8e8-6040-4680-843a-aef402d6b013',
    name: '@cf/meta-llama/llama-2-7b-chat-hf-lora',
    description:
      'This is a Llama2 base model that Cloudflare dedicated for inference with LoRA adapters. Llama 2 is a collection of pretrained and fine-tuned generative text models ranging in scale from 7 billion to 70 billion parameters. This is the repository for the 7B fine-tuned model, optimized for dialogue use cases and converted for the Hugging Face Transformers format.',
    task: TEXT_GENERATION_TASK,
    tags: [],
    properties: [...LORA_PROPERTIES, contextLength(4096)],
    schema: LORA_CARD_SCHEMA,
    lora: true,
    architecture: LLAMA_2_7B,
    base_model: 'meta-llama/Llama-2-7b-chat-hf',
    chat_template: 'llama-2',
    limits: DEFAULT_LORA_LIMITS,
    neuron_costs: null,
    response_cache: false,
    context_length_limit: 4096,
    sequence_length_limit: null,
    engine: null,
  },
  {
    // Cloudflare's own id and description for this card (cloudflare-docs workers-ai-models).
    id: 'c58c317b-0c15-4bda-abb6-93e275f282d9',
    name: '@cf/mistral/mistral-7b-instruct-v0.2-lora',
    description:
      'The Mistral-7B-Instruct-v0.2 Large Language Model (LLM) is an instruct fine-tuned version of the Mistral-7B-v0.2.',
    task: TEXT_GENERATION_TASK,
    tags: [],
    properties: [...LORA_PROPERTIES, contextLength(32768)],
    schema: LORA_CARD_SCHEMA,
    lora: true,
    architecture: MISTRAL_7B,
    base_model: 'mistralai/Mistral-7B-Instruct-v0.2',
    chat_template: 'mistral-instruct',
    limits: DEFAULT_LORA_LIMITS,
    neuron_costs: null,
    response_cache: false,
    context_length_limit: 32768,
    sequence_length_limit: null,
    engine: null,
  },
  {
    id: '337170b7-bd2f-4631-9a57-688b579cf6d3',
    name: '@cf/google/gemma-7b-it-lora',
    description:
      'This is a Gemma-7B base model that Cloudflare dedicates for inference with LoRA adapters. Gemma is a family of lightweight, state-of-the-art open models from Google, built from the same research and technology used to create the Gemini models.',
    task: TEXT_GENERATION_TASK,
    tags: [],
    properties: [...LORA_PROPERTIES, contextLength(8192)],
    schema: LORA_CARD_SCHEMA,
    lora: true,
    architecture: GEMMA_7B,
    base_model: 'google/gemma-7b-it',
    chat_template: 'gemma',
    limits: DEFAULT_LORA_LIMITS,
    neuron_costs: null,
    response_cache: false,
    context_length_limit: 8192,
    sequence_length_limit: null,
    engine: null,
  },
  {
    // Cloudflare's own id and description for this card (cloudflare-docs workers-ai-models).
    id: 'e8e8abe4-a372-4c13-815f-4688ba655c8e',
    name: '@cf/google/gemma-2b-it-lora',
    description:
      'This is a Gemma-2B base model that Cloudflare dedicates for inference with LoRA adapters. Gemma is a family of lightweight, state-of-the-art open models from Google, built from the same research and technology used to create the Gemini models.',
    task: TEXT_GENERATION_TASK,
    tags: [],
    properties: [...LORA_PROPERTIES, contextLength(8192)],
    schema: LORA_CARD_SCHEMA,
    lora: true,
    architecture: GEMMA_2B,
    base_model: 'google/gemma-2b-it',
    chat_template: 'gemma',
    limits: DEFAULT_LORA_LIMITS,
    neuron_costs: null,
    response_cache: false,
    context_length_limit: 8192,
    sequence_length_limit: null,
    engine: null,
  },
  {
    id: 'ca54bcd6-0d98-4739-9b3b-5c8b4402193d',
    name: '@cf/meta/llama-2-7b-chat-fp16',
    description: 'Full precision (fp16) generative text model with 7 billion parameters from Meta',
    task: TEXT_GENERATION_TASK,
    tags: [],
    properties: [{ property_id: 'beta', value: 'false' }, LLAMA_INFO, LLAMA_TERMS, contextLength(4096)],
    schema: FP16_CARD_SCHEMA,
    lora: false,
    architecture: LLAMA_2_7B,
    base_model: 'meta-llama/Llama-2-7b-chat-hf',
    chat_template: 'llama-2',
    limits: DEFAULT_LORA_LIMITS,
    neuron_costs: null,
    response_cache: false,
    context_length_limit: 4096,
    sequence_length_limit: null,
    engine: null,
  },
  {
    id: '9c95c39d-45b3-4163-9631-22f0c0dc3b14',
    name: '@cf/meta/llama-2-7b-chat-int8',
    description: 'Quantized (int8) generative text model with 7 billion parameters from Meta',
    task: TEXT_GENERATION_TASK,
    tags: ['meta', 'text-generation'],
    properties: [
      LLAMA_TERMS,
      LLAMA_INFO,
      { property_id: 'context_length_limit', value: '2048' },
      { property_id: 'sequence_length_limit', value: '1800' },
      { property_id: 'constellation_config', value: INT8_CONSTELLATION_CONFIG },
    ],
    schema: LORA_CARD_SCHEMA,
    lora: false,
    architecture: LLAMA_2_7B,
    base_model: 'meta-llama/Llama-2-7b-chat-hf',
    chat_template: 'llama-2',
    limits: {
      ...DEFAULT_LORA_LIMITS,
      max_requests_per_min: 5,
      max_concurrent_requests: 4,
      accounts: { '32118455': 60, '50147400': 60, '48546443': 1000, '56599770': 1000 },
    },
    neuron_costs: { input_tokens: 0.1836, output_tokens: 0.1836 },
    response_cache: true,
    context_length_limit: 2048,
    sequence_length_limit: 1800,
    engine: null,
  },
];

export const BUILTIN_MODELS: readonly ModelDefinition[] = deepFreeze(BUILTINS);
