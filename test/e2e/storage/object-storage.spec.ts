import { createHash, randomBytes } from 'node:crypto';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { createServer, request, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { CreateMultipartUploadCommand, HeadObjectCommand, ListMultipartUploadsCommand, S3Client, UploadPartCommand } from '@aws-sdk/client-s3';
import { ApiError } from '../../../src/common/errors.js';
import type { ObjectStorageOptions } from '../../../src/config/app-config.js';
import { assetKey, ObjectStorage } from '../../../src/storage/object-storage.js';
import { TestBucket } from '../../helpers/s3-bucket.js';

const MiB = 1024 * 1024;
const CHUNK = 64 * 1024;
// ObjectStorage's part size (S3's minimum).
const PART = 5 * MiB;
const BLOCK = randomBytes(CHUNK);
const endpoint = process.env.TEST_S3_ENDPOINT as string;
const bucket = `storage-spec-${process.pid}`;
const credentials = { accessKeyId: 'S3RVER', secretAccessKey: 'S3RVER' };
const options = (overrides: Partial<ObjectStorageOptions> = {}): ObjectStorageOptions => ({
  endpoint,
  region: 'us-east-1',
  bucket,
  ...credentials,
  forcePathStyle: true,
  ...overrides,
});

// Deterministic content: chunk n is BLOCK stamped with n, so any byte range can be recomputed.
function chunkAt(index: number): Buffer {
  const chunk = Buffer.from(BLOCK);
  chunk.writeUInt32BE(index, 0);
  return chunk;
}

/** A generated body of `size` bytes, produced on demand (never held in memory at once). */
function generated(size: number, onProgress?: (sent: number, stream: Readable) => void): Readable {
  let sent = 0;
  return new Readable({
    read() {
      if (sent >= size) {
        this.push(null);
        return;
      }
      const chunk = chunkAt(sent / CHUNK).subarray(0, Math.min(CHUNK, size - sent));
      sent += chunk.length;
      onProgress?.(sent, this);
      if (!this.destroyed) this.push(chunk);
    },
  });
}

function sha256Of(size: number): string {
  const hash = createHash('sha256');
  for (let offset = 0; offset < size; offset += CHUNK) hash.update(chunkAt(offset / CHUNK).subarray(0, Math.min(CHUNK, size - offset)));
  return hash.digest('hex');
}

async function sha256OfStream(stream: Readable): Promise<string> {
  const hash = createHash('sha256');
  for await (const chunk of stream) hash.update(chunk as Buffer);
  return hash.digest('hex');
}

async function collect(stream: Readable): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of stream) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks);
}

/**
 * s3rver 3.7 implements neither AbortMultipartUpload (405) nor ListMultipartUploads (501). This proxy in front
 * of it answers both from the multipart uploads it has seen pass, as S3 would, and forwards everything else,
 * so the tests can check that no multipart upload is left open. It also records DeleteObjects batch sizes.
 * `failParts` answers UploadPart with 500 (a storage failure mid-upload); `refuseAborts` answers
 * AbortMultipartUpload as s3rver itself does (405); `holdParts` keeps UploadPart requests waiting, their bodies
 * unread, until releaseParts() (a storage server slower than the client). It counts the parts in flight.
 */
class MultipartProxy {
  readonly initiated: string[] = [];
  readonly completed: string[] = [];
  readonly aborted: string[] = [];
  readonly deleteBatchSizes: number[] = [];
  /** The key of every part stored. */
  readonly parts: string[] = [];
  failParts = false;
  refuseAborts = false;
  holdParts = false;
  partsInFlight = 0;
  maxPartsInFlight = 0;
  private readonly heldParts: (() => void)[] = [];
  private readonly heldWaiters: { count: number; resolve: () => void }[] = [];
  private readonly open = new Map<string, { key: string; initiated: Date }>();
  private readonly server: Server = createServer((req, res) => this.handle(req, res));
  private readonly upstream = new URL(endpoint);

  async start(): Promise<string> {
    await new Promise<void>((resolve) => this.server.listen(0, '127.0.0.1', resolve));
    return `http://127.0.0.1:${(this.server.address() as AddressInfo).port}`;
  }

  async stop(): Promise<void> {
    this.server.closeAllConnections();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  get partsHeld(): number {
    return this.heldParts.length;
  }

  whenPartsHeld(count: number): Promise<void> {
    if (this.heldParts.length >= count) return Promise.resolve();
    return new Promise((resolve) => this.heldWaiters.push({ count, resolve }));
  }

  releaseParts(): void {
    this.holdParts = false;
    for (const forward of this.heldParts.splice(0)) forward();
  }

  private handle(req: IncomingMessage, res: ServerResponse): void {
    const url = new URL(req.url ?? '/', 'http://proxy');
    const [, bucketName = '', ...keyParts] = url.pathname.split('/');
    const key = decodeURIComponent(keyParts.join('/'));
    const uploadId = url.searchParams.get('uploadId');

    if (req.method === 'DELETE' && uploadId !== null) {
      req.resume();
      if (this.refuseAborts) return xml(res, 405, '<Error><Code>MethodNotAllowed</Code></Error>');
      if (!this.open.delete(uploadId)) return xml(res, 404, '<Error><Code>NoSuchUpload</Code></Error>');
      this.aborted.push(key);
      res.writeHead(204).end();
      return;
    }
    if (req.method === 'GET' && key === '' && url.searchParams.has('uploads')) {
      req.resume();
      const prefix = url.searchParams.get('prefix') ?? '';
      const uploads = [...this.open]
        .filter(([, upload]) => upload.key.startsWith(prefix))
        .map(([id, upload]) => `<Upload><Key>${upload.key}</Key><UploadId>${id}</UploadId><Initiated>${upload.initiated.toISOString()}</Initiated></Upload>`);
      return xml(res, 200, `<ListMultipartUploadsResult><Bucket>${bucketName}</Bucket>${uploads.join('')}</ListMultipartUploadsResult>`);
    }

    if (req.method === 'PUT' && uploadId !== null && this.failParts) {
      req.resume();
      return xml(res, 500, '<Error><Code>InternalError</Code></Error>');
    }
    if (req.method === 'PUT' && uploadId !== null) {
      this.partsInFlight++;
      this.maxPartsInFlight = Math.max(this.maxPartsInFlight, this.partsInFlight);
      res.once('close', () => this.partsInFlight--);
      if (this.holdParts) {
        this.heldParts.push(() => this.forward(req, res, url, key, uploadId));
        for (const waiter of this.heldWaiters.filter((w) => this.heldParts.length >= w.count)) {
          this.heldWaiters.splice(this.heldWaiters.indexOf(waiter), 1);
          waiter.resolve();
        }
        return;
      }
    }
    if (req.method === 'POST' && url.searchParams.has('delete')) {
      let text = '';
      req.on('data', (chunk: Buffer) => (text += chunk.toString()));
      req.on('end', () => this.deleteBatchSizes.push(text.split('<Key>').length - 1));
    }
    this.forward(req, res, url, key, uploadId);
  }

  private forward(req: IncomingMessage, res: ServerResponse, url: URL, key: string, uploadId: string | null): void {
    const forwarded = request(
      { hostname: this.upstream.hostname, port: this.upstream.port, method: req.method, path: req.url, headers: req.headers },
      (upstream) => {
        const chunks: Buffer[] = [];
        upstream.on('data', (chunk: Buffer) => chunks.push(chunk));
        upstream.on('end', () => {
          const body = Buffer.concat(chunks);
          const ok = upstream.statusCode === 200;
          if (req.method === 'POST' && url.searchParams.has('uploads') && ok) {
            const id = /<UploadId>([^<]+)<\/UploadId>/.exec(body.toString())?.[1];
            if (id !== undefined) this.open.set(id, { key, initiated: new Date() });
            this.initiated.push(key);
          }
          if (req.method === 'POST' && uploadId !== null && ok && this.open.delete(uploadId)) this.completed.push(key);
          if (req.method === 'PUT' && uploadId !== null && ok) this.parts.push(key);
          res.writeHead(upstream.statusCode ?? 502, upstream.headers).end(body);
        });
      },
    );
    forwarded.on('error', () => res.destroy());
    req.pipe(forwarded);
  }
}

function xml(res: ServerResponse, status: number, body: string): void {
  res.writeHead(status, { 'content-type': 'application/xml' }).end(`<?xml version="1.0" encoding="UTF-8"?>${body}`);
}

describe('ObjectStorage against s3rver', () => {
  const proxy = new MultipartProxy();
  const storage = new ObjectStorage(options());
  const objects = new TestBucket(bucket, endpoint);
  let tracked: ObjectStorage;
  let raw: S3Client;
  let workDir: string;

  async function openUploads(prefix: string): Promise<unknown[]> {
    const result = await raw.send(new ListMultipartUploadsCommand({ Bucket: bucket, Prefix: prefix }));
    return result.Uploads ?? [];
  }

  beforeAll(async () => {
    const proxyUrl = await proxy.start();
    tracked = new ObjectStorage(options({ endpoint: proxyUrl }));
    raw = new S3Client({ endpoint: proxyUrl, region: 'us-east-1', forcePathStyle: true, credentials });
    workDir = mkdtempSync(join(tmpdir(), 'storage-spec-'));
    await storage.ensureBucket();
  });

  afterAll(async () => {
    storage.destroy();
    objects.destroy();
    tracked.destroy();
    raw.destroy();
    await proxy.stop();
    rmSync(workDir, { recursive: true, force: true });
  });

  it('builds per-upload asset keys under the finetune', () => {
    expect(assetKey({ accountId: 'acc', finetuneId: 'ft', uploadId: 'u1' })).toBe('accounts/acc/finetunes/ft/u1');
  });

  it('ensureBucket is idempotent and safe when racing another creator', async () => {
    await storage.ensureBucket();
    const fresh = options({ bucket: `${bucket}-race` });
    const [first, second] = [new ObjectStorage(fresh), new ObjectStorage(fresh)];
    try {
      await Promise.all([first.ensureBucket(), second.ensureBucket()]);
      await first.ensureBucket();
      await expect(first.ping()).resolves.toBeUndefined();
    } finally {
      first.destroy();
      second.destroy();
    }
  });

  it('uploads a small body with its content type and metadata, then heads and reads it back', async () => {
    const key = 'small/one.json';
    const content = Buffer.from('{"hello":"world"}');
    const result = await storage.upload(key, Readable.from([content]), {
      contentType: 'application/json',
      metadata: { sha256: createHash('sha256').update(content).digest('hex') },
    });
    expect(result).toEqual({ key, bytes: content.length });

    const head = await objects.head(key);
    expect(head?.bytes).toBe(content.length);
    expect(head?.etag).toEqual(expect.any(String));
    expect(await collect(await objects.read(key))).toEqual(content);

    const client = new S3Client({ endpoint, region: 'us-east-1', forcePathStyle: true, credentials });
    try {
      const described = await client.send(new HeadObjectCommand({ Bucket: bucket, Key: key }));
      expect(described.ContentType).toBe('application/json');
      expect(described.Metadata).toEqual({ sha256: createHash('sha256').update(content).digest('hex') });
    } finally {
      client.destroy();
    }
  });

  it('streams a multipart-sized body and reads it back whole and to a file', async () => {
    const key = 'multipart/adapter.safetensors';
    const size = 20 * MiB + 12_345;
    const result = await tracked.upload(key, generated(size));
    expect(result).toEqual({ key, bytes: size });
    expect(proxy.initiated).toContain(key);
    expect(proxy.completed).toContain(key);
    expect(await openUploads('multipart/')).toEqual([]);

    expect((await objects.head(key))?.bytes).toBe(size);
    expect(await sha256OfStream(await objects.read(key))).toBe(sha256Of(size));

    const path = join(workDir, 'adapter.safetensors');
    await storage.readToFile(key, path);
    expect(createHash('sha256').update(readFileSync(path)).digest('hex')).toBe(sha256Of(size));
    expect(readdirSync(workDir)).toEqual(['adapter.safetensors']);

    expect(await sha256OfStream(await storage.readStream(key))).toBe(sha256Of(size));
  }, 60_000);

  it('sends a body that fits in one part in a single request, and larger ones in parts', async () => {
    const chunk = randomBytes(12 * MiB + 3);
    const cases = [
      { key: 'sizes/empty', body: () => Readable.from([]), content: Buffer.alloc(0), parts: 0 },
      { key: 'sizes/one-part', body: () => generated(PART), content: undefined, size: PART, parts: 0 },
      { key: 'sizes/one-byte-over', body: () => generated(PART + 1), content: undefined, size: PART + 1, parts: 2 },
      // One chunk larger than two parts: it is spread over three.
      { key: 'sizes/one-big-chunk', body: () => Readable.from([chunk]), content: chunk, parts: 3 },
    ];
    for (const { key, body, content, size, parts } of cases) {
      const bytes = content?.length ?? size!;
      expect(await tracked.upload(key, body())).toEqual({ key, bytes });
      expect(proxy.initiated.includes(key)).toBe(parts > 0);
      expect(proxy.parts.filter((k) => k === key)).toHaveLength(parts);
      const stored = await objects.read(key);
      if (content) expect((await collect(stored)).equals(content)).toBe(true);
      else expect(await sha256OfStream(stored)).toBe(sha256Of(bytes));
    }
    expect(await openUploads('sizes/')).toEqual([]);
  }, 60_000);

  it('with storage slower than the client, keeps 2 parts in flight and reads no further than they hold, and stores the body byte for byte', async () => {
    const key = 'slow/adapter.safetensors';
    const size = 8 * PART + 777;
    let read = 0;
    let twoPartsRead!: () => void;
    const readAhead = new Promise<void>((resolve) => (twoPartsRead = resolve));
    proxy.maxPartsInFlight = 0;
    proxy.holdParts = true;
    try {
      const uploading = tracked.upload(
        key,
        generated(size, (sent) => {
          read = sent;
          if (sent > 2 * PART) twoPartsRead();
        }),
      );
      // Parts 1 and 2 are held unanswered, so their buffers are still being sent: reading waits for one of them.
      await proxy.whenPartsHeld(2);
      await readAhead;
      await new Promise((resolve) => setTimeout(resolve, 300));
      expect(proxy.partsHeld).toBe(2);
      // The chunk that found the second buffer full, and at most one more the stream read ahead.
      expect(read).toBeLessThanOrEqual(2 * PART + 2 * CHUNK);
      proxy.releaseParts();
      expect(await uploading).toEqual({ key, bytes: size });
    } finally {
      proxy.releaseParts();
    }
    expect(proxy.maxPartsInFlight).toBe(2);
    expect(proxy.parts.filter((k) => k === key)).toHaveLength(9);
    expect(await sha256OfStream(await objects.read(key))).toBe(sha256Of(size));
  }, 60_000);

  it('reports a connection lost in the middle of a streamed read as storageUnavailable', async () => {
    // Stands in for S3: answers any GET with the headers of a 1 MiB object, sends 64 KiB of it and hangs up.
    const cut = createServer((req, res) => {
      req.resume();
      res.writeHead(200, { 'content-length': String(MiB), 'content-type': 'application/octet-stream' });
      res.write(chunkAt(0), () => res.socket?.destroy());
    });
    await new Promise<void>((resolve) => cut.listen(0, '127.0.0.1', resolve));
    const cutting = new ObjectStorage(options({ endpoint: `http://127.0.0.1:${(cut.address() as AddressInfo).port}` }));
    try {
      const stream = await cutting.readStream('cut/adapter.safetensors');
      const error = await sha256OfStream(stream).then(() => undefined, (thrown: unknown) => thrown);
      expect(error).toBeInstanceOf(ApiError);
      expect(error).toMatchObject({ error: 'storageUnavailable', status: 503 });
      expect((error as Error).message).toContain('readStream of "cut/adapter.safetensors"');
    } finally {
      cutting.destroy();
      cut.closeAllConnections();
      await new Promise<void>((resolve) => cut.close(() => resolve()));
    }
  });

  it('returns null from head for a missing key and deletes idempotently', async () => {
    expect(await objects.head('missing/nothing.bin')).toBeNull();
    await storage.upload('gone/once.txt', Readable.from([Buffer.from('x')]));
    await storage.delete('gone/once.txt');
    await storage.delete('gone/once.txt');
    expect(await objects.head('gone/once.txt')).toBeNull();
  });

  it('lists every key under a prefix', async () => {
    const keys = Array.from({ length: 12 }, (_, index) => `listed/${String(index).padStart(2, '0')}.txt`);
    for (const key of keys) await storage.upload(key, Readable.from([Buffer.from(key)]));
    expect((await objects.list('listed/')).sort()).toEqual(keys);
    expect((await objects.list('listed/0')).sort()).toEqual(keys.slice(0, 10));
    expect(await objects.list('nothing-here/')).toEqual([]);
    for (const key of keys) await storage.delete(key);
    expect(await objects.list('listed/')).toEqual([]);
  });

  it('deletes many keys in batches of 1000', async () => {
    // S3 reports missing keys as deleted, so padding with absent keys exercises batching without 1005 uploads.
    // The real keys sit at the bucket root: s3rver races on removing a shared directory when several keys
    // in it are deleted in one request.
    const keys = Array.from({ length: 1005 }, (_, index) => `batch-${String(index).padStart(4, '0')}`);
    const present = [keys[0]!, keys[999]!, keys[1004]!];
    for (const key of present) await storage.upload(key, Readable.from([Buffer.from(key)]));

    await tracked.deleteMany(keys);
    expect(new Set(proxy.deleteBatchSizes)).toEqual(new Set([1000, 5]));
    for (const key of present) expect(await objects.head(key)).toBeNull();
    await storage.deleteMany([]);
  });

  it('aborting mid-stream leaves no object and no open multipart upload, and rethrows the abort reason', async () => {
    const key = 'aborted/adapter.safetensors';
    const controller = new AbortController();
    const reason = new ApiError('validation', 'client disconnected');
    const body = generated(20 * MiB, (sent) => {
      if (sent >= 12 * MiB && !controller.signal.aborted) controller.abort(reason);
    });

    await expect(tracked.upload(key, body, { signal: controller.signal })).rejects.toBe(reason);
    expect(body.destroyed).toBe(true);
    expect(proxy.initiated).toContain(key);
    expect(proxy.aborted).toContain(key);
    expect(await objects.list('aborted/')).toEqual([]);
    expect(await openUploads('aborted/')).toEqual([]);
  }, 60_000);

  it('a body stream error leaves no object and no open multipart upload, and is rethrown unchanged', async () => {
    const key = 'failed/adapter.safetensors';
    const failure = new ApiError('validation', 'file exceeds the size limit');
    const body = generated(20 * MiB, (sent, stream) => {
      if (sent >= 10 * MiB) stream.destroy(failure);
    });

    await expect(tracked.upload(key, body)).rejects.toBe(failure);
    expect(proxy.initiated).toContain(key);
    expect(proxy.aborted).toContain(key);
    expect(await objects.list('failed/')).toEqual([]);
    expect(await openUploads('failed/')).toEqual([]);
  }, 60_000);

  it('an already aborted signal uploads nothing', async () => {
    const controller = new AbortController();
    controller.abort();
    await expect(storage.upload('pre-aborted/a.bin', generated(MiB), { signal: controller.signal })).rejects.toBe(
      controller.signal.reason,
    );
    expect(await objects.list('pre-aborted/')).toEqual([]);
  });

  it('a storage failure mid-upload aborts the multipart upload and reports the outage, even when the abort is refused', async () => {
    proxy.failParts = true;
    try {
      const key = 'broken/adapter.safetensors';
      const failure = await tracked.upload(key, generated(20 * MiB)).catch((error: unknown) => error);
      expect(failure).toMatchObject({ error: 'storageUnavailable', status: 503 });
      expect((failure as Error).message).toContain('InternalError');
      expect(proxy.aborted).toContain(key);
      expect(await openUploads('broken/')).toEqual([]);

      // A server that answers AbortMultipartUpload with an error (as s3rver does): the upload's own error is kept.
      proxy.refuseAborts = true;
      const refused = await tracked.upload('refused/adapter.safetensors', generated(20 * MiB)).catch((error: unknown) => error);
      expect(refused).toMatchObject({ error: 'storageUnavailable', status: 503 });
      expect((refused as Error).message).toContain('upload of "refused/adapter.safetensors"');
      expect(await openUploads('refused/')).toHaveLength(1);
    } finally {
      proxy.failParts = false;
      proxy.refuseAborts = false;
    }
  }, 60_000);

  it('aborts the incomplete multipart uploads initiated before a bound, keeping newer ones', async () => {
    // As a killed process leaves them: initiated, one part stored, never completed nor aborted.
    const started: string[] = [];
    for (const key of ['left/a.safetensors', 'left/b.safetensors']) {
      const { UploadId } = await raw.send(new CreateMultipartUploadCommand({ Bucket: bucket, Key: key }));
      await raw.send(new UploadPartCommand({ Bucket: bucket, Key: key, UploadId, PartNumber: 1, Body: chunkAt(0) }));
      started.push(key);
    }
    expect(await openUploads('left/')).toHaveLength(2);

    expect(await tracked.abortIncompleteUploads('left/', new Date(Date.now() - 60_000))).toBe(0);
    expect(await openUploads('left/')).toHaveLength(2);
    expect(await tracked.abortIncompleteUploads('left/', new Date(Date.now() + 1_000))).toBe(2);
    expect(proxy.aborted).toEqual(expect.arrayContaining(started));
    expect(await openUploads('left/')).toEqual([]);
  });

  it('reports a server that cannot list multipart uploads (s3rver itself) as unsupported', async () => {
    expect(await storage.abortIncompleteUploads('left/', new Date())).toBeUndefined();
  });

  it('reports an unreachable endpoint as storageUnavailable', async () => {
    const unreachable = new ObjectStorage(options({ endpoint: 'http://127.0.0.1:1', secretAccessKey: 'do-not-leak' }));
    try {
      const errors = await Promise.all(
        [unreachable.ping(), unreachable.upload('x/y.bin', Readable.from([Buffer.from('data')])), unreachable.delete('x/y.bin')].map(
          (attempt: Promise<unknown>) => attempt.then(() => undefined, (thrown: unknown) => thrown),
        ),
      );
      for (const error of errors) {
        expect(error).toBeInstanceOf(ApiError);
        expect(error).toMatchObject({ error: 'storageUnavailable', status: 503, code: 90501 });
        expect((error as Error).message).toContain('127.0.0.1:1');
        expect((error as Error).message).not.toContain('do-not-leak');
      }
    } finally {
      unreachable.destroy();
    }
  }, 30_000);
});
