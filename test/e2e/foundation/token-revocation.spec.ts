import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import pg from 'pg';
import { LISTENER_NAME } from '../../../src/accounts/token-revocations.js';
import { createTestDatabase, type TestDatabase } from '../../helpers/database.js';
import { ADMIN_TOKEN, call, createAccount, startTestApp, type TestAccount, type TestApp } from '../../helpers/app.js';

interface TokenSummary {
  id: string;
  name: string;
  account_id: string;
  last_four: string | null;
  created_at: string;
}

let db: TestDatabase;
/** Two replicas on one database: `a` takes the admin calls, `b` only serves API requests. */
let a: TestApp;
let b: TestApp;
let sql: pg.Client;
let acme: TestAccount;
let other: TestAccount;

beforeAll(async () => {
  db = await createTestDatabase();
  a = await startTestApp({}, { database: db });
  b = await startTestApp({}, { database: db });
  sql = new pg.Client({ connectionString: db.url });
  await sql.connect();
  acme = await createAccount(a.baseUrl, 'acme');
  other = await createAccount(a.baseUrl, 'other');
});
afterAll(async () => {
  await sql.end();
  await a.close();
  await b.close();
  await db.drop();
});

async function newToken(baseUrl: string, accountId: string, name: string): Promise<{ id: string; value: string }> {
  const created = await call<{ id: string; value: string }>(baseUrl, 'POST', `/admin/accounts/${accountId}/tokens`, { token: ADMIN_TOKEN, body: { name } });
  expect(created.status).toBe(200);
  return created.body.result;
}

/** The status of an account-scoped request with `token` on `app`. */
const statusWith = async (app: TestApp, accountId: string, token: string) =>
  (await call(app.baseUrl, 'GET', `/accounts/${accountId}/ai/finetunes`, { token })).status;

const revoke = (accountId: string, tokenId: string) =>
  call<TokenSummary>(a.baseUrl, 'DELETE', `/admin/accounts/${accountId}/tokens/${tokenId}`, { token: ADMIN_TOKEN });

describe('listing tokens', () => {
  it("lists an account's tokens with id, name, last four characters and creation time, never the secret", async () => {
    const laptop = await newToken(a.baseUrl, other.id, 'laptop');
    const list = await call<TokenSummary[]>(a.baseUrl, 'GET', `/admin/accounts/${other.id}/tokens`, { token: ADMIN_TOKEN });
    expect(list.status).toBe(200);
    expect(list.body.result).toEqual([
      { id: expect.any(String), name: 'test', account_id: other.id, last_four: other.token.slice(-4), created_at: expect.any(String) },
      { id: laptop.id, name: 'laptop', account_id: other.id, last_four: laptop.value.slice(-4), created_at: expect.any(String) },
    ]);
    const text = JSON.stringify(list.body);
    expect([text.includes(other.token), text.includes(laptop.value), text.includes('value')]).toEqual([false, false, false]);
  });

  it('answers 404 for an account that does not exist, and 401 without the admin token', async () => {
    const missing = await call(a.baseUrl, 'GET', `/admin/accounts/${'0'.repeat(32)}/tokens`, { token: ADMIN_TOKEN });
    expect([missing.status, missing.body.errors[0]?.code]).toEqual([404, 7003]);
    expect((await call(a.baseUrl, 'GET', `/admin/accounts/${acme.id}/tokens`, { token: acme.token })).status).toBe(401);
  });
});

describe('revoking a token', () => {
  it('serves tokens from a cache: a token deleted behind the service keeps working on the replica that cached it', async () => {
    // The situation revocation has to overcome, shown rather than assumed.
    const token = await newToken(a.baseUrl, acme.id, 'deleted behind the service');
    expect(await statusWith(b, acme.id, token.value)).toBe(200);
    await sql.query('DELETE FROM api_tokens WHERE id = $1', [token.id]);
    expect(await statusWith(b, acme.id, token.value)).toBe(200);
  });

  it('is refused at once by the revoking replica and by another replica that had it cached', async () => {
    const token = await newToken(a.baseUrl, acme.id, 'ci');
    expect(await statusWith(a, acme.id, token.value)).toBe(200);
    expect(await statusWith(b, acme.id, token.value)).toBe(200);

    const revoked = await revoke(acme.id, token.id);
    expect(revoked.status).toBe(200);
    expect(revoked.body.result).toEqual({ id: token.id, name: 'ci', account_id: acme.id, last_four: token.value.slice(-4), created_at: expect.any(String) });

    // No waiting: the next request on each replica.
    expect([await statusWith(b, acme.id, token.value), await statusWith(a, acme.id, token.value)]).toEqual([401, 401]);
    expect((await call(new URL(b.baseUrl).origin, 'GET', '/v1/models', { token: token.value })).status).toBe(401);
    const list = await call<TokenSummary[]>(a.baseUrl, 'GET', `/admin/accounts/${acme.id}/tokens`, { token: ADMIN_TOKEN });
    expect(list.body.result.map((t) => t.id)).not.toContain(token.id);
    // The account's other token is untouched.
    expect(await statusWith(b, acme.id, acme.token)).toBe(200);
  });

  it("answers 404 for a token id under another account's path, and the token keeps working", async () => {
    const token = await newToken(a.baseUrl, other.id, 'not yours');
    const wrong = await revoke(acme.id, token.id);
    expect([wrong.status, wrong.body.errors[0]?.code]).toEqual([404, 7003]);
    expect(await statusWith(b, other.id, token.value)).toBe(200);
    expect((await revoke(other.id, token.id)).status).toBe(200);
    expect((await revoke(other.id, token.id)).status).toBe(404);
  });

  it('rejects a token id that is not a UUID with 400 naming it', async () => {
    const bad = await revoke(acme.id, 'laptop');
    expect([bad.status, bad.body.errors[0]?.code]).toEqual([400, 5006]);
    expect(bad.body.errors[0]?.message).toContain('token_id');
  });

  it('still reaches every replica after their listening connections were cut', async () => {
    // Backends of the replicas' listeners that have run a statement (the first is their LISTEN) and are idle.
    const listeners = async () =>
      (
        await sql.query(
          "SELECT pid FROM pg_stat_activity WHERE application_name = $1 AND datname = $2 AND state = 'idle' AND query <> ''",
          [LISTENER_NAME, db.name],
        )
      ).rows.map((row: { pid: number }) => row.pid);
    const cut = await listeners();
    expect(cut).toHaveLength(2);
    await sql.query('SELECT pg_terminate_backend(pid) FROM unnest($1::int[]) AS pid', [cut]);
    // Waiting here is for the replicas to reconnect, not for a revocation to arrive.
    while ((await listeners()).filter((pid) => !cut.includes(pid)).length < 2) await new Promise((resolve) => setTimeout(resolve, 50));

    const token = await newToken(a.baseUrl, acme.id, 'after reconnect');
    expect(await statusWith(b, acme.id, token.value)).toBe(200);
    expect((await revoke(acme.id, token.id)).status).toBe(200);
    expect(await statusWith(b, acme.id, token.value)).toBe(401);
  });
});
