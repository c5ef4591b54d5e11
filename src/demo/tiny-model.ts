/**
 * Deterministic tiny base models for tests and local runs. Weights are generated in Hugging Face layout and turned
 * into GGUF the way llama.cpp's convert_hf_to_gguf does (q/k row permutation for llama, `norm + 1` and tied output
 * for gemma), so a LoRA merged into the HF weights and the converted adapter applied by llama.cpp must agree.
 */
import { LORA_MODULES, moduleFeatures, type LoraModule, type ModelArchitecture } from '../formats/architecture.js';
import { encodeGguf, gguf, type GgufMetadata, type GgufTensorSpec } from '../formats/gguf-writer.js';
import { GGUF_MODULE_NAMES, ggufArchitecture, permuteQkRows, qkPermuteHeads } from '../formats/lora-to-gguf.js';
import { modulePath } from '../formats/peft-config.js';
import { mulberry32, type PeftAdapterSpec } from './peft-adapter.js';

export type TinyFamily = 'llama' | 'gemma';

export interface TinyModelSpec {
  family: TinyFamily;
  seed: number;
  hiddenSize?: number;
  layers?: number;
  heads?: number;
  kvHeads?: number;
  /** Defaults to hiddenSize / heads for llama and 24 for gemma (q_proj is then not hidden → hidden). */
  headDim?: number;
  intermediateSize?: number;
  contextLength?: number;
}

export interface HfTensor {
  /** PyTorch shape, row-major data. */
  shape: number[];
  data: Float32Array;
}

/** Tensors by Hugging Face name (`model.layers.0.self_attn.q_proj.weight`). */
export type HfWeights = Map<string, HfTensor>;

export interface TinyModel {
  gguf: Buffer;
  architecture: ModelArchitecture;
  /** The weights the GGUF was made from (after the transform, if any). */
  hfWeights: HfWeights;
  /** Vocabulary, by token id. */
  tokens: string[];
}

const SPM_SPACE = '\u2581';
/** Enough pieces for the SentencePiece tokenizer to merge some common text; everything else falls back to bytes. */
const WORD_PIECES = [
  ...'etaoinshrldumcwygpbfkv'.split(''),
  ...['th', 'he', 'in', 'er', 'an', 'll', 'or', 'ld', 'is', 'of', 'the', 'ell', 'ello'],
  ...['', 't', 'a', 'w', 'h', 'i', 'o', 'th', 'the', 'he', 'hel', 'hell', 'hello', 'wor', 'world', 'is', 'of'].map(
    (p) => SPM_SPACE + p,
  ),
];
const LLAMA_PIECES = ['[', ']', '/', '<', '>', 'IN', 'ST', 'INST', 'SY', 'SYS', '<<', '>>', `${SPM_SPACE}[`, '[/', `${SPM_SPACE}[/`];

/** SentencePiece token types as llama.cpp stores them in tokenizer.ggml.token_type. */
const TOKEN_TYPE = { normal: 1, unknown: 2, control: 3, byte: 6 } as const;

interface Vocabulary {
  tokens: string[];
  types: number[];
  special: { bos: number; eos: number; unk: number; pad?: number; eot?: number };
}

function vocabulary(family: TinyFamily): Vocabulary {
  const leading: [string, number][] =
    family === 'llama'
      ? [['<unk>', TOKEN_TYPE.unknown], ['<s>', TOKEN_TYPE.control], ['</s>', TOKEN_TYPE.control]]
      : [
          ['<pad>', TOKEN_TYPE.control],
          ['<eos>', TOKEN_TYPE.control],
          ['<bos>', TOKEN_TYPE.control],
          ['<unk>', TOKEN_TYPE.unknown],
          ['<start_of_turn>', TOKEN_TYPE.control],
          ['<end_of_turn>', TOKEN_TYPE.control],
        ];
  const bytes = Array.from({ length: 256 }, (_, b) => `<0x${b.toString(16).toUpperCase().padStart(2, '0')}>`);
  const pieces = family === 'llama' ? [...WORD_PIECES, ...LLAMA_PIECES] : WORD_PIECES;
  const tokens = [...leading.map(([t]) => t), ...bytes, ...pieces];
  const types = [
    ...leading.map(([, type]) => type),
    ...bytes.map(() => TOKEN_TYPE.byte),
    ...pieces.map(() => TOKEN_TYPE.normal),
  ];
  const special =
    family === 'llama' ? { bos: 1, eos: 2, unk: 0 } : { pad: 0, eos: 1, bos: 2, unk: 3, eot: tokens.indexOf('<end_of_turn>') };
  return { tokens, types, special };
}

export function tinyArchitecture(spec: TinyModelSpec): ModelArchitecture {
  const hidden = spec.hiddenSize ?? 64;
  const heads = spec.heads ?? 4;
  return {
    model_type: spec.family,
    hidden_size: hidden,
    intermediate_size: spec.intermediateSize ?? 128,
    num_hidden_layers: spec.layers ?? 2,
    num_attention_heads: heads,
    num_key_value_heads: spec.kvHeads ?? (spec.family === 'llama' ? 2 : 1),
    head_dim: spec.headDim ?? (spec.family === 'llama' ? hidden / heads : 24),
    vocab_size: vocabulary(spec.family).tokens.length,
  };
}

export const hfLinearName = (layer: number, module: LoraModule) => `${modulePath(layer, module)}.weight`;

/**
 * Standard deviations (linear layers: gain / sqrt(in_features)). gemma multiplies embeddings by sqrt(hidden) and
 * reuses them as the output matrix, which makes the last input token predict itself with a margin of about
 * sqrt(hidden) · embed / (layer output size); small embeddings keep that echo from dominating greedy output, and
 * the final norm restores the logit spread.
 */
const MAGNITUDES = {
  llama: {
    embed: 1,
    finalNorm: 1,
    lmHead: 3,
    gains: { q_proj: 1.2, k_proj: 1.2, v_proj: 1, o_proj: 1, gate_proj: 1, up_proj: 1, down_proj: 1 },
  },
  gemma: {
    embed: 0.04,
    finalNorm: 10,
    lmHead: null, // tied to the embeddings
    gains: { q_proj: 1.2, k_proj: 1.2, v_proj: 1, o_proj: 1.5, gate_proj: 1, up_proj: 1, down_proj: 1.5 },
  },
} satisfies Record<
  TinyFamily,
  { embed: number; finalNorm: number; lmHead: number | null; gains: Record<LoraModule, number> }
>;

/**
 * Random weights with magnitudes chosen so that attention scores and logits spread by a few units: greedy
 * output then depends on the context rather than collapsing onto one token, and a LoRA visibly changes it.
 */
function randomHfWeights(arch: ModelArchitecture, seed: number): HfWeights {
  const rng = mulberry32(seed);
  const weights: HfWeights = new Map();
  /** Uniform with the given standard deviation around `center`. */
  const add = (name: string, shape: number[], std: number, center = 0) => {
    const data = new Float32Array(shape.reduce((a, b) => a * b, 1));
    const half = std * Math.sqrt(3);
    for (let i = 0; i < data.length; i++) data[i] = center + (rng() * 2 - 1) * half;
    weights.set(name, { shape, data });
  };
  const gemma = arch.model_type === 'gemma';
  const h = arch.hidden_size;
  const m = gemma ? MAGNITUDES.gemma : MAGNITUDES.llama;
  // HF gemma norms multiply by (1 + w), so their weights sit around 0; llama's around 1.
  const shift = gemma ? 1 : 0;
  add('model.embed_tokens.weight', [arch.vocab_size, h], m.embed);
  for (let layer = 0; layer < arch.num_hidden_layers; layer++) {
    add(`model.layers.${layer}.input_layernorm.weight`, [h], 0.1, 1 - shift);
    for (const module of LORA_MODULES) {
      if (module === 'gate_proj') add(`model.layers.${layer}.post_attention_layernorm.weight`, [h], 0.1, 1 - shift);
      const f = moduleFeatures(arch, module);
      add(hfLinearName(layer, module), [f.out, f.in], m.gains[module] / Math.sqrt(f.in));
    }
  }
  add('model.norm.weight', [h], 0.1, m.finalNorm - shift);
  if (m.lmHead !== null) add('lm_head.weight', [arch.vocab_size, h], m.lmHead / Math.sqrt(h));
  return weights;
}

/** The HF → GGUF tensor mapping of convert_hf_to_gguf for LlamaForCausalLM and GemmaForCausalLM. */
function hfToGgufTensors(weights: HfWeights, arch: ModelArchitecture): GgufTensorSpec[] {
  const gemma = arch.model_type === 'gemma';
  const get = (name: string) => {
    const t = weights.get(name);
    if (!t) throw new Error(`missing weight ${name}`);
    return t;
  };
  const tensor = (name: string, hfName: string, map: (data: Float32Array) => Float32Array = (d) => d): GgufTensorSpec => {
    const t = get(hfName);
    return { name, dims: [...t.shape].reverse(), type: 'F32', data: () => map(t.data) };
  };
  const norm = (name: string, hfName: string) => tensor(name, hfName, (d) => (gemma ? d.map((v) => v + 1) : d));

  const tensors = [tensor('token_embd.weight', 'model.embed_tokens.weight')];
  for (let layer = 0; layer < arch.num_hidden_layers; layer++) {
    tensors.push(norm(`blk.${layer}.attn_norm.weight`, `model.layers.${layer}.input_layernorm.weight`));
    tensors.push(norm(`blk.${layer}.ffn_norm.weight`, `model.layers.${layer}.post_attention_layernorm.weight`));
    for (const module of LORA_MODULES) {
      const heads = qkPermuteHeads(arch, module);
      const hfName = hfLinearName(layer, module);
      tensors.push(
        tensor(`blk.${layer}.${GGUF_MODULE_NAMES[module]}.weight`, hfName, (d) =>
          heads === null ? d : permuteQkRows(d, get(hfName).shape[0], heads),
        ),
      );
    }
  }
  tensors.push(norm('output_norm.weight', 'model.norm.weight'));
  // gemma ties the output matrix to the embeddings; llama.cpp reuses token_embd when output.weight is absent.
  if (!gemma) tensors.push(tensor('output.weight', 'lm_head.weight'));
  return tensors;
}

function ggufMetadata(arch: ModelArchitecture, contextLength: number, vocab: Vocabulary): GgufMetadata {
  const a = ggufArchitecture(arch.model_type);
  const gemma = arch.model_type === 'gemma';
  const metadata: GgufMetadata = {
    'general.architecture': gguf.str(a),
    'general.name': gguf.str(`tiny-${arch.model_type}`),
    'general.file_type': gguf.u32(0), // all F32
    [`${a}.context_length`]: gguf.u32(contextLength),
    [`${a}.embedding_length`]: gguf.u32(arch.hidden_size),
    [`${a}.block_count`]: gguf.u32(arch.num_hidden_layers),
    [`${a}.feed_forward_length`]: gguf.u32(arch.intermediate_size),
    [`${a}.attention.head_count`]: gguf.u32(arch.num_attention_heads),
    [`${a}.attention.head_count_kv`]: gguf.u32(arch.num_key_value_heads),
    [`${a}.attention.layer_norm_rms_epsilon`]: gguf.f32(gemma ? 1e-6 : 1e-5),
    [`${a}.attention.key_length`]: gguf.u32(arch.head_dim),
    [`${a}.attention.value_length`]: gguf.u32(arch.head_dim),
    [`${a}.rope.dimension_count`]: gguf.u32(arch.head_dim),
    [`${a}.rope.freq_base`]: gguf.f32(10000),
    'tokenizer.ggml.model': gguf.str('llama'),
    'tokenizer.ggml.tokens': gguf.strings(vocab.tokens),
    // SentencePiece merges prefer higher scores: longer pieces win.
    'tokenizer.ggml.scores': gguf.f32s(vocab.tokens.map((t, i) => (vocab.types[i] === TOKEN_TYPE.normal ? t.length : 0))),
    'tokenizer.ggml.token_type': gguf.i32s(vocab.types),
    'tokenizer.ggml.bos_token_id': gguf.u32(vocab.special.bos),
    'tokenizer.ggml.eos_token_id': gguf.u32(vocab.special.eos),
    'tokenizer.ggml.unknown_token_id': gguf.u32(vocab.special.unk),
    'tokenizer.ggml.add_bos_token': gguf.bool(true),
    'tokenizer.ggml.add_eos_token': gguf.bool(false),
  };
  if (vocab.special.pad !== undefined) metadata['tokenizer.ggml.padding_token_id'] = gguf.u32(vocab.special.pad);
  if (vocab.special.eot !== undefined) metadata['tokenizer.ggml.eot_token_id'] = gguf.u32(vocab.special.eot);
  if (gemma) metadata['tokenizer.ggml.add_space_prefix'] = gguf.bool(false);
  return metadata;
}

/**
 * Builds the tiny model. `transform` may edit the HF weights in place before conversion, e.g. to merge an
 * adapter with {@link mergePeftAdapter}.
 */
export function buildTinyModel(spec: TinyModelSpec, transform?: (weights: HfWeights) => void): TinyModel {
  const architecture = tinyArchitecture(spec);
  const vocab = vocabulary(spec.family);
  const hfWeights = randomHfWeights(architecture, spec.seed);
  transform?.(hfWeights);
  const metadata = ggufMetadata(architecture, spec.contextLength ?? 512, vocab);
  return { gguf: encodeGguf(metadata, hfToGgufTensors(hfWeights, architecture)), architecture, hfWeights, tokens: vocab.tokens };
}

export interface TinyCatalogEntry {
  name: string;
  description: string;
  task: { name: string };
  properties: { property_id: string; value: string }[];
  architecture: ModelArchitecture;
  limits: { max_lora_rank: number };
  engine: { type: 'llama-cpp'; model_path: string };
}

/** A models.json entry describing a tiny model file to the service. */
export function tinyModelCatalogEntry(opts: {
  name: string;
  description: string;
  architecture: ModelArchitecture;
  modelPath: string;
}): TinyCatalogEntry {
  return {
    name: opts.name,
    description: opts.description,
    task: { name: 'Text Generation' },
    properties: [{ property_id: 'lora', value: 'true' }],
    architecture: opts.architecture,
    limits: { max_lora_rank: 32 },
    engine: { type: 'llama-cpp', model_path: opts.modelPath },
  };
}

/** The tiny models scripts/make-tiny-models.ts writes, with their catalog names. */
export const TINY_MODELS: { file: string; name: string; description: string; spec: TinyModelSpec }[] = [
  {
    file: 'tiny-llama.gguf',
    name: '@cf/tiny/tiny-llama-lora',
    description: 'Tiny random-weight Llama (2 layers, grouped-query attention) for tests and local runs',
    spec: { family: 'llama', seed: 1 },
  },
  {
    file: 'tiny-gemma.gguf',
    name: '@cf/tiny/tiny-gemma-lora',
    description: 'Tiny random-weight Gemma (2 layers, multi-query attention) for tests and local runs',
    spec: { family: 'gemma', seed: 2 },
  },
];

/** Sample PEFT adapters for the tiny models, by catalog model name. */
export const TINY_SAMPLE_ADAPTERS: { name: string; model: string; adapter: Omit<PeftAdapterSpec, 'architecture'> }[] = [
  {
    name: 'tiny-llama-qv',
    model: '@cf/tiny/tiny-llama-lora',
    adapter: { r: 8, loraAlpha: 16, targetModules: ['q_proj', 'v_proj'], dtype: 'F16', seed: 101, magnitude: 0.1 },
  },
  {
    name: 'tiny-llama-all-rslora',
    model: '@cf/tiny/tiny-llama-lora',
    adapter: {
      r: 16,
      loraAlpha: 16,
      useRslora: true,
      targetModules: ['q_proj', 'k_proj', 'v_proj', 'o_proj', 'gate_proj', 'up_proj', 'down_proj'],
      dtype: 'F32',
      seed: 102,
      magnitude: 0.1,
    },
  },
  {
    name: 'tiny-gemma-attn',
    model: '@cf/tiny/tiny-gemma-lora',
    adapter: { r: 8, loraAlpha: 16, targetModules: ['q_proj', 'k_proj', 'v_proj', 'o_proj'], dtype: 'F16', seed: 103, magnitude: 0.1 },
  },
];
