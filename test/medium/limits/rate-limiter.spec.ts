import { afterAll, beforeAll, beforeEach, describe, expect, it } from '@jest/globals';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { CatalogService } from '../../../src/catalog/catalog.service.js';
import { ApiError } from '../../../src/common/errors.js';
import { loadConfig } from '../../../src/config/app-config.js';
import { PrismaService } from '../../../src/database/prisma.service.js';
import { LimitsRepository } from '../../../src/limits/limits.repository.js';
import { RateLimiter } from '../../../src/limits/rate-limiter.service.js';
import { createTestDatabase, type TestDatabase } from '../../helpers/database.js';

// The rate limiter on its real repository and a real PostgreSQL, without HTTP.
const LIMITED = '@cf/test/limited';
const UNLIMITED = '@cf/test/unlimited';
const CATALOG_ACCOUNT = 'c'.repeat(32);

let db: TestDatabase;
let prisma: PrismaService;
let catalog: CatalogService;
let limiter: RateLimiter;

beforeAll(async () => {
  db = await createTestDatabase();
  const modelsFile = join(mkdtempSync(join(tmpdir(), 'medium-limits-')), 'models.json');
  const model = { lora: false, chat_template: 'gemma' };
  writeFileSync(
    modelsFile,
    JSON.stringify([
      { ...model, name: LIMITED, limits: { max_requests_per_min: 3, accounts: { [CATALOG_ACCOUNT]: 5 } } },
      { ...model, name: UNLIMITED },
    ]),
  );
  const config = loadConfig({ DATABASE_URL: db.url, ADMIN_TOKEN: 'medium-admin-token-0123456789', MODELS_FILE: modelsFile });
  prisma = new PrismaService(config, null);
  catalog = new CatalogService(config);
  limiter = new RateLimiter(new LimitsRepository(prisma), catalog);
  await limiter.onApplicationBootstrap();
});
afterAll(async () => {
  limiter.onApplicationShutdown();
  await prisma.$disconnect();
  await db.drop();
});

/** Windows are the database clock's minutes: start each test early enough in one to finish inside it. */
beforeEach(async () => {
  const [{ second }] = await prisma.$queryRaw<{ second: number }[]>`SELECT extract(second FROM clock_timestamp())::float8 AS second`;
  if (second > 50) await sleep((61 - second) * 1000);
});

async function account(id = randomBytes(16).toString('hex')): Promise<string> {
  await prisma.account.create({ data: { id, name: `account-${id.slice(0, 6)}` } });
  return id;
}

/** How many of `attempts` requests get through before the first 429 (which must then keep coming). */
async function admitted(accountId: string, model: string, attempts: number): Promise<number> {
  let count = 0;
  for (let i = 0; i < attempts; i++) {
    try {
      await limiter.admit(accountId, catalog.get(model));
      expect(count).toBe(i);
      count++;
    } catch (error) {
      expect(error).toBeInstanceOf(ApiError);
      expect(error).toMatchObject({ status: 429, code: 3036 });
      const retryAfter = Number((error as ApiError).headers['retry-after']);
      expect(retryAfter).toBeGreaterThanOrEqual(1);
      expect(retryAfter).toBeLessThanOrEqual(60);
    }
  }
  return count;
}

const windowRows = (accountId: string) => prisma.rateLimitWindow.findMany({ where: { accountId } });

describe('RateLimiter', () => {
  it("admits the model's limit per account and window, each account on its own budget", async () => {
    const [a, b] = [await account(), await account()];
    expect(await admitted(a, LIMITED, 5)).toBe(3);
    expect(await admitted(b, LIMITED, 2)).toBe(2);
    expect(await admitted(b, LIMITED, 3)).toBe(1);
    expect((await windowRows(a)).map((row) => row.count)).toEqual([3]);
  });

  it("gives the catalog's per-account value precedence over the model's, and an admin override over both", async () => {
    const special = await account(CATALOG_ACCOUNT);
    expect(limiter.limitFor(special, catalog.get(LIMITED))).toBe(5);
    expect(await admitted(special, LIMITED, 7)).toBe(5);

    const overridden = await account();
    expect(await limiter.setOverride(overridden, LIMITED, 1)).toEqual({
      account_id: overridden,
      model: LIMITED,
      max_requests_per_min: 1,
      effective_max_requests_per_min: 1,
    });
    expect(await admitted(overridden, LIMITED, 3)).toBe(1);

    await limiter.setOverride(special, LIMITED, 6);
    expect(await admitted(special, LIMITED, 3)).toBe(1); // 5 of 6 were already used in this window

    // Removing the override falls back to the catalog's value (5), all used already.
    expect(await limiter.setOverride(special, LIMITED, null)).toMatchObject({ max_requests_per_min: null, effective_max_requests_per_min: 5 });
    expect(await admitted(special, LIMITED, 1)).toBe(0);
  });

  it('limits a model without a limit only for an account with an override, and never counts the others', async () => {
    const [free, capped] = [await account(), await account()];
    expect(await admitted(free, UNLIMITED, 10)).toBe(10);
    expect(await windowRows(free)).toEqual([]);

    await limiter.setOverride(capped, UNLIMITED, 2);
    expect(await admitted(capped, UNLIMITED, 4)).toBe(2);
    expect(await limiter.overridesOf(capped)).toEqual([
      { account_id: capped, model: UNLIMITED, max_requests_per_min: 2, effective_max_requests_per_min: 2 },
    ]);
  });

  it('counts concurrent requests exactly: no more than the limit get through', async () => {
    const busy = await account();
    const outcomes = await Promise.allSettled(Array.from({ length: 12 }, () => limiter.admit(busy, catalog.get(LIMITED))));
    expect(outcomes.filter((o) => o.status === 'fulfilled')).toHaveLength(3);
    expect((await windowRows(busy)).map((row) => row.count)).toEqual([3]);
  });

  it('refuses an override for an account that does not exist', async () => {
    await expect(limiter.setOverride('0'.repeat(32), LIMITED, 1)).rejects.toMatchObject({ status: 404 });
  });
});
