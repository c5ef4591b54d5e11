import { Body, Controller, Get, HttpCode, Param, Put } from '@nestjs/common';
import { Authenticated } from '../accounts/auth.decorators.js';
import { AccountParams } from '../accounts/dto.js';
import { ApiOperation, ApiTags } from '@nestjs/swagger';
import { ApiErrors, ApiResult } from '../docs/decorators.js';
import { LimitOverrideResponseDto, SetLimitDto } from './dto.js';
import { RateLimiter } from './rate-limiter.service.js';

@Controller('admin/accounts/:account_id/limits')
@Authenticated('admin')
@ApiTags('admin')
export class AdminLimitsController {
  constructor(private readonly rateLimiter: RateLimiter) {}

  @Get()
  @ApiOperation({ summary: "An account's requests-per-minute overrides" })
  @ApiResult(LimitOverrideResponseDto, { isArray: true, description: 'one entry per overridden model' })
  @ApiErrors('validation')
  list(@Param() params: AccountParams) {
    return this.rateLimiter.overridesOf(params.account_id);
  }

  @Put()
  @HttpCode(200)
  @ApiOperation({ summary: "Set or remove an account's requests-per-minute override for a model" })
  @ApiResult(LimitOverrideResponseDto, { description: 'the override and the limit that now applies' })
  @ApiErrors('validation', 'objectNotFound')
  set(@Param() params: AccountParams, @Body() body: SetLimitDto) {
    return this.rateLimiter.setOverride(params.account_id, body.model, body.max_requests_per_min);
  }
}
