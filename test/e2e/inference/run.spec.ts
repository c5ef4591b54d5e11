import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import Cloudflare from 'cloudflare';
import { call, createAccount, startTestApp, type TestAccount, type TestApp } from '../../helpers/app.js';
import { TINY_GEMMA, TINY_LLAMA, tinySetup, type TinySetup } from '../../helpers/tiny.js';
import { upload } from '../../helpers/uploads.js';
import { activeRequests, engineRuns } from '../limits/helpers.js';

let tiny: TinySetup;
let t: TestApp;
let acme: TestAccount;
let other: TestAccount;
let qv: { id: string; name: string };

interface RunResult {
  response: string;
  usage: { prompt_tokens: number; completion_tokens: number; total_tokens: number };
}

const run = (account: TestAccount, model: string, body: unknown) =>
  call<RunResult>(t.baseUrl, 'POST', `/accounts/${account.id}/ai/run/${model}`, { token: account.token, body });

async function readyFinetune(account: TestAccount, model: string, name: string, adapter: string, extra: object = {}) {
  const created = await call<{ id: string; name: string }>(t.baseUrl, 'POST', `/accounts/${account.id}/ai/finetunes`, {
    token: account.token,
    body: { model, name, ...extra },
  });
  expect(created.status).toBe(200);
  const files = tiny.read(adapter);
  expect((await upload(t.baseUrl, account, name, 'adapter_config.json', files.config)).status).toBe(200);
  expect((await upload(t.baseUrl, account, name, 'adapter_model.safetensors', files.safetensors)).status).toBe(200);
  return created.body.result;
}

/** Reads an SSE response into its data payloads. */
async function sse(response: Response): Promise<string[]> {
  const text = await response.text();
  return text
    .split('\n\n')
    .filter((block) => block.startsWith('data: '))
    .map((block) => block.slice('data: '.length));
}

beforeAll(async () => {
  tiny = await tinySetup();
  t = await startTestApp({ MODELS_FILE: tiny.modelsFile, CACHE_DIR: `${tiny.dir}/cache` });
  acme = await createAccount(t.baseUrl, 'acme');
  other = await createAccount(t.baseUrl, 'other');
  qv = await readyFinetune(acme, TINY_LLAMA, 'qv', 'tiny-llama-qv');
}, 60_000);
afterAll(() => t.close());

describe('run with an adapter on llama.cpp', () => {
  const greedy = { prompt: 'hello world', max_tokens: 12, temperature: 0 };

  it('answers with response and usage; the adapter changes the output; by name and by id alike', async () => {
    const base = await run(acme, TINY_LLAMA, greedy);
    expect(base.status).toBe(200);
    expect(base.body.success).toBe(true);
    expect(base.body.result.usage.completion_tokens).toBeGreaterThan(0);
    expect(base.body.result.usage.total_tokens).toBe(base.body.result.usage.prompt_tokens + base.body.result.usage.completion_tokens);

    const byName = await run(acme, TINY_LLAMA, { ...greedy, lora: 'qv' });
    const byId = await run(acme, TINY_LLAMA, { ...greedy, lora: qv.id });
    expect(byName.status).toBe(200);
    expect(byName.body.result.response).toBe(byId.body.result.response);
    expect(byName.body.result.response).not.toBe(base.body.result.response);
    // Greedy decoding is reproducible.
    expect((await run(acme, TINY_LLAMA, { ...greedy, lora: 'qv' })).body.result.response).toBe(byName.body.result.response);
  });

  it('templates messages and bare prompts, and passes raw prompts verbatim (raw may be the string "true")', async () => {
    const messages = await run(acme, TINY_LLAMA, { messages: [{ role: 'system', content: 'be brief' }, { role: 'user', content: 'hi' }], max_tokens: 8, temperature: 0, lora: 'qv' });
    expect(messages.status).toBe(200);
    const templated = await run(acme, TINY_LLAMA, { prompt: 'hi', max_tokens: 8, temperature: 0, lora: 'qv' });
    const rawSame = await run(acme, TINY_LLAMA, { prompt: '<s>[INST] hi [/INST]', raw: 'true', max_tokens: 8, temperature: 0, lora: 'qv' });
    expect(rawSame.status).toBe(200);
    expect(rawSame.body.result.response).toBe(templated.body.result.response);
    const rawOther = await run(acme, TINY_LLAMA, { prompt: 'hi', raw: true, max_tokens: 8, temperature: 0, lora: 'qv' });
    expect(rawOther.body.result.usage.prompt_tokens).toBeLessThan(templated.body.result.usage.prompt_tokens);
  });

  it('streams data events whose pieces make the same text, then a usage event and [DONE]', async () => {
    const whole = await run(acme, TINY_LLAMA, { ...greedy, lora: 'qv' });
    const response = await fetch(`${t.baseUrl}/accounts/${acme.id}/ai/run/${TINY_LLAMA}`, {
      method: 'POST',
      headers: { authorization: `Bearer ${acme.token}`, 'content-type': 'application/json' },
      body: JSON.stringify({ ...greedy, lora: 'qv', stream: true }),
    });
    expect(response.status).toBe(200);
    expect(response.headers.get('content-type')).toContain('text/event-stream');
    const events = await sse(response);
    expect(events.at(-1)).toBe('[DONE]');
    const payloads = events.slice(0, -1).map((e) => JSON.parse(e));
    expect(payloads.map((p) => p.response).join('')).toBe(whole.body.result.response);
    expect(payloads.at(-1).usage).toEqual(whole.body.result.usage);
  });

  it('a client that disconnects mid-stream stops generation and frees its slot', async () => {
    const abortedBefore = await engineRuns(t, TINY_LLAMA, 'aborted');
    const controller = new AbortController();
    const response = await fetch(`${t.baseUrl}/accounts/${acme.id}/ai/run/${TINY_LLAMA}`, {
      method: 'POST',
      headers: { authorization: `Bearer ${acme.token}`, 'content-type': 'application/json' },
      // Sampling with a seed (no early end of text for this tiny model) and far more tokens than it can make in the test.
      body: JSON.stringify({ prompt: 'tell me a long story', max_tokens: 4000, temperature: 1, seed: 7, lora: 'qv', stream: true }),
      signal: controller.signal,
    });
    const reader = response.body!.getReader();
    await reader.read();
    controller.abort();
    const deadline = Date.now() + 15_000;
    while ((await activeRequests(t, TINY_LLAMA)) > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
    expect(await activeRequests(t, TINY_LLAMA)).toBe(0);
    expect(await engineRuns(t, TINY_LLAMA, 'aborted')).toBe(abortedBefore + 1);
    expect((await run(acme, TINY_LLAMA, { ...greedy, lora: 'qv' })).status).toBe(200);
  });

  it('the official cloudflare SDK runs with lora, unmodified', async () => {
    const cf = new Cloudflare({ apiToken: acme.token, baseURL: t.baseUrl, maxRetries: 0 });
    const result = (await cf.ai.run(TINY_LLAMA, { account_id: acme.id, prompt: 'hello world', max_tokens: 12, temperature: 0, lora: 'qv' } as never)) as RunResult;
    const direct = await run(acme, TINY_LLAMA, { ...greedy, lora: 'qv' });
    expect(result.response).toBe(direct.body.result.response);
  });

  it('runs a gemma adapter on the gemma base', async () => {
    await readyFinetune(acme, TINY_GEMMA, 'gemma-attn', 'tiny-gemma-attn');
    const base = await run(acme, TINY_GEMMA, { prompt: 'hello', max_tokens: 10, temperature: 0 });
    const adapted = await run(acme, TINY_GEMMA, { prompt: 'hello', max_tokens: 10, temperature: 0, lora: 'gemma-attn' });
    expect(adapted.status).toBe(200);
    expect(adapted.body.result.response).not.toBe(base.body.result.response);
  });
});

describe('run errors', () => {
  it('an unknown model is 400/5007', async () => {
    const response = await run(acme, '@cf/nobody/nothing', { prompt: 'x' });
    expect(response.status).toBe(400);
    expect(response.body.errors[0]!.code).toBe(5007);
  });

  it('lora on a model without LoRA support is 405/5005', async () => {
    const response = await run(acme, '@cf/meta/llama-2-7b-chat-fp16', { prompt: 'x', lora: 'qv' });
    expect(response.status).toBe(405);
    expect(response.body.errors[0]!.code).toBe(5005);
  });

  it('an unknown lora, or another account\'s private one, is 404/3037; a public one works', async () => {
    expect((await run(acme, TINY_LLAMA, { prompt: 'x', lora: 'nope' })).body.errors[0]!.code).toBe(3037);
    const privateOne = await readyFinetune(other, TINY_LLAMA, 'theirs', 'tiny-llama-qv');
    for (const lora of [privateOne.id, 'theirs']) {
      const response = await run(acme, TINY_LLAMA, { prompt: 'x', lora });
      expect(response.status).toBe(404);
      expect(response.body.errors[0]!.code).toBe(3037);
    }
    await readyFinetune(other, TINY_LLAMA, 'shared', 'tiny-llama-qv', { public: true });
    expect((await run(acme, TINY_LLAMA, { prompt: 'x', max_tokens: 4, lora: 'shared' })).status).toBe(200);
  });

  it('a finetune that is not ready is 400/3039 naming the missing file', async () => {
    await call(t.baseUrl, 'POST', `/accounts/${acme.id}/ai/finetunes`, { token: acme.token, body: { model: TINY_LLAMA, name: 'half' } });
    await upload(t.baseUrl, acme, 'half', 'adapter_config.json', tiny.read('tiny-llama-qv').config);
    const response = await run(acme, TINY_LLAMA, { prompt: 'x', lora: 'half' });
    expect(response.status).toBe(400);
    expect(response.body.errors[0]).toMatchObject({ code: 3039, message: expect.stringContaining('adapter_model.safetensors') });
  });

  it('a finetune made for another base model is 400 naming both models', async () => {
    await readyFinetune(acme, TINY_GEMMA, 'for-gemma', 'tiny-gemma-attn');
    const response = await run(acme, TINY_LLAMA, { prompt: 'x', lora: 'for-gemma' });
    expect(response.status).toBe(400);
    expect(response.body.errors[0]!.message).toContain(TINY_GEMMA);
    expect(response.body.errors[0]!.message).toContain(TINY_LLAMA);
  });

  it.each([
    [{}, 'prompt or messages'],
    [{ prompt: 'x', messages: [] }, 'prompt or messages'],
    [{ prompt: 'x', max_tokens: 'many' }, 'max_tokens'],
    [{ prompt: 'x', max_tokens: 0 }, 'max_tokens'],
    [{ prompt: 'x', temperature: 9 }, 'temperature'],
    [{ prompt: 'x', colour: 'red' }, 'colour'],
    [{ prompt: 'x', raw: 'maybe' }, 'raw'],
    [{ messages: [{ role: 'user' }] }, 'content'],
    [{ messages: [{ role: 'assistant', content: 'x' }] }, 'messages'],
    [{ prompt: 'x', lora: 42 }, 'lora'],
  ])('input %j is 400 naming %s', async (body, field) => {
    const response = await run(acme, TINY_LLAMA, body);
    expect(response.status).toBe(400);
    expect(response.body.errors[0]!.message).toContain(field);
  });

  it('a model with no engine configured is 503/90503 saying how to configure one', async () => {
    const response = await run(acme, '@cf/meta-llama/llama-2-7b-chat-hf-lora', { prompt: 'x' });
    expect(response.status).toBe(503);
    expect(response.body.errors[0]).toMatchObject({ code: 90503, message: expect.stringContaining('MODELS_FILE') });
  });

  it('deleting a finetune makes it unknown to run at once', async () => {
    await readyFinetune(acme, TINY_LLAMA, 'short-lived', 'tiny-llama-qv');
    expect((await run(acme, TINY_LLAMA, { prompt: 'x', max_tokens: 2, lora: 'short-lived' })).status).toBe(200);
    await call(t.baseUrl, 'DELETE', `/accounts/${acme.id}/ai/finetunes/short-lived`, { token: acme.token });
    expect((await run(acme, TINY_LLAMA, { prompt: 'x', max_tokens: 2, lora: 'short-lived' })).status).toBe(404);
  });

  it('cross-account run is 403', async () => {
    const response = await call(t.baseUrl, 'POST', `/accounts/${other.id}/ai/run/${TINY_LLAMA}`, { token: acme.token, body: { prompt: 'x' } });
    expect(response.status).toBe(403);
  });
});
