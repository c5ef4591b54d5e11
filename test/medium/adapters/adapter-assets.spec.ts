import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import type { Multipart } from '@fastify/multipart';
import { createHash, randomBytes } from 'node:crypto';
import { PassThrough, Readable } from 'node:stream';
import { AdapterAssetsRepository } from '../../../src/adapters/adapter-assets.repository.js';
import { AdapterAssetsService } from '../../../src/adapters/adapter-assets.service.js';
import { BUILTIN_MODELS } from '../../../src/catalog/builtin-models.js';
import { CatalogService } from '../../../src/catalog/catalog.service.js';
import { loadConfig, type AppConfig } from '../../../src/config/app-config.js';
import { PrismaService } from '../../../src/database/prisma.service.js';
import { buildPeftAdapter } from '../../../src/demo/peft-adapter.js';
import { FinetuneEvents } from '../../../src/finetunes/finetune-events.js';
import { FinetunesRepository } from '../../../src/finetunes/finetunes.repository.js';
import { FinetunesService } from '../../../src/finetunes/finetunes.service.js';
import { MetricsService } from '../../../src/observability/metrics.service.js';
import { ObjectStorage } from '../../../src/storage/object-storage.js';
import { OrphanObjectsService } from '../../../src/storage/orphan-objects.service.js';
import { createTestDatabase, type TestDatabase } from '../../helpers/database.js';
import { TestBucket } from '../../helpers/s3-bucket.js';

// The asset rules where they live: AdapterAssetsService on its real repositories, PostgreSQL and s3rver, no HTTP.
const LLAMA = '@cf/meta-llama/llama-2-7b-chat-hf-lora';
const sha256 = (data: Uint8Array) => createHash('sha256').update(data).digest('hex');

let db: TestDatabase;
let prisma: PrismaService;
let storage: ObjectStorage;
let bucket: TestBucket;
let finetunes: FinetunesService;
let assets: AdapterAssetsService;
let accountId: string;
let orphans: OrphanObjectsService;
let config: AppConfig;

beforeAll(async () => {
  db = await createTestDatabase();
  config = loadConfig({
    DATABASE_URL: db.url,
    ADMIN_TOKEN: 'medium-admin-token-0123456789',
    S3_ENDPOINT: process.env.TEST_S3_ENDPOINT,
    S3_BUCKET: `medium-${randomBytes(6).toString('hex')}`,
    S3_ACCESS_KEY_ID: 'S3RVER',
    S3_SECRET_ACCESS_KEY: 'S3RVER',
    S3_FORCE_PATH_STYLE: 'true',
  });
  prisma = new PrismaService(config, null);
  storage = new ObjectStorage(config.storage);
  await storage.ensureBucket();
  bucket = new TestBucket(config.storage.bucket);
  const catalog = new CatalogService(config);
  orphans = new OrphanObjectsService(prisma, storage, config);
  finetunes = new FinetunesService(new FinetunesRepository(prisma), catalog, orphans, new FinetuneEvents());
  assets = new AdapterAssetsService(finetunes, catalog, storage, orphans, new AdapterAssetsRepository(prisma), new MetricsService());
  accountId = randomBytes(16).toString('hex');
  await prisma.account.create({ data: { id: accountId, name: 'acme' } });
});
afterAll(async () => {
  storage.destroy();
  bucket.destroy();
  await prisma.$disconnect();
  await db.drop();
});

/** The parts @fastify/multipart yields for a form of file_name then file. */
async function* form(fileName: string, content: Uint8Array): AsyncIterableIterator<Multipart> {
  yield { type: 'field', fieldname: 'file_name', value: fileName } as Multipart;
  yield { type: 'file', fieldname: 'file', filename: fileName, file: Readable.from([Buffer.from(content)]) } as unknown as Multipart;
}

const adapter = (seed: number, r = 8) =>
  buildPeftAdapter({ architecture: BUILTIN_MODELS.find((m) => m.name === LLAMA)!.architecture!, r, loraAlpha: 16, targetModules: ['q_proj', 'v_proj'], seed });

let counter = 0;
const newFinetune = async () => (await finetunes.create(accountId, { model: LLAMA, name: `ft-${++counter}` })).id;
const keysOf = (finetuneId: string) => bucket.list(`accounts/${accountId}/finetunes/${finetuneId}/`);
/** The key each stored file's row holds, by file name. */
const rowKeys = async (finetuneId: string) =>
  Object.fromEntries((await prisma.finetuneAsset.findMany({ where: { finetuneId } })).map((row) => [row.fileName, row.storageKey]));

describe('AdapterAssetsService', () => {
  it('stores an upload under a key of its own and records it with its sha256; both files make it ready', async () => {
    const id = await newFinetune();
    const { configJson, safetensors } = adapter(1);
    const config = await assets.upload(accountId, id, form('adapter_config.json', configJson));
    expect(config.result).toMatchObject({ finetune_id: id, file_name: 'adapter_config.json', bytes: configJson.length, sha256: sha256(configJson) });
    const configKey = (await rowKeys(id))['adapter_config.json']!;
    expect(configKey).toMatch(new RegExp(`^accounts/${accountId}/finetunes/${id}/[0-9a-f-]{36}$`));
    expect(await keysOf(id)).toEqual([configKey]);
    expect((await prisma.finetune.findUniqueOrThrow({ where: { id } })).status).toBe('pending');

    await assets.upload(accountId, id, form('adapter_model.safetensors', safetensors));
    const keys = await rowKeys(id);
    expect(keys['adapter_config.json']).toBe(configKey);
    expect((await keysOf(id)).sort()).toEqual([configKey, keys['adapter_model.safetensors']!].sort());
    expect((await prisma.finetune.findUniqueOrThrow({ where: { id } })).status).toBe('ready');
    expect(await bucket.list(`accounts/${accountId}/`)).toHaveLength(2);
  });

  it('replacing a file before the finetune is ready deletes the old object and keeps one row', async () => {
    const id = await newFinetune();
    const first = adapter(2).configJson;
    const second = Buffer.from(first.toString().replace('"lora_alpha": 16', '"lora_alpha": 32'));
    expect(sha256(second)).not.toBe(sha256(first));
    await assets.upload(accountId, id, form('adapter_config.json', first));
    const firstKey = (await rowKeys(id))['adapter_config.json'];
    await assets.upload(accountId, id, form('adapter_config.json', second));
    const secondKey = (await rowKeys(id))['adapter_config.json'];
    expect(secondKey).not.toBe(firstKey);
    expect(await keysOf(id)).toEqual([secondKey]);
    const rows = await prisma.finetuneAsset.findMany({ where: { finetuneId: id } });
    expect(rows.map((row) => row.sha256)).toEqual([sha256(second)]);
  });

  it('a rejected file leaves no object and no row, and the stored counterpart is untouched', async () => {
    const id = await newFinetune();
    const { configJson } = adapter(3);
    await assets.upload(accountId, id, form('adapter_config.json', configJson));
    const configKey = (await rowKeys(id))['adapter_config.json'];
    // Weights of rank 4 against a config of rank 8.
    const { safetensors } = adapter(3, 4);
    await expect(assets.upload(accountId, id, form('adapter_model.safetensors', safetensors))).rejects.toMatchObject({
      message: expect.stringMatching(/^adapter_model\.safetensors: .* expected \[\d+, 8\] \(r=8\)/),
    });
    const hostile = Buffer.from(JSON.stringify({ peft_type: 'LORA', model_type: 'llama', r: 8, target_modules: '(?=q)' }));
    await expect(assets.upload(accountId, id, form('adapter_config.json', hostile))).rejects.toMatchObject({
      message: expect.stringContaining('lookahead and lookbehind assertions are not supported'),
    });
    expect(await keysOf(id)).toEqual([configKey]);
    expect((await prisma.finetuneAsset.findMany({ where: { finetuneId: id } })).map((row) => row.fileName)).toEqual(['adapter_config.json']);
    expect(await prisma.orphanObject.count()).toBe(0);
  });

  it("records an upload's key while it streams, and its commit drops the record", async () => {
    const id = await newFinetune();
    const { configJson } = adapter(4);
    const file = new PassThrough();
    const parts = (async function* () {
      yield { type: 'field', fieldname: 'file_name', value: 'adapter_config.json' } as Multipart;
      yield { type: 'file', fieldname: 'file', filename: 'adapter_config.json', file } as unknown as Multipart;
    })();
    const uploading = assets.upload(accountId, id, parts);
    file.write(configJson.subarray(0, 10));
    // Before its first byte reaches storage the key is recorded, pending: a process dying now leaves it to the sweep.
    let recorded: { key: string; pending: boolean }[] = [];
    for (let i = 0; i < 100 && recorded.length === 0; i++) {
      recorded = await prisma.orphanObject.findMany({ select: { key: true, pending: true } });
      if (recorded.length === 0) await new Promise((r) => setTimeout(r, 20));
    }
    expect(recorded).toEqual([{ key: expect.stringMatching(new RegExp(`^accounts/${accountId}/finetunes/${id}/`)), pending: true }]);
    // The sweep leaves a pending record alone until it is older than the incomplete-upload bound (a day here).
    await orphans.sweep();
    expect(await prisma.orphanObject.count()).toBe(1);

    file.end(configJson.subarray(10));
    await uploading;
    expect(await prisma.orphanObject.count()).toBe(0);
    expect(await keysOf(id)).toEqual([recorded[0]!.key]);
  });

  it('an object a dead process stored but never committed is deleted once its record is older than the bound', async () => {
    const id = await newFinetune();
    // What a process killed between the end of an upload and its commit leaves: a complete object, a pending record.
    const stale = `accounts/${accountId}/finetunes/${id}/stale-upload`;
    const recent = `accounts/${accountId}/finetunes/${id}/recent-upload`;
    await bucket.put(stale, adapter(5).configJson);
    await bucket.put(recent, adapter(6).configJson);
    await prisma.orphanObject.createMany({
      data: [
        { key: stale, pending: true, createdAt: new Date(Date.now() - 5_000) },
        { key: recent, pending: true },
      ],
    });
    const sweeper = new OrphanObjectsService(prisma, storage, { ...config, incompleteUploadMaxAgeMs: 2_000 });
    await sweeper.sweep();
    // The recent one could still be an upload in progress: it stays.
    expect(await keysOf(id)).toEqual([recent]);
    expect((await prisma.orphanObject.findMany()).map((row) => row.key)).toEqual([recent]);
    await prisma.orphanObject.deleteMany();
  });
});
