import { Module } from '@nestjs/common';
import { FinetunesModule } from '../finetunes/finetunes.module.js';
import { AdapterAssetsController } from './adapter-assets.controller.js';
import { AdapterAssetsRepository } from './adapter-assets.repository.js';
import { AdapterAssetsService } from './adapter-assets.service.js';

@Module({
  imports: [FinetunesModule],
  controllers: [AdapterAssetsController],
  providers: [AdapterAssetsRepository, AdapterAssetsService],
  exports: [AdapterAssetsService],
})
export class AdaptersModule {}
