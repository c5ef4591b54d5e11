import { describe, expect, it } from '@jest/globals';
import { BUILTIN_MODELS, DEFAULT_LORA_LIMITS, DEFAULT_LORA_SCHEMA, TEXT_GENERATION_TASK } from '../../../src/catalog/builtin-models.js';
import type { ModelDefinition } from '../../../src/catalog/model-definition.js';
import { loadModels, mergeModels, ModelsFileError, parseModelsFile } from '../../../src/catalog/models-file.js';

const SOURCE = '/etc/lora-hub/models.json';
const LLAMA_LORA = '@cf/meta-llama/llama-2-7b-chat-hf-lora';
const INT8 = '@cf/meta/llama-2-7b-chat-int8';

const ARCH = {
  model_type: 'llama',
  hidden_size: 64,
  intermediate_size: 128,
  num_hidden_layers: 2,
  num_attention_heads: 4,
  num_key_value_heads: 2,
  head_dim: 16,
  vocab_size: 262,
};

function load(entries: unknown[]): ModelDefinition[] {
  return mergeModels(BUILTIN_MODELS, parseModelsFile(JSON.stringify(entries), SOURCE));
}

function model(defs: ModelDefinition[], name: string): ModelDefinition {
  const def = defs.find((m) => m.name === name);
  if (!def) throw new Error(`no model ${name}`);
  return def;
}

function errorOf(run: () => unknown): ModelsFileError {
  try {
    run();
  } catch (err) {
    expect(err).toBeInstanceOf(ModelsFileError);
    return err as ModelsFileError;
  }
  throw new Error('expected a ModelsFileError');
}

describe('parseModelsFile rejects bad files with a message naming the field', () => {
  const tiny = { name: '@cf/acme/tiny', architecture: ARCH };
  const cases: [string, unknown, string][] = [
    ['not an array', { name: '@cf/acme/x' }, `MODELS_FILE ${SOURCE}: expected a JSON array of models`],
    ['entry not an object', [tiny, 42], `MODELS_FILE ${SOURCE}: entry 1 must be an object, got 42`],
    ['missing name', [{ architecture: ARCH }], 'entry 0: name must be a model name like "@cf/vendor/model", got undefined'],
    ['bad name', [{ name: 'llama-2' }], 'entry 0: name must be a model name like "@cf/vendor/model", got "llama-2"'],
    ['name with a space', [{ name: '@cf/acme/my model' }], 'entry 0: name must be a model name'],
    ['unknown top-level key', [{ ...tiny, archtecture: ARCH }], 'entry 0 (@cf/acme/tiny): archtecture is not a known field'],
    ['duplicate names', [tiny, { name: '@cf/x/y' }, tiny], 'entry 2 (@cf/acme/tiny): name repeats entry 0'],
    [
      'architecture size as a string',
      [{ name: '@cf/acme/x', architecture: { ...ARCH, hidden_size: '4096' } }],
      `MODELS_FILE ${SOURCE}: entry 0 (@cf/acme/x): architecture.hidden_size must be a positive integer, got "4096"`,
    ],
    ['architecture size zero', [{ ...tiny, architecture: { ...ARCH, head_dim: 0 } }], 'architecture.head_dim must be a positive integer, got 0'],
    ['architecture size fractional', [{ ...tiny, architecture: { ...ARCH, vocab_size: 1.5 } }], 'architecture.vocab_size must be a positive integer, got 1.5'],
    ['architecture field missing', [{ ...tiny, architecture: { ...ARCH, intermediate_size: undefined } }], 'architecture.intermediate_size is required'],
    ['architecture unknown family', [{ ...tiny, architecture: { ...ARCH, model_type: 'gpt2' } }], 'architecture.model_type must be one of llama, mistral, gemma, got "gpt2"'],
    ['architecture unknown key', [{ ...tiny, architecture: { ...ARCH, rope_theta: 10000 } }], 'architecture.rope_theta is not a known field'],
    [
      'kv heads not dividing heads',
      [{ ...tiny, architecture: { ...ARCH, num_key_value_heads: 3 } }],
      'architecture.num_key_value_heads must divide num_attention_heads (4), got 3',
    ],
    ['limits negative', [{ ...tiny, limits: { max_lora_rank: -8 } }], 'limits.max_lora_rank must be a positive integer, got -8'],
    ['limits unknown key', [{ ...tiny, limits: { max_rank: 8 } }], 'limits.max_rank is not a known field'],
    ['limits null where not allowed', [{ ...tiny, limits: { max_adapter_bytes: null } }], 'limits.max_adapter_bytes must be a positive integer, got null'],
    ['limits account not positive', [{ ...tiny, limits: { accounts: { abc: 0 } } }], 'limits.accounts.abc must be a positive integer, got 0'],
    ['engine unknown type', [{ ...tiny, engine: { type: 'ollama' } }], 'engine.type must be "llama-cpp" or "vllm" or "sglang", got "ollama"'],
    ['engine relative model path', [{ ...tiny, engine: { type: 'llama-cpp', model_path: 'models/x.gguf' } }], 'engine.model_path must be an absolute path, got "models/x.gguf"'],
    ['engine missing model path', [{ ...tiny, engine: { type: 'llama-cpp' } }], 'engine.model_path is required'],
    ['engine bad threads', [{ ...tiny, engine: { type: 'llama-cpp', model_path: '/m.gguf', threads: 'all' } }], 'engine.threads must be a positive integer, got "all"'],
    [
      'engine key of the other type',
      [{ ...tiny, engine: { type: 'llama-cpp', model_path: '/m.gguf', base_url: 'http://x' } }],
      'engine.base_url is not a known field',
    ],
    [
      'vllm base_url not http',
      [{ ...tiny, engine: { type: 'vllm', base_url: 'ftp://gpu:8000', served_model: 'm', adapter_dir: '/a' } }],
      'engine.base_url must be an http(s) URL, got "ftp://gpu:8000"',
    ],
    [
      'vllm base_url not a URL',
      [{ ...tiny, engine: { type: 'vllm', base_url: 'gpu:8000/v1 x', served_model: 'm', adapter_dir: '/a' } }],
      'engine.base_url must be an http(s) URL',
    ],
    [
      'vllm empty served_model',
      [{ ...tiny, engine: { type: 'vllm', base_url: 'http://gpu:8000', served_model: '', adapter_dir: '/a' } }],
      'engine.served_model must be a non-empty string, got ""',
    ],
    [
      'vllm relative adapter_dir',
      [{ ...tiny, engine: { type: 'vllm', base_url: 'http://gpu:8000', served_model: 'm', adapter_dir: 'adapters' } }],
      'engine.adapter_dir must be an absolute path, got "adapters"',
    ],
    [
      'vllm with both base_url and replicas',
      [{ ...tiny, engine: { type: 'vllm', base_url: 'http://a:8000', replicas: ['http://b:8000'], served_model: 'm', adapter_dir: '/a' } }],
      'engine needs exactly one of base_url and replicas',
    ],
    [
      'sglang with neither base_url nor replicas',
      [{ ...tiny, engine: { type: 'sglang', served_model: 'm', adapter_dir: '/a' } }],
      'engine needs exactly one of base_url and replicas',
    ],
    [
      'vllm replica repeated',
      [{ ...tiny, engine: { type: 'vllm', replicas: ['http://a:8000', 'http://a:8000/'], served_model: 'm', adapter_dir: '/a' } }],
      'engine.replicas[1] repeats "http://a:8000/"',
    ],
    [
      'vllm unknown adapter_loading',
      [{ ...tiny, engine: { type: 'vllm', base_url: 'http://a:8000', served_model: 'm', adapter_dir: '/a', adapter_loading: 'lazy' } }],
      'engine.adapter_loading must be "explicit" or "resolver", got "lazy"',
    ],
    [
      'sglang max_loras not positive',
      [{ ...tiny, engine: { type: 'sglang', base_url: 'http://a:8000', served_model: 'm', adapter_dir: '/a', max_loras: 0 } }],
      'engine.max_loras must be a positive integer, got 0',
    ],
    ['lora not boolean', [{ ...tiny, lora: 'yes' }], 'lora must be true or false, got "yes"'],
    ['chat_template unknown', [{ ...tiny, chat_template: 'chatml' }], 'chat_template must be one of llama-2, mistral-instruct, gemma, got "chatml"'],
    ['task without name', [{ ...tiny, task: { id: 'x' } }], 'task.name is required'],
    ['tags not strings', [{ ...tiny, tags: ['ok', 7] }], 'tags[1] must be a non-empty string, got 7'],
    ['properties not an array', [{ ...tiny, properties: { beta: 'true' } }], 'properties must be an array of {property_id, value}'],
    ['property value not a string', [{ ...tiny, properties: [{ property_id: 'beta', value: true }] }], 'properties[0].value must be a string, got true'],
    ['property repeated', [{ ...tiny, properties: [{ property_id: 'info', value: 'a' }, { property_id: 'info', value: 'b' }] }], 'properties[1].property_id repeats "info"'],
    ['lora property not boolean', [{ ...tiny, properties: [{ property_id: 'lora', value: 'yes' }] }], 'properties[0].value must be "true" or "false" for lora'],
    [
      'context property not an integer',
      [{ ...tiny, properties: [{ property_id: 'context_length_limit', value: '4k' }] }],
      'properties[0].value must be a positive integer as a string for context_length_limit, got "4k"',
    ],
    [
      'lora field contradicting its property',
      [{ ...tiny, lora: true, properties: [{ property_id: 'lora', value: 'false' }] }],
      'properties[0].value "false" contradicts lora: true',
    ],
    [
      'context field contradicting its property',
      [{ ...tiny, context_length_limit: 2048, properties: [{ property_id: 'context_length_limit', value: '4096' }] }],
      'properties[0].value "4096" contradicts context_length_limit: 2048',
    ],
    ['context limit zero', [{ ...tiny, context_length_limit: 0 }], 'context_length_limit must be a positive integer, got 0'],
    ['neuron cost negative', [{ ...tiny, neuron_costs: { input_tokens: -1, output_tokens: 1 } }], 'neuron_costs.input_tokens must be a non-negative number, got -1'],
    ['response_cache not boolean', [{ ...tiny, response_cache: 'in_memory' }], 'response_cache must be true or false, got "in_memory"'],
    ['schema missing output', [{ ...tiny, schema: { input: {} } }], 'schema.output is required'],
    ['schema given as a string', [{ ...tiny, schema: { input: '{}', output: {} } }], 'schema.input must be a JSON Schema object, got "{}"'],
    ['base_model empty', [{ ...tiny, base_model: '' }], 'base_model must be a non-empty string, got ""'],
    ['description not a string', [{ ...tiny, description: 5 }], 'description must be a string, got 5'],
    ['engine without a type', [{ ...tiny, engine: { model_path: '/m.gguf' } }], 'entry 0 (@cf/acme/tiny): engine.type is required'],
    ['engine not an object', [{ ...tiny, engine: 'llama-cpp' }], 'engine must be an object or null, got "llama-cpp"'],
    ['vllm base_url unparseable after its scheme', [{ ...tiny, engine: { type: 'vllm', base_url: 'http://gpu :8000', served_model: 'm', adapter_dir: '/a' } }], 'engine.base_url must be an http(s) URL, got "http://gpu :8000"'],
    ['limits account id blank', [{ ...tiny, limits: { accounts: { ' ': 5 } } }], 'limits.accounts has an invalid key " "'],
    ['neuron costs not an object', [{ ...tiny, neuron_costs: [1, 2] }], 'neuron_costs must be an object, got [1,2]'],
    ['tag in a nested array index', [{ ...tiny, tags: ['a', 'b', ' '] }], 'tags[2] must be a non-empty string, got " "'],
  ];

  it.each(cases)('%s', (_title, json, message) => {
    const err = errorOf(() => parseModelsFile(JSON.stringify(json), SOURCE));
    expect(err.message).toMatch(new RegExp(`^MODELS_FILE ${SOURCE}: `));
    expect(err.message).toContain(message);
  });

  it('names the JSON parse position with line and column', () => {
    const err = errorOf(() => parseModelsFile('[\n  {"name": "@cf/a/b",}\n]', SOURCE));
    // The "}" at offset 23 is line 2, column 22 (Node 22+ says so itself; on Node 20 the catalog adds it).
    expect(err.message).toMatch(new RegExp(`^MODELS_FILE ${SOURCE}: invalid JSON: .*line 2,? column 22`));
  });

  it('accepts {"models": [...]} and an empty list', () => {
    expect(parseModelsFile(JSON.stringify({ models: [{ name: '@cf/a/b', lora: false, chat_template: 'gemma' }] }), SOURCE)).toHaveLength(1);
    expect(parseModelsFile('[]', SOURCE)).toEqual([]);
  });

  it('accepts @hf names, uppercase authors, and nulls that lift limits', () => {
    const [entry] = parseModelsFile(
      JSON.stringify([{ name: '@hf/TheBloke/x-7b-awq', limits: { max_requests_per_min: null }, engine: null }]),
      SOURCE,
    );
    expect(entry.limits).toEqual({ max_requests_per_min: null });
    expect(entry.engine).toBeNull();
  });
});

describe('mergeModels', () => {
  it('keeps the built-ins unchanged without entries, and returns copies', () => {
    const defs = mergeModels(BUILTIN_MODELS, []);
    expect(defs).toEqual(BUILTIN_MODELS);
    defs[0].limits.max_lora_rank = 1;
    expect(BUILTIN_MODELS[0].limits.max_lora_rank).toBe(32);
    expect(defs[1].limits.max_lora_rank).toBe(32);
  });

  it('overrides a built-in field by field, merging limits and accounts key by key', () => {
    const defs = load([
      {
        name: INT8,
        description: 'int8 on our GPUs',
        limits: { max_concurrent_requests: 8, accounts: { acme: 600 } },
        engine: { type: 'llama-cpp', model_path: '/models/llama-2-7b-chat.Q8_0.gguf', threads: 8 },
      },
    ]);
    const int8 = model(defs, INT8);
    const builtin = BUILTIN_MODELS.find((m) => m.name === INT8)!;
    expect(int8.id).toBe(builtin.id);
    expect(int8.description).toBe('int8 on our GPUs');
    expect(int8.limits).toEqual({
      ...builtin.limits,
      max_concurrent_requests: 8,
      accounts: { ...builtin.limits.accounts, acme: 600 },
    });
    expect(int8.engine).toEqual({ type: 'llama-cpp', model_path: '/models/llama-2-7b-chat.Q8_0.gguf', threads: 8 });
    expect(int8.schema).toEqual(builtin.schema);
    expect(int8.properties).toEqual(builtin.properties);
    expect(defs.map((m) => m.name)).toEqual(BUILTIN_MODELS.map((m) => m.name));
  });

  it('merges properties by property_id and keeps typed context limits in step', () => {
    const defs = load([
      {
        name: LLAMA_LORA,
        properties: [
          { property_id: 'beta', value: 'false' },
          { property_id: 'info', value: 'https://example.com' },
          { property_id: 'context_length_limit', value: '2048' },
        ],
        sequence_length_limit: 1024,
      },
    ]);
    const def = model(defs, LLAMA_LORA);
    expect(def.properties).toEqual([
      { property_id: 'beta', value: 'false' },
      { property_id: 'lora', value: 'true' },
      { property_id: 'context_length_limit', value: '2048' },
      { property_id: 'info', value: 'https://example.com' },
      { property_id: 'sequence_length_limit', value: '1024' },
    ]);
    expect(def.context_length_limit).toBe(2048);
    expect(def.sequence_length_limit).toBe(1024);
  });

  it('removes a context property when its typed field is set to null', () => {
    const def = model(load([{ name: INT8, sequence_length_limit: null }]), INT8);
    expect(def.sequence_length_limit).toBeNull();
    expect(def.properties.some((p) => p.property_id === 'sequence_length_limit')).toBe(false);
  });

  it('replaces the architecture whole and takes the new family template', () => {
    const def = model(load([{ name: LLAMA_LORA, architecture: { ...ARCH, model_type: 'mistral' } }]), LLAMA_LORA);
    expect(def.architecture).toEqual({ ...ARCH, model_type: 'mistral' });
    expect(def.chat_template).toBe('mistral-instruct');
  });

  it('turns a built-in LoRA base off and mirrors it into the lora property', () => {
    const def = model(load([{ name: LLAMA_LORA, lora: false }]), LLAMA_LORA);
    expect(def.lora).toBe(false);
    expect(def.properties).toContainEqual({ property_id: 'lora', value: 'false' });
  });

  it('turns LoRA on for a non-LoRA built-in from the lora property', () => {
    const def = model(load([{ name: INT8, properties: [{ property_id: 'lora', value: 'true' }] }]), INT8);
    expect(def.lora).toBe(true);
  });

  it('adds a new model with defaults: LoRA, v5 uuid, default schema, limits, task and family template', () => {
    const defs = load([{ name: '@cf/acme/tiny-llama', architecture: ARCH, base_model: 'acme/tiny-llama' }]);
    const def = model(defs, '@cf/acme/tiny-llama');
    expect(defs).toHaveLength(BUILTIN_MODELS.length + 1);
    expect(def.id).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-5[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
    expect(model(load([{ name: '@cf/acme/tiny-llama', architecture: ARCH }]), '@cf/acme/tiny-llama').id).toBe(def.id);
    expect(model(load([{ name: '@cf/acme/tiny-llama-2', architecture: ARCH }]), '@cf/acme/tiny-llama-2').id).not.toBe(def.id);
    expect(def).toMatchObject({
      lora: true,
      architecture: ARCH,
      base_model: 'acme/tiny-llama',
      chat_template: 'llama-2',
      task: TEXT_GENERATION_TASK,
      limits: DEFAULT_LORA_LIMITS,
      schema: DEFAULT_LORA_SCHEMA,
      description: '',
      tags: [],
      engine: null,
      neuron_costs: null,
      response_cache: false,
      context_length_limit: null,
    });
    expect(def.properties).toEqual([{ property_id: 'lora', value: 'true' }]);
  });

  it('derives the chat template from the family of a new model', () => {
    const defs = load([
      { name: '@cf/acme/m', architecture: { ...ARCH, model_type: 'mistral' } },
      { name: '@cf/acme/g', architecture: { ...ARCH, model_type: 'gemma' } },
      { name: '@cf/acme/g2', architecture: { ...ARCH, model_type: 'gemma' }, chat_template: 'llama-2' },
    ]);
    expect(model(defs, '@cf/acme/m').chat_template).toBe('mistral-instruct');
    expect(model(defs, '@cf/acme/g').chat_template).toBe('gemma');
    expect(model(defs, '@cf/acme/g2').chat_template).toBe('llama-2');
  });

  it('adds a non-LoRA model without an architecture when it names its template', () => {
    const def = model(
      load([{ name: '@cf/acme/plain', chat_template: 'gemma', task: { name: 'text generation' }, context_length_limit: 8192 }]),
      '@cf/acme/plain',
    );
    expect(def).toMatchObject({ lora: false, architecture: null, chat_template: 'gemma', task: TEXT_GENERATION_TASK });
    expect(def.properties).toEqual([{ property_id: 'context_length_limit', value: '8192' }]);
  });

  it('gives a custom task a stable id', () => {
    const entry = { name: '@cf/acme/sum', chat_template: 'llama-2', task: { name: 'Summarization' } };
    const first = model(load([entry]), '@cf/acme/sum').task;
    expect(first).toEqual({ id: expect.stringMatching(/^[0-9a-f-]{36}$/), name: 'Summarization', description: '' });
    expect(model(load([entry]), '@cf/acme/sum').task.id).toBe(first.id);
  });

  it('requires an architecture for a new LoRA model', () => {
    const err = errorOf(() => load([{ name: '@cf/acme/x', lora: true, chat_template: 'llama-2' }]));
    expect(err.message).toBe(
      `MODELS_FILE ${SOURCE}: entry 0 (@cf/acme/x): architecture is required when lora is true (adapters are checked against it)`,
    );
  });

  it('requires a chat template for a new model without an architecture', () => {
    const err = errorOf(() => load([{ name: '@cf/acme/y', lora: false }]));
    expect(err.message).toContain('entry 0 (@cf/acme/y): chat_template is required');
  });
});

describe('loadModels', () => {
  it('returns the built-ins without a file', () => {
    expect(loadModels(undefined)).toEqual(BUILTIN_MODELS);
  });

  it('reads and merges the file', () => {
    const reads: string[] = [];
    const defs = loadModels('/srv/models.json', (file) => {
      reads.push(file);
      return JSON.stringify({ models: [{ name: '@cf/acme/tiny', architecture: ARCH }] });
    });
    expect(reads).toEqual(['/srv/models.json']);
    expect(defs.map((m) => m.name)).toContain('@cf/acme/tiny');
  });

  it('names the path of a missing file', () => {
    const err = errorOf(() => loadModels('/nonexistent/models.json'));
    expect(err.message).toMatch(/^MODELS_FILE \/nonexistent\/models\.json: cannot read the file: ENOENT/);
  });

  it('names the path of a file with invalid JSON', () => {
    const err = errorOf(() => loadModels('/srv/models.json', () => '[{"name": '));
    expect(err.message).toMatch(/^MODELS_FILE \/srv\/models\.json: invalid JSON: /);
  });
});
