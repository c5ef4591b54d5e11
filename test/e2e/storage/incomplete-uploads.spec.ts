import { afterAll, afterEach, beforeAll, describe, expect, it } from '@jest/globals';
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { request as httpRequest } from 'node:http';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { Readable } from 'node:stream';
import { fileURLToPath } from 'node:url';
import pg from 'pg';
import { BUILTIN_MODELS } from '../../../src/catalog/builtin-models.js';
import { buildPeftAdapter } from '../../../src/demo/peft-adapter.js';
import { embeddedS3Directory, removeStaleEmbeddedUploads, startEmbeddedS3 } from '../../../src/storage/embedded-s3.js';
import { ObjectStorage } from '../../../src/storage/object-storage.js';
import { ADMIN_TOKEN, call, createAccount } from '../../helpers/app.js';
import { createTestDatabase, type TestDatabase } from '../../helpers/database.js';
import { TestBucket } from '../../helpers/s3-bucket.js';

const ROOT = resolve(fileURLToPath(import.meta.url), '..', '..', '..', '..');
const MiB = 1024 * 1024;
const LLAMA = '@cf/meta-llama/llama-2-7b-chat-hf-lora';

/** The multipart uploads the embedded s3rver holds (one folder of parts each), across its buckets. */
function stagedUploads(s3Directory: string): string[] {
  if (!existsSync(s3Directory)) return [];
  return readdirSync(s3Directory).flatMap((bucket) => {
    const uploads = join(s3Directory, bucket, '._S3rver_uploads');
    return existsSync(uploads) ? readdirSync(uploads).map((id) => join(uploads, id)) : [];
  });
}

async function until(condition: () => boolean | Promise<boolean>, what: string, timeoutMs = 30_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await condition())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

function failingBody(size: number, failAt: number, failure: Error): Readable {
  let sent = 0;
  return new Readable({
    read() {
      if (sent >= failAt) return void this.destroy(failure);
      const chunk = Buffer.alloc(Math.min(MiB, size - sent), sent / MiB);
      sent += chunk.length;
      this.push(chunk);
    },
  });
}

describe('the embedded store (s3rver refuses AbortMultipartUpload)', () => {
  let dir: string;
  let close: () => Promise<void>;
  let storage: ObjectStorage;
  let objects: TestBucket;
  const bucket = 'embedded-sweep';

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'embedded-s3-'));
    const embedded = await startEmbeddedS3(dir, bucket);
    close = embedded.close;
    storage = new ObjectStorage(embedded.storage);
    await storage.ensureBucket();
    objects = new TestBucket(bucket, embedded.storage.endpoint);
  });
  afterAll(async () => {
    storage.destroy();
    objects.destroy();
    await close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('a failed upload keeps its error though the abort is refused; its parts stay until older than the bound, then are removed', async () => {
    const failure = new Error('client went away');
    await expect(storage.upload('accounts/a/finetunes/f/u1', failingBody(20 * MiB, 12 * MiB, failure))).rejects.toBe(failure);
    expect(await objects.list('accounts/')).toEqual([]);
    const left = stagedUploads(dir);
    expect(left).toHaveLength(1);
    expect(readdirSync(left[0]!)).toContain('1');

    expect(await removeStaleEmbeddedUploads(dir, bucket, new Date(Date.now() - 60_000))).toBe(0);
    expect(stagedUploads(dir)).toHaveLength(1);
    expect(await removeStaleEmbeddedUploads(dir, bucket, new Date(Date.now() + 1_000))).toBe(1);
    expect(stagedUploads(dir)).toEqual([]);
    expect(await removeStaleEmbeddedUploads(join(dir, 'missing'), bucket, new Date())).toBe(0);
  }, 60_000);
});

describe('a service process killed mid-upload', () => {
  let db: TestDatabase;
  let dataDir: string;
  let child: ChildProcess | undefined;

  beforeAll(async () => {
    db = await createTestDatabase();
    dataDir = mkdtempSync(join(tmpdir(), 'killed-upload-'));
  });
  afterEach(() => {
    if (child && child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  });
  afterAll(async () => {
    await db.drop();
    rmSync(dataDir, { recursive: true, force: true });
  });

  /** Starts src/main.ts in a child process with the embedded store under dataDir; resolves with its API URL. */
  async function startService(env: Record<string, string> = {}): Promise<string> {
    const started = spawn(process.execPath, ['--import', 'tsx', 'test/helpers/run-service.ts'], {
      cwd: ROOT,
      // A clean environment: no NODE_OPTIONS from jest, no storage settings (so the embedded store is used).
      env: { PATH: process.env.PATH!, DATABASE_URL: db.url, ADMIN_TOKEN, DATA_DIR: dataDir, PORT: '0', LOG_LEVEL: 'error', ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    child = started;
    let output = '';
    return new Promise((resolvePromise, reject) => {
      const onData = (chunk: Buffer) => {
        output += chunk.toString();
        const url = /lora-hub is ready at (http:\/\/\S+)/.exec(output)?.[1];
        if (url) resolvePromise(url);
      };
      started.stdout!.on('data', onData);
      started.stderr!.on('data', onData);
      started.once('exit', (code) => reject(new Error(`service exited (${code}) before it was ready:\n${output}`)));
    });
  }

  it('leaves its multipart upload in storage, and the next start sweeps it once older than the bound', async () => {
    const s3Directory = embeddedS3Directory(dataDir);
    const baseUrl = await startService();
    const account = await createAccount(baseUrl);
    const created = await call<{ id: string }>(baseUrl, 'POST', `/accounts/${account.id}/ai/finetunes`, {
      token: account.token,
      body: { model: LLAMA, name: 'killed' },
    });
    expect(created.status).toBe(200);

    const weights = buildPeftAdapter({
      architecture: BUILTIN_MODELS.find((m) => m.name === LLAMA)!.architecture!,
      r: 8,
      loraAlpha: 16,
      targetModules: ['q_proj', 'v_proj'],
      dtype: 'F32',
      seed: 7,
    }).safetensors;
    const boundary = 'x-killed-upload';
    const req = httpRequest(new URL(`${baseUrl}/accounts/${account.id}/ai/finetunes/${created.body.result.id}/finetune-assets`), {
      method: 'POST',
      headers: { authorization: `Bearer ${account.token}`, 'content-type': `multipart/form-data; boundary=${boundary}` },
    });
    req.on('error', () => undefined);
    req.write(
      `--${boundary}\r\nContent-Disposition: form-data; name="file_name"\r\n\r\nadapter_model.safetensors\r\n` +
        `--${boundary}\r\nContent-Disposition: form-data; name="file"; filename="adapter_model.safetensors"\r\n\r\n`,
    );
    // More than one 5 MiB part; the request then stays open, as for a client still sending.
    req.write(weights.subarray(0, 12 * MiB));
    await until(() => stagedUploads(s3Directory).some((upload) => existsSync(join(upload, '1.md5'))), 'the first part to be stored');

    child!.kill('SIGKILL');
    await new Promise((r) => child!.once('exit', r));
    req.destroy();
    const left = stagedUploads(s3Directory);
    expect(left).toHaveLength(1);
    expect(readdirSync(left[0]!)).toEqual(expect.arrayContaining(['1', 'key', 'metadata']));
    // The upload's key was recorded before its first byte: had it completed before the kill, its object would be swept.
    const orphans = async () => {
      const client = new pg.Client({ connectionString: db.url });
      await client.connect();
      try {
        return (await client.query<{ key: string; pending: boolean }>('SELECT key, pending FROM orphan_objects')).rows;
      } finally {
        await client.end();
      }
    };
    expect(await orphans()).toEqual([{ key: readFileSync(join(left[0]!, 'key'), 'utf8'), pending: true }]);

    // Restarted with a 1 s bound (the default is a day): the sweep right after start removes it.
    await new Promise((r) => setTimeout(r, 1_100));
    const restarted = await startService({ INCOMPLETE_UPLOAD_MAX_AGE_MS: '1000' });
    await until(() => stagedUploads(s3Directory).length === 0, 'the start-up sweep');
    await until(async () => (await orphans()).length === 0, "the start-up sweep of the upload's record");
    const finetune = await call<{ status: string }>(restarted, 'GET', `/accounts/${account.id}/ai/finetunes/killed`, { token: account.token });
    expect(finetune.body.result.status).not.toBe('ready');
    const client = new pg.Client({ connectionString: db.url });
    await client.connect();
    try {
      expect((await client.query('SELECT count(*)::int AS n FROM finetune_assets')).rows[0].n).toBe(0);
    } finally {
      await client.end();
    }
    child!.kill('SIGTERM');
    await new Promise((r) => child!.once('exit', r));
  }, 180_000);
});
