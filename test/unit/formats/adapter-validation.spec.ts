import { describe, expect, it } from '@jest/globals';
import { adapterHeaderLimits, loraTensorName, validateAdapterPair, validateAdapterTensors } from '../../../src/formats/adapter-validation.js';
import { GEMMA_2B, GEMMA_7B, LLAMA_2_7B, LORA_MODULES, MISTRAL_7B, moduleFeatures, type LoraModule, type ModelArchitecture } from '../../../src/formats/architecture.js';
import { AdapterFormatError } from '../../../src/formats/format-error.js';
import { buildPeftAdapter, mulberry32, type PeftAdapterSpec } from '../../../src/demo/peft-adapter.js';
import { parsePeftConfig, scaleFor } from '../../../src/formats/peft-config.js';
import { SafetensorsStreamValidator, type SafetensorsLimits } from '../../../src/formats/safetensors.js';
import { decodeFileTensor, validateSafetensors } from '../../helpers/safetensors.js';
import { BAD_ADAPTER_CASES, BAD_ADAPTER_MAX_LORA_RANK, validAdapter, TINY_TEST_ARCHITECTURE } from '../../fixtures/bad-adapters.js';

const TINY = TINY_TEST_ARCHITECTURE;


/** Parse the config, then validate the weights on their own and against it: the order an upload goes through. */
function validateUpload(config: Buffer, safetensors: Buffer, arch: ModelArchitecture, maxLoraRank = BAD_ADAPTER_MAX_LORA_RANK) {
  const parsed = parsePeftConfig(config, { architecture: arch, maxLoraRank });
  const header = validateSafetensors(safetensors);
  validateAdapterTensors(header, arch);
  validateAdapterPair(header, parsed.config, arch);
  return { ...parsed, header };
}

function uploadError(config: Buffer, safetensors: Buffer, arch: ModelArchitecture): AdapterFormatError {
  try {
    validateUpload(config, safetensors, arch);
  } catch (error) {
    if (error instanceof AdapterFormatError) return error;
    throw error;
  }
  throw new Error('expected an AdapterFormatError');
}

describe('bad adapter corpus', () => {
  it('has at least 35 distinct cases', () => {
    expect(BAD_ADAPTER_CASES.length).toBeGreaterThanOrEqual(35);
    expect(new Set(BAD_ADAPTER_CASES.map((c) => c.name)).size).toBe(BAD_ADAPTER_CASES.length);
  });

  describe.each([
    ['a tiny llama', TINY],
    ['llama-2-7b', LLAMA_2_7B],
  ])('on %s', (_, arch) => {
    it('starts from an adapter that passes', () => {
      const { config, safetensors } = validAdapter(arch);
      expect(validateUpload(config, safetensors, arch).header.tensors).toHaveLength(8);
    });

    it.each(BAD_ADAPTER_CASES.map((c) => [c.name, c] as const))('rejects: %s', (_, badCase) => {
      const { config, safetensors } = badCase.build(arch);
      const error = uploadError(config, safetensors, arch);
      expect(error.file).toBe(badCase.file);
      expect(error.message).toMatch(badCase.expect);
      expect(error.message.startsWith(`${badCase.file}: `)).toBe(true);
    });
  });

  it('produces distinct inputs', () => {
    const inputs = BAD_ADAPTER_CASES.map((c) => {
      const { config, safetensors } = c.build(TINY);
      return `${config.toString('base64')}|${safetensors.toString('base64')}`;
    });
    expect(new Set(inputs).size).toBe(inputs.length);
  });
});

describe('valid adapters at real base-model shapes', () => {
  const cases: [string, ModelArchitecture, Partial<PeftAdapterSpec>][] = [
    ['llama-2-7b q+v', LLAMA_2_7B, { targetModules: ['q_proj', 'v_proj'] }],
    ['llama-2-7b all seven, BF16', LLAMA_2_7B, { targetModules: [...LORA_MODULES], r: 4, layers: [0, 31], dtype: 'BF16' }],
    ['mistral-7b q+k+v+o (8 kv heads)', MISTRAL_7B, { targetModules: ['q_proj', 'k_proj', 'v_proj', 'o_proj'], r: 16 }],
    ['mistral-7b mlp, F32', MISTRAL_7B, { targetModules: ['gate_proj', 'up_proj', 'down_proj'], layers: [5], dtype: 'F32' }],
    ['gemma-7b q+v (q is 3072 -> 4096)', GEMMA_7B, { targetModules: ['q_proj', 'v_proj'] }],
    ['gemma-7b o+down', GEMMA_7B, { targetModules: ['o_proj', 'down_proj'], r: 32, layers: [0, 27] }],
    ['gemma-2b all seven (1 kv head)', GEMMA_2B, { targetModules: [...LORA_MODULES], r: 2 }],
  ];

  it.each(cases)('%s passes every validator', (_, arch, changes) => {
    const spec: PeftAdapterSpec = { architecture: arch, r: 8, loraAlpha: 16, targetModules: [], seed: 1, ...changes };
    const { configJson, safetensors } = buildPeftAdapter(spec);
    const { config, header } = validateUpload(configJson, safetensors, arch);
    const layers = spec.layers ?? Array.from({ length: arch.num_hidden_layers }, (_, i) => i);
    expect(header.tensors).toHaveLength(2 * layers.length * spec.targetModules.length);
    expect(header.tensors.every((t) => t.dtype === (spec.dtype ?? 'F16'))).toBe(true);
    expect(config.layers === null ? null : [...config.layers]).toEqual(spec.layers ?? null);
  });

  it('uses the real in/out features', () => {
    const shapeOf = (arch: ModelArchitecture, module: LoraModule, matrix: 'A' | 'B') => {
      const { safetensors } = buildPeftAdapter({ architecture: arch, r: 8, loraAlpha: 16, targetModules: [module], layers: [0], seed: 1 });
      return validateSafetensors(safetensors).tensors.find((t) => t.name === loraTensorName(0, module, matrix))!.shape;
    };
    expect(shapeOf(MISTRAL_7B, 'v_proj', 'B')).toEqual([1024, 8]);
    expect(shapeOf(GEMMA_7B, 'q_proj', 'A')).toEqual([8, 3072]);
    expect(shapeOf(GEMMA_7B, 'q_proj', 'B')).toEqual([4096, 8]);
    expect(shapeOf(GEMMA_7B, 'o_proj', 'A')).toEqual([8, 4096]);
    expect(shapeOf(GEMMA_2B, 'k_proj', 'B')).toEqual([256, 8]);
    expect(shapeOf(LLAMA_2_7B, 'down_proj', 'A')).toEqual([8, 11008]);
  });

  it("accepts 'all-linear' and regex target_modules for the adapters they describe", () => {
    const arch = GEMMA_2B;
    const base = { architecture: arch, r: 4, loraAlpha: 8, seed: 2 };
    const allLinear = buildPeftAdapter({
      ...base,
      targetModules: [...LORA_MODULES],
      configOverrides: { target_modules: 'all-linear' },
    });
    expect(() => validateUpload(allLinear.configJson, allLinear.safetensors, arch)).not.toThrow();
    const regex = buildPeftAdapter({
      ...base,
      targetModules: ['q_proj', 'v_proj'],
      configOverrides: { target_modules: '.*self_attn\\.(q|v)_proj' },
    });
    expect(() => validateUpload(regex.configJson, regex.safetensors, arch)).not.toThrow();
  });
});

describe('adapters with per-module ranks, layers and rsLoRA', () => {
  it('builds and accepts rank_pattern / alpha_pattern adapters, and scales per PEFT', () => {
    const spec: PeftAdapterSpec = {
      architecture: TINY,
      r: 8,
      loraAlpha: 16,
      targetModules: ['q_proj', 'v_proj', 'down_proj'],
      layers: [1, 2],
      rankPattern: { 'model.layers.1.self_attn.q_proj': 4, down_proj: 2 },
      alphaPattern: { v_proj: 4 },
      useRslora: true,
      seed: 3,
    };
    const { configJson, safetensors } = buildPeftAdapter(spec);
    const { config, header } = validateUpload(configJson, safetensors, TINY);
    const rankOf = (layer: number, module: LoraModule) =>
      header.tensors.find((t) => t.name === loraTensorName(layer, module, 'A'))!.shape[0];
    expect([rankOf(1, 'q_proj'), rankOf(2, 'q_proj'), rankOf(1, 'down_proj'), rankOf(2, 'v_proj')]).toEqual([4, 8, 2, 8]);
    expect(scaleFor(config, 1, 'q_proj')).toBe(16 / 2);
    expect(scaleFor(config, 2, 'v_proj')).toBeCloseTo(4 / Math.sqrt(8), 12);
    expect(scaleFor(config, 2, 'down_proj')).toBeCloseTo(16 / Math.sqrt(2), 12);
  });

  it('rejects weights whose rank ignores rank_pattern, naming the expected shape', () => {
    const { safetensors } = buildPeftAdapter({ architecture: TINY, r: 8, loraAlpha: 16, targetModules: ['q_proj'], seed: 4 });
    const { configJson } = buildPeftAdapter({
      architecture: TINY, r: 8, loraAlpha: 16, targetModules: ['q_proj'], seed: 4, rankPattern: { 'layers.3.self_attn.q_proj': 16 },
    });
    expect(uploadError(configJson, safetensors, TINY).message).toBe(
      'adapter_model.safetensors: base_model.model.model.layers.3.self_attn.q_proj.lora_B.weight ' +
        'has shape [64, 8], expected [64, 16] (r=16)',
    );
  });

  it('reports a missing targeted pair with how many more are missing', () => {
    const { configJson } = buildPeftAdapter({ architecture: TINY, r: 8, loraAlpha: 16, targetModules: ['q_proj', 'k_proj'], seed: 5 });
    const { safetensors } = buildPeftAdapter({ architecture: TINY, r: 8, loraAlpha: 16, targetModules: ['q_proj'], seed: 5 });
    expect(uploadError(configJson, safetensors, TINY).message).toBe(
      'adapter_model.safetensors: base_model.model.model.layers.0.self_attn.k_proj.lora_A.weight and its lora_B are missing, ' +
        'but adapter_config.json targets that module (and the pairs of 3 more targeted modules)',
    );
  });
});

describe('buildPeftAdapter', () => {
  it('is deterministic and draws values in [-magnitude, magnitude]', () => {
    const spec: PeftAdapterSpec = {
      architecture: TINY,
      r: 4,
      loraAlpha: 8,
      targetModules: ['o_proj'],
      seed: 9,
      magnitude: 0.5,
      dtype: 'F32',
    };
    const first = buildPeftAdapter(spec);
    expect(buildPeftAdapter(spec).safetensors.equals(first.safetensors)).toBe(true);
    expect(buildPeftAdapter({ ...spec, seed: 10 }).safetensors.equals(first.safetensors)).toBe(false);
    const header = validateSafetensors(first.safetensors);
    const values = header.tensors.flatMap((t) => [...decodeFileTensor(first.safetensors, header, t.name)]);
    expect(Math.max(...values.map(Math.abs))).toBeLessThanOrEqual(0.5);
    expect(Math.max(...values.map(Math.abs))).toBeGreaterThan(0.4);
  });

  it('writes the PEFT config fields', () => {
    const { config, configJson } = buildPeftAdapter({
      architecture: TINY,
      r: 4,
      loraAlpha: 8,
      targetModules: ['q_proj'],
      layers: [2],
      seed: 1,
      baseModelNameOrPath: 'meta-llama/Llama-2-7b-chat-hf',
    });
    expect(config).toEqual({
      peft_type: 'LORA',
      task_type: 'CAUSAL_LM',
      base_model_name_or_path: 'meta-llama/Llama-2-7b-chat-hf',
      model_type: 'llama',
      r: 4,
      lora_alpha: 8,
      lora_dropout: 0,
      bias: 'none',
      target_modules: ['q_proj'],
      layers_to_transform: [2],
    });
    expect(JSON.parse(configJson.toString())).toEqual(config);
  });

  it('builds a real 7B q+v adapter', () => {
    const spec = { architecture: LLAMA_2_7B, r: 8, loraAlpha: 16, seed: 1 };
    const { safetensors } = buildPeftAdapter({ ...spec, targetModules: ['q_proj', 'v_proj'] });
    expect(safetensors.length).toBeGreaterThan(8 * 1024 * 1024);
  });

  it('exports a reproducible PRNG in [0, 1)', () => {
    const a = mulberry32(42);
    const b = mulberry32(42);
    const draws = Array.from({ length: 1000 }, () => a());
    expect(draws).toEqual(Array.from({ length: 1000 }, () => b()));
    expect(draws.every((x) => x >= 0 && x < 1)).toBe(true);
  });
});

describe('header limits from the base architecture', () => {
  /** The first bytes of a safetensors file whose header is `json` (N = its length, padded to `length` if given). */
  const headerBytes = (json: string, length = Buffer.byteLength(json)): Buffer => {
    const file = Buffer.alloc(8 + length, 0x20);
    file.writeBigUInt64LE(BigInt(length), 0);
    file.write(json, 8);
    return file;
  };
  const rejection = (limits: SafetensorsLimits, ...chunks: Uint8Array[]): string => {
    const validator = new SafetensorsStreamValidator(limits);
    try {
      for (const chunk of chunks) validator.push(chunk);
      validator.finish();
    } catch (error) {
      expect(error).toBeInstanceOf(AdapterFormatError);
      return (error as Error).message;
    }
    throw new Error('expected an AdapterFormatError');
  };

  it('allows layers × 7 modules × 2 tensors and 512 header bytes for each, plus 64 KiB', () => {
    expect(adapterHeaderLimits(LLAMA_2_7B)).toMatchObject({ maxTensors: 32 * 7 * 2, maxHeaderLength: 448 * 512 + 65_536 });
    expect(adapterHeaderLimits(GEMMA_2B)).toMatchObject({ maxTensors: 18 * 7 * 2, maxHeaderLength: 252 * 512 + 65_536 });
  });

  it('lets the header of the largest valid adapter through: every module of every layer, long offsets, indented JSON', () => {
    // A 70B-sized llama: 80 layers, rank 256 in F32, so data offsets run to 11 digits.
    const arch: ModelArchitecture = { ...LLAMA_2_7B, num_hidden_layers: 80, hidden_size: 8192, intermediate_size: 28672, num_attention_heads: 64, num_key_value_heads: 8 };
    const entries: Record<string, unknown> = { __metadata__: { format: 'pt' } };
    let offset = 0;
    for (let layer = 0; layer < arch.num_hidden_layers; layer++) {
      for (const module of LORA_MODULES) {
        const { in: inF, out } = moduleFeatures(arch, module);
        for (const [matrix, shape] of [['A', [256, inF]], ['B', [out, 256]]] as const) {
          const bytes = shape[0] * shape[1] * 4;
          entries[loraTensorName(layer, module, matrix)] = { dtype: 'F32', shape, data_offsets: [offset, offset + bytes] };
          offset += bytes;
        }
      }
    }
    const json = JSON.stringify(entries, null, 1);
    const limits = adapterHeaderLimits(arch);
    expect(Buffer.byteLength(json)).toBeLessThan(limits.maxHeaderLength);
    const validator = new SafetensorsStreamValidator(limits);
    validator.push(headerBytes(json));
    expect(validator.header?.tensors).toHaveLength(limits.maxTensors);
    validateAdapterTensors(validator.header!, arch);
  });

  it('refuses a header length over the limit from the 8 length bytes alone, naming both limits', () => {
    const limits = adapterHeaderLimits(LLAMA_2_7B);
    const length = Buffer.alloc(8);
    length.writeBigUInt64LE(100_000_000n);
    expect(rejection(limits, length)).toBe(
      'adapter_model.safetensors: header length 100000000 exceeds the limit of 294912 bytes for an adapter of this base model ' +
        '(at most 448 tensors, 32 layers × 7 modules × 2, in a header of at most 294912 bytes)',
    );
    // Within the limit, the same length bytes only ask for more input.
    length.writeBigUInt64LE(294_912n);
    expect(() => new SafetensorsStreamValidator(limits).push(length)).not.toThrow();
  });

  it('refuses more tensors than the base allows while the header is still arriving', () => {
    const limits = adapterHeaderLimits(TINY);
    const entry = (i: number) => `"t${i}":{"dtype":"F16","shape":[0],"data_offsets":[0,0]}`;
    const entries = Array.from({ length: limits.maxTensors + 1 }, (_, i) => entry(i));
    const json = `{"__metadata__":{"format":"pt"},${entries.join(',')}}`;
    expect(Buffer.byteLength(json)).toBeLessThan(limits.maxHeaderLength);
    // The header declares more bytes than are sent: the count alone must decide.
    const partial = headerBytes(json, limits.maxHeaderLength).subarray(0, 8 + json.length - 1);
    expect(rejection(limits, partial)).toMatch(new RegExp(`header has more than ${limits.maxTensors} tensors for an adapter of this base model`));
    // Keys inside strings and nested objects are not counted: maxTensors tensors plus __metadata__ are a valid file.
    const tricky = `{"__metadata__":{"a,\\"b":"{,\\"c\\":1"},${entries.slice(1).join(',')}}`;
    const validator = new SafetensorsStreamValidator(limits);
    validator.push(headerBytes(tricky));
    expect(validator.finish().tensors).toHaveLength(limits.maxTensors);
  });

  it('counts the same whatever the chunking', () => {
    const limits = adapterHeaderLimits(TINY);
    // Without __metadata__, one more key than maxTensors is still allowed: two more are not.
    const entries = Array.from({ length: limits.maxTensors + 2 }, (_, i) => `"t\\"${i}":{"dtype":"F16","shape":[0],"data_offsets":[0,0]}`);
    const file = headerBytes(`{${entries.join(',')}}`);
    const oneByOne = Array.from(file, (byte) => Uint8Array.of(byte));
    expect(rejection(limits, ...oneByOne)).toBe(rejection(limits, file));
    expect(rejection(limits, file)).toMatch(/more than/);
  });
});
