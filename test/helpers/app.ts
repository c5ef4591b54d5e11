import type { NestFastifyApplication } from '@nestjs/platform-fastify';
import { randomBytes } from 'node:crypto';
import { createApp } from '../../src/app.factory.js';
import { loadConfig } from '../../src/config/app-config.js';
import { createTestDatabase, type TestDatabase } from './database.js';

export const ADMIN_TOKEN = 'test-admin-token-0123456789';

export interface TestApp {
  app: NestFastifyApplication;
  db: TestDatabase;
  /** http://127.0.0.1:PORT/client/v4 */
  baseUrl: string;
  bucket: string;
  close(): Promise<void>;
}

/**
 * The real service on a random port, over a fresh database and its own bucket on the suite's s3rver.
 * `database`: use this one instead (several instances on one database); `close` then leaves it to the caller.
 */
export async function startTestApp(env: Record<string, string> = {}, options: { database?: TestDatabase } = {}): Promise<TestApp> {
  const db = options.database ?? (await createTestDatabase());
  const bucket = `test-${randomBytes(6).toString('hex')}`;
  const config = loadConfig({
    DATABASE_URL: db.url,
    ADMIN_TOKEN,
    S3_ENDPOINT: process.env.TEST_S3_ENDPOINT,
    S3_BUCKET: bucket,
    S3_ACCESS_KEY_ID: 'S3RVER',
    S3_SECRET_ACCESS_KEY: 'S3RVER',
    S3_FORCE_PATH_STYLE: 'true',
    S3_CREATE_BUCKET: 'true',
    LOG_LEVEL: 'error',
    SHUTDOWN_GRACE_MS: '1000',
    ...env,
  });
  const app = await createApp(config);
  await app.listen(0, '127.0.0.1');
  const address = app.getHttpServer().address() as { port: number };
  return {
    app,
    db,
    bucket,
    baseUrl: `http://127.0.0.1:${address.port}/client/v4`,
    close: async () => {
      await app.close();
      if (!options.database) await db.drop();
    },
  };
}

export interface ApiResponse<T = unknown> {
  status: number;
  headers: Headers;
  body: { result: T; success: boolean; errors: { code: number; message: string }[]; messages: { code: number; message: string }[] };
}

export async function call<T = unknown>(
  baseUrl: string,
  method: string,
  path: string,
  options: { token?: string; body?: unknown; headers?: Record<string, string> } = {},
): Promise<ApiResponse<T>> {
  const headers: Record<string, string> = { ...options.headers };
  if (options.token) headers.authorization = `Bearer ${options.token}`;
  let body: string | FormData | undefined;
  if (options.body instanceof FormData) body = options.body;
  else if (typeof options.body === 'string') body = options.body;
  else if (options.body !== undefined) {
    body = JSON.stringify(options.body);
    headers['content-type'] ??= 'application/json';
  }
  const response = await fetch(`${baseUrl}${path}`, { method, headers, body });
  const text = await response.text();
  return { status: response.status, headers: response.headers, body: text ? JSON.parse(text) : undefined };
}

export interface TestAccount {
  id: string;
  token: string;
}

export async function createAccount(baseUrl: string, name = 'acme'): Promise<TestAccount> {
  const account = await call<{ id: string }>(baseUrl, 'POST', '/admin/accounts', { token: ADMIN_TOKEN, body: { name } });
  const token = await call<{ value: string }>(baseUrl, 'POST', `/admin/accounts/${account.body.result.id}/tokens`, {
    token: ADMIN_TOKEN,
    body: { name: 'test' },
  });
  return { id: account.body.result.id, token: token.body.result.value };
}
