import { Body, Controller, HttpCode, Delete, Get, Param, Post, Query, UseGuards } from '@nestjs/common';
import { AccountAuthGuard } from '../accounts/account-auth.guard.js';
import { AccountParams } from '../accounts/dto.js';
import { ApiOperation, ApiTags } from '@nestjs/swagger';
import { ApiAccountAuth, ApiErrors, ApiResult } from '../docs/decorators.js';
import { FinetuneSchema } from '../docs/schemas.js';
import { CreateFinetuneDto, FinetuneParams, ListPublicQuery } from './dto.js';
import { FinetunesService, toFinetuneView } from './finetunes.service.js';

@Controller('accounts/:account_id/ai/finetunes')
@UseGuards(AccountAuthGuard)
@ApiTags('finetunes')
@ApiAccountAuth()
export class FinetunesController {
  constructor(private readonly finetunes: FinetunesService) {}

  @Post()
  @HttpCode(200)
  @ApiOperation({ summary: 'Create a finetune', description: 'It stays `pending` until both adapter files are uploaded.' })
  @ApiResult(FinetuneSchema, { description: 'the new finetune' })
  @ApiErrors('validation', 'unknownModel', 'loraUnsupported', 'nameTaken', 'finetuneQuota')
  create(@Param() params: AccountParams, @Body() body: CreateFinetuneDto) {
    return this.finetunes.create(params.account_id, body);
  }

  @Get()
  @ApiOperation({ summary: "The account's finetunes" })
  @ApiResult(FinetuneSchema, { isArray: true, description: "the account's own finetunes" })
  list(@Param() params: AccountParams) {
    return this.finetunes.listOwn(params.account_id);
  }

  @Get('public')
  @ApiOperation({ summary: 'Public finetunes of every account' })
  @ApiResult(FinetuneSchema, { isArray: true, description: 'a page of public finetunes' })
  @ApiErrors('validation')
  listPublic(@Param() _params: AccountParams, @Query() query: ListPublicQuery) {
    return this.finetunes.listPublic(query);
  }

  @Get(':id_or_name')
  @ApiOperation({ summary: 'One finetune (own, or public)' })
  @ApiResult(FinetuneSchema, { description: 'the finetune' })
  @ApiErrors('validation', 'finetuneNotFound')
  async get(@Param() params: FinetuneParams) {
    return toFinetuneView(await this.finetunes.getVisible(params.account_id, params.id_or_name));
  }

  @Delete(':id_or_name')
  @ApiOperation({ summary: 'Delete an own finetune and its stored files' })
  @ApiResult(FinetuneSchema, { description: 'the deleted finetune' })
  @ApiErrors('validation', 'finetuneNotFound')
  delete(@Param() params: FinetuneParams) {
    return this.finetunes.delete(params.account_id, params.id_or_name);
  }
}
