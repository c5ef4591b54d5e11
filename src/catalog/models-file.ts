import { createHash } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { MODEL_FAMILIES, type ModelArchitecture, type ModelFamily } from '../formats/architecture.js';
import { CHAT_TEMPLATE_FOR_FAMILY, type ChatTemplateName } from '../formats/chat-templates.js';
import { BUILTIN_MODELS, DEFAULT_LORA_LIMITS, DEFAULT_LORA_SCHEMA, TEXT_GENERATION_TASK } from './builtin-models.js';
import type {
  EngineConfig,
  JsonSchema,
  ModelDefinition,
  ModelLimits,
  ModelProperty,
  ModelTask,
  NeuronCosts,
} from './model-definition.js';

/**
 * MODELS_FILE: a JSON array of model entries (or `{"models": [...]}`) that overrides built-in models by name
 * and adds new ones. It is read once at start-up; any mistake stops the process with a message naming the
 * file, the entry (array index and name) and the field.
 */
export class ModelsFileError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ModelsFileError';
  }
}

export interface ModelsFileEntry {
  /** Where the entry was read from, so that merge-time errors can name it too. */
  origin: { source: string; index: number };
  name: string;
  description?: string;
  /** `id` and `description` default from the name (Cloudflare's for "Text Generation"). */
  task?: { id?: string; name: string; description?: string };
  tags?: string[];
  properties?: ModelProperty[];
  architecture?: ModelArchitecture;
  limits?: Partial<ModelLimits>;
  engine?: EngineConfig | null;
  lora?: boolean;
  base_model?: string | null;
  chat_template?: ChatTemplateName;
  neuron_costs?: NeuronCosts | null;
  response_cache?: boolean;
  context_length_limit?: number | null;
  sequence_length_limit?: number | null;
  schema?: { input: JsonSchema; output: JsonSchema };
}

type EntryKey = Exclude<keyof ModelsFileEntry, 'origin'>;

const ENTRY_KEYS: readonly EntryKey[] = [
  'name',
  'description',
  'task',
  'tags',
  'properties',
  'architecture',
  'limits',
  'engine',
  'lora',
  'base_model',
  'chat_template',
  'neuron_costs',
  'response_cache',
  'context_length_limit',
  'sequence_length_limit',
  'schema',
];

const ARCHITECTURE_SIZES = [
  'hidden_size',
  'intermediate_size',
  'num_hidden_layers',
  'num_attention_heads',
  'num_key_value_heads',
  'head_dim',
  'vocab_size',
] as const;

const LIMIT_KEYS: readonly (keyof ModelLimits)[] = [
  'max_lora_rank',
  'max_adapter_bytes',
  'max_finetunes_per_account',
  'max_requests_per_min',
  'max_concurrent_requests',
  'max_queue_wait_ms',
  'accounts',
];

const ENGINE_KEYS = {
  'llama-cpp': ['type', 'model_path', 'context_size', 'max_contexts', 'threads'],
  vllm: ['type', 'base_url', 'served_model', 'adapter_dir', 'api_key', 'timeout_ms'],
} as const;

/** `@<namespace>/<author>/<model>`; Cloudflare uses `@cf` and `@hf`, and mixed case in a few authors. */
const MODEL_NAME = /^@[a-z0-9][a-z0-9-]*\/[A-Za-z0-9][A-Za-z0-9._-]*\/[A-Za-z0-9][A-Za-z0-9._-]*$/;

/** Card properties whose string values must parse: booleans, and the context limits that mirror typed fields. */
const BOOLEAN_PROPERTIES = new Set(['lora', 'beta']);
const CONTEXT_FIELDS = ['context_length_limit', 'sequence_length_limit'] as const;

/** Every template is some family's, so the family map lists them all. */
const CHAT_TEMPLATES: readonly ChatTemplateName[] = [...new Set(Object.values(CHAT_TEMPLATE_FOR_FAMILY))];

type Fail = (field: string, problem: string) => never;

function entryError(origin: ModelsFileEntry['origin'], name: string | undefined, field: string, problem: string) {
  const entry = name === undefined ? `entry ${origin.index}` : `entry ${origin.index} (${name})`;
  return new ModelsFileError(`MODELS_FILE ${origin.source}: ${entry}: ${field} ${problem}`);
}

function shown(value: unknown): string {
  const text = JSON.stringify(value) ?? String(value);
  return text.length > 80 ? `${text.slice(0, 77)}...` : text;
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** A plain object with only `known` keys and all `required` ones; `field` '' is the entry itself. */
function objectWith(
  fail: Fail,
  value: unknown,
  field: string,
  known: readonly string[],
  required: readonly string[] = [],
): Record<string, unknown> {
  if (!isPlainObject(value)) fail(field, `must be an object, got ${shown(value)}`);
  const member = (key: string) => (field === '' ? key : `${field}.${key}`);
  for (const key of Object.keys(value)) {
    // Typos must not pass silently: an unknown key is an error, not ignored.
    if (!known.includes(key)) fail(member(key), `is not a known field (expected one of: ${known.join(', ')})`);
  }
  for (const key of required) {
    if (value[key] === undefined) fail(member(key), 'is required');
  }
  return value;
}

function positiveInteger(fail: Fail, value: unknown, field: string): number {
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value <= 0) {
    fail(field, `must be a positive integer, got ${shown(value)}`);
  }
  return value;
}

function nonEmptyString(fail: Fail, value: unknown, field: string): string {
  if (typeof value !== 'string' || value.trim() === '') fail(field, `must be a non-empty string, got ${shown(value)}`);
  return value;
}

function string(fail: Fail, value: unknown, field: string): string {
  if (typeof value !== 'string') fail(field, `must be a string, got ${shown(value)}`);
  return value;
}

function boolean(fail: Fail, value: unknown, field: string): boolean {
  if (typeof value !== 'boolean') fail(field, `must be true or false, got ${shown(value)}`);
  return value;
}

function absolutePath(fail: Fail, value: unknown, field: string): string {
  const text = nonEmptyString(fail, value, field);
  if (!path.isAbsolute(text)) fail(field, `must be an absolute path, got ${shown(text)}`);
  return text;
}

function parseTask(fail: Fail, value: unknown): NonNullable<ModelsFileEntry['task']> {
  const task = objectWith(fail, value, 'task', ['id', 'name', 'description'], ['name']);
  return {
    name: nonEmptyString(fail, task.name, 'task.name'),
    ...(task.id !== undefined && { id: nonEmptyString(fail, task.id, 'task.id') }),
    ...(task.description !== undefined && { description: string(fail, task.description, 'task.description') }),
  };
}

function parseTags(fail: Fail, value: unknown): string[] {
  if (!Array.isArray(value)) fail('tags', `must be an array of strings, got ${shown(value)}`);
  return value.map((tag, i) => nonEmptyString(fail, tag, `tags[${i}]`));
}

function parseProperties(fail: Fail, value: unknown): ModelProperty[] {
  if (!Array.isArray(value)) fail('properties', `must be an array of {property_id, value}, got ${shown(value)}`);
  const seen = new Set<string>();
  return value.map((item, i) => {
    const field = `properties[${i}]`;
    const property = objectWith(fail, item, field, ['property_id', 'value'], ['property_id', 'value']);
    const id = nonEmptyString(fail, property.property_id, `${field}.property_id`);
    if (seen.has(id)) fail(`${field}.property_id`, `repeats "${id}"`);
    seen.add(id);
    // Card property values are strings even for numbers and booleans, as on Cloudflare's cards.
    const text = string(fail, property.value, `${field}.value`);
    if (BOOLEAN_PROPERTIES.has(id) && text !== 'true' && text !== 'false') {
      fail(`${field}.value`, `must be "true" or "false" for ${id}, got ${shown(text)}`);
    }
    if ((CONTEXT_FIELDS as readonly string[]).includes(id) && !/^[1-9][0-9]*$/.test(text)) {
      fail(`${field}.value`, `must be a positive integer as a string for ${id}, got ${shown(text)}`);
    }
    return { property_id: id, value: text };
  });
}

function parseArchitecture(fail: Fail, value: unknown): ModelArchitecture {
  const keys = ['model_type', ...ARCHITECTURE_SIZES];
  const arch = objectWith(fail, value, 'architecture', keys, keys);
  if (!MODEL_FAMILIES.includes(arch.model_type as ModelFamily)) {
    fail('architecture.model_type', `must be one of ${MODEL_FAMILIES.join(', ')}, got ${shown(arch.model_type)}`);
  }
  const sizes = Object.fromEntries(
    ARCHITECTURE_SIZES.map((key) => [key, positiveInteger(fail, arch[key], `architecture.${key}`)]),
  ) as Record<(typeof ARCHITECTURE_SIZES)[number], number>;
  if (sizes.num_attention_heads % sizes.num_key_value_heads !== 0) {
    fail(
      'architecture.num_key_value_heads',
      `must divide num_attention_heads (${sizes.num_attention_heads}), got ${sizes.num_key_value_heads}`,
    );
  }
  return { model_type: arch.model_type as ModelFamily, ...sizes };
}

function parseLimits(fail: Fail, value: unknown): Partial<ModelLimits> {
  const limits = objectWith(fail, value, 'limits', LIMIT_KEYS);
  const parsed: Partial<ModelLimits> = {};
  for (const key of LIMIT_KEYS) {
    const raw = limits[key];
    if (raw === undefined) continue;
    if (key === 'accounts') {
      if (!isPlainObject(raw)) fail('limits.accounts', `must be an object of account id -> requests/min, got ${shown(raw)}`);
      parsed.accounts = Object.fromEntries(
        Object.entries(raw).map(([account, perMin]) => {
          if (account.trim() === '') fail('limits.accounts', 'has an empty account id');
          return [account, positiveInteger(fail, perMin, `limits.accounts.${account}`)];
        }),
      );
    } else if (raw === null && (key === 'max_requests_per_min' || key === 'max_concurrent_requests')) {
      // null lifts the limit.
      parsed[key] = null;
    } else {
      parsed[key] = positiveInteger(fail, raw, `limits.${key}`);
    }
  }
  return parsed;
}

function parseEngine(fail: Fail, value: unknown): EngineConfig | null {
  if (value === null) return null;
  if (!isPlainObject(value)) fail('engine', `must be an object or null, got ${shown(value)}`);
  const optionalInteger = (raw: unknown, field: string) =>
    raw === undefined ? undefined : positiveInteger(fail, raw, `engine.${field}`);
  if (value.type === 'llama-cpp') {
    const engine = objectWith(fail, value, 'engine', ENGINE_KEYS['llama-cpp'], ['model_path']);
    return {
      type: 'llama-cpp',
      model_path: absolutePath(fail, engine.model_path, 'engine.model_path'),
      ...definedOnly({
        context_size: optionalInteger(engine.context_size, 'context_size'),
        max_contexts: optionalInteger(engine.max_contexts, 'max_contexts'),
        threads: optionalInteger(engine.threads, 'threads'),
      }),
    };
  }
  if (value.type === 'vllm') {
    const engine = objectWith(fail, value, 'engine', ENGINE_KEYS.vllm, ['base_url', 'served_model', 'adapter_dir']);
    return {
      type: 'vllm',
      base_url: httpUrl(fail, engine.base_url, 'engine.base_url'),
      served_model: nonEmptyString(fail, engine.served_model, 'engine.served_model'),
      adapter_dir: absolutePath(fail, engine.adapter_dir, 'engine.adapter_dir'),
      ...definedOnly({
        api_key: engine.api_key === undefined ? undefined : nonEmptyString(fail, engine.api_key, 'engine.api_key'),
        timeout_ms: optionalInteger(engine.timeout_ms, 'timeout_ms'),
      }),
    };
  }
  return fail('engine.type', `must be "llama-cpp" or "vllm", got ${shown(value.type)}`);
}

/** Drops undefined members so that parsed objects carry only what the file said. */
function definedOnly<T extends Record<string, unknown>>(object: T): Partial<T> {
  return Object.fromEntries(Object.entries(object).filter(([, v]) => v !== undefined)) as Partial<T>;
}

function httpUrl(fail: Fail, value: unknown, field: string): string {
  const text = nonEmptyString(fail, value, field);
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    return fail(field, `must be an http(s) URL, got ${shown(text)}`);
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') fail(field, `must be an http(s) URL, got ${shown(text)}`);
  return text;
}

function parseNeuronCosts(fail: Fail, value: unknown): NeuronCosts | null {
  if (value === null) return null;
  const keys = ['input_tokens', 'output_tokens'] as const;
  const costs = objectWith(fail, value, 'neuron_costs', keys, keys);
  const cost = (key: (typeof keys)[number]) => {
    const raw = costs[key];
    if (typeof raw !== 'number' || !Number.isFinite(raw) || raw < 0) {
      fail(`neuron_costs.${key}`, `must be a non-negative number, got ${shown(raw)}`);
    }
    return raw;
  };
  return { input_tokens: cost('input_tokens'), output_tokens: cost('output_tokens') };
}

function parseSchema(fail: Fail, value: unknown): { input: JsonSchema; output: JsonSchema } {
  const schema = objectWith(fail, value, 'schema', ['input', 'output'], ['input', 'output']);
  for (const key of ['input', 'output'] as const) {
    if (!isPlainObject(schema[key])) fail(`schema.${key}`, `must be a JSON Schema object, got ${shown(schema[key])}`);
  }
  return { input: schema.input as JsonSchema, output: schema.output as JsonSchema };
}

function parseEntry(value: unknown, origin: ModelsFileEntry['origin']): ModelsFileEntry {
  let name: string | undefined;
  const fail: Fail = (field, problem) => {
    throw entryError(origin, name, field, problem);
  };
  if (!isPlainObject(value)) {
    const problem = `must be an object, got ${shown(value)}`;
    throw new ModelsFileError(`MODELS_FILE ${origin.source}: entry ${origin.index} ${problem}`);
  }
  if (typeof value.name !== 'string' || !MODEL_NAME.test(value.name)) {
    fail('name', `must be a model name like "@cf/vendor/model", got ${shown(value.name)}`);
  }
  name = value.name;
  objectWith(fail, value, '', ENTRY_KEYS);

  const entry: ModelsFileEntry = { origin, name };
  if (value.description !== undefined) entry.description = string(fail, value.description, 'description');
  if (value.task !== undefined) entry.task = parseTask(fail, value.task);
  if (value.tags !== undefined) entry.tags = parseTags(fail, value.tags);
  if (value.properties !== undefined) entry.properties = parseProperties(fail, value.properties);
  if (value.architecture !== undefined) entry.architecture = parseArchitecture(fail, value.architecture);
  if (value.limits !== undefined) entry.limits = parseLimits(fail, value.limits);
  if (value.engine !== undefined) entry.engine = parseEngine(fail, value.engine);
  if (value.lora !== undefined) entry.lora = boolean(fail, value.lora, 'lora');
  if (value.base_model !== undefined) {
    entry.base_model = value.base_model === null ? null : nonEmptyString(fail, value.base_model, 'base_model');
  }
  if (value.chat_template !== undefined) {
    if (!CHAT_TEMPLATES.includes(value.chat_template as ChatTemplateName)) {
      fail('chat_template', `must be one of ${CHAT_TEMPLATES.join(', ')}, got ${shown(value.chat_template)}`);
    }
    entry.chat_template = value.chat_template as ChatTemplateName;
  }
  if (value.neuron_costs !== undefined) entry.neuron_costs = parseNeuronCosts(fail, value.neuron_costs);
  if (value.response_cache !== undefined) entry.response_cache = boolean(fail, value.response_cache, 'response_cache');
  for (const key of CONTEXT_FIELDS) {
    if (value[key] !== undefined) entry[key] = value[key] === null ? null : positiveInteger(fail, value[key], key);
  }
  if (value.schema !== undefined) entry.schema = parseSchema(fail, value.schema);
  checkMirrors(fail, entry);
  return entry;
}

/** A typed field and its card property given together must agree, or which one wins would be a guess. */
function checkMirrors(fail: Fail, entry: ModelsFileEntry): void {
  const properties = entry.properties ?? [];
  const check = (id: string, typed: string | undefined) => {
    const index = properties.findIndex((p) => p.property_id === id);
    if (typed === undefined || index < 0 || properties[index].value === typed) return;
    fail(`properties[${index}].value`, `"${properties[index].value}" contradicts ${id}: ${typed}`);
  };
  check('lora', entry.lora === undefined ? undefined : String(entry.lora));
  for (const key of CONTEXT_FIELDS) check(key, entry[key] === undefined ? undefined : String(entry[key]));
}

function parseJson(text: string, source: string): unknown {
  try {
    return JSON.parse(text);
  } catch (err) {
    const message = (err as Error).message;
    const position = /at position (\d+)/.exec(message);
    let where = '';
    if (position && !/line \d+/.test(message)) {
      const before = text.slice(0, Number(position[1])).split('\n');
      where = ` (line ${before.length}, column ${before[before.length - 1].length + 1})`;
    }
    throw new ModelsFileError(`MODELS_FILE ${source}: invalid JSON: ${message}${where}`);
  }
}

export function parseModelsFile(text: string, source: string): ModelsFileEntry[] {
  const json = parseJson(text, source);
  const list = isPlainObject(json) && Object.keys(json).length === 1 && 'models' in json ? json.models : json;
  if (!Array.isArray(list)) {
    throw new ModelsFileError(`MODELS_FILE ${source}: expected a JSON array of models or {"models": [...]}`);
  }
  const firstIndex = new Map<string, number>();
  return list.map((item, index) => {
    const entry = parseEntry(item, { source, index });
    const earlier = firstIndex.get(entry.name);
    if (earlier !== undefined) throw entryError(entry.origin, entry.name, 'name', `repeats entry ${earlier}`);
    firstIndex.set(entry.name, index);
    return entry;
  });
}

/** Fixed namespace for name-based (v5) uuids: the same name always gets the same id across restarts. */
const MODEL_ID_NAMESPACE = Buffer.from('5f0c6f0e8a2b4c1d9e3f7a6b5c4d3e2f', 'hex');

function nameBasedUuid(name: string): string {
  const bytes = createHash('sha1').update(MODEL_ID_NAMESPACE).update(name).digest().subarray(0, 16);
  bytes[6] = (bytes[6] & 0x0f) | 0x50; // version 5
  bytes[8] = (bytes[8] & 0x3f) | 0x80; // RFC 4122 variant
  const hex = bytes.toString('hex');
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}

function resolveTask(task: NonNullable<ModelsFileEntry['task']>): ModelTask {
  const known = task.name.toLowerCase() === TEXT_GENERATION_TASK.name.toLowerCase() ? TEXT_GENERATION_TASK : undefined;
  return {
    id: task.id ?? known?.id ?? nameBasedUuid(`task:${task.name}`),
    name: known?.name ?? task.name,
    description: task.description ?? known?.description ?? '',
  };
}

function withProperty(properties: ModelProperty[], id: string, value: string | null): ModelProperty[] {
  if (value === null) return properties.filter((p) => p.property_id !== id);
  if (!properties.some((p) => p.property_id === id)) return [...properties, { property_id: id, value }];
  return properties.map((p) => (p.property_id === id ? { property_id: id, value } : p));
}

/** The new properties win by property_id; the others keep their order. */
function mergeProperties(base: ModelProperty[], overrides: ModelProperty[]): ModelProperty[] {
  return overrides.reduce((merged, p) => withProperty(merged, p.property_id, p.value), base);
}

/**
 * Applies an entry over a definition. Typed fields and their card properties are kept in step: the entry's
 * typed field wins, else the entry's property, else the current value; the `lora` property is written when
 * lora is true and kept (as "false") when already present, so Cloudflare's non-LoRA cards stay as published.
 */
function applyEntry(base: ModelDefinition, entry: ModelsFileEntry): ModelDefinition {
  const fromProperty = (id: string) => entry.properties?.find((p) => p.property_id === id)?.value;
  const loraProperty = fromProperty('lora');
  const lora = entry.lora ?? (loraProperty === undefined ? base.lora : loraProperty === 'true');
  const context = (key: (typeof CONTEXT_FIELDS)[number]) => {
    const property = fromProperty(key);
    return entry[key] !== undefined ? entry[key] : property === undefined ? base[key] : Number(property);
  };
  const context_length_limit = context('context_length_limit');
  const sequence_length_limit = context('sequence_length_limit');

  let properties = mergeProperties(base.properties, entry.properties ?? []);
  if (lora || properties.some((p) => p.property_id === 'lora')) {
    properties = withProperty(properties, 'lora', String(lora));
  }
  properties = withProperty(properties, 'context_length_limit', context_length_limit?.toString() ?? null);
  properties = withProperty(properties, 'sequence_length_limit', sequence_length_limit?.toString() ?? null);

  const { accounts, ...limits } = entry.limits ?? {};
  return {
    ...base,
    description: entry.description ?? base.description,
    task: entry.task ? resolveTask(entry.task) : base.task,
    tags: entry.tags ?? base.tags,
    properties,
    schema: entry.schema ?? base.schema,
    lora,
    architecture: entry.architecture ?? base.architecture,
    base_model: entry.base_model !== undefined ? entry.base_model : base.base_model,
    // A new architecture brings its family's template unless the entry names one.
    chat_template:
      entry.chat_template ??
      (entry.architecture ? CHAT_TEMPLATE_FOR_FAMILY[entry.architecture.model_type] : base.chat_template),
    limits: { ...base.limits, ...limits, accounts: { ...base.limits.accounts, ...accounts } },
    neuron_costs: entry.neuron_costs !== undefined ? entry.neuron_costs : base.neuron_costs,
    response_cache: entry.response_cache ?? base.response_cache,
    context_length_limit,
    sequence_length_limit,
    engine: entry.engine !== undefined ? entry.engine : base.engine,
  };
}

/**
 * Defaults for a model the file adds. `lora` defaults to whether an architecture is given (a LoRA base needs
 * one); an explicit `lora` field or `lora` property decides otherwise.
 */
function newModel(entry: ModelsFileEntry): ModelDefinition {
  const chat_template =
    entry.chat_template ?? (entry.architecture ? CHAT_TEMPLATE_FOR_FAMILY[entry.architecture.model_type] : undefined);
  if (chat_template === undefined) {
    throw entryError(entry.origin, entry.name, 'chat_template', 'is required for a new model without an architecture');
  }
  return {
    id: nameBasedUuid(entry.name),
    name: entry.name,
    description: '',
    task: TEXT_GENERATION_TASK,
    tags: [],
    properties: [],
    schema: DEFAULT_LORA_SCHEMA,
    lora: entry.architecture !== undefined,
    architecture: null,
    base_model: null,
    chat_template,
    limits: DEFAULT_LORA_LIMITS,
    neuron_costs: null,
    response_cache: false,
    context_length_limit: null,
    sequence_length_limit: null,
    engine: null,
  };
}

/**
 * Built-ins overridden and extended by the file's entries. An entry naming a built-in overrides it field by
 * field (limits and limits.accounts key by key, properties by property_id, architecture/schema/task/tags/engine
 * whole); any other name adds a model. The result shares nothing with the inputs.
 */
export function mergeModels(builtins: readonly ModelDefinition[], entries: ModelsFileEntry[]): ModelDefinition[] {
  const models = [...builtins];
  for (const entry of entries) {
    const index = models.findIndex((m) => m.name === entry.name);
    const merged = applyEntry(index >= 0 ? models[index] : newModel(entry), entry);
    if (merged.lora && merged.architecture === null) {
      const problem = 'is required when lora is true (adapters are checked against it)';
      throw entryError(entry.origin, entry.name, 'architecture', problem);
    }
    if (index >= 0) models[index] = merged;
    else models.push(merged);
  }
  // Cloned one by one: built-ins share sub-objects (limits, schemas) that a caller must not edit through.
  return models.map((model) => structuredClone(model));
}

export function loadModels(
  modelsFilePath: string | undefined,
  readFile: (file: string, encoding: 'utf8') => string = fs.readFileSync,
): ModelDefinition[] {
  if (modelsFilePath === undefined) return mergeModels(BUILTIN_MODELS, []);
  let text: string;
  try {
    text = readFile(modelsFilePath, 'utf8');
  } catch (err) {
    throw new ModelsFileError(`MODELS_FILE ${modelsFilePath}: cannot read the file: ${(err as Error).message}`);
  }
  return mergeModels(BUILTIN_MODELS, parseModelsFile(text, modelsFilePath));
}
