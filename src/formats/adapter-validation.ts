/**
 * Checks that the tensors of `adapter_model.safetensors` are a plain PEFT LoRA adapter for the base model, and
 * that they agree with `adapter_config.json`.
 */
import {
  LORA_MODULES,
  MODULE_PARENT,
  moduleFeatures,
  type LoraModule,
  type ModelArchitecture,
} from './architecture.js';
import { AdapterFormatError } from './format-error.js';
import { isTargeted, modulePath, rankFor, type PeftLoraConfig } from './peft-config.js';
import { formatShape, type SafetensorsHeader, type SafetensorsLimits, type TensorInfo } from './safetensors.js';

const LORA_DTYPES = new Set(['F16', 'BF16', 'F32']);
const LORA_TENSOR = /^base_model\.model\.model\.layers\.(0|[1-9][0-9]*)\.(self_attn|mlp)\.(\w+)\.lora_(A|B)\.weight$/;

function fail(detail: string): never {
  throw new AdapterFormatError('adapter_model.safetensors', detail);
}

/**
 * Header room per tensor: an entry such as `"base_model.model.model.layers.31.self_attn.q_proj.lora_A.weight":
 * {"dtype":"BF16","shape":[14336,64],"data_offsets":[1234567890,1234567890]},` is about 150 bytes; 512 leaves room
 * for longer numbers and pretty-printed JSON.
 */
const HEADER_BYTES_PER_TENSOR = 512;
/** Room for `__metadata__` (PEFT writes {"format":"pt"}) and the padding to a multiple of 8. */
const HEADER_BYTES_EXTRA = 64 * 1024;

/**
 * A LoRA adapter of this base has at most one A/B pair per targetable module of each layer, so both its tensor count
 * and its header size are bounded before a byte of the header is parsed.
 */
export function adapterHeaderLimits(arch: ModelArchitecture): SafetensorsLimits {
  const layers = arch.num_hidden_layers;
  const maxTensors = layers * LORA_MODULES.length * 2;
  const maxHeaderLength = maxTensors * HEADER_BYTES_PER_TENSOR + HEADER_BYTES_EXTRA;
  const count = `${layers} layers × ${LORA_MODULES.length} modules × 2`;
  return {
    maxTensors,
    maxHeaderLength,
    basis: `for an adapter of this base model (at most ${maxTensors} tensors, ${count}, in a header of at most ${maxHeaderLength} bytes)`,
  };
}

/** PEFT's saved name of a LoRA matrix: A is [r, in_features], B is [out_features, r]. */
export function loraTensorName(layer: number, module: LoraModule, matrix: 'A' | 'B'): string {
  return `base_model.model.${modulePath(layer, module)}.lora_${matrix}.weight`;
}

interface LoraPair {
  layer: number;
  module: LoraModule;
  a: TensorInfo;
  b: TensorInfo;
}

function classify(name: string, arch: ModelArchitecture): { layer: number; module: LoraModule; matrix: 'A' | 'B' } {
  if (name.includes('lora_magnitude_vector')) {
    fail(`${name} is a DoRA magnitude vector; DoRA adapters are not supported`);
  }
  if (/lora_embedding_[AB]/.test(name)) {
    fail(`${name} is an embedding LoRA weight; LoRA on embeddings is not supported`);
  }
  const match = LORA_TENSOR.exec(name);
  if (match === null) {
    fail(
      `${name} is not a LoRA weight (base_model.model.model.layers.{i}.{self_attn|mlp}.{module}.lora_{A|B}.weight); ` +
        'full weights such as lm_head or modules_to_save are not supported',
    );
  }
  const [, layerText, parent, moduleName, matrix] = match;
  if (!(LORA_MODULES as readonly string[]).includes(moduleName)) {
    fail(`${name} adapts unknown module ${moduleName}; supported modules are ${LORA_MODULES.join(', ')}`);
  }
  const module = moduleName as LoraModule;
  if (MODULE_PARENT[module] !== parent) {
    fail(`${name}: ${module} belongs under ${MODULE_PARENT[module]}, not ${parent}`);
  }
  const layer = Number(layerText);
  if (layer >= arch.num_hidden_layers) {
    const count = arch.num_hidden_layers;
    fail(`${name} is for layer ${layer}, but the base model has ${count} layers (0-${count - 1})`);
  }
  return { layer, module, matrix: matrix as 'A' | 'B' };
}

/** Every single-file check; returns the A/B pairs ordered by layer, then module. */
function collectPairs(header: SafetensorsHeader, arch: ModelArchitecture): LoraPair[] {
  if (header.tensors.length === 0) fail('contains no tensors');
  const halves = new Map<string, { layer: number; module: LoraModule; a?: TensorInfo; b?: TensorInfo }>();
  for (const tensor of header.tensors) {
    const { layer, module, matrix } = classify(tensor.name, arch);
    if (!LORA_DTYPES.has(tensor.dtype)) {
      fail(`${tensor.name} has dtype ${tensor.dtype}; LoRA weights must be F16, BF16 or F32`);
    }
    if (tensor.shape.length !== 2) {
      fail(`${tensor.name} has shape ${formatShape(tensor.shape)}, expected 2 dimensions`);
    }
    const key = modulePath(layer, module);
    const half = halves.get(key) ?? { layer, module };
    half[matrix === 'A' ? 'a' : 'b'] = tensor;
    halves.set(key, half);
  }
  const pairs: LoraPair[] = [];
  for (const { layer, module, a, b } of halves.values()) {
    if (a === undefined) fail(`${loraTensorName(layer, module, 'A')} is missing for ${b!.name}`);
    if (b === undefined) fail(`${loraTensorName(layer, module, 'B')} is missing for ${a.name}`);
    const features = moduleFeatures(arch, module);
    const r = a.shape[0];
    if (r === 0) fail(`${a.name} has shape ${formatShape(a.shape)}, a LoRA rank must be at least 1`);
    if (a.shape[1] !== features.in) {
      fail(`${a.name} has shape ${formatShape(a.shape)}, expected [${r}, ${features.in}]`);
    }
    if (b.shape[0] !== features.out || b.shape[1] !== r) {
      fail(`${b.name} has shape ${formatShape(b.shape)}, expected [${features.out}, ${r}] (r=${r} from lora_A)`);
    }
    pairs.push({ layer, module, a, b });
  }
  const moduleOrder = (m: LoraModule): number => LORA_MODULES.indexOf(m);
  return pairs.sort((x, y) => x.layer - y.layer || moduleOrder(x.module) - moduleOrder(y.module));
}

/** Checks that need only the weights file and the base model's shapes. */
export function validateAdapterTensors(header: SafetensorsHeader, arch: ModelArchitecture): void {
  collectPairs(header, arch);
}

/** Cross-checks the weights against the parsed config: same targets, per-module ranks from r / rank_pattern. */
export function validateAdapterPair(header: SafetensorsHeader, config: PeftLoraConfig, arch: ModelArchitecture): void {
  const pairs = collectPairs(header, arch);
  for (const { layer, module, a, b } of pairs) {
    if (!isTargeted(config, layer, module)) {
      fail(`${a.name} is not in target_modules/layers_to_transform of adapter_config.json`);
    }
    const r = rankFor(config, layer, module);
    // A's rank already equals B's, so B's shape tells the whole story.
    if (b.shape[1] !== r) {
      fail(`${b.name} has shape ${formatShape(b.shape)}, expected [${b.shape[0]}, ${r}] (r=${r})`);
    }
  }
  const present = new Set(pairs.map((p) => modulePath(p.layer, p.module)));
  const missing: string[] = [];
  for (let layer = 0; layer < arch.num_hidden_layers; layer++) {
    for (const module of LORA_MODULES) {
      if (isTargeted(config, layer, module) && !present.has(modulePath(layer, module))) {
        missing.push(loraTensorName(layer, module, 'A'));
      }
    }
  }
  if (missing.length > 0) {
    const more = missing.length > 1 ? ` (and the pairs of ${missing.length - 1} more targeted modules)` : '';
    fail(`${missing[0]} and its lora_B are missing, but adapter_config.json targets that module${more}`);
  }
}
