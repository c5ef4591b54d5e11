import { Module } from '@nestjs/common';
import { FinetuneEvents } from './finetune-events.js';
import { FinetunesController } from './finetunes.controller.js';
import { FinetunesRepository } from './finetunes.repository.js';
import { FinetunesService } from './finetunes.service.js';

@Module({
  controllers: [FinetunesController],
  providers: [FinetunesRepository, FinetunesService, FinetuneEvents],
  exports: [FinetunesService, FinetuneEvents],
})
export class FinetunesModule {}
