import { Module } from '@nestjs/common';
import { AdminUsageController, UsageController } from './usage.controller.js';
import { UsageRecorder } from './usage-recorder.service.js';
import { UsageRepository } from './usage.repository.js';
import { UsageService } from './usage.service.js';

@Module({
  controllers: [UsageController, AdminUsageController],
  providers: [UsageRepository, UsageRecorder, UsageService],
  exports: [UsageRecorder],
})
export class UsageModule {}
