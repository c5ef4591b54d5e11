/**
 * The embedded first-run defaults in-process: PGlite migrated and used by Prisma, the managed admin token, the
 * first account and the demo models, and that a restart keeps all of it without creating or printing anything again.
 */
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, readdirSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { AccountsService } from '../../../src/accounts/accounts.service.js';
import { createApp } from '../../../src/app.factory.js';
import { applyFirstRunDefaults, ensureFirstAccount, readyBanner, type FirstAccount, type FirstRun } from '../../../src/bootstrap/first-run.js';
import { loadConfig } from '../../../src/config/app-config.js';
import { PrismaService } from '../../../src/database/prisma.service.js';
import { call } from '../../helpers/app.js';
import { TINY_LLAMA } from '../../helpers/tiny.js';

let dataDir: string;
const bucket = `test-${randomBytes(6).toString('hex')}`;

/** What main.ts does, minus the embedded S3 server (the suite's s3rver stands in). */
async function start() {
  const firstRun = await applyFirstRunDefaults(
    loadConfig({
      DATA_DIR: dataDir,
      CACHE_DIR: join(dataDir, 'cache'),
      S3_ENDPOINT: process.env.TEST_S3_ENDPOINT,
      S3_BUCKET: bucket,
      S3_ACCESS_KEY_ID: 'S3RVER',
      S3_SECRET_ACCESS_KEY: 'S3RVER',
      S3_FORCE_PATH_STYLE: 'true',
      S3_CREATE_BUCKET: 'true',
      LOG_LEVEL: 'error',
      SHUTDOWN_GRACE_MS: '500',
    }),
  );
  const app = await createApp(firstRun.config);
  const account = await ensureFirstAccount(app.get(AccountsService));
  await app.listen(0, '127.0.0.1');
  const baseUrl = `http://127.0.0.1:${(app.getHttpServer().address() as { port: number }).port}/client/v4`;
  return { app, firstRun, account, baseUrl };
}

let first: { firstRun: FirstRun; account: FirstAccount; baseUrl: string };

beforeAll(async () => {
  dataDir = mkdtempSync(join(tmpdir(), 'lora-embedded-'));
  const started = await start();
  first = started;
  try {
    const created = await call(started.baseUrl, 'POST', `/accounts/${started.account.id}/ai/finetunes`, {
      token: started.account.token,
      body: { model: TINY_LLAMA, name: 'kept' },
    });
    expect(created.status).toBe(200);
  } finally {
    await started.app.close();
  }
}, 120_000);

afterAll(() => rmSync(dataDir, { recursive: true, force: true }));

describe('first start with nothing configured', () => {
  it('generates the admin token into an owner-only file and creates the first account with a token', () => {
    const file = join(dataDir, 'admin-token');
    expect(first.firstRun).toMatchObject({ adminTokenFile: file, adminTokenGenerated: true });
    expect(first.firstRun.config.adminToken.length).toBeGreaterThanOrEqual(16);
    expect(statSync(file).mode & 0o777).toBe(0o600);
    expect(first.account.token).toEqual(expect.any(String));
  });

  it('writes the demo models and prints how to start, with the secrets', () => {
    expect(first.firstRun.config.modelsFile).toBe(join(dataDir, 'models', 'models.json'));
    expect(first.firstRun.demo).toEqual({ model: TINY_LLAMA, adapterDir: join(dataDir, 'models', 'adapters', 'tiny-llama-qv') });
    const banner = readyBanner(first.baseUrl, first.firstRun, first.account);
    expect(banner).toContain(`export BASE=${first.baseUrl} ACCOUNT=${first.account.id} TOKEN=${first.account.token}`);
    expect(banner).toContain(first.firstRun.config.adminToken);
  });

  it('closes the database on shutdown, releasing its lock', () => {
    expect(existsSync(join(dataDir, 'pglite.pid'))).toBe(false);
    expect(readdirSync(join(dataDir, 'pglite'))).toContain('PG_VERSION');
  });
});

describe('a later start', () => {
  it('keeps the admin token, the account and its data, and prints no secret', async () => {
    const again = await start();
    try {
      expect(again.firstRun.adminTokenGenerated).toBe(false);
      expect(again.firstRun.config.adminToken).toBe(first.firstRun.config.adminToken);
      expect(again.account).toEqual({ id: first.account.id });
      const banner = readyBanner(again.baseUrl, again.firstRun, again.account);
      expect(banner).not.toContain(first.firstRun.config.adminToken);
      expect(banner).not.toContain(first.account.token);
      expect(banner).toContain(`export BASE=${again.baseUrl} ACCOUNT=${first.account.id}\n`);

      const listed = await call<{ name: string }[]>(again.baseUrl, 'GET', `/accounts/${first.account.id}/ai/finetunes`, { token: first.account.token });
      expect(listed.body.result.map((f) => f.name)).toEqual(['kept']);
      const accounts = await call<unknown[]>(again.baseUrl, 'GET', '/admin/accounts', { token: first.firstRun.config.adminToken });
      expect(accounts.body.result).toHaveLength(1);
      // Every migration is recorded as Prisma Migrate records it, none twice.
      const migrations = await again.app.get(PrismaService).$queryRaw<{ migration_name: string; finished_at: Date | null }[]>`
        SELECT migration_name, finished_at FROM _prisma_migrations ORDER BY migration_name`;
      const onDisk = readdirSync(join(import.meta.dirname, '../../../prisma/migrations')).filter((name) => !name.endsWith('.toml')).sort();
      expect(migrations.map((m) => m.migration_name)).toEqual(onDisk);
      expect(migrations.every((m) => m.finished_at !== null)).toBe(true);
    } finally {
      await again.app.close();
    }
  }, 60_000);
});
