import { Controller, Get, Param, Query, UseGuards } from '@nestjs/common';
import { AccountAuthGuard } from '../accounts/account-auth.guard.js';
import { AdminGuard } from '../accounts/admin.guard.js';
import { AccountParams } from '../accounts/dto.js';
import { ApiOperation, ApiTags } from '@nestjs/swagger';
import { ApiAccountAuth, ApiAdminAuth, ApiErrors, ApiResult } from '../docs/decorators.js';
import { UsageTotalsSchema } from '../docs/schemas.js';
import { UsageQuery } from './dto.js';
import { UsageService } from './usage.service.js';

@Controller('accounts/:account_id/ai/usage')
@UseGuards(AccountAuthGuard)
@ApiTags('usage')
@ApiAccountAuth()
export class UsageController {
  constructor(private readonly usage: UsageService) {}

  @Get()
  @ApiOperation({ summary: "The caller's usage totals" })
  @ApiResult(UsageTotalsSchema, { isArray: true, description: 'one total per key of `group_by`' })
  @ApiErrors('validation')
  totals(@Param() params: AccountParams, @Query() query: UsageQuery) {
    return this.usage.totals(params.account_id, query);
  }
}

/** The same totals for any account, on the admin surface. */
@Controller('admin/accounts/:account_id/usage')
@UseGuards(AdminGuard)
@ApiTags('admin')
@ApiAdminAuth()
export class AdminUsageController {
  constructor(private readonly usage: UsageService) {}

  @Get()
  @ApiOperation({ summary: "Any account's usage totals" })
  @ApiResult(UsageTotalsSchema, { isArray: true, description: 'one total per key of `group_by`' })
  @ApiErrors('validation')
  totals(@Param() params: AccountParams, @Query() query: UsageQuery) {
    return this.usage.totals(params.account_id, query);
  }
}
