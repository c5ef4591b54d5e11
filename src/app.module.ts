import { DynamicModule, Module } from '@nestjs/common';
import { AccountsModule } from './accounts/accounts.module.js';
import { AdaptersModule } from './adapters/adapters.module.js';
import { CatalogModule } from './catalog/catalog.module.js';
import { ShutdownGrace } from './common/shutdown-grace.js';
import type { AppConfig } from './config/app-config.js';
import { ConfigModule } from './config/config.module.js';
import { ConsoleModule } from './console/console.module.js';
import { DatabaseModule } from './database/database.module.js';
import { FinetunesModule } from './finetunes/finetunes.module.js';
import { InferenceModule } from './inference/inference.module.js';
import { LimitsModule } from './limits/limits.module.js';
import { ObservabilityModule } from './observability/observability.module.js';
import { OpenAiModule } from './openai/openai.module.js';
import { StorageModule } from './storage/storage.module.js';
import { UsageModule } from './usage/usage.module.js';

@Module({})
export class AppModule {
  static forRoot(config: AppConfig): DynamicModule {
    return {
      module: AppModule,
      providers: [ShutdownGrace],
      imports: [
        ConfigModule.forRoot(config),
        DatabaseModule,
        StorageModule,
        AccountsModule,
        CatalogModule,
        FinetunesModule,
        AdaptersModule,
        LimitsModule,
        UsageModule,
        InferenceModule,
        ObservabilityModule,
        OpenAiModule,
        ConsoleModule,
      ],
    };
  }
}
