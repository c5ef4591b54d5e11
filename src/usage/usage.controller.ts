import { Controller, Get, Param, Query, UseGuards } from '@nestjs/common';
import { AccountAuthGuard } from '../accounts/account-auth.guard.js';
import { AdminGuard } from '../accounts/admin.guard.js';
import { AccountParams } from '../accounts/dto.js';
import { UsageQuery } from './dto.js';
import { UsageService } from './usage.service.js';

@Controller('accounts/:account_id/ai/usage')
@UseGuards(AccountAuthGuard)
export class UsageController {
  constructor(private readonly usage: UsageService) {}

  @Get()
  totals(@Param() params: AccountParams, @Query() query: UsageQuery) {
    return this.usage.totals(params.account_id, query);
  }
}

/** The same totals for any account, on the admin surface. */
@Controller('admin/accounts/:account_id/usage')
@UseGuards(AdminGuard)
export class AdminUsageController {
  constructor(private readonly usage: UsageService) {}

  @Get()
  totals(@Param() params: AccountParams, @Query() query: UsageQuery) {
    return this.usage.totals(params.account_id, query);
  }
}
