import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import type { NestFastifyApplication } from '@nestjs/platform-fastify';
import { createApp } from '../../../src/app.factory.js';
import { BUILTIN_MODELS } from '../../../src/catalog/builtin-models.js';
import { loadConfig } from '../../../src/config/app-config.js';
import { PrismaService } from '../../../src/database/prisma.service.js';
import { OrphanObjectsService } from '../../../src/storage/orphan-objects.service.js';
import { validAdapter } from '../../fixtures/bad-adapters.js';
import { ADMIN_TOKEN, call, createAccount, startTestApp, type TestAccount, type TestApp } from '../../helpers/app.js';
import { testStorage, upload } from '../../helpers/uploads.js';

const LLAMA = '@cf/meta-llama/llama-2-7b-chat-hf-lora';

let t: TestApp;
let storageDown: NestFastifyApplication;
let downUrl: string;
let acme: TestAccount;

beforeAll(async () => {
  t = await startTestApp();
  // A second replica on the same database whose storage cannot be reached.
  storageDown = await createApp(
    loadConfig({ DATABASE_URL: t.db.url, ADMIN_TOKEN, S3_ENDPOINT: 'http://127.0.0.1:1', S3_BUCKET: t.bucket, LOG_LEVEL: 'error' }),
  );
  await storageDown.listen(0, '127.0.0.1');
  downUrl = `http://127.0.0.1:${(storageDown.getHttpServer().address() as { port: number }).port}/client/v4`;
  acme = await createAccount(t.baseUrl);
});
afterAll(async () => {
  await storageDown.close();
  await t.close();
});

describe('objects of deleted finetunes', () => {
  it('a delete whose object removal fails still removes the finetune, keeps the keys recorded, and a later sweep deletes them', async () => {
    const files = validAdapter(BUILTIN_MODELS.find((m) => m.name === LLAMA)!.architecture!);
    const created = await call<{ id: string }>(t.baseUrl, 'POST', `/accounts/${acme.id}/ai/finetunes`, {
      token: acme.token,
      body: { model: LLAMA, name: 'doomed' },
    });
    await upload(t.baseUrl, acme, 'doomed', 'adapter_config.json', files.config);
    await upload(t.baseUrl, acme, 'doomed', 'adapter_model.safetensors', files.safetensors);
    const prefix = `accounts/${acme.id}/finetunes/${created.body.result.id}/`;
    const s3 = testStorage(t.bucket);
    try {
      expect(await s3.list(prefix)).toHaveLength(2);

      const deleted = await call(downUrl, 'DELETE', `/accounts/${acme.id}/ai/finetunes/doomed`, { token: acme.token });
      expect(deleted.status).toBe(200);
      expect((await call(t.baseUrl, 'GET', `/accounts/${acme.id}/ai/finetunes/doomed`, { token: acme.token })).status).toBe(404);
      const orphans = await t.app.get(PrismaService).orphanObject.findMany();
      expect(orphans.map((o) => o.key).sort()).toEqual((await s3.list(prefix)).sort());
      expect(orphans.every((o) => o.attempts === 1 && o.lastError)).toBe(true);

      await t.app.get(OrphanObjectsService).sweep();
      expect(await s3.list(prefix)).toEqual([]);
      expect(await t.app.get(PrismaService).orphanObject.count()).toBe(0);
    } finally {
      s3.destroy();
    }
  });
});
