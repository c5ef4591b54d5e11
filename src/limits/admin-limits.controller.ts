import { Body, Controller, Get, HttpCode, Param, Put, UseGuards } from '@nestjs/common';
import { AdminGuard } from '../accounts/admin.guard.js';
import { AccountParams } from '../accounts/dto.js';
import { SetLimitDto } from './dto.js';
import { RateLimiter } from './rate-limiter.service.js';

@Controller('admin/accounts/:account_id/limits')
@UseGuards(AdminGuard)
export class AdminLimitsController {
  constructor(private readonly rateLimiter: RateLimiter) {}

  @Get()
  list(@Param() params: AccountParams) {
    return this.rateLimiter.overridesOf(params.account_id);
  }

  @Put()
  @HttpCode(200)
  set(@Param() params: AccountParams, @Body() body: SetLimitDto) {
    return this.rateLimiter.setOverride(params.account_id, body.model, body.max_requests_per_min);
  }
}
