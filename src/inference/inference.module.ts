import { Module } from '@nestjs/common';
import { AdaptersModule } from '../adapters/adapters.module.js';
import { FinetunesModule } from '../finetunes/finetunes.module.js';
import { LimitsModule } from '../limits/limits.module.js';
import { UsageModule } from '../usage/usage.module.js';
import { AdapterResolver } from './adapter-resolver.service.js';
import { EngineRegistry } from './engine-registry.service.js';
import { InferenceMetrics } from './inference-metrics.js';
import { RunController } from './run.controller.js';
import { RunService } from './run.service.js';

@Module({
  imports: [FinetunesModule, AdaptersModule, LimitsModule, UsageModule],
  controllers: [RunController],
  providers: [EngineRegistry, AdapterResolver, RunService, InferenceMetrics],
  exports: [RunService],
})
export class InferenceModule {}
