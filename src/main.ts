import { Logger } from '@nestjs/common';
import cluster from 'node:cluster';
import { join } from 'node:path';
import { AccountsService } from './accounts/accounts.service.js';
import { API_PREFIX, createApp } from './app.factory.js';
import { applyFirstRunDefaults, ensureFirstAccount, readyBanner } from './bootstrap/first-run.js';
import { ConfigError, loadConfig } from './config/app-config.js';
import { ModelsFileError } from './catalog/models-file.js';
import { migrateDatabase } from './database/migrate.js';
import { embeddedS3Directory, startEmbeddedS3 } from './storage/embedded-s3.js';
import { QUIET_WORKER_ENV, runPrimary, storageEnv } from './bootstrap/cluster.js';

async function main(): Promise<void> {
  const logger = new Logger('Main');
  const loaded = loadConfig();
  const primary = loaded.workers > 1 && cluster.isPrimary;
  if (loaded.storage.embedded) {
    // No storage configured: keep adapters in an embedded S3-compatible server under the data directory
    // (it stops with the process; with WORKERS the primary hosts it for all workers).
    const embedded = await startEmbeddedS3(embeddedS3Directory(loaded.dataDir), loaded.storage.bucket);
    loaded.storage = embedded.storage;
    logger.log(`no S3_ENDPOINT set: storing adapters in an embedded S3 server under ${embeddedS3Directory(loaded.dataDir)}`);
  }
  if (primary) return runPrimary(loaded, loaded.storage.embedded ? storageEnv(loaded.storage) : {}, logger);
  if (loaded.databaseUrl !== undefined) {
    const applied = await migrateDatabase(loaded.databaseUrl);
    if (applied.length > 0) logger.log(`applied migrations: ${applied.join(', ')}`);
  } else {
    // The embedded database is migrated by DatabaseModule as it opens (it is a single in-process connection).
    logger.log(`no DATABASE_URL set: using an embedded PostgreSQL (PGlite) under ${join(loaded.dataDir, 'pglite')}`);
  }
  // WORKERS: the first worker does the once-only work below (migrations, first account) and prints the banner.
  const quiet = cluster.isWorker && process.env[QUIET_WORKER_ENV] === '1';
  const firstRun = await applyFirstRunDefaults(loaded);
  const { config } = firstRun;
  const app = await createApp(config);
  // A managed admin token means nobody else administers accounts: make sure there is one to use.
  const account = firstRun.adminTokenFile !== undefined && !quiet ? await ensureFirstAccount(app.get(AccountsService)) : undefined;
  await app.listen(config.port, config.host);
  if (quiet) return;
  const { port } = app.getHttpServer().address() as { port: number };
  // stdout, not the logger: LOG_LEVEL=error must not hide the one-time secrets.
  process.stdout.write(readyBanner(`http://${reachableHost(config.host)}:${port}/${API_PREFIX}`, firstRun, account));
}

/** The address a client on this machine uses for the interface listened on. */
function reachableHost(host: string): string {
  if (host === '0.0.0.0' || host === '::') return '127.0.0.1';
  return host.includes(':') ? `[${host}]` : host;
}

main().catch((error: unknown) => {
  // Configuration mistakes get one clear line, not a stack trace.
  if (error instanceof ConfigError || error instanceof ModelsFileError) {
    console.error(`configuration error: ${error.message}`);
  } else {
    console.error(error);
  }
  process.exit(1);
});
