import { Controller, Get, Param, Query } from '@nestjs/common';
import { Authenticated } from '../accounts/auth.decorators.js';
import { AccountParams } from '../accounts/dto.js';
import { ApiOperation, ApiTags } from '@nestjs/swagger';
import { ApiErrors, ApiResult } from '../docs/decorators.js';
import { CatalogService } from './catalog.service.js';
import { ModelCardResponseDto, ModelSchemaQuery, ModelSchemaResponseDto, SearchModelsQuery, toModelCard } from './dto.js';
import { searchModels } from './model-card.js';

@Controller('accounts/:account_id/ai/models')
@Authenticated('account')
@ApiTags('models')
export class ModelsController {
  constructor(private readonly catalog: CatalogService) {}

  @Get('search')
  @ApiOperation({ summary: 'Search the model catalog' })
  @ApiResult(ModelCardResponseDto, { isArray: true, description: 'model cards, a page of them' })
  @ApiErrors('validation')
  search(@Param() _params: AccountParams, @Query() query: SearchModelsQuery) {
    return searchModels(this.catalog.all(), query).map(toModelCard);
  }

  @Get('schema')
  @ApiOperation({ summary: "A model's input and output JSON Schemas" })
  @ApiResult(ModelSchemaResponseDto, { description: 'the schemas a run request and its answer follow' })
  @ApiErrors('validation', 'unknownModel')
  schema(@Param() _params: AccountParams, @Query() query: ModelSchemaQuery) {
    return this.catalog.get(query.model).schema;
  }
}
