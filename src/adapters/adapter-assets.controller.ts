import { Controller, HttpCode, Param, Post, Req, UseGuards } from '@nestjs/common';
import type { FastifyRequest } from 'fastify';
import { AccountAuthGuard } from '../accounts/account-auth.guard.js';
import { ValidationError } from '../common/api-error.js';
import { FinetuneParams } from '../finetunes/dto.js';
import { AdapterAssetsService } from './adapter-assets.service.js';

@Controller('accounts/:account_id/ai/finetunes')
@UseGuards(AccountAuthGuard)
export class AdapterAssetsController {
  constructor(private readonly assets: AdapterAssetsService) {}

  @Post(':id_or_name/finetune-assets')
  @HttpCode(200)
  async upload(@Param() params: FinetuneParams, @Req() request: FastifyRequest) {
    if (!request.isMultipart()) {
      throw new ValidationError('the body must be multipart/form-data with the fields file_name and file');
    }
    try {
      return await this.assets.upload(params.account_id, params.id_or_name, request.parts());
    } catch (error) {
      // A rejected upload stops reading mid-body: discard the rest so the client can finish sending and
      // read the answer (closing the socket instead makes the kernel reset it, losing the answer).
      request.raw.unpipe();
      request.raw.resume();
      throw error;
    }
  }
}
