import { describe, expect, it } from '@jest/globals';
import { BUILTIN_MODELS } from '../../../src/catalog/builtin-models.js';
import { toModelCard } from '../../../src/catalog/dto.js';
import { DEFAULT_MODELS_PER_PAGE, searchModels } from '../../../src/catalog/model-card.js';
import type { ModelDefinition } from '../../../src/catalog/model-definition.js';
import { mergeModels, parseModelsFile } from '../../../src/catalog/models-file.js';

const names = (defs: ModelDefinition[]) => defs.map((d) => d.name);

// The built-ins plus two operator models: one with a custom task, one with an engine and a secret.
const CATALOG = mergeModels(
  BUILTIN_MODELS,
  parseModelsFile(
    JSON.stringify([
      { name: '@cf/acme/summarizer', chat_template: 'llama-2', task: { name: 'Summarization' }, description: 'Short digests' },
      {
        name: '@hf/acme/tiny-lora',
        architecture: {
          model_type: 'llama',
          hidden_size: 64,
          intermediate_size: 128,
          num_hidden_layers: 2,
          num_attention_heads: 4,
          num_key_value_heads: 4,
          head_dim: 16,
          vocab_size: 262,
        },
        engine: { type: 'vllm', base_url: 'http://gpu:8000', served_model: 'tiny', adapter_dir: '/adapters', api_key: 'secret' },
      },
    ]),
    '/etc/models.json',
  ),
);

describe('toModelCard', () => {
  it('has exactly the seed card shape', () => {
    const def = CATALOG.find((d) => d.name === '@cf/meta-llama/llama-2-7b-chat-hf-lora')!;
    expect(toModelCard(def)).toEqual({
      id: '7ed8d8e8-6040-4680-843a-aef402d6b013',
      source: 1,
      name: '@cf/meta-llama/llama-2-7b-chat-hf-lora',
      description: def.description,
      task: {
        id: 'c329a1f9-323d-4e91-b2aa-582dd4188d34',
        name: 'Text Generation',
        description: def.task.description,
      },
      tags: [],
      properties: [
        { property_id: 'beta', value: 'true' },
        { property_id: 'lora', value: 'true' },
        { property_id: 'context_length_limit', value: '4096' },
      ],
    });
  });

  it('leaks no internals such as engine settings', () => {
    const card = toModelCard(CATALOG.find((d) => d.name === '@hf/acme/tiny-lora')!);
    expect(Object.keys(card).sort()).toEqual(['description', 'id', 'name', 'properties', 'source', 'tags', 'task']);
    expect(JSON.stringify(card)).not.toMatch(/secret|gpu:8000|adapters|hidden_size/);
  });

  it('copies, so a caller editing a card cannot edit the catalog', () => {
    const def = CATALOG[0];
    const card = toModelCard(def);
    card.properties.push({ property_id: 'x', value: 'y' });
    card.task.name = 'changed';
    expect(def.properties.some((p) => p.property_id === 'x')).toBe(false);
    expect(def.task.name).toBe('Text Generation');
  });
});

describe('searchModels', () => {
  it('returns everything in catalog order without filters', () => {
    expect(names(searchModels(CATALOG, {}))).toEqual(names(CATALOG));
  });

  it('filters by task name, case-insensitively', () => {
    expect(names(searchModels(CATALOG, { task: 'summarization' }))).toEqual(['@cf/acme/summarizer']);
    expect(searchModels(CATALOG, { task: 'Text Generation' })).toHaveLength(CATALOG.length - 1);
    expect(searchModels(CATALOG, { task: 'Text' })).toEqual([]);
  });

  it('searches name and description substrings, case-insensitively', () => {
    expect(names(searchModels(CATALOG, { search: 'GEMMA' }))).toEqual(['@cf/google/gemma-7b-it-lora', '@cf/google/gemma-2b-it-lora']);
    expect(names(searchModels(CATALOG, { search: 'quantized' }))).toEqual(['@cf/meta/llama-2-7b-chat-int8']);
    expect(names(searchModels(CATALOG, { search: 'digests' }))).toEqual(['@cf/acme/summarizer']);
  });

  it('filters on LoRA support', () => {
    expect(names(searchModels(CATALOG, { lora: true }))).toEqual([
      '@cf/meta-llama/llama-2-7b-chat-hf-lora',
      '@cf/mistral/mistral-7b-instruct-v0.2-lora',
      '@cf/google/gemma-7b-it-lora',
      '@cf/google/gemma-2b-it-lora',
      '@hf/acme/tiny-lora',
    ]);
    expect(names(searchModels(CATALOG, { lora: false }))).toEqual([
      '@cf/meta/llama-2-7b-chat-fp16',
      '@cf/meta/llama-2-7b-chat-int8',
      '@cf/acme/summarizer',
    ]);
  });

  it('filters by author, the vendor segment of the name', () => {
    expect(names(searchModels(CATALOG, { author: 'meta' }))).toEqual(['@cf/meta/llama-2-7b-chat-fp16', '@cf/meta/llama-2-7b-chat-int8']);
    expect(names(searchModels(CATALOG, { author: 'ACME' }))).toEqual(['@cf/acme/summarizer', '@hf/acme/tiny-lora']);
    expect(searchModels(CATALOG, { author: 'meta-' })).toEqual([]);
  });

  it('hides beta models when asked', () => {
    expect(names(searchModels(CATALOG, { hide_experimental: true }))).toEqual([
      '@cf/meta/llama-2-7b-chat-fp16',
      '@cf/meta/llama-2-7b-chat-int8',
      '@cf/acme/summarizer',
      '@hf/acme/tiny-lora',
    ]);
    expect(searchModels(CATALOG, { hide_experimental: false })).toHaveLength(CATALOG.length);
  });

  it('filters by source: every model here is source 1', () => {
    expect(searchModels(CATALOG, { source: 1 })).toHaveLength(CATALOG.length);
    expect(searchModels(CATALOG, { source: 2 })).toEqual([]);
  });

  it('combines filters', () => {
    expect(names(searchModels(CATALOG, { lora: true, author: 'google', search: '2b' }))).toEqual(['@cf/google/gemma-2b-it-lora']);
  });

  it('paginates 1-based, with empty pages past the end', () => {
    expect(names(searchModels(CATALOG, { per_page: 3 }))).toEqual(names(CATALOG.slice(0, 3)));
    expect(names(searchModels(CATALOG, { page: 2, per_page: 3 }))).toEqual(names(CATALOG.slice(3, 6)));
    expect(names(searchModels(CATALOG, { page: 3, per_page: 3 }))).toEqual(names(CATALOG.slice(6)));
    expect(searchModels(CATALOG, { page: 4, per_page: 3 })).toEqual([]);
    expect(searchModels(CATALOG, { page: 2 })).toEqual([]);
  });

  it('defaults to 100 per page', () => {
    const many = Array.from({ length: 250 }, (_, i) => ({ ...CATALOG[0], name: `@cf/acme/m${i}` }));
    expect(DEFAULT_MODELS_PER_PAGE).toBe(100);
    expect(searchModels(many, {})).toHaveLength(100);
    expect(names(searchModels(many, { page: 3 }))).toEqual(names(many.slice(200)));
  });
});
