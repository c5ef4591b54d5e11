import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { existsSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { buildTinyModel, TINY_MODELS } from '../../../src/demo/tiny-model.js';
import { vllmLoraName } from '../../../src/inference/engines/vllm.engine.js';
import { call, createAccount, startTestApp, type TestAccount, type TestApp } from '../../helpers/app.js';
import { tinySetup, type TinySetup } from '../../helpers/tiny.js';
import { upload } from '../../helpers/uploads.js';
import { startVllmStandIn, type VllmStandIn } from '../../helpers/vllm-stand-in.js';

const MODEL = '@cf/acme/remote-llama-lora';
const DOWN = '@cf/acme/unreachable-lora';

let vllm: VllmStandIn;
let tiny: TinySetup;
let t: TestApp;
let acme: TestAccount;
let adapterDir: string;

const run = (body: unknown, model = MODEL) =>
  call<{ response: string; usage: { prompt_tokens: number; completion_tokens: number } }>(
    t.baseUrl,
    'POST',
    `/accounts/${acme.id}/ai/run/${model}`,
    { token: acme.token, body },
  );

beforeAll(async () => {
  vllm = await startVllmStandIn({ servedModel: 'meta-llama/Llama-2-7b-chat-hf', chunkDelayMs: 20 });
  adapterDir = mkdtempSync(join(tmpdir(), 'vllm-adapters-'));
  const architecture = buildTinyModel(TINY_MODELS[0]!.spec).architecture;
  const engine = (base_url: string) => ({ type: 'vllm', base_url, served_model: 'meta-llama/Llama-2-7b-chat-hf', adapter_dir: adapterDir });
  tiny = await tinySetup([
    { name: MODEL, architecture, engine: engine(vllm.url) },
    { name: DOWN, architecture, engine: engine('http://127.0.0.1:1') },
  ]);
  t = await startTestApp({ MODELS_FILE: tiny.modelsFile, CACHE_DIR: join(tiny.dir, 'cache') });
  acme = await createAccount(t.baseUrl);
  await call(t.baseUrl, 'POST', `/accounts/${acme.id}/ai/finetunes`, { token: acme.token, body: { model: MODEL, name: 'remote' } });
  const files = tiny.read('tiny-llama-qv');
  await upload(t.baseUrl, acme, 'remote', 'adapter_config.json', files.config);
  await upload(t.baseUrl, acme, 'remote', 'adapter_model.safetensors', files.safetensors);
}, 60_000);
afterAll(async () => {
  await t.close();
  await vllm.close();
});

describe('runs on a remote vLLM server', () => {
  it('serves the base model under its served name', async () => {
    const response = await run({ prompt: 'hello there', raw: true, max_tokens: 20 });
    expect(response.status).toBe(200);
    expect(response.body.result.response).toContain('meta-llama/Llama-2-7b-chat-hf heard: hello there');
    expect(vllm.completions.at(-1)).toMatchObject({ model: 'meta-llama/Llama-2-7b-chat-hf', prompt: 'hello there', max_tokens: 20 });
  });

  it('materialises the adapter under adapter_dir, loads it once, then reuses it', async () => {
    const loadsBefore = vllm.loads.length;
    const first = await run({ prompt: 'hi', raw: true, lora: 'remote', max_tokens: 20 });
    expect(first.status).toBe(200);
    const name = vllm.loads.at(-1)!;
    expect(name).toMatch(/^ft-[0-9a-f-]{36}-[0-9a-f]{12}$/);
    expect(first.body.result.response).toContain(`${name} heard: hi`);
    expect(existsSync(join(adapterDir, name, 'adapter_config.json'))).toBe(true);
    expect(existsSync(join(adapterDir, name, 'adapter_model.safetensors'))).toBe(true);
    expect(vllm.loads.length).toBe(loadsBefore + 1);

    const second = await run({ prompt: 'again', raw: true, lora: 'remote', max_tokens: 20 });
    expect(second.status).toBe(200);
    expect(vllm.loads.length).toBe(loadsBefore + 1);
    expect(vllm.loaded()).toContain(name);
  });

  it('after a vLLM restart, loads the adapter again and retries once', async () => {
    await run({ prompt: 'warm', raw: true, lora: 'remote', max_tokens: 5 });
    const loadsBefore = vllm.loads.length;
    vllm.restart();
    const response = await run({ prompt: 'after restart', raw: true, lora: 'remote', max_tokens: 20 });
    expect(response.status).toBe(200);
    expect(response.body.result.response).toContain('heard: after restart');
    expect(vllm.loads.length).toBe(loadsBefore + 1);
  });

  it('streams, and a client that leaves mid-stream makes the service leave vLLM too', async () => {
    const streamed = await fetch(`${t.baseUrl}/accounts/${acme.id}/ai/run/${MODEL}`, {
      method: 'POST',
      headers: { authorization: `Bearer ${acme.token}`, 'content-type': 'application/json' },
      body: JSON.stringify({ prompt: 'one two three', raw: true, lora: 'remote', stream: true, max_tokens: 20 }),
    });
    const text = await streamed.text();
    expect(text.trim().endsWith('data: [DONE]')).toBe(true);
    const pieces = text.split('\n\n').filter((b) => b.startsWith('data: {')).map((b) => JSON.parse(b.slice(6)));
    expect(pieces.map((p) => p.response).join('')).toContain('heard: one two three');
    expect(pieces.at(-1).usage.completion_tokens).toBeGreaterThan(0);

    const before = vllm.disconnects();
    const controller = new AbortController();
    const leaving = await fetch(`${t.baseUrl}/accounts/${acme.id}/ai/run/${MODEL}`, {
      method: 'POST',
      headers: { authorization: `Bearer ${acme.token}`, 'content-type': 'application/json' },
      body: JSON.stringify({ prompt: Array.from({ length: 200 }, (_, i) => `w${i}`).join(' '), raw: true, lora: 'remote', stream: true, max_tokens: 300 }),
      signal: controller.signal,
    });
    await leaving.body!.getReader().read();
    controller.abort();
    const deadline = Date.now() + 10_000;
    while (vllm.disconnects() === before && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
    expect(vllm.disconnects()).toBe(before + 1);
  });

  it('a client that leaves before a one-piece answer makes the service leave vLLM too, on every route', async () => {
    const routes = [
      { url: `${t.baseUrl}/accounts/${acme.id}/ai/run/${MODEL}`, body: { prompt: 'w '.repeat(200), raw: true, max_tokens: 300 } },
      { url: `${t.baseUrl.replace(/\/client\/v4$/, '')}/v1/completions`, body: { model: MODEL, prompt: 'w '.repeat(200), max_tokens: 300 } },
    ];
    for (const route of routes) {
      const before = vllm.disconnects();
      const received = vllm.completions.length;
      const controller = new AbortController();
      const leaving = fetch(route.url, {
        method: 'POST',
        headers: { authorization: `Bearer ${acme.token}`, 'content-type': 'application/json' },
        body: JSON.stringify(route.body),
        signal: controller.signal,
      }).catch(() => undefined);
      while (vllm.completions.length === received) await new Promise((r) => setTimeout(r, 10));
      controller.abort();
      await leaving;
      // Until it happens: the test's own timeout is the bound.
      while (vllm.disconnects() === before) await new Promise((r) => setTimeout(r, 50));
      expect(vllm.disconnects()).toBe(before + 1);
    }
  });

  it('an unreachable vLLM is 503/90503 naming it', async () => {
    const response = await run({ prompt: 'x', raw: true }, DOWN);
    expect(response.status).toBe(503);
    expect(response.body.errors[0]).toMatchObject({ code: 90503, message: expect.stringContaining('127.0.0.1:1') });
  });

  it('names the adapter per finetune version', () => {
    expect(vllmLoraName({ finetuneId: 'f', version: '0123456789abcdef', configKey: '', weightsKey: '' })).toBe('ft-f-0123456789ab');
  });
});
