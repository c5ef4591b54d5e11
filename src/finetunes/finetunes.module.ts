import { Module } from '@nestjs/common';
import { AccountsModule } from '../accounts/accounts.module.js';
import { FinetunesController } from './finetunes.controller.js';
import { FinetunesRepository } from './finetunes.repository.js';
import { FinetunesService } from './finetunes.service.js';

@Module({
  imports: [AccountsModule],
  controllers: [FinetunesController],
  providers: [FinetunesRepository, FinetunesService],
  exports: [FinetunesService],
})
export class FinetunesModule {}
