import { Body, Controller, HttpCode, Delete, Get, Param, Post, Query, UseGuards } from '@nestjs/common';
import { AccountAuthGuard } from '../accounts/account-auth.guard.js';
import { AccountParams } from '../accounts/dto.js';
import { CreateFinetuneDto, FinetuneParams, ListPublicQuery } from './dto.js';
import { FinetunesService, toFinetuneView } from './finetunes.service.js';

@Controller('accounts/:account_id/ai/finetunes')
@UseGuards(AccountAuthGuard)
export class FinetunesController {
  constructor(private readonly finetunes: FinetunesService) {}

  @Post()
  @HttpCode(200)
  create(@Param() params: AccountParams, @Body() body: CreateFinetuneDto) {
    return this.finetunes.create(params.account_id, body);
  }

  @Get()
  list(@Param() params: AccountParams) {
    return this.finetunes.listOwn(params.account_id);
  }

  @Get('public')
  listPublic(@Param() _params: AccountParams, @Query() query: ListPublicQuery) {
    return this.finetunes.listPublic(query);
  }

  @Get(':id_or_name')
  async get(@Param() params: FinetuneParams) {
    return toFinetuneView(await this.finetunes.getVisible(params.account_id, params.id_or_name));
  }

  @Delete(':id_or_name')
  delete(@Param() params: FinetuneParams) {
    return this.finetunes.delete(params.account_id, params.id_or_name);
  }
}
