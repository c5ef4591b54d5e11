/**
 * Cloudflare's API reads a JSON body whatever its content type: wrangler posts JSON as `text/plain;charset=UTF-8`
 * (a string body given to fetch) and other clients send none. Every JSON route accepts both; a text body that is not
 * JSON is still a 400 in the route's error shape.
 */
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { createAccount, startTestApp, type TestAccount, type TestApp } from '../../helpers/app.js';
import { TINY_LLAMA, tinySetup } from '../../helpers/tiny.js';

let t: TestApp;
let acme: TestAccount;
let origin: string;

beforeAll(async () => {
  const tiny = await tinySetup();
  t = await startTestApp({ MODELS_FILE: tiny.modelsFile, CACHE_DIR: `${tiny.dir}/cache` });
  origin = new URL(t.baseUrl).origin;
  acme = await createAccount(t.baseUrl);
}, 60_000);
afterAll(() => t.close());

const TEXT_PLAIN = 'text/plain;charset=UTF-8';

/** POSTs `text` as is: with the given content type, or with none at all (bytes make fetch add no header). */
async function post(url: string, text: string, contentType: string | undefined): Promise<{ status: number; headers: Headers; body: any }> {
  const headers: Record<string, string> = { authorization: `Bearer ${acme.token}` };
  if (contentType !== undefined) headers['content-type'] = contentType;
  const response = await fetch(url, { method: 'POST', headers, body: contentType === undefined ? new TextEncoder().encode(text) : text });
  return { status: response.status, headers: response.headers, body: await response.json() };
}

describe.each([
  ['text/plain', TEXT_PLAIN],
  ['no content type', undefined],
])('a JSON body sent with %s', (_label, contentType) => {
  it('creates a finetune', async () => {
    const name = `plain-${contentType === undefined ? 'none' : 'text'}`;
    const created = await post(`${t.baseUrl}/accounts/${acme.id}/ai/finetunes`, JSON.stringify({ model: TINY_LLAMA, name, description: 'd' }), contentType);
    expect(created.status).toBe(200);
    expect(created.body).toMatchObject({ success: true, result: { name, model: TINY_LLAMA, description: 'd', status: 'pending' } });
  });

  it('runs a model', async () => {
    const ran = await post(`${t.baseUrl}/accounts/${acme.id}/ai/run/${TINY_LLAMA}`, JSON.stringify({ prompt: 'hello', max_tokens: 3 }), contentType);
    expect(ran.status).toBe(200);
    expect(ran.body).toMatchObject({ success: true, result: { response: expect.any(String), usage: { completion_tokens: expect.any(Number) } } });
  });

  it('answers /v1/chat/completions', async () => {
    const body = { model: TINY_LLAMA, messages: [{ role: 'user', content: 'hello' }], max_tokens: 3 };
    const answer = await post(`${origin}/v1/chat/completions`, JSON.stringify(body), contentType);
    expect(answer.status).toBe(200);
    expect(answer.body).toMatchObject({ object: 'chat.completion', model: TINY_LLAMA, choices: [{ message: { role: 'assistant' } }] });
  });

  it('answers /v1/completions', async () => {
    const answer = await post(`${origin}/v1/completions`, JSON.stringify({ model: TINY_LLAMA, prompt: 'hello', max_tokens: 3 }), contentType);
    expect(answer.status).toBe(200);
    expect(answer.body).toMatchObject({ object: 'text_completion', model: TINY_LLAMA, choices: [{ text: expect.any(String) }] });
  });

  it('still has its fields validated', async () => {
    const created = await post(`${t.baseUrl}/accounts/${acme.id}/ai/finetunes`, JSON.stringify({ model: 7, name: 'x' }), contentType);
    expect(created.status).toBe(400);
    expect(created.body.errors).toEqual([{ code: 5006, message: expect.stringContaining('model must be a string') }]);
  });
});

describe('a text body that is not JSON', () => {
  it.each([
    ['text/plain', TEXT_PLAIN],
    ['no content type', undefined],
    ['application/json', 'application/json'],
  ])('is 400/5006 in the envelope (%s)', async (_label, contentType) => {
    const response = await post(`${t.baseUrl}/accounts/${acme.id}/ai/finetunes`, 'make me a finetune', contentType);
    expect(response.status).toBe(400);
    expect(response.body).toEqual({ result: null, success: false, errors: [{ code: 5006, message: 'the request body is not valid JSON' }], messages: [] });
  });

  it.each(['/v1/chat/completions', '/v1/completions'])('is an OpenAI-shaped 400 under %s', async (path) => {
    const response = await post(`${origin}${path}`, 'hello there', TEXT_PLAIN);
    expect(response.status).toBe(400);
    expect(response.body).toEqual({ error: { message: 'the request body is not valid JSON', type: 'invalid_request_error', param: null, code: '5006' } });
  });

  it.each([
    ['text/plain', TEXT_PLAIN],
    ['application/json', 'application/json'],
  ])('an empty body (%s) is no body: validation names the missing fields', async (_label, contentType) => {
    const response = await post(`${t.baseUrl}/accounts/${acme.id}/ai/finetunes`, '', contentType);
    expect(response.status).toBe(400);
    expect(response.body.errors).toEqual([{ code: 5006, message: expect.stringMatching(/model must be a string.*name must be a string/) }]);
  });
});

describe('limits that stay as they were', () => {
  it('a text/plain body over the 2 MiB limit is 413', async () => {
    const big = JSON.stringify({ model: TINY_LLAMA, name: 'big', description: 'x'.repeat(3 * 1024 * 1024) });
    const response = await post(`${t.baseUrl}/accounts/${acme.id}/ai/finetunes`, big, TEXT_PLAIN);
    expect(response.status).toBe(413);
    expect(response.body).toMatchObject({ success: false, errors: [{ message: expect.stringContaining('too large') }] });
  });
});
