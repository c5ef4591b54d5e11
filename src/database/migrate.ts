import { join } from 'node:path';
import pg from 'pg';
import { applyMigrations, readMigrations } from './migrations.js';

export const MIGRATIONS_DIR = join(import.meta.dirname, '..', '..', 'prisma', 'migrations');

/** Applies pending migrations over a dedicated connection (the advisory lock is per session). */
export async function migrateDatabase(databaseUrl: string, dir = MIGRATIONS_DIR): Promise<string[]> {
  const client = new pg.Client({ connectionString: databaseUrl, connectionTimeoutMillis: 10000 });
  await client.connect();
  try {
    return await applyMigrations(client, readMigrations(dir));
  } finally {
    await client.end();
  }
}
