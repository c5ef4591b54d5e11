import { Controller, Get, Param, Query, UseGuards } from '@nestjs/common';
import { AccountAuthGuard } from '../accounts/account-auth.guard.js';
import { AccountParams } from '../accounts/dto.js';
import { ApiOperation, ApiTags } from '@nestjs/swagger';
import { ApiAccountAuth, ApiErrors, ApiResult } from '../docs/decorators.js';
import { ModelCardSchema, ModelSchemaSchema } from '../docs/schemas.js';
import { CatalogService } from './catalog.service.js';
import { ModelSchemaQuery, SearchModelsQuery } from './dto.js';
import { searchModels, toModelCard } from './model-card.js';

@Controller('accounts/:account_id/ai/models')
@UseGuards(AccountAuthGuard)
@ApiTags('models')
@ApiAccountAuth()
export class ModelsController {
  constructor(private readonly catalog: CatalogService) {}

  @Get('search')
  @ApiOperation({ summary: 'Search the model catalog' })
  @ApiResult(ModelCardSchema, { isArray: true, description: 'model cards, a page of them' })
  @ApiErrors('validation')
  search(@Param() _params: AccountParams, @Query() query: SearchModelsQuery) {
    return searchModels(this.catalog.all(), query).map(toModelCard);
  }

  @Get('schema')
  @ApiOperation({ summary: "A model's input and output JSON Schemas" })
  @ApiResult(ModelSchemaSchema, { description: 'the schemas a run request and its answer follow' })
  @ApiErrors('validation', 'unknownModel')
  schema(@Param() _params: AccountParams, @Query() query: ModelSchemaQuery) {
    return this.catalog.get(query.model).schema;
  }
}
