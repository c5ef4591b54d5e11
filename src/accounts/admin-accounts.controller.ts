import { Body, Controller, HttpCode, Get, Param, Post, UseGuards } from '@nestjs/common';
import { ApiOperation, ApiTags } from '@nestjs/swagger';
import { ApiAdminAuth, ApiErrors, ApiResult } from '../docs/decorators.js';
import { AccountSchema, ApiTokenSchema } from '../docs/schemas.js';
import { AccountsService } from './accounts.service.js';
import { AdminGuard } from './admin.guard.js';
import { AccountParams, CreateAccountDto, CreateTokenDto } from './dto.js';

@Controller('admin/accounts')
@UseGuards(AdminGuard)
@ApiTags('admin')
@ApiAdminAuth()
export class AdminAccountsController {
  constructor(private readonly accounts: AccountsService) {}

  @Post()
  @HttpCode(200)
  @ApiOperation({ summary: 'Create an account' })
  @ApiResult(AccountSchema, { description: 'the new account' })
  @ApiErrors('validation')
  create(@Body() body: CreateAccountDto) {
    return this.accounts.createAccount(body.name);
  }

  @Get()
  @ApiOperation({ summary: 'List accounts' })
  @ApiResult(AccountSchema, { isArray: true, description: 'every account' })
  list() {
    return this.accounts.listAccounts();
  }

  @Post(':account_id/tokens')
  @HttpCode(200)
  @ApiOperation({ summary: 'Create an API token', description: 'Its `value` is shown only in this answer; only a hash is stored.' })
  @ApiResult(ApiTokenSchema, { description: 'the new token, with its secret' })
  @ApiErrors('validation', 'notFound')
  createToken(@Param() params: AccountParams, @Body() body: CreateTokenDto) {
    return this.accounts.createToken(params.account_id, body.name);
  }
}
