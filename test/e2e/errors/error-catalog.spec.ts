/**
 * Every entry of the error catalog (the README's "Error codes" table), provoked for real through the API and
 * checked by status and code. An entry without a case here fails, so a new code comes with its test.
 */
import { afterAll, beforeAll, describe, expect, it, jest } from '@jest/globals';
import { Logger } from '@nestjs/common';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { BUILTIN_MODELS } from '../../../src/catalog/builtin-models.js';
import { ERRORS, type ErrorName } from '../../../src/common/errors.js';
import { validAdapter } from '../../fixtures/bad-adapters.js';
import { ADMIN_TOKEN, call, createAccount, startTestApp, type ApiResponse, type TestAccount, type TestApp } from '../../helpers/app.js';
import { createTestDatabase } from '../../helpers/database.js';
import { upload } from '../../helpers/uploads.js';
import { startVllmStandIn, type VllmStandIn } from '../../helpers/vllm-stand-in.js';

const LLAMA = '@cf/meta-llama/llama-2-7b-chat-hf-lora';
const NOT_LORA = '@cf/meta/llama-2-7b-chat-fp16';
const SLOW = '@cf/test/slow-lora';
const BUSY = '@cf/test/busy-lora';
const LIMITED = '@cf/test/limited-lora';
const ONE_FINETUNE = '@cf/test/one-finetune-lora';
const architecture = BUILTIN_MODELS.find((m) => m.name === LLAMA)!.architecture!;

interface Outcome {
  /** null: the code came in `messages` of a success. */
  status: number | null;
  code: number;
}

let t: TestApp;
let acme: TestAccount;
let other: TestAccount;
let fast: VllmStandIn;
let slow: VllmStandIn;

function outcome(response: ApiResponse): Outcome {
  return { status: response.status, code: response.body.errors[0]?.code ?? 0 };
}

const finetunes = (account: TestAccount) => `/accounts/${account.id}/ai/finetunes`;
const run = (model: string, body: object) => call(t.baseUrl, 'POST', `/accounts/${acme.id}/ai/run/${model}`, { token: acme.token, body });

async function createFinetune(model: string, name: string): Promise<void> {
  const created = await call(t.baseUrl, 'POST', finetunes(acme), { token: acme.token, body: { model, name } });
  expect(created.status).toBe(200);
}

/** A service of its own for a case that breaks what it depends on. */
async function withApp(env: Record<string, string>, work: (app: TestApp) => Promise<Outcome>): Promise<Outcome> {
  const app = await startTestApp(env);
  try {
    return await work(app);
  } finally {
    await app.close();
  }
}

const CASES: Record<ErrorName, () => Promise<Outcome>> = {
  unauthenticated: async () => outcome(await call(t.baseUrl, 'GET', finetunes(acme), { token: 'not-a-token' })),
  forbidden: async () => outcome(await call(t.baseUrl, 'GET', finetunes(other), { token: acme.token })),
  validation: async () => outcome(await call(t.baseUrl, 'POST', finetunes(acme), { token: acme.token, body: { model: LLAMA } })),
  unknownModel: async () => outcome(await call(t.baseUrl, 'POST', finetunes(acme), { token: acme.token, body: { model: '@cf/no/such-model', name: 'x' } })),
  finetuneLoraUnsupported: async () => outcome(await call(t.baseUrl, 'POST', finetunes(acme), { token: acme.token, body: { model: NOT_LORA, name: 'x' } })),
  runLoraUnsupported: async () => outcome(await run(NOT_LORA, { prompt: 'hi', lora: 'anything' })),
  finetuneNotFound: async () => outcome(await call(t.baseUrl, 'GET', `${finetunes(acme)}/no-such-finetune`, { token: acme.token })),
  finetuneNotReady: async () => {
    await createFinetune(SLOW, 'unready');
    return outcome(await run(SLOW, { prompt: 'hi', lora: 'unready' }));
  },
  tooLarge: async () =>
    outcome(await call(t.baseUrl, 'POST', finetunes(acme), { token: acme.token, body: { model: LLAMA, name: 'big', description: 'x'.repeat(3 * 1024 * 1024) } })),
  aborted: async () => {
    // The client sends half of an adapter, then goes away: only the service's log can say what became of it.
    await createFinetune(LLAMA, 'abandoned');
    const logged = jest.spyOn(Logger.prototype, 'log');
    try {
      const { safetensors } = validAdapter(architecture);
      const boundary = 'b0undary';
      const socket = connect(Number(new URL(t.baseUrl).port), '127.0.0.1');
      await new Promise((resolve) => socket.once('connect', resolve));
      socket.write(
        `POST /client/v4${finetunes(acme)}/abandoned/finetune-assets HTTP/1.1\r\nhost: test\r\nauthorization: Bearer ${acme.token}\r\n` +
          `content-type: multipart/form-data; boundary=${boundary}\r\ncontent-length: ${safetensors.length + 1000}\r\n\r\n` +
          `--${boundary}\r\ncontent-disposition: form-data; name="file_name"\r\n\r\nadapter_model.safetensors\r\n` +
          `--${boundary}\r\ncontent-disposition: form-data; name="file"; filename="adapter_model.safetensors"\r\n\r\n`,
      );
      socket.write(safetensors.subarray(0, safetensors.length / 2));
      await new Promise((resolve) => setTimeout(resolve, 300));
      socket.destroy();
      const deadline = Date.now() + 10_000;
      for (;;) {
        const line = logged.mock.calls.map(([message]) => String(message)).find((m) => m.includes('/finetune-assets: The client closed'));
        if (line) {
          const [status, code] = line.split(' ')[0]!.split('/').map(Number);
          return { status: status!, code: code! };
        }
        if (Date.now() > deadline) throw new Error('the service logged nothing about the abandoned upload');
        await new Promise((resolve) => setTimeout(resolve, 50));
      }
    } finally {
      logged.mockRestore();
    }
  },
  // The stand-in's first streamed piece comes after 1 s, past the model's timeout_ms.
  timeout: async () => outcome(await run(SLOW, { prompt: 'hi', max_tokens: 4, stream: true })),
  rateLimited: async () => {
    expect((await run(LIMITED, { prompt: 'hi', max_tokens: 2 })).status).toBe(200);
    const response = await run(LIMITED, { prompt: 'hi', max_tokens: 2 });
    expect(Number(response.headers.get('retry-after'))).toBeGreaterThan(0);
    return outcome(response);
  },
  atCapacity: async () => {
    const holder = new AbortController();
    const held = await fetch(`${t.baseUrl}/accounts/${acme.id}/ai/run/${BUSY}`, {
      method: 'POST',
      headers: { authorization: `Bearer ${acme.token}`, 'content-type': 'application/json' },
      body: JSON.stringify({ prompt: 'one two three four', stream: true, max_tokens: 50 }),
      signal: holder.signal,
    });
    try {
      expect(held.status).toBe(200);
      await held.body!.getReader().read();
      const response = await run(BUSY, { prompt: 'hi', max_tokens: 2 });
      expect(response.headers.get('retry-after')).toBe('1');
      return outcome(response);
    } finally {
      holder.abort();
    }
  },
  routeNotFound: async () => outcome(await call(t.baseUrl, 'GET', '/no/such/route', { token: acme.token })),
  objectNotFound: async () =>
    outcome(await call(t.baseUrl, 'POST', `/admin/accounts/${randomBytes(16).toString('hex')}/tokens`, { token: ADMIN_TOKEN, body: { name: 'x' } })),
  internal: async () => {
    // A schema the service does not expect (a table gone) is a fault of the service, not an outage.
    const database = await createTestDatabase();
    const app = await startTestApp({}, { database });
    try {
      const owner = await createAccount(app.baseUrl);
      const client = new pg.Client({ connectionString: database.url });
      await client.connect();
      await client.query('DROP TABLE finetunes CASCADE');
      await client.end();
      const response = await call(app.baseUrl, 'GET', finetunes(owner), { token: owner.token });
      expect(response.body.errors[0]!.message).toMatch(/^Internal server error \(request [0-9a-f-]{36}\)$/);
      return outcome(response);
    } finally {
      await app.close();
      await database.drop();
    }
  },
  adapterRejected: async () => {
    await createFinetune(LLAMA, 'rejected');
    return outcome(await upload(t.baseUrl, acme, 'rejected', 'adapter_config.json', Buffer.from('{"r": "eight"}')));
  },
  nameTaken: async () => {
    await createFinetune(LLAMA, 'taken');
    return outcome(await call(t.baseUrl, 'POST', finetunes(acme), { token: acme.token, body: { model: LLAMA, name: 'taken' } }));
  },
  finetuneQuota: async () => {
    await createFinetune(ONE_FINETUNE, 'the-one');
    return outcome(await call(t.baseUrl, 'POST', finetunes(acme), { token: acme.token, body: { model: ONE_FINETUNE, name: 'one-more' } }));
  },
  finetuneReady: async () => {
    await createFinetune(LLAMA, 'ready');
    const files = validAdapter(architecture);
    expect((await upload(t.baseUrl, acme, 'ready', 'adapter_config.json', files.config)).status).toBe(200);
    expect((await upload(t.baseUrl, acme, 'ready', 'adapter_model.safetensors', files.safetensors)).status).toBe(200);
    return outcome(await upload(t.baseUrl, acme, 'ready', 'adapter_config.json', files.config));
  },
  adapterWarning: async () => {
    await createFinetune(LLAMA, 'warned');
    const { config } = validAdapter(architecture, { baseModelNameOrPath: 'acme/some-other-model' });
    const response = await upload(t.baseUrl, acme, 'warned', 'adapter_config.json', config);
    expect(response.status).toBe(200);
    return { status: null, code: response.body.messages[0]!.code };
  },
  storageUnavailable: () =>
    withApp({ S3_ENDPOINT: 'http://127.0.0.1:1', S3_CREATE_BUCKET: 'false' }, async (down) => {
      const owner = await createAccount(down.baseUrl);
      await call(down.baseUrl, 'POST', finetunes(owner), { token: owner.token, body: { model: LLAMA, name: 'x' } });
      return outcome(await upload(down.baseUrl, owner, 'x', 'adapter_config.json', validAdapter(architecture).config));
    }),
  databaseUnavailable: () =>
    withApp({ DATABASE_URL: 'postgresql://postgres@127.0.0.1:1/none' }, async (down) =>
      outcome(await call(down.baseUrl, 'GET', finetunes(acme), { token: acme.token })),
    ),
  engineUnavailable: async () => outcome(await run(LLAMA, { prompt: 'hi' })),
};

beforeAll(async () => {
  [fast, slow] = await Promise.all([startVllmStandIn({ servedModel: 'base' }), startVllmStandIn({ servedModel: 'base', chunkDelayMs: 1000 })]);
  const dir = mkdtempSync(join(tmpdir(), 'error-catalog-'));
  const vllm = (server: VllmStandIn, extra: object = {}) => ({ type: 'vllm', base_url: server.url, served_model: 'base', adapter_dir: dir, ...extra });
  const modelsFile = join(dir, 'models.json');
  writeFileSync(
    modelsFile,
    JSON.stringify([
      { name: SLOW, architecture, engine: vllm(slow, { timeout_ms: 300 }) },
      { name: BUSY, architecture, engine: vllm(slow), limits: { max_concurrent_requests: 1, max_queue_wait_ms: 100 } },
      { name: LIMITED, architecture, engine: vllm(fast), limits: { max_requests_per_min: 1 } },
      { name: ONE_FINETUNE, architecture, limits: { max_finetunes_per_account: 1 } },
    ]),
  );
  t = await startTestApp({ MODELS_FILE: modelsFile });
  acme = await createAccount(t.baseUrl, 'acme');
  other = await createAccount(t.baseUrl, 'other');
}, 60_000);
afterAll(async () => {
  await t.close();
  await Promise.all([fast.close(), slow.close()]);
});

describe('every error of the catalog, provoked through the API', () => {
  it('has a case for each entry and an entry for each case', () => {
    expect(Object.keys(CASES).sort()).toEqual(Object.keys(ERRORS).sort());
  });

  it.each(Object.entries(ERRORS).map(([name, error]) => [name, error.status, error.code] as const))(
    '%s answers %s with code %s',
    async (name, status, code) => {
      const provoke = CASES[name as ErrorName];
      if (!provoke) throw new Error(`no case provokes "${name}": add one to CASES`);
      expect(await provoke()).toEqual({ status, code });
    },
    30_000,
  );
});
