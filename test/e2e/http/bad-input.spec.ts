/**
 * Input that used to reach the database, the DTO transformer or the multipart parser unchecked and came back as a
 * 500: each is a 400/5006 in the route's error shape, with a message naming the field, parameter or header.
 */
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { call, createAccount, startTestApp, type TestAccount, type TestApp } from '../../helpers/app.js';
import { TINY_LLAMA, tinySetup, type TinySetup } from '../../helpers/tiny.js';
import { testStorage, uploadForm } from '../../helpers/uploads.js';

let tiny: TinySetup;
let t: TestApp;
let acme: TestAccount;
let origin: string;

beforeAll(async () => {
  tiny = await tinySetup();
  t = await startTestApp({ MODELS_FILE: tiny.modelsFile, CACHE_DIR: `${tiny.dir}/cache` });
  origin = new URL(t.baseUrl).origin;
  acme = await createAccount(t.baseUrl);
}, 60_000);
afterAll(() => t.close());

const auth = () => ({ authorization: `Bearer ${acme.token}` });

async function send(url: string, init: RequestInit): Promise<{ status: number; body: any }> {
  const response = await fetch(url, { ...init, headers: { ...auth(), ...(init.headers as Record<string, string>) } });
  return { status: response.status, body: await response.json() };
}

function expectEnvelope400(response: { status: number; body: any }, message: RegExp): void {
  expect(response.status).toBe(400);
  expect(response.body).toEqual({ result: null, success: false, errors: [{ code: 5006, message: expect.stringMatching(message) }], messages: [] });
}

function expectOpenAi400(response: { status: number; body: any }, message: RegExp): void {
  expect(response.status).toBe(400);
  expect(response.body).toEqual({ error: { message: expect.stringMatching(message), type: 'invalid_request_error', param: null, code: '5006' } });
}

const nested = (depth: number) => `${'['.repeat(depth)}${']'.repeat(depth)}`;
const json = (text: string): RequestInit => ({ method: 'POST', headers: { 'content-type': 'application/json' }, body: text });

describe('JSON nested thousands of levels deep', () => {
  it('is rejected before the DTO transformer walks it (envelope)', async () => {
    const response = await send(`${t.baseUrl}/accounts/${acme.id}/ai/finetunes`, json(`{"model":${nested(6000)},"name":"deep"}`));
    expectEnvelope400(response, /nests JSON deeper than 100 levels/);
  });

  it('is rejected on the run route and under /v1 in the OpenAI shape', async () => {
    expectEnvelope400(await send(`${t.baseUrl}/accounts/${acme.id}/ai/run/${TINY_LLAMA}`, json(`{"prompt":"x","extra":${nested(5000)}}`)), /deeper than 100/);
    expectOpenAi400(await send(`${origin}/v1/chat/completions`, json(`{"model":"${TINY_LLAMA}","messages":${nested(5000)}}`)), /deeper than 100/);
  });

  it('brackets inside strings do not count, and ordinary nesting passes', async () => {
    const response = await call(t.baseUrl, 'POST', `/accounts/${acme.id}/ai/finetunes`, {
      token: acme.token,
      body: { model: TINY_LLAMA, name: 'brackets', description: '[{'.repeat(500) },
    });
    expect(response.status).toBe(200);
    // 100 levels still reach validation, which names the field.
    const deepest = await send(`${t.baseUrl}/accounts/${acme.id}/ai/finetunes`, json(`{"model":${nested(99)},"name":"n"}`));
    expectEnvelope400(deepest, /model must be a string/);
  });
});

describe('a NUL character', () => {
  it.each([
    ['name', { model: TINY_LLAMA, name: 'a\0b' }],
    ['description', { model: TINY_LLAMA, name: 'nul-description', description: 'hello\0world' }],
    ['model', { model: `${TINY_LLAMA}\0`, name: 'nul-model' }],
  ])('in the finetune %s is 400 naming it', async (field, body) => {
    const response = await call(t.baseUrl, 'POST', `/accounts/${acme.id}/ai/finetunes`, { token: acme.token, body });
    expectEnvelope400({ status: response.status, body: response.body }, new RegExp(`^${field} must not contain a NUL character`));
  });

  it('in a nested field names its path (run, OpenAI)', async () => {
    const ran = await call(t.baseUrl, 'POST', `/accounts/${acme.id}/ai/run/${TINY_LLAMA}`, {
      token: acme.token,
      body: { messages: [{ role: 'user', content: 'hi' }, { role: 'user', content: 'x\0' }] },
    });
    expectEnvelope400({ status: ran.status, body: ran.body }, /^messages\[1\]\.content must not contain a NUL character/);
    const chat = await send(`${origin}/v1/chat/completions`, json(JSON.stringify({ model: TINY_LLAMA, messages: [{ role: 'user', content: '\0' }] })));
    expectOpenAi400(chat, /^messages\[0\]\.content must not contain a NUL character/);
  });

  it('in a path parameter is 400 naming it', async () => {
    const got = await send(`${t.baseUrl}/accounts/${acme.id}/ai/finetunes/ab%00c`, { method: 'GET' });
    expectEnvelope400(got, /^path parameter "id_or_name" must not contain a NUL character/);
    const deleted = await send(`${t.baseUrl}/accounts/${acme.id}/ai/finetunes/%00`, { method: 'DELETE' });
    expectEnvelope400(deleted, /"id_or_name"/);
    const account = await send(`${t.baseUrl}/accounts/a%00/ai/finetunes`, { method: 'GET' });
    expectEnvelope400(account, /^path parameter "account_id" must not contain a NUL character/);
  });

  it('in a query parameter is 400 naming it', async () => {
    expectEnvelope400(await send(`${t.baseUrl}/accounts/${acme.id}/ai/models/search?search=a%00b`, { method: 'GET' }), /^query parameter "search"/);
    expectEnvelope400(await send(`${t.baseUrl}/accounts/${acme.id}/ai/finetunes/public?orderBy=%00name`, { method: 'GET' }), /^query parameter "orderBy"/);
  });
});

describe('the run model path', () => {
  it('with a malformed percent-encoding (%25E0) is 400 naming the model parameter', async () => {
    const response = await send(`${t.baseUrl}/accounts/${acme.id}/ai/run/%25E0`, json('{"prompt":"x"}'));
    expectEnvelope400(response, /^path parameter "model" is not valid percent-encoding/);
  });
});

describe('offset and limit beyond 64 bits on the public finetunes list', () => {
  it.each([
    ['offset', '99999999999999999999999'],
    ['offset', '-99999999999999999999999'],
    ['limit', '99999999999999999999999'],
    ['limit', '1e400'],
  ])('%s=%s is 400 naming it', async (name, value) => {
    const response = await send(`${t.baseUrl}/accounts/${acme.id}/ai/finetunes/public?${name}=${value}`, { method: 'GET' });
    expectEnvelope400(response, new RegExp(`^${name} must`));
  });

  it('the largest safe offset is still a valid (empty) page', async () => {
    const response = await send(`${t.baseUrl}/accounts/${acme.id}/ai/finetunes/public?offset=${Number.MAX_SAFE_INTEGER}`, { method: 'GET' });
    expect(response.status).toBe(200);
    expect(response.body.result).toEqual([]);
  });
});

describe('malformed multipart uploads', () => {
  let finetune: string;
  const assets = () => `${t.baseUrl}/accounts/${acme.id}/ai/finetunes/${finetune}/finetune-assets`;
  const multipart = (contentType: string, body: string | Uint8Array): RequestInit => ({ method: 'POST', headers: { 'content-type': contentType }, body });

  beforeAll(async () => {
    finetune = (await call<{ id: string }>(t.baseUrl, 'POST', `/accounts/${acme.id}/ai/finetunes`, { token: acme.token, body: { model: TINY_LLAMA, name: 'multipart' } })).body.result.id;
  });

  /** Nothing of a rejected upload is kept: the finetune stays pending with no files and the bucket holds nothing for it. */
  async function expectNothingStored(): Promise<void> {
    const view = await call<{ status: string }>(t.baseUrl, 'GET', `/accounts/${acme.id}/ai/finetunes/${finetune}`, { token: acme.token });
    expect(view.body.result.status).toBe('pending');
    expect(await testStorage(t.bucket).list('')).toEqual([]);
  }

  it.each([
    ['without a boundary', 'multipart/form-data', /^content-type: the multipart boundary parameter is missing/],
    ['with an empty boundary', 'multipart/form-data; boundary=', /^content-type: the multipart boundary is empty/],
    ['with an empty quoted boundary', 'multipart/form-data; boundary=""', /^content-type: the multipart boundary is empty/],
    ['with a 71-character boundary', `multipart/form-data; boundary=${'b'.repeat(71)}`, /^content-type: the multipart boundary is 71 characters long; at most 70/],
    ['with a 5000-character boundary', `multipart/form-data; boundary=${'b'.repeat(5000)}`, /^content-type: the multipart boundary is 5000 characters long/],
  ])('%s is 400 naming the content-type', async (_label, contentType, message) => {
    expectEnvelope400(await send(assets(), multipart(contentType, 'whatever')), message);
    await expectNothingStored();
  });

  it('a garbage body is 400 naming the multipart body', async () => {
    expectEnvelope400(await send(assets(), multipart('multipart/form-data; boundary=XYZ', 'garbage garbage garbage')), /^the multipart body is malformed/);
    await expectNothingStored();
  });

  it.each([
    ['inside the file', (whole: string) => whole.slice(0, whole.indexOf('adapter_config.json', whole.indexOf('filename')) + 40)],
    ['after a field', (whole: string) => whole.slice(0, whole.indexOf('\r\n--', whole.indexOf('file_name')))],
    ['just before the closing boundary', (whole: string) => whole.slice(0, whole.lastIndexOf('\r\n--'))],
  ])('a body that ends without its closing boundary (%s) is 400 naming the multipart body', async (_label, cut) => {
    const request = new Request('http://x/', { method: 'POST', body: uploadForm('adapter_config.json', tiny.read('tiny-llama-qv').config) });
    const whole = await request.text();
    const truncated = cut(whole);
    expect(truncated.length).toBeLessThan(whole.length);
    expectEnvelope400(await send(assets(), multipart(request.headers.get('content-type')!, truncated)), /^the multipart body is malformed/);
    await expectNothingStored();
  });

  it('a 70-character boundary is accepted and the same upload then succeeds', async () => {
    const request = new Request('http://x/', { method: 'POST', body: uploadForm('adapter_config.json', tiny.read('tiny-llama-qv').config) });
    const original = request.headers.get('content-type')!.split('boundary=')[1]!;
    const boundary = 'b'.repeat(70);
    const body = (await request.text()).replaceAll(original, boundary);
    const response = await send(assets(), multipart(`multipart/form-data; boundary=${boundary}`, body));
    expect(response.status).toBe(200);
    expect(response.body.result).toMatchObject({ file_name: 'adapter_config.json' });
  });
});
