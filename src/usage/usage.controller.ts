import { Controller, Get, Param, Query } from '@nestjs/common';
import { Authenticated } from '../accounts/auth.decorators.js';
import { AccountParams } from '../accounts/dto.js';
import { ApiOperation, ApiTags } from '@nestjs/swagger';
import { ApiErrors, ApiResult } from '../docs/decorators.js';
import { UsageQuery, UsageTotalsResponseDto } from './dto.js';
import { UsageService } from './usage.service.js';

@Controller('accounts/:account_id/ai/usage')
@Authenticated('account')
@ApiTags('usage')
export class UsageController {
  constructor(private readonly usage: UsageService) {}

  @Get()
  @ApiOperation({ summary: "The caller's usage totals" })
  @ApiResult(UsageTotalsResponseDto, { isArray: true, description: 'one total per key of `group_by`' })
  @ApiErrors('validation')
  totals(@Param() params: AccountParams, @Query() query: UsageQuery) {
    return this.usage.totals(params.account_id, query);
  }
}

/** The same totals for any account, on the admin surface. */
@Controller('admin/accounts/:account_id/usage')
@Authenticated('admin')
@ApiTags('admin')
export class AdminUsageController {
  constructor(private readonly usage: UsageService) {}

  @Get()
  @ApiOperation({ summary: "Any account's usage totals" })
  @ApiResult(UsageTotalsResponseDto, { isArray: true, description: 'one total per key of `group_by`' })
  @ApiErrors('validation')
  totals(@Param() params: AccountParams, @Query() query: UsageQuery) {
    return this.usage.totals(params.account_id, query);
  }
}
