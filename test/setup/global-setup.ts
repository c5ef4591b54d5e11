import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import S3rver from 's3rver';

// One s3rver for the whole run; test files get their own bucket names.
export default async function globalSetup(): Promise<void> {
  // Several projects (e2e, medium) share this setup: the first one starts the server.
  if ((globalThis as { __S3RVER__?: S3rver }).__S3RVER__) return;
  const directory = mkdtempSync(join(tmpdir(), 'lora-s3rver-'));
  const server = new S3rver({ port: 0, address: '127.0.0.1', silent: true, directory });
  const { port } = await server.run();
  process.env.TEST_S3_ENDPOINT = `http://127.0.0.1:${port}`;
  process.env.TEST_DATABASE_URL ??= 'postgresql://postgres@127.0.0.1:5432/postgres';
  (globalThis as { __S3RVER__?: S3rver }).__S3RVER__ = server;
}
