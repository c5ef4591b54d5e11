import { Module } from '@nestjs/common';
import { AccountsModule } from '../accounts/accounts.module.js';
import { FinetunesModule } from '../finetunes/finetunes.module.js';
import { InferenceModule } from '../inference/inference.module.js';
import { OpenAiController } from './openai.controller.js';
import { OpenAiService } from './openai.service.js';
import { TokenAuthGuard } from './token-auth.guard.js';

@Module({
  imports: [AccountsModule, FinetunesModule, InferenceModule],
  controllers: [OpenAiController],
  providers: [OpenAiService, TokenAuthGuard],
})
export class OpenAiModule {}
