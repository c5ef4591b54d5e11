import { Global, Module } from '@nestjs/common';
import { join } from 'node:path';
import { APP_CONFIG, type AppConfig } from '../config/app-config.js';
import { EmbeddedDatabase } from './embedded-database.js';
import { PrismaService } from './prisma.service.js';

@Global()
@Module({
  providers: [
    {
      // null when DATABASE_URL names a server (migrated by main.ts before the app starts).
      provide: EmbeddedDatabase,
      inject: [APP_CONFIG],
      useFactory: (config: AppConfig) =>
        config.databaseUrl === undefined ? EmbeddedDatabase.open(join(config.dataDir, 'pglite')) : null,
    },
    PrismaService,
  ],
  exports: [PrismaService],
})
export class DatabaseModule {}
