import { Controller, HttpCode, Param, Post, Req } from '@nestjs/common';
import { ApiBody, ApiConsumes, ApiOperation, ApiTags } from '@nestjs/swagger';
import type { FastifyRequest } from 'fastify';
import { Authenticated } from '../accounts/auth.decorators.js';
import { ApiError, ERRORS } from '../common/errors.js';
import { ApiErrors, ApiResult } from '../docs/decorators.js';
import { FinetuneParams } from '../finetunes/dto.js';
import { malformedMultipart } from '../http/edge-checks.js';
import { AdapterAssetsService } from './adapter-assets.service.js';
import { ADAPTER_FILES } from './adapter-inspector.js';
import { FinetuneAssetResponseDto } from './dto.js';

@Controller('accounts/:account_id/ai/finetunes')
@Authenticated('account')
@ApiTags('finetunes')
export class AdapterAssetsController {
  constructor(private readonly assets: AdapterAssetsService) {}

  @Post(':id_or_name/finetune-assets')
  @HttpCode(200)
  @ApiOperation({
    summary: "Upload one of a finetune's adapter files",
    description:
      'The file is checked completely before it is stored. Until the finetune is `ready` a file can be uploaded again; ' +
      'after that its files are immutable.',
  })
  @ApiConsumes('multipart/form-data')
  @ApiBody({
    description: 'the two fields, in either order',
    schema: {
      type: 'object',
      required: ['file_name', 'file'],
      properties: {
        file_name: { type: 'string', enum: [...ADAPTER_FILES] },
        file: { type: 'string', format: 'binary', description: 'the file named by `file_name`' },
      },
    },
  })
  @ApiResult(FinetuneAssetResponseDto, { description: `the stored file; \`messages\` may carry warnings (code ${ERRORS.adapterWarning.code})` })
  @ApiErrors('validation', 'adapterRejected', 'finetuneNotFound', 'finetuneReady', 'tooLarge', 'storageUnavailable')
  async upload(@Param() params: FinetuneParams, @Req() request: FastifyRequest) {
    if (!request.isMultipart()) {
      throw new ApiError('validation', 'the body must be multipart/form-data with the fields file_name and file');
    }
    try {
      return await this.assets.upload(params.account_id, params.id_or_name, request.parts());
    } catch (error) {
      // A rejected upload stops reading mid-body: discard the rest so the client can finish sending and
      // read the answer (closing the socket instead makes the kernel reset it, losing the answer).
      request.raw.unpipe();
      request.raw.resume();
      throw malformedMultipart(error) ?? error;
    }
  }
}
