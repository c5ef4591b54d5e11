import { describe, expect, it } from '@jest/globals';
import fc from 'fast-check';
import { AdapterFormatError } from '../../../src/formats/format-error.js';
import {
  alphaFor,
  isTargeted,
  modulePath,
  parsePeftConfig,
  rankFor,
  scaleFor,
  type PeftConfigContext,
} from '../../../src/formats/peft-config.js';
import { TINY_TEST_ARCHITECTURE } from '../../fixtures/bad-adapters.js';

const TINY = TINY_TEST_ARCHITECTURE;
const CTX: PeftConfigContext = { architecture: TINY, maxLoraRank: 32 };

const BASE = { peft_type: 'LORA', task_type: 'CAUSAL_LM', model_type: 'llama', r: 8, lora_alpha: 16, target_modules: ['q_proj', 'v_proj'] };

function parse(fields: Record<string, unknown>, ctx: PeftConfigContext = CTX) {
  return parsePeftConfig(JSON.stringify({ ...BASE, ...fields }), ctx);
}

function rejection(fields: Record<string, unknown>, ctx: PeftConfigContext = CTX): string {
  try {
    parse(fields, ctx);
  } catch (error) {
    expect(error).toBeInstanceOf(AdapterFormatError);
    expect((error as AdapterFormatError).file).toBe('adapter_config.json');
    return (error as AdapterFormatError).message;
  }
  throw new Error('expected an AdapterFormatError');
}

const targets = (fields: Record<string, unknown>) => {
  const { config } = parse(fields);
  return { modules: [...config.targetModules].sort(), layers: config.layers && [...config.layers].sort() };
};

describe('parsePeftConfig', () => {
  it('reads a typical PEFT config', () => {
    const saved = { ...BASE, lora_dropout: 0.05, bias: 'none', use_dora: false, modules_to_save: null, inference_mode: true };
    const { config, warnings } = parsePeftConfig(Buffer.from(JSON.stringify(saved)), CTX);
    expect(config).toMatchObject({
      r: 8,
      loraAlpha: 16,
      useRslora: false,
      modelType: 'llama',
      layers: null,
      rankPattern: {},
      alphaPattern: {},
    });
    expect([...config.targetModules]).toEqual(['q_proj', 'v_proj']);
    expect(config.raw.lora_dropout).toBe(0.05);
    expect(warnings).toEqual([]);
  });

  it("defaults lora_alpha to PEFT's 8 and accepts a null task_type", () => {
    const { config } = parse({ lora_alpha: undefined, task_type: null });
    expect(config.loraAlpha).toBe(8);
  });

  it('measures the 1 MiB limit in UTF-8 bytes, for strings too', () => {
    expect(() => parsePeftConfig(JSON.stringify({ ...BASE, notes: 'é'.repeat(600_000) }), CTX)).toThrow(/larger than the 1 MiB limit/);
    expect(parse({ notes: 'x'.repeat(1_000_000) }).config.r).toBe(8);
  });

  it('rejects a UTF-8 byte order mark like Python json does', () => {
    expect(() => parsePeftConfig(Buffer.concat([Buffer.from([0xef, 0xbb, 0xbf]), Buffer.from(JSON.stringify(BASE))]), CTX)).toThrow(
      /not valid JSON/,
    );
  });

  it.each([
    [{ r: 33 }, /r must be an integer from 1 to 32, got 33/],
    [{ r: '8' }, /r must be an integer/],
    [{ lora_alpha: 0 }, /lora_alpha must be a positive number/],
    [{ use_rslora: 'yes' }, /use_rslora must be a boolean/],
    [{ model_type: 'gemma' }, /model_type "gemma" does not match the base model's model_type "llama"/],
    [{ lora_bias: true }, /lora_bias/],
    [{ layer_replication: [[0, 2]] }, /layer_replication is not supported/],
    [{ target_parameters: ['mlp.experts.down_proj'] }, /target_parameters is not supported/],
    [{ target_modules: [] }, /selects no module/],
    [{ target_modules: 7 }, /target_modules must be a string or a list of non-empty strings/],
    [{ target_modules: ['mlp'] }, /entry "mlp" is not a LoRA-capable module/],
    [{ alpha_pattern: { q_proj: -1 } }, /alpha_pattern value of "q_proj" must be a positive number/],
    [{ rank_pattern: [] }, /rank_pattern must be an object/],
    [{ rank_pattern: { '(q)\\1_proj': 4 } }, /rank_pattern key "\(q\)\\\\1_proj" is not a supported regular expression: backreferences/],
    [{ layers_pattern: 'layers.*', layers_to_transform: [0] }, /layers_pattern "layers\.\*" must be a module name/],
  ])('rejects %j', (fields, message) => {
    expect(rejection(fields)).toMatch(message);
  });

  it('accepts the disabled forms of unsupported options', () => {
    const disabled = { use_dora: false, bias: 'none', modules_to_save: [], fan_in_fan_out: false, lora_bias: false };
    expect(() => parse({ ...disabled, layer_replication: null })).not.toThrow();
  });

  describe('base_model_name_or_path', () => {
    const ctx = { ...CTX, baseModelName: 'meta-llama/Llama-2-7b-chat-hf' };

    it('warns, naming both, when it names another model of the same family', () => {
      const { config, warnings } = parse({ base_model_name_or_path: 'NousResearch/Llama-2-7b-hf' }, ctx);
      expect(config.baseModelNameOrPath).toBe('NousResearch/Llama-2-7b-hf');
      expect(warnings).toEqual([
        'adapter was trained on "NousResearch/Llama-2-7b-hf" but will be applied to "meta-llama/Llama-2-7b-chat-hf"',
      ]);
    });

    it('is quiet when it names the base model (case-insensitively) or is absent', () => {
      expect(parse({ base_model_name_or_path: 'meta-llama/llama-2-7b-chat-hf' }, ctx).warnings).toEqual([]);
      expect(parse({}, ctx).config.baseModelNameOrPath).toBeNull();
    });

    it('rejects a name of another family only', () => {
      expect(rejection({ base_model_name_or_path: 'mistralai/Mistral-7B-v0.1' }, ctx)).toMatch(
        /is a mistral model, but this base model is llama/,
      );
      expect(rejection({ base_model_name_or_path: 'google/gemma-2b' }, ctx)).toMatch(/is a gemma model/);
      expect(parse({ base_model_name_or_path: 'someone/mistral-llama-merge' }, ctx).warnings).toHaveLength(1);
      expect(parse({ base_model_name_or_path: '/models/my-base' }, ctx).warnings).toHaveLength(1);
    });
  });
});

describe('target_modules (PEFT check_target_module_exists)', () => {
  it('matches list entries exactly or as a dotted suffix', () => {
    expect(targets({ target_modules: ['self_attn.q_proj', 'down_proj'] })).toEqual({ modules: ['down_proj', 'q_proj'], layers: null });
    expect(rejection({ target_modules: ['_proj'] })).toMatch(/entry "_proj"/);
  });

  it("expands 'all-linear' (any case) to the seven linear modules", () => {
    expect(targets({ target_modules: 'ALL-LINEAR' }).modules).toHaveLength(7);
  });

  it('full-matches a regex string against the module path', () => {
    expect(targets({ target_modules: '.*\\.(q_proj|v_proj)' })).toEqual({ modules: ['q_proj', 'v_proj'], layers: null });
    expect(targets({ target_modules: 'model\\.layers\\.[12]\\.mlp\\.(up|down)_proj' })).toEqual({
      modules: ['down_proj', 'up_proj'],
      layers: [1, 2],
    });
    // A bare module name as a string is a regex that must match the whole path, so it selects nothing.
    expect(rejection({ target_modules: 'q_proj' })).toMatch(/selects no module/);
  });

  it('rejects selections that differ between layers', () => {
    expect(rejection({ target_modules: 'model\\.layers\\.0\\.self_attn\\.q_proj|model\\.layers\\.1\\.self_attn\\.v_proj' })).toMatch(
      /different modules in different layers \(e\.g\. not model\.layers\.0\.self_attn\.v_proj\)/,
    );
  });

  it('rejects a regex that also selects containers or norms', () => {
    expect(rejection({ target_modules: '.*' })).toMatch(/selects model, which is not a LoRA-capable/);
    expect(rejection({ target_modules: '.*layers\\.\\d+\\.mlp.*' })).toMatch(/selects model\.layers\.0\.mlp,/);
  });

  it('applies exclude_modules as a list or a regex', () => {
    expect(targets({ target_modules: 'all-linear', exclude_modules: ['mlp.down_proj', 'o_proj'] }).modules).toEqual([
      'gate_proj',
      'k_proj',
      'q_proj',
      'up_proj',
      'v_proj',
    ]);
    expect(targets({ target_modules: ['q_proj', 'v_proj'], exclude_modules: 'model\\.layers\\.[03]\\..*' })).toEqual({
      modules: ['q_proj', 'v_proj'],
      layers: [1, 2],
    });
  });

  it('applies layers_to_transform (int or list) to list targets, with or without layers_pattern', () => {
    expect(targets({ layers_to_transform: 2 }).layers).toEqual([2]);
    expect(targets({ layers_to_transform: [0, 3] }).layers).toEqual([0, 3]);
    expect(targets({ layers_to_transform: [0, 1, 2, 3] }).layers).toBeNull();
    expect(targets({ layers_to_transform: [] }).layers).toBeNull();
    expect(targets({ layers_to_transform: [1], layers_pattern: 'layers' }).layers).toEqual([1]);
    expect(targets({ layers_to_transform: [1], layers_pattern: ['h', 'layers'] }).layers).toEqual([1]);
    expect(rejection({ layers_to_transform: [1], layers_pattern: 'h' })).toMatch(/selects no module/);
    expect(rejection({ layers_to_transform: 4 })).toMatch(/layers_to_transform entry 4 is not a layer of the base model \(0 to 3\)/);
    expect(rejection({ layers_to_transform: [true] })).toMatch(/layers_to_transform entry true/);
    expect(rejection({ target_modules: 'all-linear', layers_to_transform: [0] })).toMatch(/cannot be used when target_modules is a string/);
    expect(rejection({ target_modules: '.*q_proj', layers_pattern: 'layers' })).toMatch(/layers_pattern cannot be used/);
  });

  it('lets a full-path entry through regardless of layers_to_transform, like PEFT', () => {
    expect(targets({ target_modules: ['model.layers.3.self_attn.q_proj'], layers_to_transform: [0] })).toEqual({
      modules: ['q_proj'],
      layers: [3],
    });
  });

  // A backtracking engine needs exponential time on these (the test would hang); RE2 answers at once.
  it.each(['(?:[a-z_.0-9]+)+!', '(.|.)*!', '(a|aa)*b'])('matches the catastrophic-backtracking pattern %s like any other', (evil) => {
    expect(rejection({ target_modules: evil })).toMatch(/selects no module of the base model/);
    expect(rankFor(parse({ rank_pattern: { [evil]: 4 } }).config, 0, 'q_proj')).toBe(8);
    expect(targets({ target_modules: `${evil}|.*\\.q_proj` }).modules).toEqual(['q_proj']);
  });

  it('full-matches with re.fullmatch semantics: every alternative must cover the whole path', () => {
    // A search (or an alternation anchored only at its ends) would let "self_attn" select whole attention blocks.
    expect(targets({ target_modules: 'self_attn|.*q_proj' }).modules).toEqual(['q_proj']);
    expect(targets({ target_modules: '(?P<block>.*self_attn)\\.(q|v)_proj' }).modules).toEqual(['q_proj', 'v_proj']);
    expect(targets({ target_modules: '(?i).*\\.Q_PROJ' }).modules).toEqual(['q_proj']);
  });

  it.each([
    ['target_modules', { target_modules: '(?!.*mlp).*_proj' }, /lookahead and lookbehind assertions are not supported/],
    ['target_modules', { target_modules: '.*(?<=self_attn\\.)q_proj' }, /lookahead and lookbehind assertions are not supported/],
    ['exclude_modules', { target_modules: 'all-linear', exclude_modules: '(.)\\1' }, /backreferences are not supported/],
    ['target_modules', { target_modules: '.*\\.q_proj\\Z' }, /invalid escape sequence/],
    ['alpha_pattern key', { alpha_pattern: { '[a-z._0-9]{0,1000}q_proj': 4 } }, /the repetition \{0,1000\} exceeds 32/],
    ['target_modules', { target_modules: `.*\\.(${'q_proj|'.repeat(100)}v_proj)` }, /is 712 characters long, the limit is 512/],
  ])('refuses what RE2 cannot match as PEFT would, naming %s and the reason', (field, fields, reason) => {
    const message = rejection(fields);
    expect(message).toContain(`adapter_config.json: ${field} "`);
    expect(message).toMatch(/is not a supported regular expression: /);
    expect(message).toMatch(reason);
  });

  it('isTargeted combines modules and layers', () => {
    const { config } = parse({ layers_to_transform: [1] });
    expect(isTargeted(config, 1, 'q_proj')).toBe(true);
    expect(isTargeted(config, 0, 'q_proj')).toBe(false);
    expect(isTargeted(config, 1, 'k_proj')).toBe(false);
  });
});

describe('rank_pattern / alpha_pattern (PEFT get_pattern_key)', () => {
  const ranks = (rankPattern: Record<string, number>) => {
    const { config } = parse({ target_modules: 'all-linear', rank_pattern: rankPattern });
    return (layer: number, module: 'q_proj' | 'k_proj' | 'v_proj' | 'down_proj') => rankFor(config, layer, module);
  };

  it('matches a key against the end of the module path at a dot boundary', () => {
    const r = ranks({ q_proj: 4, 'layers.1.self_attn.v_proj': 16, 'model.layers.2.self_attn.k_proj': 2, proj: 32 });
    expect([r(0, 'q_proj'), r(3, 'q_proj')]).toEqual([4, 4]);
    expect([r(1, 'v_proj'), r(0, 'v_proj')]).toEqual([16, 8]);
    expect([r(2, 'k_proj'), r(1, 'k_proj')]).toEqual([2, 8]);
    expect(r(0, 'down_proj')).toBe(8); // "proj" is not a whole path segment
  });

  it('treats keys as regular expressions and takes the first matching key in order', () => {
    const r = ranks({ 'model.layers.[0-1].self_attn.q_proj': 16, q_proj: 4, '.*_proj': 2 });
    expect([r(0, 'q_proj'), r(1, 'q_proj'), r(2, 'q_proj'), r(0, 'down_proj')]).toEqual([16, 16, 4, 2]);
    expect(ranks({ q_proj: 4, 'model.layers.0.self_attn.q_proj': 16 })(0, 'q_proj')).toBe(4);
  });

  it('looks up alpha_pattern independently of rank_pattern', () => {
    const { config } = parse({ rank_pattern: { q_proj: 4 }, alpha_pattern: { 'layers.0.self_attn.q_proj': 32 } });
    expect([rankFor(config, 0, 'q_proj'), alphaFor(config, 0, 'q_proj')]).toEqual([4, 32]);
    expect([rankFor(config, 1, 'q_proj'), alphaFor(config, 1, 'q_proj')]).toEqual([4, 16]);
    expect([rankFor(config, 0, 'v_proj'), alphaFor(config, 0, 'v_proj')]).toEqual([8, 16]);
  });

  it('scales by alpha / r, or alpha / sqrt(r) with rsLoRA, per module', () => {
    const plain = parse({ rank_pattern: { v_proj: 4 } }).config;
    expect(scaleFor(plain, 0, 'q_proj')).toBe(2);
    expect(scaleFor(plain, 0, 'v_proj')).toBe(4);
    const rs = parse({ use_rslora: true, rank_pattern: { v_proj: 4 }, alpha_pattern: { v_proj: 6 } }).config;
    expect(scaleFor(rs, 0, 'q_proj')).toBeCloseTo(16 / Math.sqrt(8), 12);
    expect(scaleFor(rs, 0, 'v_proj')).toBe(3);
  });

  it('keeps a "__proto__" key as an ordinary pattern', () => {
    const text = '{"peft_type":"LORA","model_type":"llama","r":8,"target_modules":["q_proj"],"rank_pattern":{"__proto__":4}}';
    const { config } = parsePeftConfig(text, CTX);
    expect(Object.keys(config.rankPattern)).toEqual(['__proto__']);
    expect(rankFor(config, 0, 'q_proj')).toBe(8);
  });

  it('names module paths as PEFT sees them', () => {
    expect(modulePath(3, 'q_proj')).toBe('model.layers.3.self_attn.q_proj');
    expect(modulePath(0, 'gate_proj')).toBe('model.layers.0.mlp.gate_proj');
  });
});

describe('parsePeftConfig on arbitrary input', () => {
  it('throws nothing but AdapterFormatError', () => {
    const fieldValue = fc.oneof(fc.jsonValue(), fc.constantFrom('LORA', 'llama', 'all-linear', 'q_proj', '.*', '(', ['q_proj'], [0, 99]));
    const config = fc.dictionary(
      fc.constantFrom(
        ...['peft_type', 'task_type', 'r', 'lora_alpha', 'model_type', 'target_modules', 'exclude_modules'],
        ...['layers_to_transform', 'layers_pattern', 'rank_pattern', 'alpha_pattern', 'use_rslora', 'bias'],
        ...['base_model_name_or_path', 'modules_to_save'],
      ),
      fieldValue,
    );
    fc.assert(
      fc.property(fc.oneof(config, fc.jsonValue()), (value) => {
        try {
          parsePeftConfig(JSON.stringify(value) ?? 'undefined', CTX);
        } catch (error) {
          if (!(error instanceof AdapterFormatError)) throw error;
        }
      }),
      { numRuns: 300 },
    );
  });
});
