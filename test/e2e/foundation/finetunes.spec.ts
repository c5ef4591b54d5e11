import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { call, createAccount, startTestApp, type TestAccount, type TestApp } from '../../helpers/app.js';

const LLAMA = '@cf/meta-llama/llama-2-7b-chat-hf-lora';
const GEMMA = '@cf/google/gemma-7b-it-lora';

interface Finetune {
  id: string;
  name: string;
  model: string;
  description: string;
  public: boolean;
  status: string;
  created_at: string;
  modified_at: string;
}

let t: TestApp;
let acme: TestAccount;
let other: TestAccount;

beforeAll(async () => {
  // A small quota on one model so the quota row is reachable.
  const modelsFile = join(mkdtempSync(join(tmpdir(), 'models-')), 'models.json');
  writeFileSync(modelsFile, JSON.stringify([{ name: GEMMA, limits: { max_finetunes_per_account: 3 } }]));
  t = await startTestApp({ MODELS_FILE: modelsFile });
  acme = await createAccount(t.baseUrl, 'acme');
  other = await createAccount(t.baseUrl, 'other');
});
afterAll(() => t.close());

const path = (account: TestAccount, rest = '') => `/accounts/${account.id}/ai/finetunes${rest}`;

async function create(account: TestAccount, body: Record<string, unknown>) {
  return call<Finetune>(t.baseUrl, 'POST', path(account), { token: account.token, body });
}

describe('create', () => {
  it('returns the finetune in the envelope', async () => {
    const response = await create(acme, { model: LLAMA, name: 'support-bot', description: 'tickets', public: false });
    expect(response.status).toBe(200);
    expect(response.body.success).toBe(true);
    expect(response.body.result).toEqual({
      id: expect.stringMatching(/^[0-9a-f-]{36}$/),
      name: 'support-bot',
      model: LLAMA,
      description: 'tickets',
      public: false,
      status: 'pending',
      created_at: expect.any(String),
      modified_at: expect.any(String),
    });
  });

  it('rejects an unknown model with 400/5007 and a model without LoRA with 400/5005', async () => {
    const unknown = await create(acme, { model: '@cf/nobody/nothing', name: 'a' });
    expect(unknown.status).toBe(400);
    expect(unknown.body.errors[0]).toMatchObject({ code: 5007, message: expect.stringContaining('@cf/nobody/nothing') });
    const noLora = await create(acme, { model: '@cf/meta/llama-2-7b-chat-fp16', name: 'b' });
    expect(noLora.status).toBe(400);
    expect(noLora.body.errors[0]).toMatchObject({ code: 5005, message: expect.stringContaining('@cf/meta/llama-2-7b-chat-fp16') });
  });

  it('rejects a duplicate name in the same account with 409/90002 but allows it in another account', async () => {
    await create(acme, { model: LLAMA, name: 'dup' });
    const again = await create(acme, { model: LLAMA, name: 'dup' });
    expect(again.status).toBe(409);
    expect(again.body.errors[0]).toMatchObject({ code: 90002, message: expect.stringContaining('dup') });
    expect((await create(other, { model: LLAMA, name: 'dup' })).status).toBe(200);
  });

  it.each([
    ['empty', ''],
    ['too long', 'x'.repeat(65)],
    ['a space', 'has space'],
    ['a slash', 'a/b'],
    ['a UUID', '123e4567-e89b-12d3-a456-426614174000'],
    ['the reserved prefix', 'cf-public-thing'],
  ])('rejects a name with %s with 400/5006 naming the field', async (_label, name) => {
    const response = await create(acme, { model: LLAMA, name });
    expect(response.status).toBe(400);
    expect(response.body.errors[0]).toMatchObject({ code: 5006, message: expect.stringContaining('name') });
  });

  it('accepts 64 characters of letters, digits, "-", "_" and "."', async () => {
    const name = `A.b_c-9${'x'.repeat(57)}`;
    expect((await create(acme, { model: LLAMA, name })).status).toBe(200);
  });

  it.each([
    [{ name: 'no-model' }, 'model'],
    [{ model: LLAMA }, 'name'],
    [{ model: LLAMA, name: 'p', public: 'yes' }, 'public'],
    [{ model: LLAMA, name: 'd', description: 42 }, 'description'],
  ])('rejects a bad body %j naming %s', async (body, field) => {
    const response = await create(acme, body);
    expect(response.status).toBe(400);
    expect(response.body.errors[0]!.message).toContain(field);
  });

  it('enforces the per-account quota with 429/90003, even for concurrent creates', async () => {
    const results = await Promise.all([1, 2, 3, 4, 5].map((i) => create(other, { model: GEMMA, name: `q${i}` })));
    expect(results.filter((r) => r.status === 200)).toHaveLength(3);
    const rejected = results.filter((r) => r.status === 429);
    expect(rejected).toHaveLength(2);
    expect(rejected[0]!.body.errors[0]).toMatchObject({ code: 90003, message: expect.stringContaining('3') });
    // The quota is per account: acme still has room.
    expect((await create(acme, { model: GEMMA, name: 'q1' })).status).toBe(200);
  });
});

describe('list, get, delete', () => {
  let mine: Finetune;
  let theirsPrivate: Finetune;
  let theirsPublic: Finetune;

  beforeAll(async () => {
    mine = (await create(acme, { model: LLAMA, name: 'mine' })).body.result;
    theirsPrivate = (await create(other, { model: LLAMA, name: 'secret' })).body.result;
    theirsPublic = (await create(other, { model: LLAMA, name: 'shared', public: true })).body.result;
  });

  it('lists only the caller\'s own finetunes', async () => {
    const response = await call<Finetune[]>(t.baseUrl, 'GET', path(acme), { token: acme.token });
    expect(response.status).toBe(200);
    const names = response.body.result.map((f) => f.name);
    expect(names).toContain('mine');
    expect(names).not.toContain('secret');
    expect(names).not.toContain('shared');
  });

  it('lists public finetunes of every account with limit, offset and orderBy', async () => {
    await create(acme, { model: LLAMA, name: 'a-public', public: true });
    const all = await call<Finetune[]>(t.baseUrl, 'GET', path(acme, '/public?orderBy=name'), { token: acme.token });
    expect(all.status).toBe(200);
    expect(all.body.result.map((f) => f.name)).toEqual(['a-public', 'shared']);
    expect(all.body.result.every((f) => f.public)).toBe(true);
    const page = await call<Finetune[]>(t.baseUrl, 'GET', path(acme, '/public?orderBy=-name&limit=1&offset=1'), { token: acme.token });
    expect(page.body.result.map((f) => f.name)).toEqual(['a-public']);
    const bad = await call(t.baseUrl, 'GET', path(acme, '/public?orderBy=password'), { token: acme.token });
    expect(bad.status).toBe(400);
    expect(bad.body.errors[0]).toMatchObject({ code: 5006, message: expect.stringContaining('orderBy') });
    const badLimit = await call(t.baseUrl, 'GET', path(acme, '/public?limit=0'), { token: acme.token });
    expect(badLimit.body.errors[0]!.message).toContain('limit');
  });

  it('gets its own by id and by name', async () => {
    for (const key of [mine.id, 'mine']) {
      const response = await call<Finetune>(t.baseUrl, 'GET', path(acme, `/${key}`), { token: acme.token });
      expect(response.status).toBe(200);
      expect(response.body.result.id).toBe(mine.id);
    }
  });

  it('gets another account\'s public finetune by id or name, but never a private one (404/3037)', async () => {
    for (const key of [theirsPublic.id, 'shared']) {
      expect((await call(t.baseUrl, 'GET', path(acme, `/${key}`), { token: acme.token })).status).toBe(200);
    }
    for (const key of [theirsPrivate.id, 'secret', '00000000-0000-0000-0000-000000000000', 'nothing']) {
      const response = await call(t.baseUrl, 'GET', path(acme, `/${key}`), { token: acme.token });
      expect(response.status).toBe(404);
      expect(response.body.errors[0]!.code).toBe(3037);
    }
  });

  it('cannot delete another account\'s finetune, public or not (404/3037)', async () => {
    for (const key of [theirsPrivate.id, theirsPublic.id, 'shared', 'secret']) {
      const response = await call(t.baseUrl, 'DELETE', path(acme, `/${key}`), { token: acme.token });
      expect(response.status).toBe(404);
      expect(response.body.errors[0]!.code).toBe(3037);
    }
    expect((await call(t.baseUrl, 'GET', path(other, `/${theirsPrivate.id}`), { token: other.token })).status).toBe(200);
  });

  it('deletes its own by name, after which it is gone', async () => {
    const doomed = (await create(acme, { model: LLAMA, name: 'doomed' })).body.result;
    const response = await call<Finetune>(t.baseUrl, 'DELETE', path(acme, '/doomed'), { token: acme.token });
    expect(response.status).toBe(200);
    expect(response.body.result.id).toBe(doomed.id);
    expect((await call(t.baseUrl, 'GET', path(acme, `/${doomed.id}`), { token: acme.token })).status).toBe(404);
    expect((await call(t.baseUrl, 'DELETE', path(acme, '/doomed'), { token: acme.token })).status).toBe(404);
  });
});
