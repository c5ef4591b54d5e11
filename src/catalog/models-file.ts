import { createHash } from 'node:crypto';
import fs from 'node:fs';
import { Ajv, type ErrorObject } from 'ajv';
import type { ModelArchitecture } from '../formats/architecture.js';
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
import { ENGINE_TYPES, MODELS_FILE_ENTRY_SCHEMA } from './models-file.schema.js';

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

/** `@<namespace>/<author>/<model>`; Cloudflare uses `@cf` and `@hf`, and mixed case in a few authors. */
const MODEL_NAME = /^@[a-z0-9][a-z0-9-]*\/[A-Za-z0-9][A-Za-z0-9._-]*\/[A-Za-z0-9][A-Za-z0-9._-]*$/;

/** Card properties whose string values must parse: booleans, and the context limits that mirror typed fields. */
const BOOLEAN_PROPERTIES = new Set(['lora', 'beta']);
const CONTEXT_FIELDS = ['context_length_limit', 'sequence_length_limit'] as const;

type Fail = (field: string, problem: string) => never;

const ajv = new Ajv({ allErrors: false, verbose: true, discriminator: true, strict: true });
// The wording of a leaf's error message (see models-file.schema.ts); an annotation, not a check.
ajv.addKeyword({ keyword: 'problem', schemaType: 'string' });
const validateEntry = ajv.compile(MODELS_FILE_ENTRY_SCHEMA);

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

/** The field an error is about, as the messages name it: `limits.accounts.abc`, `properties[0].value`. */
function fieldOf(pointer: string, entry: unknown): string {
  let field = '';
  let value = entry;
  for (const part of pointer.split('/').slice(1).map((p) => p.replace(/~1/g, '/').replace(/~0/g, '~'))) {
    field = Array.isArray(value) ? `${field}[${part}]` : field === '' ? part : `${field}.${part}`;
    value = (value as Record<string, unknown>)[part];
  }
  return field;
}

/** The first schema violation of an entry, worded as field + problem. */
function describeError(error: ErrorObject, entry: unknown): [string, string] {
  const field = fieldOf(error.instancePath, entry);
  const member = (key: string) => (field === '' ? key : `${field}.${key}`);
  const schema = error.parentSchema as { problem?: string; properties?: Record<string, unknown> } | undefined;
  switch (error.keyword) {
    case 'additionalProperties': {
      const known = Object.keys(schema?.properties ?? {}).join(', ');
      return [member(error.params.additionalProperty as string), `is not a known field (expected one of: ${known})`];
    }
    case 'required':
      return [member(error.params.missingProperty as string), 'is required'];
    case 'discriminator': {
      const tag = error.params.tag as string;
      const tagged = (error.data as Record<string, unknown>)[tag];
      return [member(tag), `must be ${ENGINE_TYPES.map((type) => `"${type}"`).join(' or ')}, got ${shown(tagged)}`];
    }
  }
  if (error.propertyName !== undefined) return [field, `has an invalid key ${shown(error.propertyName)}`];
  if (schema?.problem !== undefined) return [field, `${schema.problem}, got ${shown(error.data)}`];
  return [field, error.message ?? 'is invalid'];
}

/** What the schema cannot say: values that depend on other values. */
function checkRelations(fail: Fail, entry: ModelsFileEntry): void {
  const arch = entry.architecture;
  if (arch && arch.num_attention_heads % arch.num_key_value_heads !== 0) {
    fail('architecture.num_key_value_heads', `must divide num_attention_heads (${arch.num_attention_heads}), got ${arch.num_key_value_heads}`);
  }
  const seen = new Set<string>();
  entry.properties?.forEach(({ property_id: id, value }, i) => {
    const field = `properties[${i}]`;
    if (seen.has(id)) fail(`${field}.property_id`, `repeats "${id}"`);
    seen.add(id);
    if (BOOLEAN_PROPERTIES.has(id) && value !== 'true' && value !== 'false') {
      fail(`${field}.value`, `must be "true" or "false" for ${id}, got ${shown(value)}`);
    }
    if ((CONTEXT_FIELDS as readonly string[]).includes(id) && !/^[1-9][0-9]*$/.test(value)) {
      fail(`${field}.value`, `must be a positive integer as a string for ${id}, got ${shown(value)}`);
    }
  });
  const engine = entry.engine;
  if (engine && engine.type !== 'llama-cpp') {
    if ((engine.base_url === undefined) === (engine.replicas === undefined)) fail('engine', 'needs exactly one of base_url and replicas');
    if (engine.base_url !== undefined && !URL.canParse(engine.base_url)) {
      fail('engine.base_url', `must be an http(s) URL, got ${shown(engine.base_url)}`);
    }
    const seen = new Set<string>();
    engine.replicas?.forEach((url, i) => {
      if (!URL.canParse(url)) fail(`engine.replicas[${i}]`, `must be an http(s) URL, got ${shown(url)}`);
      // Distinct as the engine sees them: a trailing slash is the same server.
      const key = url.replace(/\/+$/, '');
      if (seen.has(key)) fail(`engine.replicas[${i}]`, `repeats ${shown(url)}`);
      seen.add(key);
    });
  }
  checkMirrors(fail, entry);
}

function parseEntry(value: unknown, origin: ModelsFileEntry['origin']): ModelsFileEntry {
  if (!isPlainObject(value)) {
    throw new ModelsFileError(`MODELS_FILE ${origin.source}: entry ${origin.index} must be an object, got ${shown(value)}`);
  }
  // The name first: every later message names the entry by it.
  if (typeof value.name !== 'string' || !MODEL_NAME.test(value.name)) {
    throw entryError(origin, undefined, 'name', `must be a model name like "@cf/vendor/model", got ${shown(value.name)}`);
  }
  const name = value.name;
  const fail: Fail = (field, problem) => {
    throw entryError(origin, name, field, problem);
  };
  if (!validateEntry(value)) fail(...describeError(validateEntry.errors![0], value));
  const entry = { origin, ...value } as ModelsFileEntry;
  checkRelations(fail, entry);
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
