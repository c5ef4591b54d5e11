import { mkdirSync } from 'node:fs';
import { resolve } from 'node:path';
import S3rver from 's3rver';
import type { StorageConfig } from '../config/app-config.js';

export interface EmbeddedS3 {
  storage: StorageConfig;
  close(): Promise<void>;
}

/** Credentials s3rver accepts; only ever used for the in-process server on the loopback interface. */
const S3RVER_KEY = 'S3RVER';

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
