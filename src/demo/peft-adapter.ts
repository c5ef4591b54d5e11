/**
 * Deterministic PEFT LoRA adapters (adapter_config.json + adapter_model.safetensors) for tests, benchmarks and the
 * demo. Valid by default; `configOverrides` and `editTensors` make deliberately broken ones.
 */
import { loraTensorName } from '../formats/adapter-validation.js';
import { moduleFeatures, type LoraModule, type ModelArchitecture } from '../formats/architecture.js';
import { encodeTensor } from '../formats/float16.js';
import { rankFor } from '../formats/peft-config.js';
import { DTYPE_BITS } from '../formats/safetensors.js';
import { writeSafetensors } from './safetensors-writer.js';

export interface AdapterTensorSpec {
  name: string;
  dtype: string;
  shape: number[];
}

export interface PeftAdapterSpec {
  architecture: ModelArchitecture;
  r: number;
  loraAlpha: number;
  targetModules: LoraModule[];
  /** Layers to adapt (written as layers_to_transform); all layers when absent. */
  layers?: number[];
  dtype?: 'F32' | 'F16' | 'BF16';
  useRslora?: boolean;
  rankPattern?: Record<string, number>;
  alphaPattern?: Record<string, number>;
  seed: number;
  /** Values are uniform in [-magnitude, magnitude]; default 0.01. */
  magnitude?: number;
  baseModelNameOrPath?: string;
  /** Set (or, with undefined, delete) config fields after the valid config is built. */
  configOverrides?: Record<string, unknown>;
  /** Rewrite the tensor list before data is generated; tensors of non-float dtypes get zero bytes. */
  editTensors?: (tensors: AdapterTensorSpec[]) => AdapterTensorSpec[];
}

// Bound once: a global lookup per draw is slow inside vm contexts (such as jest's), and there are millions of draws.
const { imul } = Math;

/** Small, fast seeded PRNG (mulberry32); returns floats in [0, 1). */
export function mulberry32(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = imul(t ^ (t >>> 15), t | 1);
    t ^= t + imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export function buildPeftAdapter(spec: PeftAdapterSpec): {
  config: Record<string, unknown>;
  configJson: Buffer;
  safetensors: Buffer;
} {
  const { architecture: arch, r } = spec;
  const dtype = spec.dtype ?? 'F16';
  const rankPattern = spec.rankPattern ?? {};
  const layers = spec.layers ?? Array.from({ length: arch.num_hidden_layers }, (_, i) => i);

  let tensors: AdapterTensorSpec[] = [];
  for (const layer of layers) {
    for (const module of spec.targetModules) {
      const rank = rankFor({ r, rankPattern }, layer, module);
      const features = moduleFeatures(arch, module);
      tensors.push({ name: loraTensorName(layer, module, 'A'), dtype, shape: [rank, features.in] });
      tensors.push({ name: loraTensorName(layer, module, 'B'), dtype, shape: [features.out, rank] });
    }
  }
  if (spec.editTensors) tensors = spec.editTensors(tensors);

  const random = mulberry32(spec.seed);
  const magnitude = spec.magnitude ?? 0.01;
  const withData = tensors.map((tensor) => {
    const count = tensor.shape.reduce((n, d) => n * d, 1);
    if (tensor.dtype !== 'F32' && tensor.dtype !== 'F16' && tensor.dtype !== 'BF16') {
      return { ...tensor, data: new Uint8Array((count * DTYPE_BITS[tensor.dtype]) / 8) };
    }
    const values = new Float32Array(count);
    for (let i = 0; i < count; i++) values[i] = (random() * 2 - 1) * magnitude;
    return { ...tensor, data: encodeTensor(values, tensor.dtype) };
  });

  const config: Record<string, unknown> = {
    peft_type: 'LORA',
    task_type: 'CAUSAL_LM',
    ...(spec.baseModelNameOrPath !== undefined && { base_model_name_or_path: spec.baseModelNameOrPath }),
    model_type: arch.model_type,
    r,
    lora_alpha: spec.loraAlpha,
    lora_dropout: 0,
    bias: 'none',
    target_modules: [...spec.targetModules],
    ...(spec.layers !== undefined && { layers_to_transform: [...spec.layers] }),
    ...(spec.useRslora !== undefined && { use_rslora: spec.useRslora }),
    ...(spec.rankPattern !== undefined && { rank_pattern: spec.rankPattern }),
    ...(spec.alphaPattern !== undefined && { alpha_pattern: spec.alphaPattern }),
  };
  for (const [key, value] of Object.entries(spec.configOverrides ?? {})) {
    if (value === undefined) delete config[key];
    else config[key] = value;
  }
  return {
    config,
    configJson: Buffer.from(`${JSON.stringify(config, null, 2)}\n`),
    safetensors: writeSafetensors(withData, { format: 'pt' }),
  };
}
