/**
 * PEFT LoRA (safetensors) → llama.cpp GGUF LoRA adapter, following llama.cpp's `convert_lora_to_gguf.py`
 * and what `src/llama-adapter.cpp` checks when it loads the adapter.
 */
import { LORA_MODULES, moduleFeatures, type LoraModule, type ModelArchitecture, type ModelFamily } from './architecture.js';
import { loraTensorName, validateAdapterPair } from './adapter-validation.js';
import { gguf, writeGgufFile, type GgufMetadata, type GgufTensorSpec } from './gguf-writer.js';
import { isTargeted, rankFor, scaleFor, type PeftLoraConfig } from './peft-config.js';
import { decodeTensor, validateSafetensors, type SafetensorsHeader } from './safetensors.js';

/** llama.cpp tensor name (`blk.{i}.<name>.weight`) of each PEFT target module. */
export const GGUF_MODULE_NAMES: Record<LoraModule, string> = {
  q_proj: 'attn_q',
  k_proj: 'attn_k',
  v_proj: 'attn_v',
  o_proj: 'attn_output',
  gate_proj: 'ffn_gate',
  up_proj: 'ffn_up',
  down_proj: 'ffn_down',
};

/** llama.cpp runs Mistral 7B as `llama`. */
export function ggufArchitecture(family: ModelFamily): 'llama' | 'gemma' {
  return family === 'gemma' ? 'gemma' : 'llama';
}

/**
 * Head count that convert_hf_to_gguf's `LlamaModel.permute` uses for this module's rows (n_head for q,
 * n_head_kv for k), or null when the rows keep their Hugging Face order. llama.cpp's `llama` arch uses
 * interleaved RoPE pairs while HF rotates halves; gemma uses NeoX RoPE, which matches HF.
 */
export function qkPermuteHeads(arch: ModelArchitecture, module: LoraModule): number | null {
  if (arch.model_type === 'gemma') return null;
  if (module === 'q_proj') return arch.num_attention_heads;
  if (module === 'k_proj') return arch.num_key_value_heads;
  return null;
}

/**
 * `LlamaModel.permute` on a row-major [rows, cols] matrix: `reshape(n_head, 2, rows/n_head/2, cols)
 * .swapaxes(1, 2)`, i.e. within each head, output row 2i+j is input row j*(head_dim/2)+i.
 */
export function permuteQkRows(data: Float32Array, rows: number, nHead: number): Float32Array {
  const cols = data.length / rows;
  const half = rows / nHead / 2;
  if (!Number.isInteger(cols) || !Number.isInteger(half)) {
    throw new Error(`cannot permute ${rows} rows for ${nHead} heads`);
  }
  const out = new Float32Array(data.length);
  for (let h = 0; h < nHead; h++) {
    for (let i = 0; i < half; i++) {
      for (let j = 0; j < 2; j++) {
        const from = (h * 2 * half + j * half + i) * cols;
        const to = (h * 2 * half + 2 * i + j) * cols;
        out.set(data.subarray(from, from + cols), to);
      }
    }
  }
  return out;
}

export interface PeftToGgufInput {
  /** The whole adapter_model.safetensors file. */
  safetensors: Uint8Array;
  /** Its already validated header, to skip parsing it again. */
  header?: SafetensorsHeader;
  config: PeftLoraConfig;
  architecture: ModelArchitecture;
}

export interface GgufLoraPlan {
  metadata: GgufMetadata;
  /** Lazy: each tensor is decoded, permuted and scaled only when written. */
  tensors: GgufTensorSpec[];
  /** The `adapter.lora.alpha` written. */
  alpha: number;
}

/**
 * Validates the adapter's tensors against the config and architecture (throwing AdapterFormatError) and
 * describes the GGUF adapter.
 *
 * Scales: llama.cpp multiplies every pair by `alpha / r`, with one global `adapter.lora.alpha` and r taken
 * from lora_b's rank dimension (`alpha == 0` means a factor of 1). PEFT's scale can differ per module (rsLoRA
 * alpha/√r, rank_pattern, alpha_pattern), so the plan writes alpha = lora_alpha and folds each module's
 * remaining factor, scaleFor(...) / (alpha / r), into lora_b. Plain LoRA gets a factor of exactly 1.
 */
export function planPeftToGguf({ safetensors, header, config, architecture }: PeftToGgufInput): GgufLoraPlan {
  const st = header ?? validateSafetensors(safetensors);
  validateAdapterPair(st, config, architecture);
  const alpha = Math.fround(config.loraAlpha);
  const tensors: GgufTensorSpec[] = [];
  for (let layer = 0; layer < architecture.num_hidden_layers; layer++) {
    for (const module of LORA_MODULES) {
      if (!isTargeted(config, layer, module)) continue;
      const r = rankFor(config, layer, module);
      const { in: inF, out: outF } = moduleFeatures(architecture, module);
      const factor = scaleFor(config, layer, module) / (alpha ? alpha / r : 1);
      const heads = qkPermuteHeads(architecture, module);
      const base = `blk.${layer}.${GGUF_MODULE_NAMES[module]}.weight`;
      tensors.push(
        {
          name: `${base}.lora_a`,
          dims: [inF, r],
          type: 'F32',
          data: () => decodeTensor(safetensors, st, loraTensorName(layer, module, 'A')),
        },
        {
          name: `${base}.lora_b`,
          dims: [r, outF],
          type: 'F32',
          data: () => {
            const b = decodeTensor(safetensors, st, loraTensorName(layer, module, 'B'));
            if (factor !== 1) for (let i = 0; i < b.length; i++) b[i] *= factor;
            return heads === null ? b : permuteQkRows(b, outF, heads);
          },
        },
      );
    }
  }

  const metadata: GgufMetadata = {
    'general.architecture': gguf.str(ggufArchitecture(architecture.model_type)),
    'general.type': gguf.str('adapter'),
    'adapter.type': gguf.str('lora'),
    'adapter.lora.alpha': gguf.f32(alpha),
  };
  return { metadata, tensors, alpha };
}

/** Converts and streams the GGUF adapter to `outPath`; returns the file size. */
export async function convertPeftToGguf(input: PeftToGgufInput, outPath: string): Promise<number> {
  const { metadata, tensors } = planPeftToGguf(input);
  return writeGgufFile(outPath, metadata, tensors);
}
