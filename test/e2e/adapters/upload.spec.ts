import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import Cloudflare from 'cloudflare';
import { createHash } from 'node:crypto';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { request as httpRequest } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { BUILTIN_MODELS } from '../../../src/catalog/builtin-models.js';
import { PrismaService } from '../../../src/database/prisma.service.js';
import { BAD_ADAPTER_CASES, validAdapter } from '../../fixtures/bad-adapters.js';
import { buildPeftAdapter } from '../../../src/demo/peft-adapter.js';
import { call, createAccount, startTestApp, type TestAccount, type TestApp } from '../../helpers/app.js';
import { testStorage, upload } from '../../helpers/uploads.js';
import { ObjectStorage } from '../../../src/storage/object-storage.js';
import type { TestBucket } from '../../helpers/s3-bucket.js';

const LLAMA = '@cf/meta-llama/llama-2-7b-chat-hf-lora';
const SMALL = '@cf/test/small-limit-lora';
const SMALL_LIMIT = 300_000;
const architecture = (name: string) => BUILTIN_MODELS.find((m) => m.name === name)!.architecture!;
const sha256 = (data: Uint8Array) => createHash('sha256').update(data).digest('hex');

async function collect(stream: AsyncIterable<unknown>): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of stream) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks);
}

let t: TestApp;
let acme: TestAccount;
let other: TestAccount;
let s3: TestBucket;
let prisma: PrismaService;

beforeAll(async () => {
  const modelsFile = join(mkdtempSync(join(tmpdir(), 'models-')), 'models.json');
  writeFileSync(
    modelsFile,
    JSON.stringify([{ name: SMALL, architecture: architecture(LLAMA), limits: { max_adapter_bytes: SMALL_LIMIT } }]),
  );
  t = await startTestApp({ MODELS_FILE: modelsFile });
  acme = await createAccount(t.baseUrl, 'acme');
  other = await createAccount(t.baseUrl, 'other');
  s3 = testStorage(t.bucket);
  prisma = t.app.get(PrismaService);
});
afterAll(async () => {
  s3.destroy();
  await t.close();
});

let counter = 0;
async function newFinetune(account: TestAccount, model = LLAMA): Promise<{ id: string; name: string }> {
  const response = await call<{ id: string; name: string }>(t.baseUrl, 'POST', `/accounts/${account.id}/ai/finetunes`, {
    token: account.token,
    body: { model, name: `ft-${++counter}` },
  });
  expect(response.status).toBe(200);
  return response.body.result;
}

const objectsOf = (account: TestAccount) => s3.list(`accounts/${account.id}/`);
const statusOf = async (id: string) => (await prisma.finetune.findUniqueOrThrow({ where: { id } })).status;

describe('valid adapters for every built-in LoRA base become ready', () => {
  const bases = BUILTIN_MODELS.filter((m) => m.lora).map((m) => m.name);
  expect(bases).toHaveLength(4);

  it.each(bases)('%s (rank 8 q/v at the real shapes)', async (model) => {
    const { configJson, safetensors } = buildPeftAdapter({
      architecture: architecture(model),
      r: 8,
      loraAlpha: 16,
      targetModules: ['q_proj', 'v_proj'],
      dtype: 'F16',
      seed: 1,
    });
    const finetune = await newFinetune(acme, model);
    // Weights first for one model, config first for the others: the order must not matter.
    const order: [string, Buffer][] =
      model === '@cf/google/gemma-7b-it-lora'
        ? [['adapter_model.safetensors', safetensors], ['adapter_config.json', configJson]]
        : [['adapter_config.json', configJson], ['adapter_model.safetensors', safetensors]];
    const first = await upload(t.baseUrl, acme, finetune.id, order[0]![0], order[0]![1]);
    expect(first.status).toBe(200);
    expect(await statusOf(finetune.id)).toBe('pending');
    const second = await upload(t.baseUrl, acme, finetune.name, order[1]![0], order[1]![1]);
    expect(second.status).toBe(200);
    expect(second.body.result).toEqual({
      id: expect.any(String),
      finetune_id: finetune.id,
      file_name: order[1]![0],
      bytes: order[1]![1].length,
      sha256: sha256(order[1]![1]),
      created_at: expect.any(String),
    });
    const got = await call<{ status: string }>(t.baseUrl, 'GET', `/accounts/${acme.id}/ai/finetunes/${finetune.id}`, { token: acme.token });
    expect(got.body.result.status).toBe('ready');
    // Each file is stored once, at the key its row holds, with the bytes its row's sha256 describes.
    const rows = await prisma.finetuneAsset.findMany({ where: { finetuneId: finetune.id }, orderBy: { fileName: 'asc' } });
    expect(rows.map((row) => [row.fileName, row.sha256])).toEqual([
      ['adapter_config.json', sha256(configJson)],
      ['adapter_model.safetensors', sha256(safetensors)],
    ]);
    expect((await s3.list(`accounts/${acme.id}/finetunes/${finetune.id}/`)).sort()).toEqual(rows.map((row) => row.storageKey).sort());
    for (const row of rows) expect(sha256(Buffer.concat(await streamChunks(await s3.read(row.storageKey))))).toBe(row.sha256);
  }, 60_000);
});

async function streamChunks(stream: AsyncIterable<Buffer>): Promise<Buffer[]> {
  const chunks: Buffer[] = [];
  for await (const chunk of stream) chunks.push(chunk);
  return chunks;
}

describe('every bad input gets its specific 4xx and leaves no object and no row', () => {
  const arch = architecture(LLAMA);

  it('the corpus is large enough', () => {
    expect(BAD_ADAPTER_CASES.length).toBeGreaterThanOrEqual(30);
    expect(new Set(BAD_ADAPTER_CASES.map((c) => c.name)).size).toBe(BAD_ADAPTER_CASES.length);
  });

  it.each(BAD_ADAPTER_CASES.map((c) => [c.name, c] as const))('%s', async (_name, bad) => {
    const files = bad.build(arch);
    const good = bad.file === 'adapter_config.json' ? 'adapter_model.safetensors' : 'adapter_config.json';
    const finetune = await newFinetune(acme);
    // The good counterpart first, so rules that compare the two files are exercised too.
    const goodBytes = good === 'adapter_config.json' ? files.config : files.safetensors;
    const accepted = await upload(t.baseUrl, acme, finetune.id, good, goodBytes);
    expect(accepted.status).toBe(200);
    const before = await objectsOf(acme);

    const response = await upload(t.baseUrl, acme, finetune.id, bad.file, bad.file === 'adapter_config.json' ? files.config : files.safetensors);
    expect([400, 413]).toContain(response.status);
    expect(response.body.success).toBe(false);
    expect(response.body.errors[0]!.code).toBe(response.status === 413 ? 3006 : 90001);
    expect(response.body.errors[0]!.message).toMatch(bad.expect);
    expect(response.body.errors[0]!.message.startsWith(bad.file)).toBe(true);

    const rows = await prisma.finetuneAsset.findMany({ where: { finetuneId: finetune.id } });
    expect(rows.map((r) => r.fileName)).toEqual([good]);
    expect(await statusOf(finetune.id)).toBe('pending');
    expect((await objectsOf(acme)).sort()).toEqual(before.sort());
  });
});

describe('form and request errors', () => {
  const { config, safetensors } = validAdapter(architecture(LLAMA));

  it('rejects an unknown file_name, a missing file or file_name, and a non-multipart body, naming the field', async () => {
    const finetune = await newFinetune(acme);
    const before = await objectsOf(acme);
    const wrong = await upload(t.baseUrl, acme, finetune.id, 'weights.bin', safetensors);
    expect(wrong.status).toBe(400);
    expect(wrong.body.errors[0]).toMatchObject({ code: 5006, message: expect.stringContaining('file_name') });

    const noFile = new FormData();
    noFile.append('file_name', 'adapter_config.json');
    const missingFile = await call(t.baseUrl, 'POST', `/accounts/${acme.id}/ai/finetunes/${finetune.id}/finetune-assets`, { token: acme.token, body: noFile });
    expect(missingFile.status).toBe(400);
    expect(missingFile.body.errors[0]!.message).toContain('file');

    const noName = new FormData();
    noName.append('file', new Blob([config]), 'adapter_config.json');
    const missingName = await call(t.baseUrl, 'POST', `/accounts/${acme.id}/ai/finetunes/${finetune.id}/finetune-assets`, { token: acme.token, body: noName });
    expect(missingName.status).toBe(400);
    expect(missingName.body.errors[0]!.message).toContain('file_name');

    const json = await call(t.baseUrl, 'POST', `/accounts/${acme.id}/ai/finetunes/${finetune.id}/finetune-assets`, { token: acme.token, body: { file_name: 'x' } });
    expect(json.status).toBe(400);
    expect(json.body.errors[0]!.message).toContain('multipart/form-data');

    const mismatch = await upload(t.baseUrl, acme, finetune.id, 'adapter_config.json', safetensors);
    expect(mismatch.status).toBe(400);
    expect(await prisma.finetuneAsset.count({ where: { finetuneId: finetune.id } })).toBe(0);
    expect((await objectsOf(acme)).sort()).toEqual(before.sort());
  });

  it('accepts the file part before file_name, telling the files apart by content', async () => {
    const finetune = await newFinetune(acme);
    const a = await upload(t.baseUrl, acme, finetune.id, 'adapter_model.safetensors', safetensors, { fileFirst: true, filename: 'blob' });
    expect(a.status).toBe(200);
    const b = await upload(t.baseUrl, acme, finetune.id, 'adapter_config.json', config, { fileFirst: true, filename: 'blob' });
    expect(b.status).toBe(200);
    expect(await statusOf(finetune.id)).toBe('ready');
    // A file_name that contradicts the content, arriving after it, is still caught.
    const late = await newFinetune(acme);
    const wrong = await upload(t.baseUrl, acme, late.id, 'adapter_config.json', safetensors, { fileFirst: true, filename: 'blob' });
    expect(wrong.status).toBe(400);
    expect(wrong.body.errors[0]!.message).toContain('file_name');
    expect(await s3.list(`accounts/${acme.id}/finetunes/${late.id}/`)).toEqual([]);
  });

  it('enforces the model\'s max_adapter_bytes with 413/3006 and keeps nothing', async () => {
    const big = buildPeftAdapter({ architecture: architecture(LLAMA), r: 8, loraAlpha: 8, targetModules: ['q_proj', 'v_proj'], seed: 3 });
    expect(big.safetensors.length).toBeGreaterThan(SMALL_LIMIT);
    const finetune = await newFinetune(acme, SMALL);
    const before = await objectsOf(acme);
    const response = await upload(t.baseUrl, acme, finetune.id, 'adapter_model.safetensors', big.safetensors);
    expect(response.status).toBe(413);
    expect(response.body.errors[0]).toMatchObject({ code: 3006, message: expect.stringContaining(String(SMALL_LIMIT)) });
    expect(await prisma.finetuneAsset.count({ where: { finetuneId: finetune.id } })).toBe(0);
    expect((await objectsOf(acme)).sort()).toEqual(before.sort());
  });

  it('uploads to another account\'s finetune are 404/3037, even to a public one', async () => {
    const theirs = await call<{ id: string }>(t.baseUrl, 'POST', `/accounts/${other.id}/ai/finetunes`, {
      token: other.token,
      body: { model: LLAMA, name: 'public-one', public: true },
    });
    const response = await upload(t.baseUrl, acme, theirs.body.result.id, 'adapter_config.json', config);
    expect(response.status).toBe(404);
    expect(response.body.errors[0]!.code).toBe(3037);
    const cross = await upload(t.baseUrl, { id: other.id, token: acme.token }, theirs.body.result.id, 'adapter_config.json', config);
    expect(cross.status).toBe(403);
  });
});

describe('lifecycle', () => {
  const arch = architecture(LLAMA);

  it('before ready a re-upload replaces the file and deletes the old object; after ready assets are immutable (409/90004)', async () => {
    const finetune = await newFinetune(acme);
    const v1 = validAdapter(arch, { loraAlpha: 16 });
    const v2 = validAdapter(arch, { loraAlpha: 32 });
    expect((await upload(t.baseUrl, acme, finetune.id, 'adapter_config.json', v1.config)).status).toBe(200);
    expect((await upload(t.baseUrl, acme, finetune.id, 'adapter_config.json', v2.config)).status).toBe(200);
    const prefix = `accounts/${acme.id}/finetunes/${finetune.id}/`;
    const [row] = await prisma.finetuneAsset.findMany({ where: { finetuneId: finetune.id } });
    expect(row).toMatchObject({ fileName: 'adapter_config.json', sha256: sha256(v2.config), storageKey: expect.stringMatching(`^${prefix}`) });
    expect(await s3.list(prefix)).toEqual([row!.storageKey]);
    expect(await collect(await s3.read(row!.storageKey))).toEqual(Buffer.from(v2.config));
    expect((await upload(t.baseUrl, acme, finetune.id, 'adapter_model.safetensors', v2.safetensors)).status).toBe(200);
    expect(await statusOf(finetune.id)).toBe('ready');

    const again = await upload(t.baseUrl, acme, finetune.id, 'adapter_config.json', v1.config);
    expect(again.status).toBe(409);
    expect(again.body.errors[0]!.code).toBe(90004);
    expect((await s3.list(prefix)).length).toBe(2);
  });

  it('deleting a finetune removes its stored objects', async () => {
    const finetune = await newFinetune(acme);
    const files = validAdapter(arch);
    await upload(t.baseUrl, acme, finetune.id, 'adapter_config.json', files.config);
    await upload(t.baseUrl, acme, finetune.id, 'adapter_model.safetensors', files.safetensors);
    const prefix = `accounts/${acme.id}/finetunes/${finetune.id}/`;
    expect(await s3.list(prefix)).toHaveLength(2);
    expect((await call(t.baseUrl, 'DELETE', `/accounts/${acme.id}/ai/finetunes/${finetune.id}`, { token: acme.token })).status).toBe(200);
    expect(await s3.list(prefix)).toEqual([]);
    expect(await prisma.orphanObject.count()).toBe(0);
  });

  it('rejects a bad safetensors header without waiting for the rest of the body', async () => {
    const finetune = await newFinetune(acme);
    const boundary = 'x-boundary-123';
    const head =
      `--${boundary}\r\nContent-Disposition: form-data; name="file_name"\r\n\r\nadapter_model.safetensors\r\n` +
      `--${boundary}\r\nContent-Disposition: form-data; name="file"; filename="adapter_model.safetensors"\r\nContent-Type: application/octet-stream\r\n\r\n`;
    const badHeader = Buffer.alloc(8);
    badHeader.writeBigUInt64LE(1n);
    const response = await new Promise<{ status: number; body: string }>((resolve, reject) => {
      const url = new URL(`${t.baseUrl}/accounts/${acme.id}/ai/finetunes/${finetune.id}/finetune-assets`);
      const req = httpRequest(url, {
        method: 'POST',
        headers: { authorization: `Bearer ${acme.token}`, 'content-type': `multipart/form-data; boundary=${boundary}` },
      });
      req.on('response', (res) => {
        let body = '';
        res.on('data', (c) => (body += c));
        res.on('end', () => {
          resolve({ status: res.statusCode!, body });
          req.destroy();
        });
      });
      req.on('error', reject);
      // Only the start of the file is ever sent; the request body stays open.
      req.write(head);
      req.write(Buffer.concat([badHeader, Buffer.alloc(64 * 1024, 0x20)]));
    });
    expect(response.status).toBe(400);
    expect(JSON.parse(response.body).errors[0]).toMatchObject({ code: 90001, message: expect.stringContaining('header length 1') });
  });

  it('a client that disconnects mid-upload leaves no row and no object', async () => {
    const finetune = await newFinetune(acme);
    // Observes (without altering) the app's storage upload, to know when the server has given up on it.
    const storage = t.app.get(ObjectStorage);
    const original = storage.upload.bind(storage);
    const outcomes: Promise<unknown>[] = [];
    storage.upload = (...args) => {
      const attempt = original(...args);
      outcomes.push(attempt.then(() => 'stored', () => 'failed'));
      return attempt;
    };
    const big = buildPeftAdapter({ architecture: arch, r: 8, loraAlpha: 16, targetModules: ['q_proj', 'v_proj'], dtype: 'F32', seed: 5 });
    const boundary = 'x-boundary-456';
    await new Promise<void>((resolve) => {
      const url = new URL(`${t.baseUrl}/accounts/${acme.id}/ai/finetunes/${finetune.id}/finetune-assets`);
      const req = httpRequest(url, {
        method: 'POST',
        headers: { authorization: `Bearer ${acme.token}`, 'content-type': `multipart/form-data; boundary=${boundary}` },
      });
      req.on('error', () => resolve());
      req.write(
        `--${boundary}\r\nContent-Disposition: form-data; name="file_name"\r\n\r\nadapter_model.safetensors\r\n` +
          `--${boundary}\r\nContent-Disposition: form-data; name="file"; filename="a"\r\n\r\n`,
      );
      // Well past the first multipart part (5 MiB), then gone.
      req.write(big.safetensors.subarray(0, 12 * 1024 * 1024), () => setTimeout(() => {
        req.destroy();
        resolve();
      }, 300));
    });
    // The abort completes asynchronously on the server; wait for it to settle.
    try {
      const deadline = Date.now() + 10_000;
      while (outcomes.length === 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
      expect(await Promise.all(outcomes)).toEqual(['failed']);
    } finally {
      storage.upload = original;
    }
    expect(await s3.list(`accounts/${acme.id}/finetunes/${finetune.id}/`)).toEqual([]);
    expect(await prisma.finetuneAsset.count({ where: { finetuneId: finetune.id } })).toBe(0);
  }, 30_000);
});

describe('storage outage and the SDK', () => {
  it('answers 503/90501 when storage is unreachable, and keeps no row', async () => {
    const down = await startTestApp({ S3_ENDPOINT: 'http://127.0.0.1:1', S3_CREATE_BUCKET: 'false' });
    try {
      const account = await createAccount(down.baseUrl);
      const created = await call<{ id: string }>(down.baseUrl, 'POST', `/accounts/${account.id}/ai/finetunes`, {
        token: account.token,
        body: { model: LLAMA, name: 'x' },
      });
      const response = await upload(down.baseUrl, account, created.body.result.id, 'adapter_config.json', validAdapter(architecture(LLAMA)).config);
      expect(response.status).toBe(503);
      expect(response.body.errors[0]!.code).toBe(90501);
      expect(await down.app.get(PrismaService).finetuneAsset.count()).toBe(0);
    } finally {
      await down.close();
    }
  }, 30_000);

  it('the official cloudflare SDK uploads assets unmodified', async () => {
    const cf = new Cloudflare({ apiToken: acme.token, baseURL: t.baseUrl, maxRetries: 0 });
    const finetune = await cf.ai.finetunes.create({ account_id: acme.id, model: LLAMA, name: 'sdk-upload' });
    const files = validAdapter(architecture(LLAMA));
    for (const [name, bytes] of [['adapter_config.json', files.config], ['adapter_model.safetensors', files.safetensors]] as const) {
      const response: unknown = await cf.ai.finetunes.assets.create(finetune.id, {
        account_id: acme.id,
        file_name: name,
        file: new File([bytes], name),
      });
      // This SDK method does not unwrap the envelope.
      expect(response).toMatchObject({ success: true, result: { file_name: name, sha256: sha256(bytes) } });
    }
    expect(await statusOf(finetune.id)).toBe('ready');
  });
});
