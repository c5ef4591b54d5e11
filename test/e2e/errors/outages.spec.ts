import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { randomBytes } from 'node:crypto';
import { mkdtempSync } from 'node:fs';
import type { Server } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import S3rver from 's3rver';
import { BUILTIN_MODELS } from '../../../src/catalog/builtin-models.js';
import { ERRORS } from '../../../src/common/errors.js';
import { buildPeftAdapter } from '../../../src/demo/peft-adapter.js';
import { ADMIN_TOKEN, call, createAccount, startTestApp, type TestAccount, type TestApp } from '../../helpers/app.js';
import { createTestDatabase, type TestDatabase } from '../../helpers/database.js';
import { uploadForm } from '../../helpers/uploads.js';

const LLAMA = '@cf/meta-llama/llama-2-7b-chat-hf-lora';
const DATABASE_DOWN = { status: 503, code: ERRORS.databaseUnavailable.code };

/** Runs SQL as the superuser on the server's maintenance database (or on `database`). */
async function sql(text: string, database = 'postgres'): Promise<void> {
  const url = new URL(process.env.TEST_DATABASE_URL!);
  url.pathname = `/${database}`;
  const client = new pg.Client({ connectionString: url.toString() });
  await client.connect();
  try {
    await client.query(text);
  } finally {
    await client.end();
  }
}

function urlAs(db: TestDatabase, user: string): string {
  const url = new URL(db.url);
  url.username = user;
  return url.toString();
}

/** Status and first error code of an answer, envelope or OpenAI shape. */
async function outcome(response: Promise<{ status: number; body: unknown }>): Promise<{ status: number; code: number }> {
  const { status, body } = await response;
  const b = body as { errors?: { code: number }[]; error?: { code: string } };
  return { status, code: b.error ? Number(b.error.code) : (b.errors?.[0]?.code ?? 0) };
}

/** The same request on several routes: account routes (token checked against the database), the admin API, /v1. */
function everyRoute(t: { baseUrl: string }, account: TestAccount) {
  const v1 = t.baseUrl.replace('/client/v4', '');
  return [
    call(t.baseUrl, 'GET', `/accounts/${account.id}/ai/finetunes`, { token: account.token }),
    call(t.baseUrl, 'POST', `/accounts/${account.id}/ai/finetunes`, { token: account.token, body: { model: LLAMA, name: 'x' } }),
    call(t.baseUrl, 'GET', `/accounts/${account.id}/ai/usage`, { token: account.token }),
    call(t.baseUrl, 'POST', '/admin/accounts', { token: ADMIN_TOKEN, body: { name: 'new' } }),
    call(v1, 'GET', '/v1/models', { token: account.token }),
  ].map(outcome);
}

let db: TestDatabase;
let account: TestAccount;

beforeAll(async () => {
  db = await createTestDatabase();
  const setup = await startTestApp({}, { database: db });
  account = await createAccount(setup.baseUrl);
  await setup.close();
});
afterAll(async () => {
  await sql(`ALTER DATABASE "${db.name}" ALLOW_CONNECTIONS true`);
  await db.drop();
});

describe('the database refusing connections answers 503 on every route', () => {
  it('too many connections (53300): a role whose connection limit is reached', async () => {
    const role = `lora_limited_${randomBytes(4).toString('hex')}`;
    await sql(`CREATE ROLE "${role}" LOGIN CONNECTION LIMIT 0`);
    const t = await startTestApp({ DATABASE_URL: urlAs(db, role) }, { database: db });
    try {
      for (const answer of await Promise.all(everyRoute(t, account))) expect(answer).toEqual(DATABASE_DOWN);
    } finally {
      await t.close();
      await sql(`DROP ROLE "${role}"`);
    }
  });

  it('not accepting connections (55000): a database closed to new connections', async () => {
    const t = await startTestApp({}, { database: db });
    await sql(`ALTER DATABASE "${db.name}" ALLOW_CONNECTIONS false`);
    // The pool's open connections end too, so every query needs a new one.
    await sql(`SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '${db.name}'`);
    try {
      for (const answer of await Promise.all(everyRoute(t, account))) expect(answer).toEqual(DATABASE_DOWN);
    } finally {
      await sql(`ALTER DATABASE "${db.name}" ALLOW_CONNECTIONS true`);
      await t.close();
    }
  });
});

describe('the database failing under running requests answers 503', () => {
  let t: TestApp;
  let locker: pg.Client;
  beforeAll(async () => {
    t = await startTestApp({}, { database: db });
    // Warm the token cache, so the requests below wait on the finetunes table only.
    await call(t.baseUrl, 'GET', `/accounts/${account.id}/ai/finetunes`, { token: account.token });
  });
  afterAll(() => t.close());

  /** Holds an exclusive lock on the finetunes table until released, so queries on it wait. */
  async function lockFinetunes(): Promise<() => Promise<void>> {
    locker = new pg.Client({ connectionString: db.url });
    await locker.connect();
    await locker.query('BEGIN');
    await locker.query('LOCK TABLE finetunes IN ACCESS EXCLUSIVE MODE');
    return async () => {
      await locker.query('ROLLBACK');
      await locker.end();
    };
  }

  async function waitingQueries(count: number): Promise<void> {
    const deadline = Date.now() + 10_000;
    for (;;) {
      const client = new pg.Client({ connectionString: db.url });
      await client.connect();
      const { rows } = await client.query(
        "SELECT count(*)::int AS n FROM pg_stat_activity WHERE datname = $1 AND wait_event_type = 'Lock'",
        [db.name],
      );
      await client.end();
      if (rows[0].n >= count || Date.now() > deadline) return;
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
  }

  it('admin shutdown (57P01): the backends serving requests are terminated', async () => {
    const release = await lockFinetunes();
    try {
      const pending = [
        call(t.baseUrl, 'GET', `/accounts/${account.id}/ai/finetunes`, { token: account.token }),
        call(t.baseUrl, 'GET', `/accounts/${account.id}/ai/finetunes/some-name`, { token: account.token }),
      ].map(outcome);
      await waitingQueries(2);
      await sql(
        `SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '${db.name}' AND pid <> ${(locker as unknown as { processID: number }).processID}`,
      );
      for (const answer of await Promise.all(pending)) expect(answer).toEqual(DATABASE_DOWN);
    } finally {
      await release();
    }
    // The pool replaces the terminated connections.
    expect((await call(t.baseUrl, 'GET', `/accounts/${account.id}/ai/finetunes`, { token: account.token })).status).toBe(200);
  });

  it('pool exhausted: a request that cannot get a connection in time', async () => {
    const release = await lockFinetunes();
    let held: Promise<{ status: number; code: number }>[] = [];
    try {
      // The pool has 10 connections: 10 requests hold them all, waiting on the lock.
      held = Array.from({ length: 10 }, () => outcome(call(t.baseUrl, 'GET', `/accounts/${account.id}/ai/finetunes`, { token: account.token })));
      await waitingQueries(10);
      const starved = [
        call(t.baseUrl, 'GET', `/accounts/${account.id}/ai/finetunes/any`, { token: account.token }),
        call(t.baseUrl, 'POST', '/admin/accounts', { token: ADMIN_TOKEN, body: { name: 'starved' } }),
      ].map(outcome);
      for (const answer of await Promise.all(starved)) expect(answer).toEqual(DATABASE_DOWN);
    } finally {
      await release();
    }
    for (const answer of await Promise.all(held)) expect(answer.status).toBe(200);
  }, 30_000);
});

describe('storage dying in the middle of an upload', () => {
  it('answers 503 with the storage code and keeps no row', async () => {
    const directory = mkdtempSync(join(tmpdir(), 'lora-s3rver-dying-'));
    const s3 = new S3rver({ port: 0, address: '127.0.0.1', silent: true, directory });
    const { port } = await s3.run();
    const t = await startTestApp({ S3_ENDPOINT: `http://127.0.0.1:${port}` });
    try {
      const owner = await createAccount(t.baseUrl);
      await call(t.baseUrl, 'POST', `/accounts/${owner.id}/ai/finetunes`, { token: owner.token, body: { model: LLAMA, name: 'big' } });
      const architecture = BUILTIN_MODELS.find((m) => m.name === LLAMA)!.architecture!;
      const { safetensors } = buildPeftAdapter({ architecture, r: 8, loraAlpha: 16, targetModules: ['q_proj', 'k_proj', 'v_proj', 'o_proj'], seed: 1 });
      expect(safetensors.length).toBeGreaterThan(12 * 1024 * 1024);
      const form = uploadForm('adapter_model.safetensors', safetensors);
      const encoded = new Response(form);
      const contentType = encoded.headers.get('content-type')!;
      const bytes = new Uint8Array(await encoded.arrayBuffer());
      let sent = 0;
      const body = new ReadableStream<Uint8Array>({
        async pull(controller) {
          if (sent >= bytes.length) return controller.close();
          // Storage goes away once the service has streamed a first 8 MiB part to it.
          if (sent >= 10 * 1024 * 1024 && sent - 256 * 1024 < 10 * 1024 * 1024) {
            // As a crash would: in-flight requests lose their connections, new ones are refused.
            const closed = s3.close();
            (s3 as unknown as { httpServer: Server }).httpServer.closeAllConnections();
            await closed;
          }
          const chunk = bytes.subarray(sent, sent + 256 * 1024);
          sent += chunk.length;
          controller.enqueue(chunk);
        },
      });
      const response = await fetch(`${t.baseUrl}/accounts/${owner.id}/ai/finetunes/big/finetune-assets`, {
        method: 'POST',
        headers: { authorization: `Bearer ${owner.token}`, 'content-type': contentType },
        body,
        duplex: 'half',
      } as RequestInit);
      expect({ status: response.status, code: ((await response.json()) as { errors: { code: number }[] }).errors[0]!.code }).toEqual({
        status: 503,
        code: ERRORS.storageUnavailable.code,
      });
      const assets = await call<{ status: string }>(t.baseUrl, 'GET', `/accounts/${owner.id}/ai/finetunes/big`, { token: owner.token });
      expect(assets.body.result.status).toBe('pending');
    } finally {
      await t.close();
      await s3.close().catch(() => undefined);
    }
  }, 60_000);
});
