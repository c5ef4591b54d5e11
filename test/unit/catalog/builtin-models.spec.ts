import { describe, expect, it } from '@jest/globals';
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { BUILTIN_MODELS, DEFAULT_LORA_SCHEMA } from '../../../src/catalog/builtin-models.js';
import type { ModelDefinition } from '../../../src/catalog/model-definition.js';
import { moduleFeatures } from '../../../src/formats/architecture.js';

const SEEDS_DIR = path.resolve(process.cwd(), '../shared/seeds');
const SEED_CARDS = [
  'model-card-llama-2-7b-chat-hf-lora.yaml',
  'model-card-gemma-7b-it-lora.yaml',
  'model-card-llama-2-7b-chat-fp16.yaml',
  'model-card-llama-2-7b-chat-int8.yaml',
];

/**
 * Reads the few fields the catalog copies from a seed card. The cards' scalars are YAML double-quoted strings,
 * whose escapes here (\n, \") are also JSON's, so JSON.parse reads them without a YAML library.
 */
function readSeed(file: string) {
  const text = readFileSync(path.join(SEEDS_DIR, file), 'utf8');
  const scalar = (key: string) => {
    const match = new RegExp(`^ +${key}: (".*")$`, 'm').exec(text);
    if (!match) throw new Error(`${file}: no ${key}`);
    return JSON.parse(match[1]) as string;
  };
  const properties = [...text.matchAll(/- property_id: (".*")\n +value: (".*")/g)].map((m) => ({
    property_id: JSON.parse(m[1]) as string,
    value: JSON.parse(m[2]) as string,
  }));
  const tagsBlock = /^ {2}tags:(.*)\n((?: {4}- .*\n)*)/m.exec(text)!;
  const tags = tagsBlock[1].trim() === '[]' ? [] : [...tagsBlock[2].matchAll(/- (".*")/g)].map((m) => JSON.parse(m[1]));
  return {
    id: scalar('id'),
    name: scalar('name'),
    description: scalar('description'),
    task: {
      id: JSON.parse(/task:\n +id: (".*")/.exec(text)![1]),
      name: JSON.parse(/task:\n.*\n +name: (".*")/.exec(text)![1]),
      description: JSON.parse(/task:\n.*\n.*\n +description: (".*")/.exec(text)![1]),
    },
    tags,
    properties,
    input: JSON.parse(scalar('input')),
    output: JSON.parse(scalar('output')),
  };
}

function builtin(name: string): ModelDefinition {
  const def = BUILTIN_MODELS.find((m) => m.name === name);
  if (!def) throw new Error(`no built-in ${name}`);
  return def;
}

const seedsPresent = existsSync(SEEDS_DIR);
const describeSeeds = seedsPresent ? describe : describe.skip;

describeSeeds(`built-ins match the seed cards (skipped when ${SEEDS_DIR} is absent)`, () => {
  it.each(SEED_CARDS)('%s', (file) => {
    const seed = readSeed(file);
    const def = builtin(seed.name);
    expect(def.id).toBe(seed.id);
    expect(def.description).toBe(seed.description.trim());
    expect(def.tags).toEqual(seed.tags);
    expect(def.task).toEqual(seed.task);
    expect(def.schema.input).toEqual(seed.input);
    expect(def.schema.output).toEqual(seed.output);
    // Seed properties verbatim and in order; the catalog may only append context limits after them.
    expect(def.properties.slice(0, seed.properties.length)).toEqual(seed.properties);
    for (const extra of def.properties.slice(seed.properties.length)) {
      expect(['context_length_limit', 'sequence_length_limit']).toContain(extra.property_id);
    }
  });
});

describe('built-in models', () => {
  it('lists the six models with distinct uuids', () => {
    expect(BUILTIN_MODELS.map((m) => m.name).sort()).toEqual([
      '@cf/google/gemma-2b-it-lora',
      '@cf/google/gemma-7b-it-lora',
      '@cf/meta-llama/llama-2-7b-chat-hf-lora',
      '@cf/meta/llama-2-7b-chat-fp16',
      '@cf/meta/llama-2-7b-chat-int8',
      '@cf/mistral/mistral-7b-instruct-v0.2-lora',
    ]);
    const ids = BUILTIN_MODELS.map((m) => m.id);
    expect(new Set(ids).size).toBe(ids.length);
    for (const id of ids) expect(id).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/);
  });

  it('gives every LoRA base an architecture, base model, template and the LoRA limits', () => {
    const expected = {
      '@cf/meta-llama/llama-2-7b-chat-hf-lora': ['llama', 'meta-llama/Llama-2-7b-chat-hf', 'llama-2'],
      '@cf/mistral/mistral-7b-instruct-v0.2-lora': ['mistral', 'mistralai/Mistral-7B-Instruct-v0.2', 'mistral-instruct'],
      '@cf/google/gemma-7b-it-lora': ['gemma', 'google/gemma-7b-it', 'gemma'],
      '@cf/google/gemma-2b-it-lora': ['gemma', 'google/gemma-2b-it', 'gemma'],
    };
    for (const [name, [family, base, template]] of Object.entries(expected)) {
      const def = builtin(name);
      expect(def.lora).toBe(true);
      expect(def.architecture?.model_type).toBe(family);
      expect(def.base_model).toBe(base);
      expect(def.chat_template).toBe(template);
      expect(def.limits).toMatchObject({ max_lora_rank: 32, max_adapter_bytes: 300_000_000, max_finetunes_per_account: 100 });
      expect(def.properties).toEqual(
        expect.arrayContaining([
          { property_id: 'beta', value: 'true' },
          { property_id: 'lora', value: 'true' },
        ]),
      );
      expect(def.engine).toBeNull();
    }
  });

  it('uses the shapes table (gemma-7b q_proj is 3072 -> 4096, gemma-2b has one kv head)', () => {
    expect(moduleFeatures(builtin('@cf/google/gemma-7b-it-lora').architecture!, 'q_proj')).toEqual({ in: 3072, out: 4096 });
    expect(moduleFeatures(builtin('@cf/google/gemma-2b-it-lora').architecture!, 'k_proj')).toEqual({ in: 2048, out: 256 });
    expect(moduleFeatures(builtin('@cf/mistral/mistral-7b-instruct-v0.2-lora').architecture!, 'v_proj')).toEqual({
      in: 4096,
      out: 1024,
    });
    expect(builtin('@cf/meta-llama/llama-2-7b-chat-hf-lora').architecture).toEqual({
      model_type: 'llama',
      hidden_size: 4096,
      intermediate_size: 11008,
      num_hidden_layers: 32,
      num_attention_heads: 32,
      num_key_value_heads: 32,
      head_dim: 128,
      vocab_size: 32000,
    });
  });

  it('gives the added LoRA bases the llama LoRA card schema', () => {
    const llama = builtin('@cf/meta-llama/llama-2-7b-chat-hf-lora').schema;
    expect(builtin('@cf/mistral/mistral-7b-instruct-v0.2-lora').schema).toEqual(llama);
    expect(builtin('@cf/google/gemma-2b-it-lora').schema).toEqual(llama);
  });

  it('marks the fp16 and int8 models as llama-2-7b without LoRA', () => {
    for (const name of ['@cf/meta/llama-2-7b-chat-fp16', '@cf/meta/llama-2-7b-chat-int8']) {
      const def = builtin(name);
      expect(def.lora).toBe(false);
      expect(def.architecture).toEqual(builtin('@cf/meta-llama/llama-2-7b-chat-hf-lora').architecture);
      expect(def.properties.some((p) => p.property_id === 'lora')).toBe(false);
      expect(def.limits.max_lora_rank).toBe(32);
    }
  });

  it('transcribes the int8 constellation_config into typed limits, costs and cache', () => {
    const def = builtin('@cf/meta/llama-2-7b-chat-int8');
    const config = def.properties.find((p) => p.property_id === 'constellation_config')!.value;
    expect(config).toMatch(/^infer_response_cache: in_memory$/m);
    expect(def.response_cache).toBe(true);
    expect(config).toMatch(/^ {2}default: 5$/m);
    expect(def.limits.max_requests_per_min).toBe(5);
    expect(config).toMatch(/^max_concurrent_requests: 4$/m);
    expect(def.limits.max_concurrent_requests).toBe(4);
    const accounts = Object.fromEntries([...config.matchAll(/^ {4}(\d+): (\d+) #/gm)].map((m) => [m[1], Number(m[2])]));
    expect(Object.keys(accounts)).toHaveLength(4);
    expect(def.limits.accounts).toEqual(accounts);
    const costs = Object.fromEntries(
      [...config.matchAll(/- name: (\w+)\n +neuron_cost: ([\d.]+)/g)].map((m) => [m[1], Number(m[2])]),
    );
    expect(def.neuron_costs).toEqual(costs);
    expect(def.neuron_costs).toEqual({ input_tokens: 0.1836, output_tokens: 0.1836 });
  });

  it('mirrors context and sequence limits between typed fields and properties', () => {
    for (const def of BUILTIN_MODELS) {
      for (const key of ['context_length_limit', 'sequence_length_limit'] as const) {
        const property = def.properties.find((p) => p.property_id === key)?.value;
        expect(property ?? null).toBe(def[key] === null ? null : String(def[key]));
      }
    }
    expect(builtin('@cf/meta/llama-2-7b-chat-int8')).toMatchObject({ context_length_limit: 2048, sequence_length_limit: 1800 });
    expect(builtin('@cf/meta-llama/llama-2-7b-chat-hf-lora').context_length_limit).toBe(4096);
  });

  it('is frozen, so no caller can edit the shared definitions', () => {
    const def = builtin('@cf/google/gemma-7b-it-lora');
    expect(Object.isFrozen(def.limits)).toBe(true);
    expect(() => {
      (def.limits as { max_lora_rank: number }).max_lora_rank = 64;
    }).toThrow(TypeError);
  });

  it('defines the default schema for added models as the LoRA input plus the fp16 sampling fields', () => {
    const lora = builtin('@cf/meta-llama/llama-2-7b-chat-hf-lora').schema.input as { oneOf: { properties: object }[] };
    const fp16 = builtin('@cf/meta/llama-2-7b-chat-fp16').schema.input as { oneOf: { properties: Record<string, unknown> }[] };
    const added = DEFAULT_LORA_SCHEMA.input as { oneOf: { properties: Record<string, unknown> }[] };
    for (const branch of [0, 1]) {
      expect(added.oneOf[branch].properties).toMatchObject(lora.oneOf[branch].properties);
      for (const field of ['temperature', 'top_p', 'top_k', 'seed', 'repetition_penalty', 'frequency_penalty', 'presence_penalty']) {
        expect(added.oneOf[branch].properties[field]).toEqual(fp16.oneOf[branch].properties[field]);
      }
    }
  });
});
