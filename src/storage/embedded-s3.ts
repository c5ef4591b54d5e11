import { mkdirSync } from 'node:fs';
import { readdir, rm, stat } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import S3rver from 's3rver';
import type { StorageConfig } from '../config/app-config.js';

export interface EmbeddedS3 {
  storage: StorageConfig;
  close(): Promise<void>;
}

/** Credentials s3rver accepts; only ever used for the in-process server on the loopback interface. */
const S3RVER_KEY = 'S3RVER';

/** Where the embedded server keeps its buckets, under the data directory. */
export function embeddedS3Directory(dataDir: string): string {
  return join(dataDir, 's3');
}

/** An in-process S3-compatible server for running without external storage; objects live under `directory`. */
export async function startEmbeddedS3(directory: string, bucket: string): Promise<EmbeddedS3> {
  const root = resolve(directory);
  mkdirSync(root, { recursive: true });
  const server = new S3rver({ port: 0, address: '127.0.0.1', silent: true, directory: root });
  const { port } = await server.run();
  return {
    storage: {
      endpoint: `http://127.0.0.1:${port}`,
      region: 'us-east-1',
      bucket,
      accessKeyId: S3RVER_KEY,
      secretAccessKey: S3RVER_KEY,
      forcePathStyle: true,
      createBucket: true,
      embedded: true,
    },
    close: () => server.close(),
  };
}

/**
 * s3rver 3.7 can neither list nor abort multipart uploads: its filesystem store keeps each one's parts in
 * `<bucket>/._S3rver_uploads/<uploadId>/` until it is completed. Removes the folders of those not written to since
 * `idleBefore` and returns how many. (A part write updates the folder's mtime; completing an upload removes it.)
 */
export async function removeStaleEmbeddedUploads(directory: string, bucket: string, idleBefore: Date): Promise<number> {
  const uploads = join(directory, bucket, '._S3rver_uploads');
  let entries: string[];
  try {
    entries = await readdir(uploads);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return 0;
    throw error;
  }
  let removed = 0;
  for (const entry of entries) {
    const path = join(uploads, entry);
    const info = await stat(path).catch(() => undefined);
    if (info === undefined || !info.isDirectory() || info.mtime >= idleBefore) continue;
    await rm(path, { recursive: true, force: true });
    removed++;
  }
  return removed;
}
