import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { ADMIN_TOKEN, call, createAccount, startTestApp, type TestAccount, type TestApp } from '../../helpers/app.js';

let t: TestApp;
let acme: TestAccount;
let other: TestAccount;

beforeAll(async () => {
  t = await startTestApp();
  acme = await createAccount(t.baseUrl, 'acme');
  other = await createAccount(t.baseUrl, 'other');
});
afterAll(() => t.close());

describe('admin surface', () => {
  it('creates accounts with 32-hex ids and tokens whose secret is shown once and stored hashed', async () => {
    const account = await call<{ id: string; name: string; created_at: string }>(t.baseUrl, 'POST', '/admin/accounts', {
      token: ADMIN_TOKEN,
      body: { name: 'globex' },
    });
    expect(account.status).toBe(200);
    expect(account.body).toMatchObject({ success: true, errors: [], messages: [], result: { name: 'globex' } });
    expect(account.body.result.id).toMatch(/^[0-9a-f]{32}$/);
    expect(Number.isNaN(Date.parse(account.body.result.created_at))).toBe(false);

    const token = await call<{ id: string; value: string }>(t.baseUrl, 'POST', `/admin/accounts/${account.body.result.id}/tokens`, {
      token: ADMIN_TOKEN,
      body: { name: 'ci' },
    });
    expect(token.status).toBe(200);
    expect(token.body.result.value).toHaveLength(40);
  });

  it('stores only a sha256 of the token secret', async () => {
    const { PrismaService } = await import('../../../src/database/prisma.service.js');
    const prisma = t.app.get(PrismaService);
    const tokens = await prisma.apiToken.findMany({ where: { accountId: acme.id } });
    expect(tokens).toHaveLength(1);
    expect(tokens[0]!.tokenHash).toMatch(/^[0-9a-f]{64}$/);
    expect(JSON.stringify(tokens)).not.toContain(acme.token);
  });

  it.each([
    ['no token', undefined],
    ['a wrong token', 'wrong-admin-token-0000000'],
    ['an account token', 'ACCOUNT'],
  ])('rejects %s with 401/10000', async (_label, token) => {
    const response = await call(t.baseUrl, 'POST', '/admin/accounts', {
      token: token === 'ACCOUNT' ? acme.token : token,
      body: { name: 'x' },
    });
    expect(response.status).toBe(401);
    expect(response.body).toEqual({ result: null, success: false, errors: [{ code: 10000, message: expect.any(String) }], messages: [] });
  });

  it('validates admin bodies and unknown accounts', async () => {
    const bad = await call(t.baseUrl, 'POST', '/admin/accounts', { token: ADMIN_TOKEN, body: { name: '' } });
    expect(bad.status).toBe(400);
    expect(bad.body.errors[0]).toMatchObject({ code: 5006, message: expect.stringContaining('name') });
    const missing = await call(t.baseUrl, 'POST', `/admin/accounts/${'0'.repeat(32)}/tokens`, { token: ADMIN_TOKEN, body: { name: 'x' } });
    expect(missing.status).toBe(404);
  });
});

describe('account authentication', () => {
  const routes: { method: string; path: string; body?: unknown }[] = [
    { method: 'GET', path: '/ai/finetunes' },
    { method: 'POST', path: '/ai/finetunes', body: { model: '@cf/meta-llama/llama-2-7b-chat-hf-lora', name: 'x' } },
    { method: 'GET', path: '/ai/finetunes/public' },
    { method: 'GET', path: '/ai/finetunes/some-name' },
    { method: 'DELETE', path: '/ai/finetunes/some-name' },
    { method: 'GET', path: '/ai/models/search' },
    { method: 'GET', path: '/ai/models/schema?model=@cf/meta/llama-2-7b-chat-fp16' },
  ];

  it.each(routes)('$method $path: 401 without a token, 401 with a bad one, 403 on another account', async ({ method, path, body }) => {
    const none = await call(t.baseUrl, method, `/accounts/${acme.id}${path}`, { body });
    expect(none.status).toBe(401);
    expect(none.body.errors[0]!.code).toBe(10000);
    const bad = await call(t.baseUrl, method, `/accounts/${acme.id}${path}`, { body, token: 'not-a-real-token' });
    expect(bad.status).toBe(401);
    const cross = await call(t.baseUrl, method, `/accounts/${acme.id}${path}`, { body, token: other.token });
    expect(cross.status).toBe(403);
    expect(cross.body.errors[0]!.code).toBe(10000);
  });
});

describe('envelope on every error', () => {
  it('unknown routes get 404 in the envelope', async () => {
    const response = await call(t.baseUrl, 'GET', '/nowhere', { token: acme.token });
    expect(response.status).toBe(404);
    expect(response.body).toMatchObject({ result: null, success: false, errors: [{ code: 7000 }] });
  });

  it('a body that is not JSON gets 400/5006 in the envelope', async () => {
    const response = await call(t.baseUrl, 'POST', `/accounts/${acme.id}/ai/finetunes`, {
      token: acme.token,
      body: '{"model": ',
      headers: { 'content-type': 'application/json' },
    });
    expect(response.status).toBe(400);
    expect(response.body).toMatchObject({ success: false, errors: [{ code: 5006 }] });
  });

  it('unknown body fields are named', async () => {
    const response = await call(t.baseUrl, 'POST', `/accounts/${acme.id}/ai/finetunes`, {
      token: acme.token,
      body: { model: '@cf/meta-llama/llama-2-7b-chat-hf-lora', name: 'ok', colour: 'red' },
    });
    expect(response.status).toBe(400);
    expect(response.body.errors[0]!.message).toContain('colour');
  });
});

describe('database outage', () => {
  it('answers 503/90502 in the envelope when the database cannot be reached', async () => {
    const { createApp } = await import('../../../src/app.factory.js');
    const { loadConfig } = await import('../../../src/config/app-config.js');
    const app = await createApp(
      loadConfig({
        DATABASE_URL: 'postgresql://postgres@127.0.0.1:1/none',
        ADMIN_TOKEN,
        S3_ENDPOINT: process.env.TEST_S3_ENDPOINT,
        S3_ACCESS_KEY_ID: 'S3RVER',
        S3_SECRET_ACCESS_KEY: 'S3RVER',
        S3_FORCE_PATH_STYLE: 'true',
        LOG_LEVEL: 'error',
      }),
    );
    await app.listen(0, '127.0.0.1');
    try {
      const base = `http://127.0.0.1:${(app.getHttpServer().address() as { port: number }).port}/client/v4`;
      const response = await call(base, 'GET', `/accounts/${acme.id}/ai/finetunes`, { token: acme.token });
      expect(response.status).toBe(503);
      expect(response.body).toEqual({ result: null, success: false, errors: [{ code: 90502, message: expect.any(String) }], messages: [] });
    } finally {
      await app.close();
    }
  });
});
