import type S3rver from 's3rver';

export default async function globalTeardown(): Promise<void> {
  await (globalThis as { __S3RVER__?: S3rver }).__S3RVER__?.close();
}
