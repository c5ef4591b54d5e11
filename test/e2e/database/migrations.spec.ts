import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { createHash } from 'node:crypto';
import { mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { MIGRATIONS_DIR, migrateDatabase } from '../../../src/database/migrate.js';
import { readMigrations } from '../../../src/database/migrations.js';
import { createTestDatabase, type TestDatabase } from '../../helpers/database.js';

const dbs: TestDatabase[] = [];
async function freshDb(): Promise<TestDatabase> {
  const db = await createTestDatabase({ migrate: false });
  dbs.push(db);
  return db;
}
afterAll(async () => {
  for (const db of dbs) await db.drop();
});

async function query(url: string, sql: string) {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    return (await client.query(sql)).rows;
  } finally {
    await client.end();
  }
}

describe('migration runner', () => {
  it('records each migration as Prisma Migrate does', async () => {
    const db = await freshDb();
    const applied = await migrateDatabase(db.url);
    const names = readMigrations(MIGRATIONS_DIR).map((m) => m.name);
    expect(applied).toEqual(names);
    const rows = await query(db.url, 'SELECT * FROM "_prisma_migrations" ORDER BY started_at');
    expect(rows.map((r) => r.migration_name)).toEqual(names);
    for (const row of rows) {
      const sql = readFileSync(join(MIGRATIONS_DIR, row.migration_name, 'migration.sql'));
      expect(row.checksum).toBe(createHash('sha256').update(sql).digest('hex'));
      expect(row.finished_at).toBeInstanceOf(Date);
      expect(row.rolled_back_at).toBeNull();
      expect(row.applied_steps_count).toBe(1);
      expect(row.id).toMatch(/^[0-9a-f-]{36}$/);
    }
    expect(await migrateDatabase(db.url)).toEqual([]);
  });

  it('is safe when several processes migrate the same database at once', async () => {
    const db = await freshDb();
    const results = await Promise.all([1, 2, 3, 4].map(() => migrateDatabase(db.url)));
    expect(results.filter((r) => r.length > 0)).toHaveLength(1);
    const rows = await query(db.url, 'SELECT count(*)::int AS n FROM "_prisma_migrations"');
    expect(rows[0].n).toBe(readMigrations(MIGRATIONS_DIR).length);
  });

  it('rolls back a failing migration, records it as rolled back, and applies it once fixed', async () => {
    const db = await freshDb();
    const dir = mkdtempSync(join(tmpdir(), 'migrations-'));
    mkdirSync(join(dir, '001_ok'));
    writeFileSync(join(dir, '001_ok', 'migration.sql'), 'CREATE TABLE a (id int);');
    mkdirSync(join(dir, '002_bad'));
    writeFileSync(join(dir, '002_bad', 'migration.sql'), 'CREATE TABLE b (id int); SELECT * FROM missing_table;');
    await expect(migrateDatabase(db.url, dir)).rejects.toThrow(/002_bad failed: .*missing_table/);
    expect(await query(db.url, "SELECT to_regclass('b') AS b")).toEqual([{ b: null }]);
    const failed = await query(db.url, `SELECT logs, rolled_back_at FROM "_prisma_migrations" WHERE migration_name = '002_bad'`);
    expect(failed[0].logs).toContain('missing_table');
    expect(failed[0].rolled_back_at).toBeInstanceOf(Date);

    writeFileSync(join(dir, '002_bad', 'migration.sql'), 'CREATE TABLE b (id int);');
    expect(await migrateDatabase(db.url, dir)).toEqual(['002_bad']);
  });
});
