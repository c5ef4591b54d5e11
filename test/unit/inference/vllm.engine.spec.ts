import { afterEach, beforeEach, describe, expect, it } from '@jest/globals';
import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { BUILTIN_MODELS } from '../../../src/catalog/builtin-models.js';
import type { EngineConfig, ModelDefinition } from '../../../src/catalog/model-definition.js';
import type { AdapterFileSource, AdapterRef, GenerationRequest } from '../../../src/inference/engine.js';
import { VllmEngine, vllmGauges, vllmLoraName } from '../../../src/inference/engines/vllm.engine.js';
import { standInAnswer, standInTokens, startVllmStandIn, type VllmStandIn, type VllmStandInOptions } from '../../helpers/vllm-stand-in.js';

type VllmConfig = Extract<EngineConfig, { type: 'vllm' }>;

const ADAPTER: AdapterRef = {
  finetuneId: '5b0d1a0e-3c7b-4f55-9a39-0d6c3b1f7e21',
  version: 'a3f1c2d4e5b6978899aabbccddeeff00112233445566778899aabbccddeeff00',
  configKey: 'adapters/config.json',
  weightsKey: 'adapters/weights.safetensors',
};
const NAME = vllmLoraName(ADAPTER);
const CONFIG_JSON = JSON.stringify({ peft_type: 'LORA', r: 8, lora_alpha: 16, target_modules: ['q_proj', 'v_proj'] });
const WEIGHTS = Buffer.from('not really tensors, vLLM is not reading them here');

const base = BUILTIN_MODELS.find((m) => m.lora);
if (!base) throw new Error('no built-in LoRA model');

let dir: string;
let adapterDir: string;
const servers: VllmStandIn[] = [];
const engines: VllmEngine[] = [];

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'vllm-engine-'));
  adapterDir = join(dir, 'adapters');
});

afterEach(async () => {
  await Promise.all(engines.splice(0).map((e) => e.close()));
  await Promise.all(servers.splice(0).map((s) => s.close()));
  await rm(dir, { recursive: true, force: true });
});

async function standIn(options?: VllmStandInOptions): Promise<VllmStandIn> {
  const server = await startVllmStandIn(options);
  servers.push(server);
  return server;
}

/** Storage stand-in: the adapter's two objects, counting reads. */
function files() {
  const objects: Record<string, Buffer> = { [ADAPTER.configKey]: Buffer.from(CONFIG_JSON), [ADAPTER.weightsKey]: WEIGHTS };
  const reads: string[] = [];
  return {
    reads,
    readToFile: async (key: string, path: string) => {
      reads.push(key);
      await writeFile(path, objects[key]);
    },
    readStream: async (key: string) => {
      reads.push(key);
      return Readable.from([objects[key]]);
    },
  };
}

function engine(server: { url: string; served: string }, config: Partial<VllmConfig> = {}, source: AdapterFileSource = files()): VllmEngine {
  const model: ModelDefinition = {
    ...base!,
    engine: { type: 'vllm', base_url: server.url, served_model: server.served, adapter_dir: adapterDir, ...config },
  };
  const created = new VllmEngine({ model, files: source, cacheDir: join(dir, 'cache') });
  engines.push(created);
  return created;
}

function request(overrides: Partial<GenerationRequest> = {}): GenerationRequest {
  return { prompt: 'hello brave new world', stop: [], maxTokens: 64, sampling: {}, signal: new AbortController().signal, ...overrides };
}

async function rejection(promise: Promise<unknown>): Promise<unknown> {
  try {
    await promise;
  } catch (error) {
    return error;
  }
  throw new Error('expected a rejection');
}

describe('VllmEngine', () => {
  it('completes with the base model', async () => {
    const server = await standIn();
    const result = await engine(server).generate(request({ stop: ['</s>'] }));

    expect(result).toEqual({
      text: standInAnswer(server.served, 'hello brave new world'),
      usage: { prompt_tokens: 4, completion_tokens: 6, total_tokens: 10 },
      finishReason: 'stop',
    });
    expect(server.completions[0]).toMatchObject({ model: server.served, prompt: 'hello brave new world', max_tokens: 64, stop: ['</s>'], stream: false });
    expect(server.completions[0]).not.toHaveProperty('stream_options');
  });

  it("maps vLLM's finish_reason length, and its stop strings", async () => {
    const server = await standIn();
    const vllm = engine(server);

    const cut = await vllm.generate(request({ maxTokens: 3 }));
    expect(cut).toMatchObject({ text: `${server.served} heard: hello`, finishReason: 'length', usage: { completion_tokens: 3 } });

    const stopped = await vllm.generate(request({ stop: [' new'] }));
    expect(stopped).toMatchObject({ text: `${server.served} heard: hello brave`, finishReason: 'stop' });
  });

  it('forwards the sampling options under their vLLM names', async () => {
    const server = await standIn();
    await engine(server).generate(
      request({
        sampling: { temperature: 0.2, topP: 0.9, topK: 40, seed: 7, repetitionPenalty: 1.1, frequencyPenalty: 0.3, presencePenalty: -0.4 },
      }),
    );

    expect(server.completions[0]).toMatchObject({
      temperature: 0.2,
      top_p: 0.9,
      top_k: 40,
      seed: 7,
      repetition_penalty: 1.1,
      frequency_penalty: 0.3,
      presence_penalty: -0.4,
    });
  });

  it('leaves unset sampling options to vLLM', async () => {
    const server = await standIn();
    await engine(server).generate(request({ sampling: { temperature: 0 } }));

    expect(Object.keys(server.completions[0]).sort()).toEqual(['max_tokens', 'model', 'prompt', 'stop', 'stream', 'temperature']);
  });

  it('writes the adapter into adapter_dir, loads it once, then reuses it', async () => {
    const server = await standIn();
    const source = files();
    const vllm = engine(server, {}, source);

    const first = await vllm.generate(request({ adapter: ADAPTER }));
    const second = await vllm.generate(request({ adapter: ADAPTER, prompt: 'again' }));

    expect(NAME).toBe(`ft-${ADAPTER.finetuneId}-${ADAPTER.version.slice(0, 12)}`);
    expect(first.text).toBe(standInAnswer(NAME, 'hello brave new world'));
    expect(second.text).toBe(standInAnswer(NAME, 'again'));
    expect(server.loads).toEqual([NAME]);
    expect(server.completions.map((c) => c.model)).toEqual([NAME, NAME]);
    expect(source.reads).toEqual([ADAPTER.configKey, ADAPTER.weightsKey]);
    // Only the final folder is left: the staging folder was renamed into place.
    expect(await readdir(adapterDir)).toEqual([NAME]);
    expect(await readFile(join(adapterDir, NAME, 'adapter_config.json'), 'utf8')).toBe(CONFIG_JSON);
    expect(await readFile(join(adapterDir, NAME, 'adapter_model.safetensors'))).toEqual(WEIGHTS);
  });

  it('shares one load between concurrent first uses of an adapter', async () => {
    const server = await standIn();
    const source = files();
    const vllm = engine(server, {}, source);

    const results = await Promise.all([1, 2, 3].map(() => vllm.generate(request({ adapter: ADAPTER }))));

    expect(results.map((r) => r.finishReason)).toEqual(['stop', 'stop', 'stop']);
    expect(server.loads).toEqual([NAME]);
    expect(source.reads).toHaveLength(2);
  });

  it('takes "already loaded" for a success (another process loaded it since this one read the replica)', async () => {
    const server = await standIn();
    const fresh = engine(server);
    await fresh.fleet.ready;
    await engine(server).generate(request({ adapter: ADAPTER }));

    const result = await fresh.generate(request({ adapter: ADAPTER }));
    await fresh.generate(request({ adapter: ADAPTER }));

    expect(result.text).toBe(standInAnswer(NAME, 'hello brave new world'));
    expect(server.loads).toEqual([NAME, NAME]);
  });

  it("reads what a replica holds from its /v1/models: a new process does not load an adapter again", async () => {
    const server = await standIn();
    await engine(server).generate(request({ adapter: ADAPTER }));

    const result = await engine(server).generate(request({ adapter: ADAPTER }));

    expect(result.text).toBe(standInAnswer(NAME, 'hello brave new world'));
    expect(server.loads).toEqual([NAME]);
  });

  it('loads the adapter again and retries once when vLLM restarted and forgot it', async () => {
    const server = await standIn();
    const vllm = engine(server);
    await vllm.generate(request({ adapter: ADAPTER }));

    server.restart();
    const result = await vllm.generate(request({ adapter: ADAPTER, prompt: 'after restart' }));

    expect(result.text).toBe(standInAnswer(NAME, 'after restart'));
    expect(server.loads).toEqual([NAME, NAME]);
    expect(server.loaded()).toEqual([NAME]);
    expect(server.completions.map((c) => c.model)).toEqual([NAME, NAME, NAME]);
  });

  it("answers 503 with vLLM's message when vLLM finds no adapter at lora_path, and does not remember the failure", async () => {
    const server = await standIn();
    // As if vLLM did not see adapter_dir's files: the config never reaches the folder vLLM is given.
    let hideConfig = true;
    const source = {
      readToFile: async (key: string, path: string) => {
        await writeFile(path, key === ADAPTER.configKey ? CONFIG_JSON : WEIGHTS);
        if (hideConfig && key === ADAPTER.weightsKey) await rm(join(path, '..', 'adapter_config.json'));
      },
      readStream: files().readStream,
    };
    const vllm = engine(server, {}, source);

    const error = await rejection(vllm.generate(request({ adapter: ADAPTER })));
    expect(error).toMatchObject({ error: 'engineUnavailable' });
    expect((error as Error).message).toBe(
      `vLLM at ${server.url} answered 404 to /v1/load_lora_adapter: Loading lora ${NAME} failed: No adapter found for ${join(adapterDir, NAME)}`,
    );

    hideConfig = false;
    await rm(join(adapterDir, NAME), { recursive: true });
    await vllm.generate(request({ adapter: ADAPTER }));
    expect(server.loads).toEqual([NAME, NAME]);
  });

  it('streams text pieces that add up to the final text, with usage', async () => {
    const server = await standIn();
    const pieces: string[] = [];
    const result = await engine(server).generate(request({ adapter: ADAPTER }), (piece) => pieces.push(piece));

    expect(pieces.length).toBe(6);
    expect(pieces.join('')).toBe(result.text);
    expect(result).toEqual({
      text: standInAnswer(NAME, 'hello brave new world'),
      usage: { prompt_tokens: 4, completion_tokens: 6, total_tokens: 10 },
      finishReason: 'stop',
    });
    expect(server.completions[0]).toMatchObject({ stream: true, stream_options: { include_usage: true } });
  });

  it('reads events split anywhere, mid-character included', async () => {
    const server = await standIn({ fragmentBytes: 3 });
    const pieces: string[] = [];
    const prompt = 'héllo wörld ✓ ünïcode';
    const result = await engine(server).generate(request({ prompt, maxTokens: 4 }), (piece) => pieces.push(piece));

    expect(result.text).toBe(`${server.served} heard: héllo wörld`);
    expect(pieces.join('')).toBe(result.text);
    expect(result.finishReason).toBe('length');
    expect(result.usage).toEqual({ prompt_tokens: 4, completion_tokens: 4, total_tokens: 8 });
  });

  it('stops mid-stream when the caller aborts, returning what was produced', async () => {
    const server = await standIn({ chunkDelayMs: 25 });
    const prompt = Array.from({ length: 60 }, (_, i) => `word${i}`).join(' ');
    const controller = new AbortController();
    const pieces: string[] = [];

    const result = await engine(server).generate(request({ prompt, maxTokens: 100, signal: controller.signal }), (piece) => {
      pieces.push(piece);
      if (pieces.length === 3) controller.abort();
    });
    await server.disconnected();

    expect(result.finishReason).toBe('aborted');
    expect(result.text).toBe(pieces.join(''));
    expect(standInAnswer(server.served, prompt).startsWith(result.text)).toBe(true);
    expect(result.usage).toEqual({ prompt_tokens: 60, completion_tokens: 3, total_tokens: 63 });
    expect(server.disconnects()).toBe(1);
  });

  it('does nothing for a request aborted before it started', async () => {
    const server = await standIn();
    const source = files();
    const controller = new AbortController();
    controller.abort();

    const result = await engine(server, {}, source).generate(request({ adapter: ADAPTER, signal: controller.signal }));

    expect(result).toEqual({ text: '', usage: { prompt_tokens: 0, completion_tokens: 0, total_tokens: 0 }, finishReason: 'aborted' });
    expect(source.reads).toEqual([]);
    expect(server.loads).toEqual([]);
  });

  it('answers 503/90503 naming the URL when vLLM is down', async () => {
    const closed = createServer();
    await new Promise<void>((resolve) => closed.listen(0, '127.0.0.1', resolve));
    const url = `http://127.0.0.1:${(closed.address() as AddressInfo).port}`;
    await new Promise((resolve) => closed.close(resolve));
    const vllm = engine({ url, served: 'base' }, { api_key: 'never-shown' });

    for (const attempt of [() => vllm.generate(request()), () => vllm.generate(request({ adapter: ADAPTER })), () => vllm.countTokens('hi')]) {
      const error = await rejection(attempt());
      expect(error).toMatchObject({ error: 'engineUnavailable' });
      expect(error).toMatchObject({ status: 503, code: 90503 });
      expect((error as Error).message).toContain(url);
      expect((error as Error).message).toContain('ECONNREFUSED');
      expect((error as Error).message).not.toContain('never-shown');
    }
  });

  it('answers 408/3007 when vLLM takes longer than timeout_ms', async () => {
    // Between two chunks here; the HTTP pool checks its timeouts about every half second, so the pause is longer.
    const server = await standIn({ chunkDelayMs: 1500 });
    const error = await rejection(engine(server, { timeout_ms: 100 }).generate(request(), () => undefined));

    expect(error).toMatchObject({ error: 'timeout', status: 408, code: 3007 });
    expect((error as Error).message).toContain(`vLLM at ${server.url} did not answer within 100 ms`);
  });

  it('sends api_key as a bearer token', async () => {
    const server = await standIn({ apiKey: 'sk-vllm' });
    await engine(server, { api_key: 'sk-vllm' }).generate(request({ adapter: ADAPTER }));
    // The load, the completion, and the reads of the replica's state.
    expect(server.authorizations.length).toBeGreaterThanOrEqual(2);
    expect(new Set(server.authorizations)).toEqual(new Set(['Bearer sk-vllm']));

    const error = await rejection(engine(server).generate(request()));
    expect(error).toMatchObject({ error: 'engineUnavailable' });
    expect((error as Error).message).toBe(`vLLM at ${server.url} answered 401 to /v1/completions: Unauthorized`);
  });

  it('says how to enable runtime LoRA loading when vLLM has it off', async () => {
    const server = await standIn({ runtimeLoraUpdating: false });
    const error = await rejection(engine(server).generate(request({ adapter: ADAPTER })));

    expect(error).toMatchObject({ error: 'engineUnavailable' });
    expect((error as Error).message).toContain('answered 404 to /v1/load_lora_adapter');
    expect((error as Error).message).toContain('VLLM_ALLOW_RUNTIME_LORA_UPDATING=True');
  });

  it("passes vLLM's own message on for other 4xx answers", async () => {
    const server = await standIn();
    const error = await rejection(engine({ url: server.url, served: 'not-served' }).generate(request()));

    expect(error).toMatchObject({ error: 'engineUnavailable' });
    expect((error as Error).message).toBe(`vLLM at ${server.url} answered 404 to /v1/completions: The model \`not-served\` does not exist.`);
  });

  it("counts tokens with vLLM's /tokenize", async () => {
    const server = await standIn();
    expect(await engine(server).countTokens('one two three four five')).toBe(standInTokens('one two three four five').length);
  });

  it('ends in-flight requests on close', async () => {
    const server = await standIn({ chunkDelayMs: 50 });
    const vllm = engine(server);
    const pending = rejection(vllm.generate(request(), () => undefined));
    await new Promise((resolve) => setTimeout(resolve, 20));
    await vllm.close();

    const error = await pending;
    expect(error).toMatchObject({ error: 'engineUnavailable' });
    expect((error as Error).message).toContain('the engine is closed');
  });

  it('unloads the least recently used adapter when a replica holds max_loras', async () => {
    const server = await standIn({ maxLoras: 1 });
    const other: AdapterRef = { ...ADAPTER, finetuneId: '6c1e2b1f-4d8c-4a66-8b4a-1e7d4c2a8f32' };
    const source = {
      readToFile: async (key: string, path: string) => writeFile(path, key === ADAPTER.configKey ? CONFIG_JSON : WEIGHTS),
      readStream: files().readStream,
    };
    const vllm = engine(server, { max_loras: 1 }, source);

    await vllm.generate(request({ adapter: ADAPTER }));
    const result = await vllm.generate(request({ adapter: other }));
    await vllm.generate(request({ adapter: ADAPTER }));

    expect(result.text).toBe(standInAnswer(vllmLoraName(other), 'hello brave new world'));
    expect(server.loads).toEqual([NAME, vllmLoraName(other), NAME]);
    expect(server.unloads).toEqual([NAME, vllmLoraName(other)]);
    expect(server.refusals()).toBe(0);
    expect(server.peakLoaded()).toBe(1);
  });

  it('retries once on another replica when the first fails before any output, and marks it down', async () => {
    const [a, b] = [await standIn(), await standIn()];
    const vllm = engine(a, { base_url: undefined, replicas: [a.url, b.url], refresh_ms: 50 });
    await a.kill();

    const results = await Promise.all([1, 2, 3, 4].map(() => vllm.generate(request({ adapter: ADAPTER }), () => undefined)));

    expect(results.map((r) => r.text)).toEqual(results.map(() => standInAnswer(NAME, 'hello brave new world')));
    expect(b.completions).toHaveLength(4);
    const down = vllm.fleet.replicas.find((r) => r.url === a.url)!;
    expect(down.healthy).toBe(false);
    expect(down.downReason).toBe('ECONNREFUSED');

    await a.revive();
    const deadline = Date.now() + 5_000;
    while (!down.healthy && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 20));
    expect(down.healthy).toBe(true);
  });

  it('fails a stream whose replica dies after text went out, without retrying it elsewhere', async () => {
    const [a, b] = [await standIn({ chunkDelayMs: 30 }), await standIn({ chunkDelayMs: 30 })];
    const vllm = engine(a, { base_url: undefined, replicas: [a.url, b.url] });
    const pieces: string[] = [];
    let victim: VllmStandIn | undefined;
    const error = await rejection(
      vllm.generate(request({ maxTokens: 50 }), (piece) => {
        pieces.push(piece);
        if (pieces.length === 1) {
          victim = a.running() > 0 ? a : b;
          void victim.kill();
        }
      }),
    );

    expect(error).toMatchObject({ error: 'engineUnavailable' });
    expect((error as Error).message).toContain(victim!.url);
    expect(pieces.length).toBeGreaterThan(0);
    expect([a, b].filter((s) => s !== victim).every((s) => s.completions.length === 0)).toBe(true);
  });

  it("answers 503 naming each failure when every replica fails", async () => {
    const [a, b] = [await standIn(), await standIn()];
    const vllm = engine(a, { base_url: undefined, replicas: [a.url, b.url] });
    await Promise.all([a.kill(), b.kill()]);

    const error = await rejection(vllm.generate(request()));
    expect(error).toMatchObject({ error: 'engineUnavailable' });
    expect((error as Error).message).toMatch(/^vLLM at http:\/\/127\.0\.0\.1:\d+ is unreachable \(ECONNREFUSED\)$/);
  });
});

describe('VllmEngine load failures', () => {
  it("passes on vLLM's 500 for an adapter it cannot add, and keeps the replica in rotation", async () => {
    const server = await standIn();
    const content = (key: string) => (key === ADAPTER.configKey ? Buffer.from('{not json') : WEIGHTS);
    const source = {
      readToFile: async (key: string, path: string) => writeFile(path, content(key)),
      readStream: async (key: string) => Readable.from([content(key)]),
    };
    const vllm = engine(server, {}, source);

    const error = await rejection(vllm.generate(request({ adapter: ADAPTER })));

    expect(error).toMatchObject({ error: 'engineUnavailable' });
    expect((error as Error).message).toContain(`vLLM at ${server.url} answered 500 to /v1/load_lora_adapter:`);
    expect(vllm.fleet.replicas[0]!.healthy).toBe(true);
    expect((await vllm.generate(request())).finishReason).toBe('stop');
  });
});

describe('vllmGauges', () => {
  it("sums the request gauges over engine cores and reads the newest vllm:lora_requests_info series", () => {
    const gauges = vllmGauges(
      [
        '# HELP vllm:num_requests_running Number of requests in model execution batches.',
        '# TYPE vllm:num_requests_running gauge',
        'vllm:num_requests_running{engine="0",model_name="m"} 2.0',
        'vllm:num_requests_running{engine="1",model_name="m"} 1.0',
        'vllm:num_requests_waiting{engine="0",model_name="m"} 4.0',
        'vllm:lora_requests_info{max_lora="4",running_lora_adapters="old",waiting_lora_adapters=""} 1.7648e+09',
        'vllm:lora_requests_info{max_lora="4",running_lora_adapters="a,b",waiting_lora_adapters="c"} 1.7649e+09',
        'vllm:lora_requests_info{max_lora="4",running_lora_adapters="",waiting_lora_adapters=""} 1.7647e+09',
      ].join('\n'),
    );
    expect(gauges).toEqual({ running: 3, waiting: 4, activeAdapters: ['a', 'b', 'c'], maxLoras: 4 });
    expect(vllmGauges('')).toEqual({ running: 0, waiting: 0 });
  });
});
