/**
 * `adapter_config.json` of a PEFT LoRA adapter, read with PEFT's semantics (huggingface/peft `LoraConfig`,
 * `check_target_module_exists`, `get_pattern_key`) and restricted to what this service can serve.
 */
import { RE2JS } from 're2js';
import {
  LORA_MODULES,
  MODEL_FAMILIES,
  MODULE_PARENT,
  type LoraModule,
  type ModelArchitecture,
  type ModelFamily,
} from './architecture.js';
import { AdapterFormatError } from './format-error.js';

export const MAX_CONFIG_BYTES = 1024 * 1024;
/** PEFT's `LoraConfig.lora_alpha` default, which applies when a saved config omits the field. */
const DEFAULT_LORA_ALPHA = 8;

export interface PeftConfigContext {
  architecture: ModelArchitecture;
  maxLoraRank: number;
  /** The base model the adapter will be applied to, e.g. the HF repo name 'meta-llama/Llama-2-7b-chat-hf'. */
  baseModelName?: string;
}

export interface PeftLoraConfig {
  r: number;
  loraAlpha: number;
  useRslora: boolean;
  modelType: ModelFamily;
  targetModules: ReadonlySet<LoraModule>;
  /** Targeted layers, or null for all of them. */
  layers: ReadonlySet<number> | null;
  /** PEFT's rank_pattern / alpha_pattern: key regex -> value, first matching key (in order) wins. */
  rankPattern: Record<string, number>;
  alphaPattern: Record<string, number>;
  baseModelNameOrPath: string | null;
  raw: Record<string, unknown>;
}

function fail(detail: string): never {
  throw new AdapterFormatError('adapter_config.json', detail);
}

const UTF8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });
const show = (value: unknown): string => JSON.stringify(value) ?? String(value);

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** A module's name in the base model's `named_modules()`, as PEFT matches target_modules and patterns against it. */
export function modulePath(layer: number, module: LoraModule): string {
  return `model.layers.${layer}.${MODULE_PARENT[module]}.${module}`;
}

/** Parses and validates `adapter_config.json` for the given base model. */
export function parsePeftConfig(
  bytes: Uint8Array | string,
  ctx: PeftConfigContext,
): { config: PeftLoraConfig; warnings: string[] } {
  const size = typeof bytes === 'string' ? Buffer.byteLength(bytes) : bytes.length;
  if (size > MAX_CONFIG_BYTES) fail(`is ${size} bytes, larger than the 1 MiB limit`);
  let text: string;
  try {
    text = typeof bytes === 'string' ? bytes : UTF8.decode(bytes);
  } catch {
    fail('is not valid UTF-8');
  }
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (error) {
    fail(`is not valid JSON (${(error as Error).message})`);
  }
  if (!isObject(raw)) fail('must be a JSON object');

  if (raw.peft_type !== 'LORA') fail(`peft_type must be "LORA", got ${show(raw.peft_type)}`);
  if (raw.task_type != null && raw.task_type !== 'CAUSAL_LM') {
    fail(`task_type must be "CAUSAL_LM", got ${show(raw.task_type)}`);
  }
  rejectUnsupported(raw);

  const { architecture: arch, maxLoraRank } = ctx;
  const r = raw.r;
  if (!isRank(r, maxLoraRank)) fail(`r must be an integer from 1 to ${maxLoraRank}, got ${show(r)}`);
  const loraAlpha = raw.lora_alpha ?? DEFAULT_LORA_ALPHA;
  if (!isAlpha(loraAlpha)) fail(`lora_alpha must be a positive number, got ${show(loraAlpha)}`);
  const useRslora = raw.use_rslora ?? false;
  if (typeof useRslora !== 'boolean') fail(`use_rslora must be a boolean, got ${show(useRslora)}`);

  if (raw.model_type === undefined) fail('model_type is missing (one of llama, mistral, gemma is required)');
  if (raw.model_type !== arch.model_type) {
    fail(`model_type ${show(raw.model_type)} does not match the base model's model_type "${arch.model_type}"`);
  }
  const warnings: string[] = [];
  const baseModelNameOrPath = checkBaseModelName(
    raw.base_model_name_or_path,
    arch.model_type,
    ctx.baseModelName,
    warnings,
  );

  const rankPattern = parsePattern(
    raw.rank_pattern,
    'rank_pattern',
    (v) => isRank(v, maxLoraRank),
    `an integer from 1 to ${maxLoraRank}`,
  );
  const alphaPattern = parsePattern(raw.alpha_pattern, 'alpha_pattern', isAlpha, 'a positive number');
  const { targetModules, layers } = resolveTargets(raw, arch);

  return {
    config: {
      r,
      loraAlpha,
      useRslora,
      modelType: arch.model_type,
      targetModules,
      layers,
      rankPattern,
      alphaPattern,
      baseModelNameOrPath,
      raw,
    },
    warnings,
  };
}

function isRank(value: unknown, max: number): value is number {
  return Number.isInteger(value) && (value as number) >= 1 && (value as number) <= max;
}

function isAlpha(value: unknown): value is number {
  return typeof value === 'number' && Number.isFinite(value) && value > 0;
}

/** Options that change what the weights mean or add tensors this service cannot serve. */
function rejectUnsupported(raw: Record<string, unknown>): void {
  const enabled = (key: string): boolean => raw[key] != null && raw[key] !== false;
  const nonEmpty = (key: string): boolean => {
    const value = raw[key];
    return value != null && value !== '' && !(Array.isArray(value) && value.length === 0);
  };
  if (enabled('use_dora')) fail('use_dora: DoRA adapters are not supported');
  if ((raw.bias ?? 'none') !== 'none') fail(`bias ${show(raw.bias)} is not supported, only "none" (no trained biases)`);
  if (nonEmpty('modules_to_save')) {
    const modules = show(raw.modules_to_save);
    fail(`modules_to_save ${modules} is not supported: only LoRA weights can be served, not full modules`);
  }
  if (enabled('fan_in_fan_out')) fail('fan_in_fan_out: transposed (Conv1D-style) weights are not supported');
  if (enabled('lora_bias')) fail('lora_bias: LoRA bias terms are not supported');
  if (nonEmpty('layer_replication')) fail('layer_replication is not supported');
  if (nonEmpty('target_parameters')) fail('target_parameters is not supported, use target_modules');
}

/**
 * A name that mentions only other families (e.g. 'mistralai/...' for a llama base) is a mismatch; a different name
 * of the same family (or of no recognizable family) only earns a warning.
 */
function checkBaseModelName(
  value: unknown,
  family: ModelFamily,
  expected: string | undefined,
  warnings: string[],
): string | null {
  if (value == null || value === '') return null;
  if (typeof value !== 'string') fail(`base_model_name_or_path must be a string, got ${show(value)}`);
  const lower = value.toLowerCase();
  const named = MODEL_FAMILIES.filter((f) => lower.includes(f));
  if (named.length > 0 && !named.includes(family)) {
    fail(`base_model_name_or_path "${value}" is a ${named.join('/')} model, but this base model is ${family}`);
  }
  if (expected !== undefined && lower !== expected.toLowerCase()) {
    warnings.push(`adapter was trained on "${value}" but will be applied to "${expected}"`);
  }
  return value;
}

function parsePattern(
  value: unknown,
  field: string,
  valid: (v: unknown) => boolean,
  expectation: string,
): Record<string, number> {
  if (value == null) return {};
  if (!isObject(value)) fail(`${field} must be an object`);
  for (const [key, item] of Object.entries(value)) {
    if (!valid(item)) fail(`${field} value of ${show(key)} must be ${expectation}, got ${show(item)}`);
    compileUserRegex(`${field} key`, key);
  }
  // fromEntries defines own properties, so a "__proto__" key stays an ordinary key.
  return Object.fromEntries(Object.entries(value)) as Record<string, number>;
}

/**
 * Bounds on a user pattern, checked before it is compiled: RE2 matches in linear time, but compiling expands counted
 * repetitions, so length and counts are capped (real PEFT patterns are a few dozen characters).
 */
const MAX_PATTERN_LENGTH = 512;
const MAX_PATTERN_REPEAT = 32;
const MAX_PATTERN_PROGRAM = 10_000;

/**
 * User patterns run on RE2, whose matching time is linear in the input whatever the pattern, so no config can
 * stall the process the way a backtracking engine can (ReDoS). PEFT uses Python's `re`; what RE2 cannot express
 * (backreferences, lookaround) is refused rather than matched differently.
 */
function compileUserRegex(what: string, source: string): RE2JS {
  const refuse = (reason: string): never => fail(`${what} ${show(source)} is not a supported regular expression: ${reason}`);
  if (source.length > MAX_PATTERN_LENGTH) refuse(`it is ${source.length} characters long, the limit is ${MAX_PATTERN_LENGTH}`);
  for (const [count, low, high] of source.matchAll(/\{(\d+)(?:,(\d*))?\}/g)) {
    if (Math.max(Number(low), Number(high ?? 0)) > MAX_PATTERN_REPEAT) refuse(`the repetition ${count} exceeds ${MAX_PATTERN_REPEAT}`);
  }
  const compiled = compileOrExplain(source, refuse);
  if (compiled.programSize() > MAX_PATTERN_PROGRAM) refuse('it is too complex');
  return compiled;
}

function compileOrExplain(source: string, refuse: (reason: string) => never): RE2JS {
  try {
    return RE2JS.compile(source);
  } catch (error) {
    if (/\(\?<?[=!]/.test(source)) refuse('lookahead and lookbehind assertions are not supported (patterns are matched with RE2)');
    if (/\\[1-9]|\(\?P=/.test(source)) refuse('backreferences are not supported (patterns are matched with RE2)');
    return refuse((error as Error).message.replace(/^error parsing regexp: /, ''));
  }
}

/** PEFT get_pattern_key: re.match(rf"(.*\.)?({key})$", path), i.e. the key matches a dot-bounded suffix. */
const patternKeySource = (key: string): string => `(?:.*\\.)?(?:${key})`;

interface CandidatePath {
  path: string;
  layer: number | null;
  module: LoraModule | null;
}

/**
 * The modules PEFT would see in a llama/mistral/gemma `*ForCausalLM`: the LoRA-capable linears plus the others a
 * pattern could select by accident (containers, norms, embeddings, lm_head), which are not supported targets.
 */
function candidatePaths(arch: ModelArchitecture): CandidatePath[] {
  const modelWide = ['model', 'model.embed_tokens', 'model.layers', 'model.norm', 'lm_head'];
  const paths: CandidatePath[] = modelWide.map((path) => ({ path, layer: null, module: null }));
  for (let layer = 0; layer < arch.num_hidden_layers; layer++) {
    const prefix = `model.layers.${layer}`;
    for (const suffix of ['', '.self_attn', '.mlp', '.mlp.act_fn', '.input_layernorm', '.post_attention_layernorm']) {
      paths.push({ path: prefix + suffix, layer, module: null });
    }
    for (const module of LORA_MODULES) paths.push({ path: modulePath(layer, module), layer, module });
  }
  return paths;
}

/** PEFT's list matching: the exact module name, or a suffix after a dot. */
const listMatches = (entries: string[], path: string): boolean =>
  entries.some((entry) => path === entry || path.endsWith(`.${entry}`));

function stringList(value: unknown, field: string): string[] {
  if (!Array.isArray(value) || !value.every((v) => typeof v === 'string' && v !== '')) {
    fail(`${field} must be a string or a list of non-empty strings, got ${show(value)}`);
  }
  return value;
}

/**
 * Applies PEFT's check_target_module_exists (target_modules, exclude_modules, layers_to_transform,
 * layers_pattern) to every module of the base, then requires the selection to be the same set of modules in each
 * selected layer, which is what PeftLoraConfig can express.
 */
function resolveTargets(
  raw: Record<string, unknown>,
  arch: ModelArchitecture,
): { targetModules: Set<LoraModule>; layers: Set<number> | null } {
  const candidates = candidatePaths(arch);
  const target = raw.target_modules;
  if (target == null) fail('target_modules is missing; list the modules the adapter was trained on');
  const allLinear = typeof target === 'string' && target.toLowerCase() === 'all-linear';
  // PEFT: re.fullmatch(target_modules, path).
  const targetRegex = typeof target === 'string' && !allLinear ? compileUserRegex('target_modules', target) : undefined;
  const targetList = typeof target === 'string' ? null : stringList(target, 'target_modules');
  for (const entry of targetList ?? []) {
    if (!candidates.some((c) => c.module !== null && listMatches([entry], c.path))) {
      const supported = LORA_MODULES.join(', ');
      fail(`target_modules entry ${show(entry)} is not a LoRA-capable module of this ${arch.model_type} base (${supported})`);
    }
  }

  const exclude = raw.exclude_modules;
  const excludeList = exclude == null || typeof exclude === 'string' ? null : stringList(exclude, 'exclude_modules');
  const excludeRegex = typeof exclude === 'string' && exclude !== '' ? compileUserRegex('exclude_modules', exclude) : undefined;

  const layerIndex = layerIndexReader(raw, arch, targetList !== null);
  const selected = candidates.filter((candidate) => {
    if (excludeRegex?.testExact(candidate.path) || (excludeList && listMatches(excludeList, candidate.path))) return false;
    if (allLinear) return candidate.module !== null;
    if (targetRegex) return targetRegex.testExact(candidate.path);
    // As in PEFT, an entry naming the full path selects the module whatever layers_to_transform says.
    if (targetList!.includes(candidate.path)) return true;
    if (!listMatches(targetList!, candidate.path)) return false;
    return layerIndex === null || layerIndex(candidate.path);
  });
  const unsupported = selected.find((c) => c.module === null);
  if (unsupported) {
    const supported = LORA_MODULES.join(', ');
    fail(`target_modules selects ${unsupported.path}, which is not a LoRA-capable linear module (${supported})`);
  }
  if (selected.length === 0) fail(`target_modules ${show(target)} selects no module of the base model`);

  const targetModules = new Set(selected.map((c) => c.module!));
  const layers = new Set(selected.map((c) => c.layer!));
  if (selected.length !== targetModules.size * layers.size) {
    const chosen = new Set(selected.map((c) => c.path));
    const example = [...layers]
      .flatMap((layer) => [...targetModules].map((m) => modulePath(layer, m)))
      .find((path) => !chosen.has(path));
    fail(`target_modules selects different modules in different layers (e.g. not ${example}), which is not supported`);
  }
  return { targetModules, layers: layers.size === arch.num_hidden_layers ? null : layers };
}

/**
 * layers_to_transform as PEFT applies it (list target_modules only): the layer index is the first number in the
 * path after `.{layers_pattern}.`, or after any segment when no pattern is given. Returns null when not in use.
 */
function layerIndexReader(
  raw: Record<string, unknown>,
  arch: ModelArchitecture,
  listTarget: boolean,
): ((path: string) => boolean) | null {
  const value = raw.layers_to_transform;
  const pattern = raw.layers_pattern;
  if (!listTarget) {
    // PEFT's LoraConfig raises for these with a string target_modules (including 'all-linear').
    if (value != null) fail('layers_to_transform cannot be used when target_modules is a string');
    if (pattern != null) fail('layers_pattern cannot be used when target_modules is a string');
    return null;
  }
  if (value == null || (Array.isArray(value) && value.length === 0)) return null;
  const indices = Array.isArray(value) ? value : [value];
  for (const index of indices) {
    if (!Number.isInteger(index) || index < 0 || index >= arch.num_hidden_layers) {
      const last = arch.num_hidden_layers - 1;
      fail(`layers_to_transform entry ${show(index)} is not a layer of the base model (0 to ${last})`);
    }
  }
  const names =
    pattern == null || pattern === ''
      ? []
      : typeof pattern === 'string'
        ? [pattern]
        : stringList(pattern, 'layers_pattern');
  // Only plain module names: PEFT interpolates them into a regex unescaped, which nobody relies on.
  const bad = names.find((name) => !/^\w+$/.test(name));
  if (bad !== undefined) fail(`layers_pattern ${show(bad)} must be a module name such as "layers"`);
  const readers = (names.length === 0 ? ['[^.]*'] : names).map((name) => new RegExp(`^.*?\\.${name}\\.(\\d+)\\.`));
  const wanted = new Set(indices as number[]);
  return (path) => {
    const match = readers.map((re) => re.exec(path)).find((m) => m !== null);
    return match !== undefined && wanted.has(Number(match[1]));
  };
}

const compiledPatterns = new WeakMap<Record<string, number>, [RE2JS, number][]>();

/** PEFT's get_pattern_key: the first key (in order) whose regex matches the end of the module path at a dot boundary. */
function patternValue(pattern: Record<string, number>, layer: number, module: LoraModule): number | undefined {
  let compiled = compiledPatterns.get(pattern);
  if (compiled === undefined) {
    compiled = Object.entries(pattern).map(([key, value]) => [RE2JS.compile(patternKeySource(key)), value]);
    compiledPatterns.set(pattern, compiled);
  }
  const path = modulePath(layer, module);
  return compiled.find(([re]) => re.testExact(path))?.[1];
}

export function rankFor(config: Pick<PeftLoraConfig, 'r' | 'rankPattern'>, layer: number, module: LoraModule): number {
  return patternValue(config.rankPattern, layer, module) ?? config.r;
}

export function alphaFor(
  config: Pick<PeftLoraConfig, 'loraAlpha' | 'alphaPattern'>,
  layer: number,
  module: LoraModule,
): number {
  return patternValue(config.alphaPattern, layer, module) ?? config.loraAlpha;
}

/** The factor PEFT multiplies B @ A by: alpha / r, or alpha / sqrt(r) with rsLoRA, with per-module r and alpha. */
export function scaleFor(
  config: Pick<PeftLoraConfig, 'r' | 'rankPattern' | 'loraAlpha' | 'alphaPattern' | 'useRslora'>,
  layer: number,
  module: LoraModule,
): number {
  const r = rankFor(config, layer, module);
  return alphaFor(config, layer, module) / (config.useRslora ? Math.sqrt(r) : r);
}

export function isTargeted(
  config: Pick<PeftLoraConfig, 'targetModules' | 'layers'>,
  layer: number,
  module: LoraModule,
): boolean {
  return config.targetModules.has(module) && (config.layers === null || config.layers.has(layer));
}
