import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import pg from 'pg';
import { ADMIN_TOKEN, call, createAccount, startTestApp, type TestAccount, type TestApp } from '../../helpers/app.js';
import { createTestDatabase, type TestDatabase } from '../../helpers/database.js';
import { TINY_LLAMA, tinySetup, type TinySetup } from '../../helpers/tiny.js';
import { addLlamaVariants, run } from './helpers.js';

const LIMITED = '@cf/tiny/limited-llama';
const PER_MIN = 3;
const VIP_PER_MIN = 5;
const BODY = { prompt: 'hi', max_tokens: 2, temperature: 0 };

let tiny: TinySetup;
let db: TestDatabase;
let a: TestApp;
let b: TestApp;
let vip: TestAccount;

/**
 * Windows are whole minutes: a run of requests that must fall into one window starts early enough in a minute.
 * This aligns the test with the window; it asserts nothing about time.
 */
async function freshWindow(): Promise<void> {
  const left = 60_000 - (Date.now() % 60_000);
  if (left < 10_000) await new Promise((resolve) => setTimeout(resolve, left + 100));
}

const statuses = (responses: { status: number }[]) => responses.map((r) => r.status);

beforeAll(async () => {
  tiny = await tinySetup();
  db = await createTestDatabase();
  const env = { MODELS_FILE: tiny.modelsFile, CACHE_DIR: `${tiny.dir}/cache` };
  // The catalog's per-account override needs the account id before the instances read MODELS_FILE.
  const seed = await startTestApp(env, { database: db });
  vip = await createAccount(seed.baseUrl, 'vip');
  await seed.close();
  addLlamaVariants(tiny, { [LIMITED]: { limits: { max_requests_per_min: PER_MIN, accounts: { [vip.id]: VIP_PER_MIN } } } });
  a = await startTestApp(env, { database: db });
  b = await startTestApp(env, { database: db });
}, 60_000);
afterAll(async () => {
  await a.close();
  await b.close();
  await db.drop();
});

describe('requests per minute', () => {
  it('the (N+1)th request in a window is 429/3036 with Retry-After; invalid requests and other models do not count', async () => {
    const acme = await createAccount(a.baseUrl, 'acme');
    await freshWindow();
    for (let i = 0; i < PER_MIN + 2; i++) expect((await run(a, acme, LIMITED, { ...BODY, max_tokens: 0 })).status).toBe(400);
    for (let i = 0; i < PER_MIN; i++) expect((await run(a, acme, LIMITED, BODY)).status).toBe(200);

    const over = await run(a, acme, LIMITED, BODY);
    expect(over.status).toBe(429);
    expect(over.body.errors[0]).toMatchObject({ code: 3036, message: expect.stringContaining(`${PER_MIN} requests per minute`) });
    const retryAfter = Number(over.headers.get('retry-after'));
    expect(Number.isInteger(retryAfter)).toBe(true);
    expect(retryAfter).toBeGreaterThanOrEqual(1);
    expect(retryAfter).toBeLessThanOrEqual(60);

    expect((await run(a, acme, TINY_LLAMA, BODY)).status).toBe(200);
  });

  it('a model without a limit never touches the shared counters', async () => {
    const acme = await createAccount(a.baseUrl, 'unlimited');
    for (let i = 0; i < PER_MIN + 1; i++) expect((await run(a, acme, TINY_LLAMA, BODY)).status).toBe(200);
    const client = new pg.Client({ connectionString: db.url });
    await client.connect();
    try {
      const { rows } = await client.query('SELECT count(*)::int AS n FROM rate_limit_windows WHERE account_id = $1', [acme.id]);
      expect(rows[0].n).toBe(0);
    } finally {
      await client.end();
    }
  });

  it("the catalog's per-account override raises the account's limit", async () => {
    await freshWindow();
    const responses = [];
    for (let i = 0; i < VIP_PER_MIN + 1; i++) responses.push(await run(a, vip, LIMITED, BODY));
    expect(statuses(responses)).toEqual([...Array(VIP_PER_MIN).fill(200), 429]);
  });

  it("an admin override raises an account's limit at once, and one limits a model that has none", async () => {
    const raised = await createAccount(a.baseUrl, 'raised');
    const set = await call(a.baseUrl, 'PUT', `/admin/accounts/${raised.id}/limits`, {
      token: ADMIN_TOKEN,
      body: { model: LIMITED, max_requests_per_min: 6 },
    });
    expect(set.status).toBe(200);
    expect(set.body.result).toEqual({ account_id: raised.id, model: LIMITED, max_requests_per_min: 6, effective_max_requests_per_min: 6 });
    await freshWindow();
    const responses = [];
    for (let i = 0; i < 7; i++) responses.push(await run(a, raised, LIMITED, BODY));
    expect(statuses(responses)).toEqual([...Array(6).fill(200), 429]);

    const listed = await call(a.baseUrl, 'GET', `/admin/accounts/${raised.id}/limits`, { token: ADMIN_TOKEN });
    expect(listed.body.result).toEqual([set.body.result]);
    const removed = await call(a.baseUrl, 'PUT', `/admin/accounts/${raised.id}/limits`, {
      token: ADMIN_TOKEN,
      body: { model: LIMITED, max_requests_per_min: null },
    });
    expect(removed.body.result).toMatchObject({ max_requests_per_min: null, effective_max_requests_per_min: PER_MIN });
    expect((await call(a.baseUrl, 'GET', `/admin/accounts/${raised.id}/limits`, { token: ADMIN_TOKEN })).body.result).toEqual([]);

    const capped = await createAccount(a.baseUrl, 'capped');
    await call(a.baseUrl, 'PUT', `/admin/accounts/${capped.id}/limits`, { token: ADMIN_TOKEN, body: { model: TINY_LLAMA, max_requests_per_min: 1 } });
    await freshWindow();
    expect(statuses([await run(a, capped, TINY_LLAMA, BODY), await run(a, capped, TINY_LLAMA, BODY)])).toEqual([200, 429]);
  });

  it.each([
    [{ model: '@cf/nobody/nothing', max_requests_per_min: 5 }, 400, 5007, 'nobody'],
    [{ model: LIMITED, max_requests_per_min: 0 }, 400, 5006, 'max_requests_per_min'],
    [{ model: LIMITED, max_requests_per_min: 2.5 }, 400, 5006, 'max_requests_per_min'],
    [{ model: LIMITED }, 400, 5006, 'max_requests_per_min'],
    [{ max_requests_per_min: 5 }, 400, 5006, 'model'],
  ])('override %j is %i/%i naming %s', async (body, status, code, named) => {
    const response = await call(a.baseUrl, 'PUT', `/admin/accounts/${vip.id}/limits`, { token: ADMIN_TOKEN, body });
    expect(response.status).toBe(status);
    expect(response.body.errors[0]).toMatchObject({ code, message: expect.stringContaining(named) });
  });

  it('overrides are for existing accounts and need the admin token', async () => {
    const body = { model: LIMITED, max_requests_per_min: 5 };
    const unknown = await call(a.baseUrl, 'PUT', `/admin/accounts/${'0'.repeat(32)}/limits`, { token: ADMIN_TOKEN, body });
    expect(unknown.status).toBe(404);
    expect((await call(a.baseUrl, 'PUT', `/admin/accounts/${vip.id}/limits`, { token: vip.token, body })).status).toBe(401);
  });
});

describe('across replicas', () => {
  it('two instances on one database together admit no more than the limit', async () => {
    const shared = await createAccount(a.baseUrl, 'shared');
    await freshWindow();
    const burst = await Promise.all(Array.from({ length: 4 * PER_MIN }, (_, i) => run(i % 2 === 0 ? a : b, shared, LIMITED, BODY)));
    expect(statuses(burst).filter((s) => s === 200)).toHaveLength(PER_MIN);
    expect(statuses(burst).filter((s) => s === 429)).toHaveLength(3 * PER_MIN);
    expect(statuses([await run(a, shared, LIMITED, BODY), await run(b, shared, LIMITED, BODY)])).toEqual([429, 429]);
  });
});
