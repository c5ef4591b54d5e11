import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import OpenAI from 'openai';
import { UsageRecorder } from '../../../src/usage/usage-recorder.service.js';
import { call, createAccount, startTestApp, type TestAccount, type TestApp } from '../../helpers/app.js';
import { TINY_GEMMA, TINY_LLAMA, tinySetup, type TinySetup } from '../../helpers/tiny.js';
import { activeRequests, addLlamaVariants, engineRuns, readyFinetune, run } from '../limits/helpers.js';

const CACHED = '@cf/tiny/cached-llama';
const LIMITED = '@cf/tiny/limited-llama';
const NO_ENGINE = '@cf/meta-llama/llama-2-7b-chat-hf-lora';

let tiny: TinySetup;
let t: TestApp;
let acme: TestAccount;
let other: TestAccount;
let qv: { id: string; name: string };
let client: OpenAI;
/** http://127.0.0.1:PORT/v1 */
let v1: string;

const openai = (account: TestAccount) => new OpenAI({ apiKey: account.token, baseURL: v1, maxRetries: 0 });
const FINETUNED = `${TINY_LLAMA}:qv`;
const hello = [{ role: 'user' as const, content: 'hello world' }];

async function collect<T>(items: AsyncIterable<T>): Promise<T[]> {
  const all: T[] = [];
  for await (const item of items) all.push(item);
  return all;
}

beforeAll(async () => {
  tiny = await tinySetup();
  addLlamaVariants(tiny, { [CACHED]: { response_cache: true }, [LIMITED]: { limits: { max_requests_per_min: 1 } } });
  t = await startTestApp({ MODELS_FILE: tiny.modelsFile, CACHE_DIR: `${tiny.dir}/cache` });
  v1 = t.baseUrl.replace(/\/client\/v4$/, '/v1');
  acme = await createAccount(t.baseUrl, 'acme');
  other = await createAccount(t.baseUrl, 'other');
  qv = await readyFinetune(t, tiny, acme, TINY_LLAMA, 'qv');
  await readyFinetune(t, tiny, other, TINY_LLAMA, 'theirs');
  client = openai(acme);
}, 60_000);
afterAll(() => t.close());

describe('GET /v1/models', () => {
  it('lists the models that have an engine and the caller\'s ready finetunes as <base>:<name>', async () => {
    await call(t.baseUrl, 'POST', `/accounts/${acme.id}/ai/finetunes`, { token: acme.token, body: { model: TINY_LLAMA, name: 'pending' } });
    const models = await collect(client.models.list());
    const ids = models.map((m) => m.id);
    expect(ids).toEqual(expect.arrayContaining([TINY_LLAMA, TINY_GEMMA, CACHED, FINETUNED]));
    expect(ids).not.toContain(NO_ENGINE);
    expect(ids).not.toContain(`${TINY_LLAMA}:theirs`);
    expect(ids).not.toContain(`${TINY_LLAMA}:pending`);
    expect(models.find((m) => m.id === FINETUNED)).toEqual({ id: FINETUNED, object: 'model', created: expect.any(Number), owned_by: acme.id });
    expect(models.find((m) => m.id === TINY_LLAMA)).toMatchObject({ object: 'model', owned_by: 'system' });
  });
});

describe('POST /v1/chat/completions through the official SDK', () => {
  const request = { model: FINETUNED, messages: hello, max_tokens: 12, temperature: 0 };

  it('answers with the finetune, as the run route does with lora; the base answers differently', async () => {
    const completion = await client.chat.completions.create(request);
    expect(completion).toMatchObject({
      id: expect.stringMatching(/^chatcmpl-/),
      object: 'chat.completion',
      created: expect.any(Number),
      model: FINETUNED,
      choices: [{ index: 0, message: { role: 'assistant', content: expect.any(String) }, finish_reason: expect.stringMatching(/^(stop|length)$/) }],
    });
    const usage = completion.usage!;
    expect(usage.completion_tokens).toBeGreaterThan(0);
    expect(usage.total_tokens).toBe(usage.prompt_tokens + usage.completion_tokens);

    const direct = await run(t, acme, TINY_LLAMA, { messages: hello, max_tokens: 12, temperature: 0, lora: 'qv' });
    expect(completion.choices[0]!.message.content).toBe(direct.body.result.response);
    expect(usage).toEqual(direct.body.result.usage);

    const byId = await client.chat.completions.create({ ...request, model: `${TINY_LLAMA}:${qv.id}` });
    expect(byId.choices[0]!.message.content).toBe(completion.choices[0]!.message.content);
    const base = await client.chat.completions.create({ ...request, model: TINY_LLAMA });
    expect(base.choices[0]!.message.content).not.toBe(completion.choices[0]!.message.content);
  });

  it('streams chunks whose deltas make the same text: the role first, then the finish reason, usage and [DONE]', async () => {
    const whole = await client.chat.completions.create(request);
    const chunks = await collect(await client.chat.completions.create({ ...request, stream: true, stream_options: { include_usage: true } }));
    expect(chunks.every((c) => c.object === 'chat.completion.chunk' && c.model === FINETUNED && c.id === chunks[0]!.id)).toBe(true);
    expect(chunks[0]!.choices[0]!.delta.role).toBe('assistant');
    const text = chunks.map((c) => c.choices[0]?.delta.content ?? '').join('');
    expect(text).toBe(whole.choices[0]!.message.content);
    const finishes = chunks.flatMap((c) => c.choices.map((choice) => choice.finish_reason)).filter((f) => f !== null);
    expect(finishes).toEqual([whole.choices[0]!.finish_reason]);
    expect(chunks.at(-1)).toMatchObject({ choices: [], usage: whole.usage });

    // Without include_usage no usage chunk; the SDK's own helper accumulates the same message.
    const plain = client.chat.completions.stream({ ...request, stream: true });
    const final = await plain.finalChatCompletion();
    expect(final.choices[0]!.message.content).toBe(whole.choices[0]!.message.content);
    expect(final.usage).toBeUndefined();
  });

  it('reports length when max_tokens ends the generation, streamed or not', async () => {
    const short = { ...request, max_tokens: 2 };
    const whole = await client.chat.completions.create(short);
    expect(whole.choices[0]!.finish_reason).toBe('length');
    expect(whole.usage!.completion_tokens).toBe(2);
    const chunks = await collect(await client.chat.completions.create({ ...short, stream: true }));
    expect(chunks.at(-1)!.choices[0]!.finish_reason).toBe('length');
    // max_completion_tokens is the same limit by OpenAI's newer name.
    const newer = await client.chat.completions.create({ ...request, max_completion_tokens: 2 });
    expect(newer.choices[0]!.message.content).toBe(whole.choices[0]!.message.content);
  });

  it('takes content as text parts and the developer role as system', async () => {
    const asString = await client.chat.completions.create({
      ...request,
      messages: [{ role: 'system', content: 'be brief' }, { role: 'user', content: 'hello world' }],
    });
    const asParts = await client.chat.completions.create({
      ...request,
      messages: [
        { role: 'developer', content: [{ type: 'text', text: 'be ' }, { type: 'text', text: 'brief' }] },
        { role: 'user', content: [{ type: 'text', text: 'hello world' }] },
      ],
    });
    expect(asParts.choices[0]!.message.content).toBe(asString.choices[0]!.message.content);
  });

  it('answers an identical greedy request from the response cache with the same choice', async () => {
    const cached = { ...request, model: CACHED, max_tokens: 3 };
    const before = await engineRuns(t, CACHED);
    const first = await client.chat.completions.create(cached);
    const response = await fetch(`${v1}/chat/completions`, {
      method: 'POST',
      headers: { authorization: `Bearer ${acme.token}`, 'content-type': 'application/json' },
      body: JSON.stringify(cached),
    });
    expect(response.status).toBe(200);
    const second = (await response.json()) as OpenAI.ChatCompletion;
    expect(second.choices).toEqual(first.choices);
    expect(second.usage).toEqual(first.usage);
    expect(second.choices[0]!.finish_reason).toBe('length');
    expect((await engineRuns(t, CACHED)) - before).toBe(1);
  });

  it('a client that leaves mid-stream stops the generation and frees its slot', async () => {
    const abortedBefore = await engineRuns(t, TINY_LLAMA, 'aborted');
    // Sampling with a seed: no early end of text for this tiny model, and far more tokens than it makes in the test.
    const stream = await client.chat.completions.create({ ...request, max_tokens: 4000, temperature: 1, seed: 7, stream: true });
    for await (const chunk of stream) if (chunk.choices[0]?.delta.content) break;
    const deadline = Date.now() + 15_000;
    while ((await activeRequests(t, TINY_LLAMA)) > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
    expect(await activeRequests(t, TINY_LLAMA)).toBe(0);
    expect(await engineRuns(t, TINY_LLAMA, 'aborted')).toBe(abortedBefore + 1);
  });
});

describe('POST /v1/completions', () => {
  it('runs the prompt raw, streamed or not, with the same text', async () => {
    const request = { model: FINETUNED, prompt: 'hello world', max_tokens: 10, temperature: 0 };
    const completion = await client.completions.create(request);
    expect(completion).toMatchObject({
      id: expect.stringMatching(/^cmpl-/),
      object: 'text_completion',
      model: FINETUNED,
      choices: [{ index: 0, text: expect.any(String), finish_reason: expect.stringMatching(/^(stop|length)$/) }],
    });
    const direct = await run(t, acme, TINY_LLAMA, { prompt: 'hello world', raw: true, max_tokens: 10, temperature: 0, lora: 'qv' });
    expect(completion.choices[0]!.text).toBe(direct.body.result.response);
    expect(completion.usage).toEqual(direct.body.result.usage);

    const chunks = await collect(await client.completions.create({ ...request, stream: true, stream_options: { include_usage: true } }));
    expect(chunks.map((c) => c.choices[0]?.text ?? '').join('')).toBe(completion.choices[0]!.text);
    expect(chunks.at(-1)).toMatchObject({ object: 'text_completion', choices: [], usage: completion.usage });
  });
});

describe('limits and metering', () => {
  it('records usage of /v1 calls like runs, per finetune', async () => {
    const meter = await createAccount(t.baseUrl, 'meter');
    await readyFinetune(t, tiny, meter, TINY_LLAMA, 'mine');
    const sdk = openai(meter);
    const request = { model: `${TINY_LLAMA}:mine`, messages: hello, max_tokens: 6, temperature: 0 };
    const usages = [(await sdk.chat.completions.create(request)).usage!];
    const streamed = await collect(await sdk.chat.completions.create({ ...request, stream: true, stream_options: { include_usage: true } }));
    usages.push(streamed.at(-1)!.usage!);
    usages.push((await sdk.completions.create({ model: TINY_LLAMA, prompt: 'hi', max_tokens: 4 })).usage!);
    expect(usages).toHaveLength(3);

    await t.app.get(UsageRecorder).flush();
    const totals = await call<{ key: string | null; requests: number; prompt_tokens: number; completion_tokens: number }[]>(
      t.baseUrl,
      'GET',
      `/accounts/${meter.id}/ai/usage?group_by=model`,
      { token: meter.token },
    );
    expect(totals.body.result).toEqual([
      expect.objectContaining({
        key: TINY_LLAMA,
        requests: 3,
        prompt_tokens: usages.reduce((n, u) => n + u.prompt_tokens, 0),
        completion_tokens: usages.reduce((n, u) => n + u.completion_tokens, 0),
      }),
    ]);
  });

  it('applies the model\'s rate limit: 429 with Retry-After as an SDK RateLimitError', async () => {
    const request = { model: LIMITED, messages: hello, max_tokens: 2 };
    await client.chat.completions.create(request);
    const error = await client.chat.completions.create(request).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(OpenAI.RateLimitError);
    expect((error as InstanceType<typeof OpenAI.RateLimitError>).headers?.get('retry-after')).toMatch(/^\d+$/);
  });
});

describe('errors in OpenAI\'s shape', () => {
  const chat = (model: string, extra: object = {}) => client.chat.completions.create({ model, messages: hello, max_tokens: 2, ...extra } as never);
  const failure = (promise: Promise<unknown>) => promise.then(() => undefined, (e: unknown) => e as InstanceType<typeof OpenAI.APIError>);

  it('a bad or missing token is 401 {"error": {message, type, param, code}} (AuthenticationError)', async () => {
    const bad = new OpenAI({ apiKey: 'not-a-token', baseURL: v1, maxRetries: 0 });
    expect(await failure(bad.chat.completions.create({ model: TINY_LLAMA, messages: hello }))).toBeInstanceOf(OpenAI.AuthenticationError);
    expect(await failure(bad.models.list())).toBeInstanceOf(OpenAI.AuthenticationError);
    const response = await fetch(`${v1}/models`);
    expect(response.status).toBe(401);
    expect(await response.json()).toEqual({
      error: { message: expect.stringContaining('bearer token'), type: 'authentication_error', param: null, code: '10000' },
    });
  });

  it('an unknown base model is 400 (BadRequestError); an unknown finetune, or another account\'s private one, 404 (NotFoundError)', async () => {
    const unknown = await failure(chat('@cf/nobody/nothing'));
    expect(unknown).toBeInstanceOf(OpenAI.BadRequestError);
    expect(unknown).toMatchObject({ status: 400, code: '5007', type: 'invalid_request_error', message: expect.stringContaining('@cf/nobody/nothing') });
    for (const model of [`${TINY_LLAMA}:nope`, `${TINY_LLAMA}:theirs`]) {
      const missing = await failure(chat(model));
      expect(missing).toBeInstanceOf(OpenAI.NotFoundError);
      expect(missing).toMatchObject({ status: 404, code: '3037' });
    }
    expect(await failure(chat(`${TINY_LLAMA}:`))).toBeInstanceOf(OpenAI.BadRequestError);
  });

  it('a model without an engine is 503; a finetune on a base without LoRA is 405', async () => {
    expect(await failure(chat(NO_ENGINE))).toMatchObject({ status: 503, code: '90503', type: 'server_error' });
    expect(await failure(chat('@cf/meta/llama-2-7b-chat-fp16:qv'))).toMatchObject({ status: 405, code: '5005' });
  });

  it.each([
    [{ stop: ['\n'] }, 'stop'],
    [{ n: 2 }, 'n must be 1'],
    [{ tools: [] }, 'tools'],
    [{ temperature: 9 }, 'temperature'],
    [{ max_tokens: 0 }, 'max_tokens'],
    [{ messages: [{ role: 'user', content: [{ type: 'image_url', image_url: { url: 'http://x' } }] }] }, 'messages.0.content'],
    [{ messages: [{ role: 'assistant', content: 'x' }] }, 'messages'],
    [{ messages: [] }, 'messages'],
  ])('%j is 400 naming %s', async (extra, field) => {
    const error = await failure(chat(FINETUNED, extra));
    expect(error).toBeInstanceOf(OpenAI.BadRequestError);
    expect(error!.message).toContain(field);
  });

  it('a prompt that is not one string is 400; a path that is not offered is 404, both OpenAI-shaped', async () => {
    const prompts = await failure(client.completions.create({ model: TINY_LLAMA, prompt: ['a', 'b'] }));
    expect(prompts).toBeInstanceOf(OpenAI.BadRequestError);
    expect(prompts!.message).toContain('prompt');
    const embeddings = await failure(client.embeddings.create({ model: TINY_LLAMA, input: 'x' }));
    expect(embeddings).toBeInstanceOf(OpenAI.NotFoundError);
    expect(embeddings).toMatchObject({ type: 'invalid_request_error', code: '7000' });
  });

  it('a body that is not JSON is an OpenAI-shaped 400 too (it fails before routing)', async () => {
    const response = await fetch(`${v1}/chat/completions`, {
      method: 'POST',
      headers: { authorization: `Bearer ${acme.token}`, 'content-type': 'application/json' },
      body: '{"model": ',
    });
    expect(response.status).toBe(400);
    expect(await response.json()).toEqual({
      error: { message: expect.stringContaining('JSON'), type: 'invalid_request_error', param: null, code: '5006' },
    });
  });

  it('the Cloudflare routes keep their envelope', async () => {
    const response = await run(t, acme, '@cf/nobody/nothing', { prompt: 'x' });
    expect(response.body).toMatchObject({ success: false, errors: [{ code: 5007 }] });
  });
});
