import { Controller, Get, Param, Query, UseGuards } from '@nestjs/common';
import { AccountAuthGuard } from '../accounts/account-auth.guard.js';
import { AccountParams } from '../accounts/dto.js';
import { CatalogService } from './catalog.service.js';
import { ModelSchemaQuery, SearchModelsQuery } from './dto.js';
import { searchModels, toModelCard } from './model-card.js';

@Controller('accounts/:account_id/ai/models')
@UseGuards(AccountAuthGuard)
export class ModelsController {
  constructor(private readonly catalog: CatalogService) {}

  @Get('search')
  search(@Param() _params: AccountParams, @Query() query: SearchModelsQuery) {
    return searchModels(this.catalog.all(), query).map(toModelCard);
  }

  @Get('schema')
  schema(@Param() _params: AccountParams, @Query() query: ModelSchemaQuery) {
    return this.catalog.get(query.model).schema;
  }
}
