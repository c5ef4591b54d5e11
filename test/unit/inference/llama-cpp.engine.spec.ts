/**
 * LlamaCppEngine against real tiny GGUF models and PEFT adapters: caching, context management, sampling,
 * streaming, stop strings, aborts, and equality with a model that has the adapter merged into its weights.
 */
import { mkdir, mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it, jest } from '@jest/globals';
import { getLlama, LlamaLogLevel, type Token } from 'node-llama-cpp';

import type { EngineConfig, ModelDefinition } from '../../../src/catalog/model-definition.js';
import { loadModels } from '../../../src/catalog/models-file.js';
import { AdapterFormatError } from '../../../src/formats/format-error.js';
import { parsePeftConfig } from '../../../src/formats/peft-config.js';
import { buildTinyModel, TINY_MODELS, TINY_SAMPLE_ADAPTERS } from '../../../src/demo/tiny-model.js';
import { mergePeftAdapter } from '../../helpers/lora-merge.js';
import type { AdapterFileSource, AdapterRef, GenerationRequest, GenerationResult } from '../../../src/inference/engine.js';
import { LlamaCppEngine, type LlamaCppEngineOptions } from '../../../src/inference/engines/llama-cpp.engine.js';
import { tinySetup, type TinySetup } from '../../helpers/tiny.js';

jest.setTimeout(30_000);

/** Stored objects by key, counting reads and keeping the streams handed out (a file source, as ObjectStorage is one). */
class MemoryFiles implements AdapterFileSource {
  readonly objects = new Map<string, Buffer>();
  readonly reads = new Map<string, number>();
  readonly streams: Readable[] = [];

  async readToFile(key: string, path: string): Promise<void> {
    await writeFile(path, this.read(key));
  }

  async readStream(key: string): Promise<Readable> {
    const bytes = this.read(key);
    // In chunks, as a download arrives.
    const stream = Readable.from(Array.from({ length: Math.ceil(bytes.length / 4096) }, (_, i) => bytes.subarray(i * 4096, (i + 1) * 4096)));
    this.streams.push(stream);
    return stream;
  }

  private read(key: string): Buffer {
    const bytes = this.objects.get(key);
    if (!bytes) throw new Error(`no object ${key}`);
    this.reads.set(key, (this.reads.get(key) ?? 0) + 1);
    return bytes;
  }
}

const FAMILIES = {
  llama: { catalog: TINY_MODELS[0], prompt: '<s>[INST] hello world, is the world ok? [/INST]', stop: ['</s>'] },
  gemma: {
    catalog: TINY_MODELS[1],
    prompt: '<bos><start_of_turn>user\nhello world, is the world ok?<end_of_turn>\n<start_of_turn>model\n',
    stop: ['<end_of_turn>'],
  },
};
type Family = keyof typeof FAMILIES;

type LlamaCppConfig = Extract<EngineConfig, { type: 'llama-cpp' }>;

let tiny: TinySetup;
let dir: string;
let models: ModelDefinition[];
const files = new MemoryFiles();
const modelPaths = {} as Record<Family, string>;
const adapters = new Map<string, AdapterRef & { config: Buffer; safetensors: Buffer }>();
const engines: LlamaCppEngine[] = [];

/** The tiny model's catalog definition; one thread keeps the JS thread responsive on small machines. */
function definition(family: Family, engine: Partial<LlamaCppConfig> = {}): ModelDefinition {
  const model = models.find((m) => m.name === FAMILIES[family].catalog.name)!;
  return { ...model, engine: { ...(model.engine as LlamaCppConfig), threads: 1, ...engine } };
}

async function engineFor(
  family: Family,
  engine: Partial<LlamaCppConfig> = {},
  options: LlamaCppEngineOptions & { cacheDir?: string } = {},
): Promise<LlamaCppEngine> {
  const created = await LlamaCppEngine.create(
    { model: definition(family, engine), files, cacheDir: options.cacheDir ?? (await mkdtemp(join(dir, 'cache-'))) },
    options,
  );
  engines.push(created);
  return created;
}

function request(family: Family, overrides: Partial<GenerationRequest> = {}): GenerationRequest {
  return {
    prompt: FAMILIES[family].prompt,
    stop: FAMILIES[family].stop,
    maxTokens: 24,
    sampling: { temperature: 0 },
    signal: new AbortController().signal,
    ...overrides,
  };
}

/** Generates and collects the streamed pieces. */
async function generate(engine: LlamaCppEngine, req: GenerationRequest) {
  const pieces: string[] = [];
  const result = await engine.generate(req, (piece) => pieces.push(piece));
  return { ...result, pieces };
}

function adapter(name: string): AdapterRef {
  const a = adapters.get(name);
  if (!a) throw new Error(`no adapter ${name}`);
  return { finetuneId: a.finetuneId, version: a.version, configKey: a.configKey, weightsKey: a.weightsKey };
}

/**
 * Greedy continuation computed by hand: the model loaded on its own, the prompt evaluated in one go, and all
 * generated tokens decoded at once (so a character split across pieces would show as a difference).
 */
async function referenceGreedy(modelPath: string, text: string, maxTokens: number, contextSize = 512) {
  const llama = await getLlama({ gpu: false, build: 'never', logLevel: LlamaLogLevel.error });
  const model = await llama.loadModel({ modelPath });
  try {
    // node-llama-cpp's default batch of 512 tokens: a longer prompt is decoded 512 tokens at a time.
    const sequence = (await model.createContext({ contextSize, threads: 1 })).getSequence();
    const prompt = model.tokenize(text, true);
    const generated: Token[] = [];
    for await (const token of sequence.evaluate(prompt, { temperature: 0 })) {
      generated.push(token);
      if (generated.length === maxTokens) break;
    }
    return { text: model.detokenize(generated, false, prompt), promptTokens: prompt.length };
  } finally {
    await model.dispose();
  }
}

/**
 * Records what llama.cpp decodes for the engine: per decode, the [sequence id, token count] of each request in the
 * batch. It watches the engine's native context (node-llama-cpp's binding) without changing what it does.
 */
function recordDecodes(engine: LlamaCppEngine): [number, number][][] {
  type Native = Record<string | symbol, unknown> & {
    addToBatch(sequenceId: number, firstToken: number, tokens: Uint32Array, logits: Uint32Array): unknown;
    decodeBatch(): Promise<void>;
  };
  const context = (engine as unknown as { context: { _ctx: Native } }).context;
  const native = context._ctx;
  const decodes: [number, number][][] = [];
  let batch: [number, number][] = [];
  context._ctx = new Proxy(native, {
    get(target, key) {
      if (key === 'addToBatch') {
        return (sequenceId: number, firstToken: number, tokens: Uint32Array, logits: Uint32Array) => {
          batch.push([sequenceId, tokens.length]);
          return target.addToBatch(sequenceId, firstToken, tokens, logits);
        };
      }
      if (key === 'decodeBatch') {
        return () => {
          decodes.push(batch);
          batch = [];
          return target.decodeBatch();
        };
      }
      const value = target[key];
      return typeof value === 'function' ? value.bind(target) : value;
    },
  });
  return decodes;
}

const readsOf = (ref: AdapterRef) => [files.reads.get(ref.configKey) ?? 0, files.reads.get(ref.weightsKey) ?? 0];

beforeAll(async () => {
  tiny = await tinySetup();
  dir = tiny.dir;
  models = loadModels(tiny.modelsFile);
  for (const family of Object.keys(FAMILIES) as Family[]) modelPaths[family] = join(dir, FAMILIES[family].catalog.file);
  for (const [i, { name }] of TINY_SAMPLE_ADAPTERS.entries()) {
    const { config, safetensors } = tiny.read(name);
    const ref = { finetuneId: `ft-${i}`, version: `v${i}-${name}`, configKey: `${name}/c`, weightsKey: `${name}/w` };
    files.objects.set(ref.configKey, config);
    files.objects.set(ref.weightsKey, safetensors);
    adapters.set(name, { ...ref, config, safetensors });
  }
});

afterAll(async () => {
  for (const engine of engines) await engine.close();
  if (dir) await rm(dir, { recursive: true, force: true });
});

describe.each(['llama', 'gemma'] as Family[])('tiny %s', (family) => {
  const adapterName = TINY_SAMPLE_ADAPTERS.find((a) => a.model === FAMILIES[family].catalog.name)!.name;
  let engine: LlamaCppEngine;
  let base: GenerationResult & { pieces: string[] };

  beforeAll(async () => {
    engine = await engineFor(family);
    base = await generate(engine, request(family));
  });

  it('generates greedily and deterministically, streaming pieces that add up to the text', async () => {
    expect(base.text.length).toBeGreaterThan(5);
    expect(base.pieces.join('')).toBe(base.text);
    const again = await generate(engine, request(family));
    expect(again.text).toBe(base.text);
    expect(again.usage).toEqual(base.usage);
  });

  it('with the adapter: differs from the base and equals the model with the adapter merged in', async () => {
    const ref = adapter(adapterName);
    const withAdapter = await generate(engine, request(family, { adapter: ref }));
    expect(withAdapter.text).not.toBe(base.text);
    expect(withAdapter.pieces.join('')).toBe(withAdapter.text);

    const a = adapters.get(adapterName)!;
    const { spec } = FAMILIES[family].catalog;
    const { architecture } = buildTinyModel(spec);
    const { config } = parsePeftConfig(a.config, { architecture, maxLoraRank: 32 });
    const mergedPath = join(dir, `${family}-merged.gguf`);
    await writeFile(mergedPath, buildTinyModel(spec, (w) => mergePeftAdapter(w, architecture, config, a.safetensors)).gguf);
    const reference = await referenceGreedy(mergedPath, FAMILIES[family].prompt, withAdapter.usage.completion_tokens);
    expect(withAdapter.text).toBe(reference.text);
    expect(withAdapter.usage.prompt_tokens).toBe(reference.promptTokens);
  });
});

describe('adapter cache', () => {
  it('converts each version once, shares concurrent first uses, and reuses the GGUF after a restart', async () => {
    const cacheDir = await mkdtemp(join(dir, 'cache-'));
    const engine = await engineFor('llama', {}, { cacheDir });
    const source = adapter('tiny-llama-qv');
    const ref = { ...source, version: 'cache-test', configKey: 'cache-test/config', weightsKey: 'cache-test/weights' };
    files.objects.set(ref.configKey, files.objects.get(source.configKey)!);
    files.objects.set(ref.weightsKey, files.objects.get(source.weightsKey)!);
    const [first, second] = await Promise.all([
      engine.generate(request('llama', { adapter: ref })),
      engine.generate(request('llama', { adapter: ref })),
    ]);
    expect(second.text).toBe(first.text);
    expect(readsOf(ref)).toEqual([1, 1]);
    await engine.generate(request('llama', { adapter: ref }));
    expect(readsOf(ref)).toEqual([1, 1]);

    const restarted = await engineFor('llama', {}, { cacheDir });
    expect((await restarted.generate(request('llama', { adapter: ref }))).text).toBe(first.text);
    expect(readsOf(ref)).toEqual([1, 1]);
  });

  it('a conversion that fails leaves no file behind, releases both downloads, and is retried on the next use', async () => {
    const cacheDir = await mkdtemp(join(dir, 'cache-'));
    const engine = await engineFor('llama', {}, { cacheDir });
    const qv = adapter('tiny-llama-qv');
    // The config of another adapter: the weights do not match it.
    const mismatched = { ...qv, version: 'mismatched', configKey: adapter('tiny-llama-all-rslora').configKey };
    const missing = { ...qv, version: 'missing', configKey: 'nowhere/config' };
    const opened = files.streams.length;
    await expect(engine.generate(request('llama', { adapter: mismatched }))).rejects.toThrow(AdapterFormatError);
    await expect(engine.generate(request('llama', { adapter: missing }))).rejects.toThrow('no object nowhere/config');
    expect(files.streams.slice(opened).map((s) => s.destroyed)).toEqual([true, true, true]);
    expect(await readdir(join(cacheDir, 'gguf'))).toEqual([]);

    files.objects.set(missing.configKey, files.objects.get(qv.configKey)!);
    expect((await engine.generate(request('llama', { adapter: missing }))).text).toBe((await engine.generate(request('llama', { adapter: qv }))).text);
    expect(await readdir(join(cacheDir, 'gguf'))).toEqual(['missing.gguf', `${qv.version}.gguf`].sort());
    files.objects.delete(missing.configKey);
  });
});

describe('generation controls (tiny llama)', () => {
  let engine: LlamaCppEngine;
  let baseline: string;

  beforeAll(async () => {
    engine = await engineFor('llama');
    baseline = (await engine.generate(request('llama', { maxTokens: 40 }))).text;
  });

  it('streams whole UTF-8 characters even when they arrive one byte-token at a time', async () => {
    const result = await generate(engine, request('llama', { maxTokens: 40 }));
    // This output contains multi-byte characters made of byte-fallback tokens (e.g. U+05B6, U+B532).
    expect(result.text).toMatch(/[^\x00-\x7F\uFFFD]/);
    expect(result.text).toBe((await referenceGreedy(modelPaths.llama, FAMILIES.llama.prompt, 40)).text);
    expect(result.pieces.join('')).toBe(result.text);
    for (const piece of result.pieces) expect(Buffer.from(piece).toString()).toBe(piece);
  });

  it('stops at max_tokens with finishReason length, also in the middle of a character', async () => {
    for (let maxTokens = 1; maxTokens <= 12; maxTokens++) {
      const result = await engine.generate(request('llama', { maxTokens }));
      expect(result).toMatchObject({ finishReason: 'length', usage: { completion_tokens: maxTokens } });
      expect(result.usage.total_tokens).toBe(result.usage.prompt_tokens + maxTokens);
      // A partial character at the end comes out as U+FFFD.
      expect(baseline.startsWith(result.text.replace(/\uFFFD+$/, ''))).toBe(true);
    }
  });

  it('ends at the first stop string, which is neither returned nor streamed', async () => {
    for (let at = 2; at < baseline.length - 6; at += 5) {
      const stop = [baseline.slice(at, at + 3), baseline.slice(at + 2, at + 6)];
      const cut = Math.min(...stop.map((s) => baseline.indexOf(s)));
      const result = await generate(engine, request('llama', { maxTokens: 40, stop: ['</s>', ...stop] }));
      expect(result.finishReason).toBe('stop');
      expect(result.text).toBe(baseline.slice(0, cut));
      expect(result.pieces.join('')).toBe(result.text);
    }
  });

  it('reproduces sampled output for the same seed', async () => {
    const sampled = (seed: number) =>
      engine.generate(request('llama', { maxTokens: 30, sampling: { temperature: 1.5, topK: 50, topP: 0.95, seed } }));
    const [a, b, c] = [await sampled(7), await sampled(7), await sampled(8)];
    expect(b.text).toBe(a.text);
    expect(c.text).not.toBe(a.text);
    expect(a.text).not.toBe(baseline);
  });

  it('applies repetition, frequency and presence penalties', async () => {
    const penalized = await engine.generate(
      request('llama', {
        maxTokens: 40,
        sampling: { temperature: 0, repetitionPenalty: 1.5, frequencyPenalty: 0.5, presencePenalty: 0.5 },
      }),
    );
    expect(penalized.text).not.toBe(baseline);
  });

  it('stops promptly on abort, reports aborted, and leaves the context clean for the next request', async () => {
    const controller = new AbortController();
    let pieces = 0;
    const result = await engine.generate(request('llama', { maxTokens: 400, signal: controller.signal }), () => {
      if (++pieces === 2) controller.abort();
    });
    expect(result.finishReason).toBe('aborted');
    expect(result.usage.completion_tokens).toBeLessThan(20);
    expect((await engine.generate(request('llama', { maxTokens: 40 }))).text).toBe(baseline);
  });

  it('counts prompt tokens with exactly one BOS, as generation uses them', async () => {
    const templated = await engine.countTokens('<s>[INST] hi there [/INST]');
    expect(await engine.countTokens('[INST] hi there [/INST]')).toBe(templated);
    expect(templated).toBeGreaterThan(4);
    const result = await engine.generate(request('llama', { maxTokens: 1 }));
    expect(result.usage.prompt_tokens).toBe(await engine.countTokens(FAMILIES.llama.prompt));
  });

  it('rejects a prompt longer than the context', async () => {
    const prompt = `<s>${'hello world '.repeat(300)}`;
    expect(await engine.countTokens(prompt)).toBeGreaterThan(512);
    await expect(engine.generate(request('llama', { prompt }))).rejects.toMatchObject({ error: 'validation' });
    expect((await engine.generate(request('llama', { maxTokens: 40 }))).text).toBe(baseline);
  });
});

describe('scheduling', () => {
  /** Runs the requests at once, recording when each streams a piece and when it ends. */
  async function together(engine: LlamaCppEngine, requests: Record<string, GenerationRequest>) {
    const events: string[] = [];
    const results = await Promise.all(
      Object.entries(requests).map(async ([name, req]) => {
        const result = await engine.generate(req, () => events.push(`${name}:piece`));
        events.push(`${name}:end`);
        return [name, result] as const;
      }),
    );
    return { events, results: Object.fromEntries(results) };
  }
  const firstPiece = (events: string[], name: string) => events.indexOf(`${name}:piece`);
  const end = (events: string[], name: string) => events.indexOf(`${name}:end`);

  it('runs requests on the same adapter together, each with the text it has alone', async () => {
    const engine = await engineFor('llama');
    const qv = adapter('tiny-llama-qv');
    const prompts = ['<s>[INST] hello world [/INST]', '<s>[INST] is the world ok? [/INST]', '<s>[INST] hi [/INST]'];
    const alone = [];
    for (const prompt of prompts) alone.push((await engine.generate(request('llama', { prompt, adapter: qv, maxTokens: 30 }))).text);
    const { events, results } = await together(
      engine,
      Object.fromEntries(prompts.map((prompt, i) => [`r${i}`, request('llama', { prompt, adapter: qv, maxTokens: 30 })])),
    );
    for (const [i, text] of alone.entries()) expect(results[`r${i}`].text).toBe(text);
    // Every request streams before any of them ends: they were decoded side by side, not one after the other.
    for (const a of ['r0', 'r1', 'r2']) for (const b of ['r0', 'r1', 'r2']) expect(firstPiece(events, a)).toBeLessThan(end(events, b));
  });

  it('decodes the prompts of requests arriving together in one batch, in sequence order', async () => {
    const engine = await engineFor('llama');
    const qv = adapter('tiny-llama-qv');
    await engine.generate(request('llama', { adapter: qv, maxTokens: 2 }));
    const decodes = recordDecodes(engine);
    const prompts = ['<s>[INST] hello world [/INST]', '<s>[INST] is the world ok? [/INST]', '<s>[INST] hi [/INST]'];
    // Requests on a loaded adapter (the engine still looks its file up first) and on the base model.
    const results = await Promise.all([
      ...prompts.map((prompt) => engine.generate(request('llama', { prompt, adapter: qv, maxTokens: 4 }))),
      engine.generate(request('llama', { maxTokens: 4 })),
    ]);
    const lengths = results.map((r) => r.usage.prompt_tokens);
    // The base request, with nothing to look up, has sequence 0 and a step of its own (another adapter).
    expect(decodes).toContainEqual([[0, lengths[3]]]);
    expect(decodes).toContainEqual([[1, lengths[0]], [2, lengths[1]], [3, lengths[2]]]);
  });

  it('decodes a request arriving while others generate in their very next batch', async () => {
    const engine = await engineFor('llama');
    const decodes = recordDecodes(engine);
    const prompts = ['<s>[INST] hello world [/INST]', '<s>[INST] hi [/INST]'];
    let arrived: Promise<GenerationResult[]> | undefined;
    let next = -1;
    const running = request('llama', { maxTokens: 40, stop: [], prompt: '<s>[INST] 0 [/INST]' });
    await engine.generate(running, () => {
      if (arrived) return;
      // The running request is between two steps: its next decode is the first one the new requests can join.
      next = decodes.length;
      arrived = Promise.all(prompts.map((prompt) => engine.generate(request('llama', { prompt, maxTokens: 4 }))));
    });
    const [a, b] = await arrived!;
    expect(decodes[next]).toEqual([[0, 1], [1, a.usage.prompt_tokens], [2, b.usage.prompt_tokens]]);
  });

  it('evaluates a long prompt 512 tokens per decode, as llama-server does, with running requests decoding in between', async () => {
    const engine = await engineFor('llama', { context_size: 2048 });
    const prompt = `<s>[INST] ${'hello world '.repeat(560)} [/INST]`;
    const promptTokens = await engine.countTokens(prompt);
    expect(promptTokens).toBeGreaterThan(1024);
    const long = request('llama', { prompt, maxTokens: 8 });
    const alone = await engine.generate(long);
    expect(alone.text).toBe((await referenceGreedy(modelPaths.llama, prompt, alone.usage.completion_tokens, 2048)).text);

    const decodes = recordDecodes(engine);
    const running = new AbortController();
    let started!: () => void;
    const pieces = new Promise<void>((resolve) => (started = resolve));
    const busy = engine.generate(request('llama', { maxTokens: 400, stop: [], prompt: '<s>[INST] 0 [/INST]', signal: running.signal }), () => started());
    await pieces;
    const result = await engine.generate(long);
    running.abort();
    await busy;
    expect(result.usage.prompt_tokens).toBe(promptTokens);
    // Sequence 1 holds the long request: its prompt went in three decodes, each with a token of sequence 0.
    const chunks = decodes.filter((batch) => batch.some(([sequence, tokens]) => sequence === 1 && tokens > 1));
    expect(chunks).toEqual([
      [[0, 1], [1, 512]],
      [[0, 1], [1, 512]],
      [[0, 1], [1, promptTokens - 1024]],
    ]);
  });

  it('gives adapters turns: a request on another adapter (or the base) is not held back by a busy one', async () => {
    const engine = await engineFor('llama');
    const busy = (i: number) => request('llama', { adapter: adapter('tiny-llama-qv'), maxTokens: 200, stop: [], prompt: `<s>[INST] ${i} [/INST]` });
    const other = request('llama', { adapter: adapter('tiny-llama-all-rslora'), maxTokens: 8 });
    const base = request('llama', { maxTokens: 8 });
    const otherAlone = (await engine.generate(other)).text;
    const baseAlone = (await engine.generate(base)).text;
    const { events, results } = await together(engine, { b0: busy(0), b1: busy(1), b2: busy(2), other, base });
    expect(results.other.text).toBe(otherAlone);
    expect(results.base.text).toBe(baseAlone);
    for (const short of ['other', 'base']) {
      for (const long of ['b0', 'b1', 'b2']) expect(end(events, short)).toBeLessThan(end(events, long));
    }
  });

  it('queues requests beyond `parallel`, and one aborted while queued returns at once', async () => {
    const engine = await engineFor('llama', { parallel: 1 });
    const qv = request('llama', { adapter: adapter('tiny-llama-qv') });
    const alone = await engine.generate(qv); // converted already: the next request for it goes straight to the queue
    const [a, b] = await Promise.all([engine.generate(qv), engine.generate(request('llama'))]);
    expect(a.text).toBe(alone.text);
    expect(b.text).not.toBe(a.text);

    const busy = new AbortController();
    const running = engine.generate(request('llama', { maxTokens: 400, signal: busy.signal }));
    const queued = new AbortController();
    const waiting = engine.generate({ ...qv, signal: queued.signal });
    await new Promise((resolve) => setImmediate(resolve));
    queued.abort();
    expect((await waiting).finishReason).toBe('aborted');
    busy.abort();
    expect((await running).finishReason).toBe('aborted');
  });

  it('an adapter llama.cpp cannot load fails its own requests with engineUnavailable, not the others', async () => {
    const cacheDir = await mkdtemp(join(dir, 'cache-'));
    const engine = await engineFor('llama', {}, { cacheDir });
    const broken = { ...adapter('tiny-llama-qv'), version: 'broken' };
    await mkdir(join(cacheDir, 'gguf'), { recursive: true });
    await writeFile(join(cacheDir, 'gguf', 'broken.gguf'), 'not a gguf file');
    const [failed, fine] = await Promise.allSettled([
      engine.generate(request('llama', { adapter: broken })),
      engine.generate(request('llama', { adapter: adapter('tiny-llama-qv') })),
    ]);
    expect(failed.status === 'rejected' && failed.reason).toMatchObject({ error: 'engineUnavailable' });
    expect(failed.status === 'rejected' && (failed.reason as Error).message).toMatch(/adapter broken/);
    expect(fine.status).toBe('fulfilled');
  });

  it('reloads the model when adapters retained by llama.cpp exceed the budget, answering the same', async () => {
    const engine = await engineFor('llama', {}, { retainedAdapterBytes: 0 });
    const one = request('llama', { adapter: adapter('tiny-llama-qv') });
    const first = await engine.generate(one);
    const other = request('llama', { adapter: adapter('tiny-llama-all-rslora') });
    const second = await engine.generate(other);
    const base = await engine.generate(request('llama'));
    // Each switch reloads the model (nothing may stay retained): every answer is still that adapter's own.
    expect((await engine.generate(one)).text).toBe(first.text);
    expect((await engine.generate(other)).text).toBe(second.text);
    expect((await engine.generate(request('llama'))).text).toBe(base.text);
    expect(new Set([first.text, second.text, base.text]).size).toBe(3);
  });
});

describe('create', () => {
  it('fails with engineUnavailable naming a missing model file', async () => {
    const model_path = join(dir, 'missing.gguf');
    const create = LlamaCppEngine.create({ model: definition('llama', { model_path }), files, cacheDir: dir });
    await expect(create).rejects.toMatchObject({ error: 'engineUnavailable' });
    await expect(create).rejects.toThrow(model_path);
  });

  it('fails with engineUnavailable for a file that is not a model', async () => {
    const model_path = join(dir, 'not-a-model.gguf');
    await writeFile(model_path, 'not a gguf file');
    const create = LlamaCppEngine.create({ model: definition('llama', { model_path }), files, cacheDir: dir });
    await expect(create).rejects.toMatchObject({ error: 'engineUnavailable' });
  });
});
