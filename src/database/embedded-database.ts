import { PGlite } from '@electric-sql/pglite';
import { Logger } from '@nestjs/common';
import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { ConfigError } from '../config/app-config.js';
import { MIGRATIONS_DIR } from './migrate.js';
import { applyMigrations, readMigrations, type SqlClient } from './migrations.js';

/**
 * The in-process PostgreSQL (PGlite) used when DATABASE_URL is not set. PGlite is a single connection, so the
 * migration runner and Prisma share this one instance: it is migrated as it opens, before anything else queries it,
 * and closed by PrismaService after it disconnects.
 */
export class EmbeddedDatabase {
  private constructor(
    readonly pglite: PGlite,
    private readonly unlock: () => void,
  ) {}

  /** Opens (creating on first use) the database under `directory` and applies pending migrations. */
  static async open(directory: string, migrationsDir = MIGRATIONS_DIR): Promise<EmbeddedDatabase> {
    const root = resolve(directory);
    mkdirSync(root, { recursive: true });
    const unlock = lockDirectory(root);
    try {
      const pglite = await PGlite.create(root);
      const applied = await applyMigrations(sqlClient(pglite), readMigrations(migrationsDir));
      if (applied.length > 0) new Logger('EmbeddedDatabase').log(`applied migrations: ${applied.join(', ')}`);
      return new EmbeddedDatabase(pglite, unlock);
    } catch (error) {
      unlock();
      throw error;
    }
  }

  async close(): Promise<void> {
    await this.pglite.close();
    this.unlock();
  }
}

/**
 * PGlite's `query` always uses the extended protocol (one statement, parameters); like `pg`, a call without
 * parameters goes through the simple protocol instead, which runs a whole migration file of several statements.
 */
function sqlClient(pglite: PGlite): SqlClient {
  return {
    async query<R>(text: string, values?: unknown[]) {
      if (values !== undefined && values.length > 0) return pglite.query<R>(text, values);
      const results = await pglite.exec(text);
      return { rows: (results.at(-1)?.rows ?? []) as R[] };
    },
  };
}

/**
 * PGlite has no lock of its own: a second process opening the same files (a second `npm start` in the same folder)
 * would corrupt them, so the data directory holds the owner's pid while it is open.
 */
function lockDirectory(root: string): () => void {
  const lockFile = `${root}.pid`;
  try {
    writeFileSync(lockFile, String(process.pid), { flag: 'wx' });
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
    const owner = Number(readFileSync(lockFile, 'utf8'));
    if (isRunning(owner)) {
      throw new ConfigError(
        `the embedded database in ${root} is in use by process ${owner}: stop it, or set DATA_DIR to another directory (delete ${lockFile} if that process is not lora-hub)`,
      );
    }
    // Left behind by a process that did not shut down cleanly.
    writeFileSync(lockFile, String(process.pid));
  }
  return () => rmSync(lockFile, { force: true });
}

function isRunning(pid: number): boolean {
  // In a container the previous run may have had this very pid.
  if (!Number.isInteger(pid) || pid <= 0 || pid === process.pid) return false;
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}
