import type S3rver from 's3rver';

export default async function globalTeardown(): Promise<void> {
  const state = globalThis as { __S3RVER__?: S3rver };
  const server = state.__S3RVER__;
  // Shared by several projects: the first teardown closes it.
  state.__S3RVER__ = undefined;
  await server?.close();
}
