import { createReadStream } from 'node:fs';
import { mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { loraTensorName } from '../../../src/formats/adapter-validation.js';
import { LLAMA_2_7B, LORA_MODULES, moduleFeatures, type LoraModule, type ModelArchitecture } from '../../../src/formats/architecture.js';
import { AdapterFormatError } from '../../../src/formats/format-error.js';
import { encodeGguf, gguf, type GgufTensorSpec } from '../../../src/formats/gguf-writer.js';
import { readGguf, readGgufTensor } from '../../helpers/gguf-reader.js';
import {
  convertPeftToGguf,
  permuteQkPieces,
  permuteQkRows,
  planPeftToGguf,
  qkPermuteHeads,
} from '../../../src/formats/lora-to-gguf.js';
import { buildPeftAdapter, type PeftAdapterSpec } from '../../../src/demo/peft-adapter.js';
import { isTargeted, parsePeftConfig, rankFor, scaleFor, type PeftLoraConfig } from '../../../src/formats/peft-config.js';
import { TINY_MODELS, TINY_SAMPLE_ADAPTERS, tinyArchitecture } from '../../../src/demo/tiny-model.js';
import { decodeFileTensor, validateSafetensors } from '../../helpers/safetensors.js';

const llamaArch: ModelArchitecture = {
  model_type: 'llama',
  hidden_size: 64,
  intermediate_size: 96,
  num_hidden_layers: 2,
  num_attention_heads: 4,
  num_key_value_heads: 2,
  head_dim: 16,
  vocab_size: 300,
};
const mistralArch: ModelArchitecture = { ...llamaArch, model_type: 'mistral' };
// q_proj is 64 -> 96 here, like gemma-7b's 3072 -> 4096.
const gemmaArch: ModelArchitecture = { ...llamaArch, model_type: 'gemma', num_key_value_heads: 1, head_dim: 24 };

function adapter(spec: Omit<PeftAdapterSpec, 'seed'> & { seed?: number }) {
  const built = buildPeftAdapter({ seed: 7, dtype: 'F32', magnitude: 0.5, ...spec });
  const { config } = parsePeftConfig(built.configJson, { architecture: spec.architecture, maxLoraRank: 32 });
  return { ...built, config };
}

let dir: string;
let files = 0;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'lora-to-gguf-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

/** The bytes in chunks of `size`, as a download or file stream delivers them. */
async function* chunked(bytes: Uint8Array, size: number) {
  for (let i = 0; i < bytes.length; i += size) yield bytes.slice(i, i + size);
}

/** Converts, streaming the safetensors in chunks of `chunk` bytes, and reads the result back with the GGUF reader. */
async function convert(a: ReturnType<typeof adapter>, architecture: ModelArchitecture, chunk = 4096) {
  const path = join(dir, `${files++}.gguf`);
  const size = await convertPeftToGguf({ safetensors: chunked(a.safetensors, chunk), config: a.config, architecture }, path);
  const bytes = await readFile(path);
  expect(size).toBe(bytes.length);
  const file = readGguf(bytes);
  return { bytes, file, tensor: (name: string) => readGgufTensor(bytes, file, name) };
}

const raw = (a: { safetensors: Uint8Array }, layer: number, module: LoraModule, matrix: 'A' | 'B') =>
  decodeFileTensor(a.safetensors, validateSafetensors(a.safetensors), loraTensorName(layer, module, matrix));

/**
 * Independent restatement of convert_hf_to_gguf's `LlamaModel.permute` through explicit strides: view the rows as
 * an array of shape (n_head, 2, half) and read it in (n_head, half, 2) order.
 */
function naivePermute(data: Float32Array, rows: number, nHead: number): Float32Array {
  const cols = data.length / rows;
  const half = rows / nHead / 2;
  const source: number[] = [];
  for (let h = 0; h < nHead; h++) for (let i = 0; i < half; i++) for (let j = 0; j < 2; j++) source.push(h * 2 * half + j * half + i);
  const out = new Float32Array(data.length);
  source.forEach((from, to) => {
    for (let c = 0; c < cols; c++) out[to * cols + c] = data[from * cols + c];
  });
  return out;
}

const rowIds = (rows: number, cols = 1) => Float32Array.from({ length: rows * cols }, (_, i) => Math.floor(i / cols));

describe('permuteQkRows', () => {
  it('interleaves the two rotary halves of each head (HF rotate-half → llama.cpp pairs)', () => {
    // one head of 6: rows (0,3) (1,4) (2,5) are the rotary pairs in HF order
    expect([...permuteQkRows(rowIds(6), 6, 1)]).toEqual([0, 3, 1, 4, 2, 5]);
    expect([...permuteQkRows(rowIds(8), 8, 2)]).toEqual([0, 2, 1, 3, 4, 6, 5, 7]);
    expect([...permuteQkRows(rowIds(4, 3), 4, 1)]).toEqual([0, 0, 0, 2, 2, 2, 1, 1, 1, 3, 3, 3]);
  });

  it('matches the naive implementation on random matrices of several shapes', () => {
    for (const [rows, cols, heads] of [[16, 3, 2], [48, 5, 4], [32, 8, 1], [24, 1, 3]]) {
      const data = Float32Array.from({ length: rows * cols }, (_, i) => Math.sin(i * 12.9898) * 43758.5453);
      expect(permuteQkRows(data, rows, heads)).toEqual(naivePermute(data, rows, heads));
    }
  });

  it('rejects row counts that do not split into head pairs', () => {
    expect(() => permuteQkRows(new Float32Array(10), 10, 2)).toThrow('cannot permute');
  });

  it('applies to q with n_head and k with n_head_kv for llama and mistral, never for gemma', () => {
    for (const arch of [llamaArch, mistralArch]) {
      expect(LORA_MODULES.map((m) => qkPermuteHeads(arch, m))).toEqual([4, 2, null, null, null, null, null]);
    }
    expect(LORA_MODULES.map((m) => qkPermuteHeads(gemmaArch, m))).toEqual(LORA_MODULES.map(() => null));
  });
});

describe('permuteQkPieces', () => {
  /** The bytes of `data`, copied and cut at `cuts`, as a source's chunks would hold them. */
  const piecesOf = (data: Float32Array, cuts: number[]) => {
    const bytes = new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
    const points = [0, ...cuts.filter((c) => c < bytes.length), bytes.length];
    return points.slice(1).map((end, i) => bytes.slice(points[i], end));
  };

  it('writes the bits permuteQkRows does, from pieces cut anywhere, signalling NaNs included', () => {
    for (const [rows, cols, heads] of [[16, 3, 2], [48, 5, 4], [32, 8, 1], [24, 1, 3], [64, 72, 8]]) {
      const data = Float32Array.from({ length: rows * cols }, (_, i) => Math.sin(i * 12.9898) * 43758.5453);
      // A signalling NaN, which a copy through a float64 would quieten.
      new Uint32Array(data.buffer)[cols] = 0x7fa00001;
      const expected = new Uint8Array(permuteQkRows(data, rows, heads).buffer);
      const length = data.byteLength;
      for (const cuts of [[], [1, 2, 3], [7, length / 2 + 1, length - 1], Array.from({ length: 40 }, (_, i) => i * 13)]) {
        const out = new Float32Array(data.length);
        permuteQkPieces(piecesOf(data, cuts), rows, heads, out, new Float32Array(data.length));
        expect(new Uint8Array(out.buffer)).toEqual(expected);
      }
    }
  });

  it('rejects pieces that do not hold exactly the tensor', () => {
    const data = new Float32Array(16);
    const spare = new Float32Array(16);
    expect(() => permuteQkPieces(piecesOf(data, []).map((p) => p.subarray(1)), 16, 2, new Float32Array(16), spare)).toThrow('63 bytes for 16 values');
    expect(() => permuteQkPieces([...piecesOf(data, []), new Uint8Array(4)], 16, 2, new Float32Array(16), spare)).toThrow('68 bytes for 16 values');
    expect(() => permuteQkPieces(piecesOf(new Float32Array(10), []), 10, 2, new Float32Array(10), spare)).toThrow('cannot permute');
  });
});

describe('planPeftToGguf', () => {
  it('writes adapter metadata and llama.cpp tensor names, dims and types', async () => {
    const a = adapter({ architecture: llamaArch, r: 8, loraAlpha: 16, targetModules: [...LORA_MODULES] });
    const { file } = await convert(a, llamaArch);
    expect(file.metadata).toEqual({
      'general.architecture': { type: 'string', value: 'llama' },
      'general.type': { type: 'string', value: 'adapter' },
      'adapter.type': { type: 'string', value: 'lora' },
      'adapter.lora.alpha': { type: 'f32', value: 16 },
    });
    expect(planPeftToGguf(validateSafetensors(a.safetensors), a.config, llamaArch).alpha).toBe(16);
    const gguf = ['attn_q', 'attn_k', 'attn_v', 'attn_output', 'ffn_gate', 'ffn_up', 'ffn_down'];
    const dims = { attn_q: [64, 64], attn_k: [64, 32], attn_v: [64, 32], attn_output: [64, 64], ffn_gate: [64, 96], ffn_up: [64, 96], ffn_down: [96, 64] };
    const expected = [0, 1].flatMap((layer) =>
      gguf.flatMap((name) => {
        const [inF, outF] = dims[name as keyof typeof dims];
        return [
          { name: `blk.${layer}.${name}.weight.lora_a`, dims: [inF, 8], type: 0 },
          { name: `blk.${layer}.${name}.weight.lora_b`, dims: [8, outF], type: 0 },
        ];
      }),
    );
    expect(file.tensors.map(({ name, dims, type }) => ({ name, dims, type }))).toEqual(expected);
  });

  it('names the llama architecture for mistral and gemma for gemma, with gemma’s q_proj features', async () => {
    const m = await convert(adapter({ architecture: mistralArch, r: 4, loraAlpha: 8, targetModules: ['q_proj'] }), mistralArch);
    expect(m.file.metadata['general.architecture']).toEqual({ type: 'string', value: 'llama' });
    const g = await convert(adapter({ architecture: gemmaArch, r: 4, loraAlpha: 8, targetModules: ['q_proj', 'o_proj'] }), gemmaArch);
    expect(g.file.metadata['general.architecture']).toEqual({ type: 'string', value: 'gemma' });
    expect(g.file.tensors.filter((t) => t.name.startsWith('blk.0.')).map((t) => [t.name, t.dims])).toEqual([
      ['blk.0.attn_q.weight.lora_a', [64, 4]],
      ['blk.0.attn_q.weight.lora_b', [4, 96]],
      ['blk.0.attn_output.weight.lora_a', [96, 4]],
      ['blk.0.attn_output.weight.lora_b', [4, 64]],
    ]);
  });

  it('only converts the targeted layers', async () => {
    const a = adapter({ architecture: llamaArch, r: 4, loraAlpha: 8, targetModules: ['v_proj'], layers: [1] });
    expect((await convert(a, llamaArch)).file.tensors.map((t) => t.name)).toEqual(['blk.1.attn_v.weight.lora_a', 'blk.1.attn_v.weight.lora_b']);
  });

  it('copies lora_a and unpermuted lora_b exactly and permutes q/k lora_b rows (llama)', async () => {
    const a = adapter({ architecture: llamaArch, r: 8, loraAlpha: 16, targetModules: [...LORA_MODULES] });
    const { tensor } = await convert(a, llamaArch);
    for (const layer of [0, 1]) {
      for (const [module, name] of [['q_proj', 'attn_q'], ['k_proj', 'attn_k'], ['v_proj', 'attn_v'], ['down_proj', 'ffn_down']] as const) {
        expect(tensor(`blk.${layer}.${name}.weight.lora_a`)).toEqual(raw(a, layer, module, 'A'));
      }
      expect(tensor(`blk.${layer}.attn_q.weight.lora_b`)).toEqual(naivePermute(raw(a, layer, 'q_proj', 'B'), 64, 4));
      expect(tensor(`blk.${layer}.attn_k.weight.lora_b`)).toEqual(naivePermute(raw(a, layer, 'k_proj', 'B'), 32, 2));
      expect(tensor(`blk.${layer}.attn_k.weight.lora_b`)).not.toEqual(naivePermute(raw(a, layer, 'k_proj', 'B'), 32, 4));
      expect(tensor(`blk.${layer}.attn_v.weight.lora_b`)).toEqual(raw(a, layer, 'v_proj', 'B'));
      expect(tensor(`blk.${layer}.ffn_down.weight.lora_b`)).toEqual(raw(a, layer, 'down_proj', 'B'));
    }
  });

  it('leaves gemma q/k lora_b rows in Hugging Face order', async () => {
    const a = adapter({ architecture: gemmaArch, r: 4, loraAlpha: 4, targetModules: ['q_proj', 'k_proj'] });
    const { tensor } = await convert(a, gemmaArch);
    expect(tensor('blk.0.attn_q.weight.lora_b')).toEqual(raw(a, 0, 'q_proj', 'B'));
    expect(tensor('blk.1.attn_k.weight.lora_b')).toEqual(raw(a, 1, 'k_proj', 'B'));
  });

  it('decodes F16 and BF16 adapters to F32 output', async () => {
    for (const dtype of ['F16', 'BF16'] as const) {
      const a = adapter({ architecture: gemmaArch, r: 2, loraAlpha: 2, targetModules: ['up_proj'], dtype });
      const { file, tensor } = await convert(a, gemmaArch);
      expect(new Set(file.tensors.map((t) => t.type))).toEqual(new Set([0]));
      expect(tensor('blk.1.ffn_up.weight.lora_b')).toEqual(raw(a, 1, 'up_proj', 'B'));
    }
  });

  describe('folds per-module scale corrections into lora_b', () => {
    // llama.cpp scales every pair by alpha / r with the one written alpha and r = lora_b's rank dimension.
    const cases: { name: string; spec: Partial<PeftAdapterSpec>; expected: Partial<Record<LoraModule, { r: number; peftScale: number; factor: number }>> }[] = [
      {
        name: 'plain LoRA needs no correction',
        spec: { r: 4, loraAlpha: 8 },
        expected: { q_proj: { r: 4, peftScale: 2, factor: 1 }, v_proj: { r: 4, peftScale: 2, factor: 1 } },
      },
      {
        name: 'rsLoRA scales by alpha / sqrt(r)',
        spec: { r: 4, loraAlpha: 8, useRslora: true },
        expected: { q_proj: { r: 4, peftScale: 4, factor: 2 }, v_proj: { r: 4, peftScale: 4, factor: 2 } },
      },
      {
        name: 'rank_pattern changes r, which llama.cpp reads from the tensor',
        spec: { r: 4, loraAlpha: 8, rankPattern: { q_proj: 2 } },
        expected: { q_proj: { r: 2, peftScale: 4, factor: 1 }, v_proj: { r: 4, peftScale: 2, factor: 1 } },
      },
      {
        name: 'alpha_pattern changes alpha for matching modules only',
        spec: { r: 4, loraAlpha: 8, alphaPattern: { 'layers.1.self_attn.v_proj': 32 } },
        expected: { q_proj: { r: 4, peftScale: 2, factor: 1 }, v_proj: { r: 4, peftScale: 8, factor: 4 } },
      },
      {
        name: 'rsLoRA with rank_pattern and alpha_pattern',
        spec: { r: 8, loraAlpha: 8, useRslora: true, rankPattern: { q_proj: 2 }, alphaPattern: { v_proj: 2 } },
        expected: {
          q_proj: { r: 2, peftScale: 8 / Math.SQRT2, factor: Math.SQRT2 },
          v_proj: { r: 8, peftScale: 2 / Math.sqrt(8), factor: 2 / Math.sqrt(8) },
        },
      },
    ];

    it.each(cases)('$name', async ({ spec, expected }) => {
      const a = adapter({ architecture: gemmaArch, targetModules: ['q_proj', 'v_proj'], r: 4, loraAlpha: 8, ...spec });
      const { file, tensor } = await convert(a, gemmaArch);
      const alpha = (file.metadata['adapter.lora.alpha'] as { value: number }).value;
      expect(alpha).toBe(spec.loraAlpha);
      for (const [module, { r, peftScale, factor }] of Object.entries(expected) as [LoraModule, { r: number; peftScale: number; factor: number }][]) {
        const name = module === 'q_proj' ? 'attn_q' : 'attn_v';
        const b = file.tensors.find((t) => t.name === `blk.1.${name}.weight.lora_b`)!;
        expect(b.dims[0]).toBe(r);
        // what llama.cpp will apply, times the folded factor, is PEFT's scale
        expect(((alpha / r) * factor) / peftScale).toBeCloseTo(1, 12);
        const want = raw(a, 1, module, 'B').map((v) => v * factor);
        const got = tensor(`blk.1.${name}.weight.lora_b`);
        got.forEach((v, i) => expect(v).toBeCloseTo(want[i], 6));
        expect(tensor(`blk.1.${name}.weight.lora_a`)).toEqual(raw(a, 1, module, 'A'));
      }
    });

    it('folds after permuting consistently (llama rsLoRA q)', async () => {
      const a = adapter({ architecture: llamaArch, r: 4, loraAlpha: 8, useRslora: true, targetModules: ['q_proj'] });
      const got = (await convert(a, llamaArch)).tensor('blk.0.attn_q.weight.lora_b');
      expect(got).toEqual(naivePermute(raw(a, 0, 'q_proj', 'B').map((v) => v * 2), 64, 4));
    });
  });

  it('rejects weights that disagree with the config, before creating the GGUF file', async () => {
    const a = adapter({ architecture: llamaArch, r: 4, loraAlpha: 8, targetModules: ['q_proj', 'v_proj'] });
    const other = adapter({ architecture: llamaArch, r: 4, loraAlpha: 8, targetModules: ['q_proj'] });
    expect(() => planPeftToGguf(validateSafetensors(a.safetensors), other.config, llamaArch)).toThrow(AdapterFormatError);
    const wrongRank = adapter({ architecture: llamaArch, r: 8, loraAlpha: 8, targetModules: ['q_proj'] });
    expect(() => planPeftToGguf(validateSafetensors(wrongRank.safetensors), other.config, llamaArch)).toThrow(AdapterFormatError);
    const path = join(dir, 'refused.gguf');
    await expect(convertPeftToGguf({ safetensors: chunked(a.safetensors, 64), config: other.config, architecture: llamaArch }, path)).rejects.toThrow(
      AdapterFormatError,
    );
    await expect(stat(path)).rejects.toThrow('ENOENT');
  });
});

/**
 * The GGUF adapter as the converter wrote it when it held the whole safetensors file in memory, restated with this
 * file's own permutation: names and dims per targeted module, lora_b times PEFT's scale over llama.cpp's alpha / r
 * (in float32, then permuted), all tensors F32.
 */
function referenceGguf(a: { safetensors: Uint8Array; config: PeftLoraConfig }, arch: ModelArchitecture): Buffer {
  const header = validateSafetensors(a.safetensors);
  const ggufNames = { q_proj: 'attn_q', k_proj: 'attn_k', v_proj: 'attn_v', o_proj: 'attn_output', gate_proj: 'ffn_gate', up_proj: 'ffn_up', down_proj: 'ffn_down' };
  const alpha = Math.fround(a.config.loraAlpha);
  const tensors: GgufTensorSpec[] = [];
  for (let layer = 0; layer < arch.num_hidden_layers; layer++) {
    for (const module of LORA_MODULES) {
      if (!isTargeted(a.config, layer, module)) continue;
      const r = rankFor(a.config, layer, module);
      const { in: inF, out: outF } = moduleFeatures(arch, module);
      const factor = scaleFor(a.config, layer, module) / (alpha ? alpha / r : 1);
      const rotary = arch.model_type !== 'gemma';
      const heads = rotary && module === 'q_proj' ? arch.num_attention_heads : rotary && module === 'k_proj' ? arch.num_key_value_heads : null;
      const name = `blk.${layer}.${ggufNames[module]}.weight`;
      const decoded = (matrix: 'A' | 'B') => decodeFileTensor(a.safetensors, header, loraTensorName(layer, module, matrix));
      tensors.push(
        { name: `${name}.lora_a`, dims: [inF, r], type: 'F32', data: () => decoded('A') },
        {
          name: `${name}.lora_b`,
          dims: [r, outF],
          type: 'F32',
          data: () => {
            const b = decoded('B').map((v) => v * factor);
            return heads === null ? b : naivePermute(b, outF, heads);
          },
        },
      );
    }
  }
  const metadata = {
    'general.architecture': gguf.str(arch.model_type === 'gemma' ? 'gemma' : 'llama'),
    'general.type': gguf.str('adapter'),
    'adapter.type': gguf.str('lora'),
    'adapter.lora.alpha': gguf.f32(alpha),
  };
  return encodeGguf(metadata, tensors);
}

describe('convertPeftToGguf', () => {
  const tinyCases = TINY_SAMPLE_ADAPTERS.map(({ name, model, adapter: spec }) => {
    const architecture = tinyArchitecture(TINY_MODELS.find((m) => m.name === model)!.spec);
    return { name, architecture, spec: { ...spec, architecture } };
  });
  const llamaTiny = tinyCases[0].architecture;
  const cases = [
    ...tinyCases,
    {
      name: 'BF16 rsLoRA with rank and alpha patterns',
      architecture: llamaTiny,
      spec: { architecture: llamaTiny, r: 8, loraAlpha: 8, useRslora: true, rankPattern: { q_proj: 2 }, alphaPattern: { v_proj: 2 }, targetModules: ['q_proj', 'k_proj', 'v_proj', 'down_proj'] as LoraModule[], dtype: 'BF16' as const, seed: 5 },
    },
    {
      name: 'F32 on some layers of llama-shaped mistral',
      architecture: mistralArch,
      spec: { architecture: mistralArch, r: 4, loraAlpha: 3, layers: [1], targetModules: [...LORA_MODULES], dtype: 'F32' as const, seed: 6 },
    },
  ];

  it.each(cases)('writes the reference bytes for $name, in chunks of any size', async ({ architecture, spec }) => {
    const a = adapter(spec);
    const expected = referenceGguf(a, architecture);
    for (const chunk of [1, 100, 4096, a.safetensors.length]) {
      const { bytes } = await convert(a, architecture, chunk);
      expect(bytes.equals(expected)).toBe(true);
    }
  });

  it('converts from a file stream', async () => {
    const a = adapter({ architecture: llamaArch, r: 8, loraAlpha: 16, targetModules: [...LORA_MODULES], useRslora: true });
    const source = join(dir, 'adapter_model.safetensors');
    await writeFile(source, a.safetensors);
    const path = join(dir, 'from-file.gguf');
    const size = await convertPeftToGguf({ safetensors: createReadStream(source, { highWaterMark: 1000 }), config: a.config, architecture: llamaArch }, path);
    const written = await readFile(path);
    expect(size).toBe(written.length);
    expect(written.equals(referenceGguf(a, llamaArch))).toBe(true);
  });

  it('never changes the bytes it reads', async () => {
    const a = adapter({ architecture: llamaArch, r: 8, loraAlpha: 16, targetModules: [...LORA_MODULES], useRslora: true, dtype: 'F32' });
    const before = Buffer.from(a.safetensors);
    const path = join(dir, 'in-place.gguf');
    await convertPeftToGguf({ safetensors: [a.safetensors], config: a.config, architecture: llamaArch }, path);
    expect(a.safetensors.equals(before)).toBe(true);
    expect((await readFile(path)).equals(referenceGguf(a, llamaArch))).toBe(true);
  });

  it('fails on a file cut short', async () => {
    const a = adapter({ architecture: llamaArch, r: 4, loraAlpha: 8, targetModules: ['q_proj'] });
    const cut = a.safetensors.subarray(0, a.safetensors.length - 10);
    await expect(convertPeftToGguf({ safetensors: chunked(cut, 512), config: a.config, architecture: llamaArch }, join(dir, 'cut.gguf'))).rejects.toThrow(
      /data is truncated/,
    );
  });

  it('converts a Llama-2-7B-shaped rank-8 q/v adapter', async () => {
    const arch = LLAMA_2_7B;
    const a = adapter({ architecture: arch, r: 8, loraAlpha: 16, targetModules: ['q_proj', 'v_proj'], dtype: 'F16', magnitude: 0.01 });
    const { file, bytes } = await convert(a, arch, 64 * 1024);
    expect(file.tensors).toHaveLength(32 * 2 * 2);
    expect(file.tensors[0]).toMatchObject({ name: 'blk.0.attn_q.weight.lora_a', dims: [4096, 8] });
    expect(file.tensors[1]).toMatchObject({ name: 'blk.0.attn_q.weight.lora_b', dims: [8, 4096] });
    // F16 input doubles to F32: 128 tensors of 4096 x 8 floats, no padding needed
    expect(bytes.length).toBe(file.dataOffset + 128 * 4096 * 8 * 4);
    expect(bytes.equals(referenceGguf(a, arch))).toBe(true);
  });
});
