import { Body, Controller, HttpCode, Delete, Get, Param, Post, Query } from '@nestjs/common';
import { Authenticated } from '../accounts/auth.decorators.js';
import { AccountParams } from '../accounts/dto.js';
import { ApiOperation, ApiTags } from '@nestjs/swagger';
import { ApiErrors, ApiResult } from '../docs/decorators.js';
import { CreateFinetuneDto, FinetuneParams, FinetuneResponseDto, ListPublicQuery, mapFinetune } from './dto.js';
import { FinetunesService } from './finetunes.service.js';

@Controller('accounts/:account_id/ai/finetunes')
@Authenticated('account')
@ApiTags('finetunes')
export class FinetunesController {
  constructor(private readonly finetunes: FinetunesService) {}

  @Post()
  @HttpCode(200)
  @ApiOperation({ summary: 'Create a finetune', description: 'It stays `pending` until both adapter files are uploaded.' })
  @ApiResult(FinetuneResponseDto, { description: 'the new finetune' })
  @ApiErrors('validation', 'unknownModel', 'finetuneLoraUnsupported', 'nameTaken', 'finetuneQuota')
  create(@Param() params: AccountParams, @Body() body: CreateFinetuneDto) {
    return this.finetunes.create(params.account_id, body);
  }

  @Get()
  @ApiOperation({ summary: "The account's finetunes" })
  @ApiResult(FinetuneResponseDto, { isArray: true, description: "the account's own finetunes" })
  list(@Param() params: AccountParams) {
    return this.finetunes.listOwn(params.account_id);
  }

  @Get('public')
  @ApiOperation({ summary: 'Public finetunes of every account' })
  @ApiResult(FinetuneResponseDto, { isArray: true, description: 'a page of public finetunes' })
  @ApiErrors('validation')
  listPublic(@Param() _params: AccountParams, @Query() query: ListPublicQuery) {
    return this.finetunes.listPublic(query);
  }

  @Get(':id_or_name')
  @ApiOperation({ summary: 'One finetune (own, or public)' })
  @ApiResult(FinetuneResponseDto, { description: 'the finetune' })
  @ApiErrors('validation', 'finetuneNotFound')
  async get(@Param() params: FinetuneParams) {
    return mapFinetune(await this.finetunes.getVisible(params.account_id, params.id_or_name));
  }

  @Delete(':id_or_name')
  @ApiOperation({ summary: 'Delete an own finetune and its stored files' })
  @ApiResult(FinetuneResponseDto, { description: 'the deleted finetune' })
  @ApiErrors('validation', 'finetuneNotFound')
  delete(@Param() params: FinetuneParams) {
    return this.finetunes.delete(params.account_id, params.id_or_name);
  }
}
