/** Revocation with the embedded database (PGlite): one process, whose own cache drop is all it takes. */
import { afterAll, beforeAll, expect, it } from '@jest/globals';
import type { NestFastifyApplication } from '@nestjs/platform-fastify';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createApp } from '../../../src/app.factory.js';
import { loadConfig } from '../../../src/config/app-config.js';
import { ADMIN_TOKEN, call, createAccount } from '../../helpers/app.js';

let dataDir: string;
let app: NestFastifyApplication;
let baseUrl: string;

beforeAll(async () => {
  dataDir = mkdtempSync(join(tmpdir(), 'lora-revocation-'));
  const config = loadConfig({
    DATA_DIR: dataDir,
    ADMIN_TOKEN,
    S3_ENDPOINT: process.env.TEST_S3_ENDPOINT,
    S3_BUCKET: `test-${randomBytes(6).toString('hex')}`,
    S3_ACCESS_KEY_ID: 'S3RVER',
    S3_SECRET_ACCESS_KEY: 'S3RVER',
    S3_FORCE_PATH_STYLE: 'true',
    S3_CREATE_BUCKET: 'true',
    LOG_LEVEL: 'error',
  });
  expect(config.databaseUrl).toBeUndefined();
  app = await createApp(config);
  await app.listen(0, '127.0.0.1');
  baseUrl = `http://127.0.0.1:${(app.getHttpServer().address() as { port: number }).port}/client/v4`;
}, 60_000);
afterAll(async () => {
  await app.close();
  rmSync(dataDir, { recursive: true, force: true });
});

it('lists tokens without secrets and refuses a revoked, cached token at once', async () => {
  const acme = await createAccount(baseUrl);
  const finetunes = () => call(baseUrl, 'GET', `/accounts/${acme.id}/ai/finetunes`, { token: acme.token });
  expect((await finetunes()).status).toBe(200);
  const list = await call<{ id: string; last_four: string }[]>(baseUrl, 'GET', `/admin/accounts/${acme.id}/tokens`, { token: ADMIN_TOKEN });
  expect(list.body.result).toEqual([expect.objectContaining({ name: 'test', last_four: acme.token.slice(-4) })]);
  expect(JSON.stringify(list.body)).not.toContain(acme.token);

  const revoked = await call(baseUrl, 'DELETE', `/admin/accounts/${acme.id}/tokens/${list.body.result[0]!.id}`, { token: ADMIN_TOKEN });
  expect(revoked.status).toBe(200);
  expect((await finetunes()).status).toBe(401);
});
