/**
 * PEFT LoRA (safetensors) → llama.cpp GGUF LoRA adapter, following llama.cpp's `convert_lora_to_gguf.py`
 * and what `src/llama-adapter.cpp` checks when it loads the adapter.
 */
import { LORA_MODULES, moduleFeatures, type LoraModule, type ModelArchitecture, type ModelFamily } from './architecture.js';
import { loraTensorName, validateAdapterPair } from './adapter-validation.js';
import { gguf, GgufFileWriter, type GgufMetadata, type GgufTensorInfo } from './gguf-writer.js';
import { isTargeted, rankFor, scaleFor, type PeftLoraConfig } from './peft-config.js';
import { LITTLE_ENDIAN } from './float16.js';
import { decodeTensor, readSafetensors, tensorValues, type SafetensorsHeader } from './safetensors.js';

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
 * .swapaxes(1, 2)`, i.e. within each head, output row 2i+j is input row j*(head_dim/2)+i. Writes into `out`
 * (same length as `data`, not the same array), or a new array; with a `factor`, each value is also multiplied by it.
 */
export function permuteQkRows(
  data: Float32Array,
  rows: number,
  nHead: number,
  out: Float32Array = new Float32Array(data.length),
  factor = 1,
): Float32Array {
  const cols = data.length / rows;
  const half = rows / nHead / 2;
  if (!Number.isInteger(cols) || !Number.isInteger(half)) {
    throw new Error(`cannot permute ${rows} rows for ${nHead} heads`);
  }
  for (let h = 0; h < nHead; h++) {
    for (let i = 0; i < half; i++) {
      for (let j = 0; j < 2; j++) {
        const from = (h * 2 * half + j * half + i) * cols;
        const to = (h * 2 * half + 2 * i + j) * cols;
        if (factor === 1) out.set(data.subarray(from, from + cols), to);
        else for (let c = 0; c < cols; c++) out[to + c] = data[from + c] * factor;
      }
    }
  }
  return out;
}

/**
 * permuteQkRows (no factor) of an F32 tensor given as its bytes in pieces (as they arrived), into `out`, on a
 * little-endian host; `spare` holds at least one head's values. A row is short (r values), and a copy between two arrays needs a view of the
 * source per row, which costs more than the copy; so the rows are gathered into `out` itself, one head early (the
 * input of heads 1..n-1 where the output of heads 0..n-2 goes, head 0's in `spare`), and moved with copyWithin:
 * from the last head down, each head's output takes the place of the next head's input, moved already.
 */
export function permuteQkPieces(pieces: Uint8Array[], rows: number, nHead: number, out: Float32Array, spare: Float32Array): Float32Array {
  const cols = out.length / rows;
  const half = rows / nHead / 2;
  if (!Number.isInteger(cols) || !Number.isInteger(half)) {
    throw new Error(`cannot permute ${rows} rows for ${nHead} heads`);
  }
  const given = pieces.reduce((n, piece) => n + piece.length, 0);
  if (given !== out.byteLength) throw new RangeError(`${given} bytes for ${out.length} values`);
  const head = 2 * half * cols;
  const firstHead = spare.subarray(0, head);
  const first = new Uint8Array(firstHead.buffer, firstHead.byteOffset, firstHead.byteLength);
  const rest = new Uint8Array(out.buffer, out.byteOffset, out.byteLength - first.length);
  let at = 0;
  for (const piece of pieces) {
    const inFirst = Math.min(piece.length, Math.max(0, first.length - at));
    if (inFirst > 0) first.set(piece.subarray(0, inFirst), at);
    if (inFirst < piece.length) rest.set(piece.subarray(inFirst), at + inFirst - first.length);
    at += piece.length;
  }
  for (let h = nHead - 1; h >= 0; h--) {
    for (let i = 0; i < half; i++) {
      for (let j = 0; j < 2; j++) {
        const from = (j * half + i) * cols;
        const to = h * head + (2 * i + j) * cols;
        if (h === 0) out.set(firstHead.subarray(from, from + cols), to);
        else out.copyWithin(to, (h - 1) * head + from, (h - 1) * head + from + cols);
      }
    }
  }
  return out;
}

export interface PeftToGgufInput {
  /**
   * adapter_model.safetensors: its bytes in order, e.g. a download, a file stream or `[bytes]`. Chunks may be written
   * out as they are after the next ones are read, so the source must leave a chunk alone once yielded (streams and
   * arrays do).
   */
  safetensors: AsyncIterable<Uint8Array> | Iterable<Uint8Array>;
  config: PeftLoraConfig;
  architecture: ModelArchitecture;
}

/** One tensor of the GGUF adapter, made from one tensor of the PEFT adapter. */
export interface GgufLoraTensor extends GgufTensorInfo {
  /** The safetensors tensor it is made from. */
  source: string;
  /** What its values are multiplied by: lora_b's scale correction, 1 for lora_a. */
  factor: number;
  /** Head count of q/k lora_b, whose rows permuteQkRows puts in llama.cpp's order; null for the others. */
  permuteHeads: number | null;
}

/** Writes the GGUF values of `tensor` into `out` (returned), from its source tensor's values (left unchanged). */
export function convertLoraTensor(tensor: GgufLoraTensor, values: Float32Array, out: Float32Array): Float32Array {
  const { factor, permuteHeads } = tensor;
  if (permuteHeads !== null) return permuteQkRows(values, tensor.dims[1], permuteHeads, out, factor);
  if (factor === 1) out.set(values);
  else for (let i = 0; i < values.length; i++) out[i] = values[i] * factor;
  return out;
}

export interface GgufLoraPlan {
  metadata: GgufMetadata;
  /** In GGUF order. */
  tensors: GgufLoraTensor[];
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
export function planPeftToGguf(header: SafetensorsHeader, config: PeftLoraConfig, architecture: ModelArchitecture): GgufLoraPlan {
  validateAdapterPair(header, config, architecture);
  const alpha = Math.fround(config.loraAlpha);
  const tensors: GgufLoraTensor[] = [];
  for (let layer = 0; layer < architecture.num_hidden_layers; layer++) {
    for (const module of LORA_MODULES) {
      if (!isTargeted(config, layer, module)) continue;
      const r = rankFor(config, layer, module);
      const { in: inF, out: outF } = moduleFeatures(architecture, module);
      const factor = scaleFor(config, layer, module) / (alpha ? alpha / r : 1);
      const heads = qkPermuteHeads(architecture, module);
      const base = `blk.${layer}.${GGUF_MODULE_NAMES[module]}.weight`;
      tensors.push(
        { name: `${base}.lora_a`, dims: [inF, r], type: 'F32', source: loraTensorName(layer, module, 'A'), factor: 1, permuteHeads: null },
        { name: `${base}.lora_b`, dims: [r, outF], type: 'F32', source: loraTensorName(layer, module, 'B'), factor, permuteHeads: heads },
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

/**
 * Converts the adapter as its bytes arrive and writes the GGUF adapter to `outPath`; returns the file size. Each
 * tensor is converted once its bytes are in, straight into the writer's buffer, and written at its place in the
 * GGUF file: memory holds a few tensors whatever the adapter's size, no buffer is allocated per tensor, and reading,
 * converting and writing overlap. Of an F32 adapter without scaling, the tensors stored as they arrive are written
 * from the chunks they arrived in, never copied in this process, and the permuted ones (q/k lora_b) are copied once,
 * from those chunks into the writer's buffer, and put in order there. A file left by a failure is the caller's to
 * remove.
 */
export async function convertPeftToGguf({ safetensors, config, architecture }: PeftToGgufInput, outPath: string): Promise<number> {
  const output: { writer?: GgufFileWriter; bySource?: Map<string, GgufLoraTensor> } = {};
  // Decoded values of a tensor that is permuted or scaled on its way into the writer's buffer.
  let scratch = new Float32Array(0);
  try {
    await readSafetensors(safetensors, {
      header: async (header) => {
        const plan = planPeftToGguf(header, config, architecture);
        output.bySource = new Map(plan.tensors.map((t) => [t.source, t]));
        output.writer = await GgufFileWriter.create(outPath, plan.metadata, plan.tensors);
      },
      inPieces: {
        wanted: (info) => {
          const tensor = output.bySource!.get(info.name);
          return tensor !== undefined && takenInPieces(tensor, info.dtype);
        },
        tensor: async (info, pieces) => {
          const tensor = output.bySource!.get(info.name)!;
          const heads = tensor.permuteHeads;
          if (heads === null) return output.writer!.writePieces(tensor.name, pieces);
          await output.writer!.write(tensor.name, (out) => {
            if (scratch.length < out.length / heads) scratch = new Float32Array(out.length / heads);
            permuteQkPieces(pieces, tensor.dims[1], heads, out, scratch);
          });
        },
      },
      tensor: async (info, bytes) => {
        const tensor = output.bySource!.get(info.name);
        if (tensor === undefined) return;
        await output.writer!.write(tensor.name, (out) => {
          if (tensor.factor === 1 && tensor.permuteHeads === null) {
            decodeTensor(info, bytes, out);
            return;
          }
          if (scratch.length < out.length) scratch = new Float32Array(out.length);
          convertLoraTensor(tensor, tensorValues(info, bytes, scratch.subarray(0, out.length)), out);
        });
      },
    });
    // readSafetensors returns only after a valid header, so the writer exists.
    return await output.writer!.finish();
  } finally {
    await output.writer?.close();
  }
}

/**
 * Whether a tensor is handed over as the pieces it arrived in: F32 bytes that are only copied, so that they are
 * written from those pieces (neither scaled nor permuted: the GGUF tensor's bytes are its source's, both being
 * little-endian) or gathered once straight into the writer's buffer (permuted, on a little-endian host).
 */
function takenInPieces(tensor: GgufLoraTensor, dtype: string): boolean {
  if (dtype !== 'F32' || tensor.type !== 'F32' || tensor.factor !== 1) return false;
  return tensor.permuteHeads === null || LITTLE_ENDIAN;
}
