/**
 * End-to-end proof of the PEFT → GGUF conversion: llama.cpp running base model + converted adapter must compute
 * what it computes for a model whose Hugging Face weights had the adapter merged in (W + scale · B · A) before the
 * same HF → GGUF conversion. Negative controls show the comparison is sharp enough to catch a wrong q/k permutation.
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it, jest } from '@jest/globals';
import { getLlama, LlamaLogLevel, type Llama, type Token } from 'node-llama-cpp';
import { LORA_MODULES, type ModelArchitecture } from '../../../src/formats/architecture.js';
import { elementCount, encodeGguf, type GgufTensorSpec } from '../../../src/formats/gguf-writer.js';
import { readGguf, readGgufTensor } from '../../helpers/gguf-reader.js';
import { convertLoraTensor, convertPeftToGguf, permuteQkRows, planPeftToGguf } from '../../../src/formats/lora-to-gguf.js';
import { buildPeftAdapter, type PeftAdapterSpec } from '../../../src/demo/peft-adapter.js';
import { parsePeftConfig, type PeftLoraConfig } from '../../../src/formats/peft-config.js';
import { decodeFileTensor, validateSafetensors } from '../../helpers/safetensors.js';
import { buildTinyModel, tinyArchitecture, type TinyModelSpec } from '../../../src/demo/tiny-model.js';
import { mergePeftAdapter } from '../../helpers/lora-merge.js';

jest.setTimeout(30_000);

const GREEDY_TOKENS = 16;
/** f32 accumulation order differs between W'x and Wx + s·B(Ax): observed differences are 2e-6 to 3e-3. */
const SAME_LOGITS = 2e-2;
/** A real change: adapters and the wrong permutations move logits by 1.3 to 8 (observed). */
const DIFFERENT_LOGITS = 0.5;

interface Run {
  /** Next-token logits after each prompt token (teacher forced). */
  logits: Float32Array[];
  /** Greedy continuation of the prompt. */
  greedy: Token[];
}

type AdapterCase = { name: string } & Omit<PeftAdapterSpec, 'architecture'>;

const ALL = [...LORA_MODULES];
const ADAPTERS: AdapterCase[] = [
  { name: 'q,k,v,o + MLP, F16', r: 8, loraAlpha: 16, targetModules: ALL, dtype: 'F16', seed: 11, magnitude: 0.1 },
  {
    name: 'rsLoRA on attention of layer 1, F32',
    r: 4,
    loraAlpha: 8,
    useRslora: true,
    targetModules: ['q_proj', 'k_proj', 'v_proj', 'o_proj'],
    layers: [1],
    dtype: 'F32',
    seed: 12,
    magnitude: 0.15,
  },
  {
    name: 'rank_pattern + alpha_pattern, F32',
    r: 8,
    loraAlpha: 16,
    targetModules: ALL,
    rankPattern: { q_proj: 4, 'layers.1.mlp.down_proj': 2 },
    alphaPattern: { k_proj: 4, 'layers.0.self_attn.o_proj': 32 },
    dtype: 'F32',
    seed: 13,
    magnitude: 0.1,
  },
];

const FAMILIES: { spec: TinyModelSpec; prompt: string }[] = [
  { spec: { family: 'llama', seed: 1 }, prompt: '<s>[INST] hello world, is the world ok? [/INST]' },
  {
    spec: { family: 'gemma', seed: 2 },
    prompt: '<bos><start_of_turn>user\nhello world, is the world ok?<end_of_turn>\n<start_of_turn>model\n',
  },
];

const maxAbsDiff = (a: Float32Array[], b: Float32Array[]) =>
  Math.max(...a.map((row, i) => row.reduce((m, v, j) => Math.max(m, Math.abs(v - b[i][j])), 0)));

let llama: Llama;
let dir: string;
let files = 0;

beforeAll(async () => {
  llama = await getLlama({ gpu: false, build: 'never', logLevel: LlamaLogLevel.error });
  dir = await mkdtemp(join(tmpdir(), 'lora-merge-'));
});

afterAll(async () => {
  await llama?.dispose();
  if (dir) await rm(dir, { recursive: true, force: true });
});

async function save(bytes: Uint8Array): Promise<string> {
  const path = join(dir, `${files++}.gguf`);
  await writeFile(path, bytes);
  return path;
}

/** Loads the model (adapters are released only with the model), evaluates the prompt and disposes it. */
async function run(modelPath: string, prompt: string, loraPath?: string): Promise<Run> {
  const model = await llama.loadModel({ modelPath });
  try {
    const context = await model.createContext({
      contextSize: 128,
      // One thread: ggml's worker threads spin while waiting, and on a small machine they starve the JS thread
      // that has to hand them each batch (evaluations become ~100x slower).
      threads: 1,
      // Keep K/V in f32 so cache rounding does not add noise to the comparison.
      experimentalKvCacheKeyType: 'F32',
      experimentalKvCacheValueType: 'F32',
      ...(loraPath && { lora: { adapters: [{ filePath: loraPath, scale: 1 }] } }),
    });
    const sequence = context.getSequence();
    const tokens = model.tokenize(prompt, true);
    const results = await sequence.controlledEvaluate(tokens.map((t) => [t, { generateNext: { logits: true } }]));
    const logits = results.map((result) => {
      const row = new Float32Array(result!.next.logits!.size);
      for (const [token, logit] of result!.next.logits!) row[token] = logit;
      return row;
    });
    await sequence.clearHistory();
    const greedy: Token[] = [];
    for await (const token of sequence.evaluate(tokens, { temperature: 0, yieldEogToken: true })) {
      greedy.push(token);
      if (greedy.length === GREEDY_TOKENS) break;
    }
    return { logits, greedy };
  } finally {
    await model.dispose();
  }
}

function makeAdapter(architecture: ModelArchitecture, spec: AdapterCase) {
  const { safetensors, configJson } = buildPeftAdapter({ ...spec, architecture });
  const { config } = parsePeftConfig(configJson, { architecture, maxLoraRank: 32 });
  return { safetensors, config };
}

/** The correct conversion with q/k lora_b replaced by `rows(rawB, outFeatures, module)` (plain LoRA: factor 1). */
async function saveTamperedAdapter(
  architecture: ModelArchitecture,
  adapter: { safetensors: Uint8Array; config: PeftLoraConfig },
  rows: (b: Float32Array, out: number, module: 'q_proj' | 'k_proj') => Float32Array,
): Promise<string> {
  const header = validateSafetensors(adapter.safetensors);
  const plan = planPeftToGguf(header, adapter.config, architecture);
  const tensors = plan.tensors.map((t): GgufTensorSpec => {
    const decoded = () => decodeFileTensor(adapter.safetensors, header, t.source);
    const match = /^blk\.\d+\.attn_([qk])\.weight\.lora_b$/.exec(t.name);
    if (!match) return { ...t, data: () => convertLoraTensor(t, decoded(), new Float32Array(elementCount(t.dims))) };
    return { ...t, data: () => rows(decoded(), t.dims[1], match[1] === 'q' ? 'q_proj' : 'k_proj') };
  });
  return save(encodeGguf(plan.metadata, tensors));
}

describe('buildTinyModel', () => {
  it('is deterministic in its seed', () => {
    expect(buildTinyModel({ family: 'llama', seed: 1 }).gguf.equals(buildTinyModel({ family: 'llama', seed: 1 }).gguf)).toBe(true);
    expect(buildTinyModel({ family: 'llama', seed: 1 }).gguf.equals(buildTinyModel({ family: 'llama', seed: 2 }).gguf)).toBe(false);
  });

  it('converts llama HF weights as convert_hf_to_gguf does: q/k rows permuted, separate output', () => {
    const { gguf, hfWeights, architecture } = buildTinyModel({ family: 'llama', seed: 1 });
    expect(architecture).toEqual(tinyArchitecture({ family: 'llama', seed: 1 }));
    expect(architecture).toMatchObject({ hidden_size: 64, num_attention_heads: 4, num_key_value_heads: 2, head_dim: 16 });
    const file = readGguf(gguf);
    const tensor = (name: string) => readGgufTensor(gguf, file, name);
    const row = (data: Float32Array, i: number) => Array.from(data.subarray(i * 64, (i + 1) * 64));
    const q = hfWeights.get('model.layers.0.self_attn.q_proj.weight')!.data;
    // head 1, GGUF rows 2i, 2i+1 are HF rows i and i + head_dim / 2 (the rotary pair)
    expect(row(tensor('blk.0.attn_q.weight'), 16 + 6)).toEqual(row(q, 16 + 3));
    expect(row(tensor('blk.0.attn_q.weight'), 16 + 7)).toEqual(row(q, 16 + 8 + 3));
    const k = hfWeights.get('model.layers.1.self_attn.k_proj.weight')!.data;
    expect(row(tensor('blk.1.attn_k.weight'), 16 + 1)).toEqual(row(k, 16 + 8));
    expect(tensor('blk.0.attn_v.weight')).toEqual(hfWeights.get('model.layers.0.self_attn.v_proj.weight')!.data);
    expect(tensor('output.weight')).toEqual(hfWeights.get('lm_head.weight')!.data);
    expect(file.tensors.find((t) => t.name === 'token_embd.weight')!.dims).toEqual([64, architecture.vocab_size]);
    expect(file.metadata['llama.rope.dimension_count']).toEqual({ type: 'u32', value: 16 });
  });

  it('converts gemma HF weights as convert_hf_to_gguf does: norms + 1, q/k unpermuted, tied output', () => {
    const { gguf, hfWeights, architecture } = buildTinyModel({ family: 'gemma', seed: 2 });
    expect(architecture).toMatchObject({ hidden_size: 64, num_attention_heads: 4, num_key_value_heads: 1, head_dim: 24 });
    const file = readGguf(gguf);
    const tensor = (name: string) => readGgufTensor(gguf, file, name);
    expect(tensor('blk.1.ffn_norm.weight')).toEqual(hfWeights.get('model.layers.1.post_attention_layernorm.weight')!.data.map((v) => v + 1));
    expect(tensor('output_norm.weight')).toEqual(hfWeights.get('model.norm.weight')!.data.map((v) => v + 1));
    expect(tensor('blk.0.attn_q.weight')).toEqual(hfWeights.get('model.layers.0.self_attn.q_proj.weight')!.data);
    expect(file.tensors.find((t) => t.name === 'blk.0.attn_q.weight')!.dims).toEqual([64, 96]);
    expect(file.tensors.some((t) => t.name === 'output.weight')).toBe(false);
    expect(hfWeights.has('lm_head.weight')).toBe(false);
    expect(file.metadata['general.architecture']).toEqual({ type: 'string', value: 'gemma' });
  });

  it.each(FAMILIES)('tokenizes the $spec.family chat markup into special tokens', async ({ spec, prompt }) => {
    const { gguf, tokens: vocab } = buildTinyModel(spec);
    const model = await llama.loadModel({ modelPath: await save(gguf) });
    try {
      const tokens = model.tokenize(prompt, true).map((t) => vocab[t]);
      if (spec.family === 'llama') {
        expect(tokens.slice(0, 4)).toEqual(['<s>', '▁[', 'INST', ']']);
      } else {
        expect(tokens.slice(0, 2)).toEqual(['<bos>', '<start_of_turn>']);
        expect(tokens).toContain('<end_of_turn>');
        expect(vocab[model.tokens.eot!]).toBe('<end_of_turn>');
      }
      expect(model.tokens.bos).toBe(model.tokenize(prompt, true)[0]);
    } finally {
      await model.dispose();
    }
  });
});

describe.each(FAMILIES)('tiny $spec.family: base + converted adapter equals the merged model', ({ spec, prompt }) => {
  const base = buildTinyModel(spec);
  const { architecture } = base;
  let basePath: string;
  let baseRun: Run;

  beforeAll(async () => {
    basePath = await save(base.gguf);
    baseRun = await run(basePath, prompt);
  });

  /** Runs base + converted adapter and the merged model. */
  async function adapterAndMerged(adapter: { safetensors: Uint8Array; config: PeftLoraConfig }) {
    const loraPath = join(dir, `${files++}.lora.gguf`);
    await convertPeftToGguf({ safetensors: [adapter.safetensors], config: adapter.config, architecture }, loraPath);
    const merged = buildTinyModel(spec, (w) => mergePeftAdapter(w, architecture, adapter.config, adapter.safetensors));
    return { withAdapter: await run(basePath, prompt, loraPath), merged: await run(await save(merged.gguf), prompt) };
  }

  it('the base model generates a non-degenerate continuation', () => {
    expect(new Set(baseRun.greedy).size).toBeGreaterThan(3);
  });

  it.each(ADAPTERS)('$name', async (adapterSpec) => {
    const { withAdapter, merged } = await adapterAndMerged(makeAdapter(architecture, adapterSpec));
    expect(maxAbsDiff(withAdapter.logits, merged.logits)).toBeLessThan(SAME_LOGITS);
    expect(withAdapter.greedy).toEqual(merged.greedy);
    expect(maxAbsDiff(withAdapter.logits, baseRun.logits)).toBeGreaterThan(DIFFERENT_LOGITS);
    expect(withAdapter.greedy).not.toEqual(baseRun.greedy);
  });

  if (spec.family === 'llama') {
    describe('negative controls: a wrong q/k permutation is caught', () => {
      const adapter = () => makeAdapter(architecture, ADAPTERS[0]);
      let merged: Run;

      beforeAll(async () => {
        const a = adapter();
        merged = await run(await save(buildTinyModel(spec, (w) => mergePeftAdapter(w, architecture, a.config, a.safetensors)).gguf), prompt);
      });

      it('without the permutation', async () => {
        const wrong = await run(basePath, prompt, await saveTamperedAdapter(architecture, adapter(), (b) => b));
        expect(maxAbsDiff(wrong.logits, merged.logits)).toBeGreaterThan(DIFFERENT_LOGITS);
        expect(wrong.greedy).not.toEqual(merged.greedy);
      });

      it('with k permuted by n_head instead of n_head_kv', async () => {
        const wrongPath = await saveTamperedAdapter(architecture, adapter(), (b, out) =>
          permuteQkRows(b, out, architecture.num_attention_heads),
        );
        const wrong = await run(basePath, prompt, wrongPath);
        expect(maxAbsDiff(wrong.logits, merged.logits)).toBeGreaterThan(DIFFERENT_LOGITS);
        expect(wrong.greedy).not.toEqual(merged.greedy);
      });
    });
  } else {
    it('negative control: applying the llama permutation to gemma is caught', async () => {
      const a = makeAdapter(architecture, ADAPTERS[0]);
      const merged = await run(await save(buildTinyModel(spec, (w) => mergePeftAdapter(w, architecture, a.config, a.safetensors)).gguf), prompt);
      const wrongPath = await saveTamperedAdapter(architecture, a, (b, out, module) =>
        permuteQkRows(b, out, module === 'q_proj' ? architecture.num_attention_heads : architecture.num_key_value_heads),
      );
      const wrong = await run(basePath, prompt, wrongPath);
      expect(maxAbsDiff(wrong.logits, merged.logits)).toBeGreaterThan(DIFFERENT_LOGITS);
    });
  }
});
