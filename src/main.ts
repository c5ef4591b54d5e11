import { Logger } from '@nestjs/common';
import { join } from 'node:path';
import { createApp } from './app.factory.js';
import { ConfigError, loadConfig } from './config/app-config.js';
import { ModelsFileError } from './catalog/models-file.js';
import { migrateDatabase } from './database/migrate.js';
import { startEmbeddedS3 } from './storage/embedded-s3.js';

async function main(): Promise<void> {
  const logger = new Logger('Main');
  const config = loadConfig();
  if (config.storage.embedded) {
    // No storage configured: keep adapters in an embedded S3-compatible server under the data directory
    // (it stops with the process).
    const embedded = await startEmbeddedS3(join(config.dataDir, 's3'), config.storage.bucket);
    config.storage = embedded.storage;
    logger.log(`no S3_ENDPOINT set: storing adapters in an embedded S3 server under ${join(config.dataDir, 's3')}`);
  }
  const applied = await migrateDatabase(config.databaseUrl);
  if (applied.length > 0) logger.log(`applied migrations: ${applied.join(', ')}`);
  const app = await createApp(config);
  await app.listen(config.port, config.host);
  logger.log(`listening on http://${config.host}:${config.port}/client/v4`);
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
