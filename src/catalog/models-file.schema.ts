import { MODEL_FAMILIES } from '../formats/architecture.js';
import { CHAT_TEMPLATE_FOR_FAMILY } from '../formats/chat-templates.js';

/**
 * JSON Schema of one MODELS_FILE entry. Each leaf carries `problem`, the wording of its error message (the
 * validator appends the offending value); objects are closed (`additionalProperties: false`) so a typo fails.
 * Checks a schema cannot state (values that depend on each other) follow in models-file.ts.
 */
type Schema = Record<string, unknown>;

const positiveInteger: Schema = { type: 'integer', minimum: 1, maximum: Number.MAX_SAFE_INTEGER, problem: 'must be a positive integer' };
/** null lifts the limit. */
const positiveIntegerOrNull: Schema = { ...positiveInteger, type: ['integer', 'null'] };
const nonEmptyString: Schema = { type: 'string', pattern: '\\S', problem: 'must be a non-empty string' };
const string: Schema = { type: 'string', problem: 'must be a string' };
const boolean: Schema = { type: 'boolean', problem: 'must be true or false' };
const absolutePath: Schema = { type: 'string', pattern: '^/', problem: 'must be an absolute path' };
const httpUrl: Schema = { type: 'string', pattern: '^https?://', problem: 'must be an http(s) URL' };

const object = (properties: Record<string, Schema>, required: string[] = [], problem = 'must be an object'): Schema => ({
  type: 'object',
  properties,
  required,
  additionalProperties: false,
  problem,
});

const ARCHITECTURE_SIZES = ['hidden_size', 'intermediate_size', 'num_hidden_layers', 'num_attention_heads', 'num_key_value_heads', 'head_dim', 'vocab_size'];
const architecture = object(
  {
    model_type: { enum: [...MODEL_FAMILIES], problem: `must be one of ${MODEL_FAMILIES.join(', ')}` },
    ...Object.fromEntries(ARCHITECTURE_SIZES.map((key) => [key, positiveInteger])),
  },
  ['model_type', ...ARCHITECTURE_SIZES],
);

const limits = object({
  max_lora_rank: positiveInteger,
  max_adapter_bytes: positiveInteger,
  max_finetunes_per_account: positiveInteger,
  max_requests_per_min: positiveIntegerOrNull,
  max_concurrent_requests: positiveIntegerOrNull,
  max_queue_wait_ms: positiveInteger,
  accounts: {
    type: 'object',
    propertyNames: { pattern: '\\S' },
    additionalProperties: positiveInteger,
    problem: 'must be an object of account id -> requests/min',
  },
});

/** Engines on remote replicas (vLLM, SGLang): `base_url` or `replicas`, exactly one (checked in models-file.ts). */
const REMOTE_ENGINE: Record<string, Schema> = {
  base_url: httpUrl,
  replicas: { type: 'array', items: httpUrl, minItems: 1, uniqueItems: true, problem: 'must be a non-empty array of distinct http(s) URLs' },
  served_model: nonEmptyString,
  adapter_dir: absolutePath,
  api_key: nonEmptyString,
  timeout_ms: positiveInteger,
  max_loras: positiveInteger,
  refresh_ms: positiveInteger,
};

/**
 * One branch per engine `type`, chosen by the discriminator: a new engine is one more branch (its `type` const,
 * its fields and which of them are required).
 */
const ENGINES: Schema[] = [
  object(
    { type: { const: 'llama-cpp' }, model_path: absolutePath, context_size: positiveInteger, parallel: positiveInteger, threads: positiveInteger },
    ['type', 'model_path'],
  ),
  object(
    {
      type: { const: 'vllm' },
      ...REMOTE_ENGINE,
      adapter_loading: { enum: ['explicit', 'resolver'], problem: 'must be "explicit" or "resolver"' },
      resolver_base_model: nonEmptyString,
    },
    ['type', 'served_model', 'adapter_dir'],
  ),
  object({ type: { const: 'sglang' }, ...REMOTE_ENGINE }, ['type', 'served_model', 'adapter_dir']),
];
export const ENGINE_TYPES = ENGINES.map((branch) => ((branch.properties as Record<string, { const: string }>).type).const);

const engine: Schema = {
  if: { type: 'null' },
  else: { type: 'object', properties: { type: {} }, required: ['type'], discriminator: { propertyName: 'type' }, oneOf: ENGINES, problem: 'must be an object or null' },
};

const CHAT_TEMPLATES = [...new Set(Object.values(CHAT_TEMPLATE_FOR_FAMILY))];

export const MODELS_FILE_ENTRY_SCHEMA: Schema = {
  ...object({
    name: string,
    description: string,
    task: object({ id: nonEmptyString, name: nonEmptyString, description: string }, ['name']),
    tags: { type: 'array', items: nonEmptyString, problem: 'must be an array of strings' },
    properties: {
      type: 'array',
      items: object({ property_id: nonEmptyString, value: string }, ['property_id', 'value']),
      problem: 'must be an array of {property_id, value}',
    },
    architecture,
    limits,
    engine,
    lora: boolean,
    base_model: { ...nonEmptyString, type: ['string', 'null'] },
    chat_template: { enum: CHAT_TEMPLATES, problem: `must be one of ${CHAT_TEMPLATES.join(', ')}` },
    neuron_costs: {
      if: { type: 'null' },
      else: object(
        Object.fromEntries(['input_tokens', 'output_tokens'].map((key) => [key, { type: 'number', minimum: 0, problem: 'must be a non-negative number' }])),
        ['input_tokens', 'output_tokens'],
      ),
    },
    response_cache: boolean,
    context_length_limit: positiveIntegerOrNull,
    sequence_length_limit: positiveIntegerOrNull,
    schema: object(
      Object.fromEntries(['input', 'output'].map((key) => [key, { type: 'object', problem: 'must be a JSON Schema object' }])),
      ['input', 'output'],
    ),
  }),
};
