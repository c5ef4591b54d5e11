import { Module } from '@nestjs/common';
import { FinetunesModule } from '../finetunes/finetunes.module.js';
import { InferenceModule } from '../inference/inference.module.js';
import { OpenAiController } from './openai.controller.js';
import { OpenAiService } from './openai.service.js';

@Module({
  imports: [FinetunesModule, InferenceModule],
  controllers: [OpenAiController],
  providers: [OpenAiService],
})
export class OpenAiModule {}
