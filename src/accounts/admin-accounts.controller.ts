import { Body, Controller, HttpCode, Get, Param, Post } from '@nestjs/common';
import { ApiOperation, ApiTags } from '@nestjs/swagger';
import { ApiErrors, ApiResult } from '../docs/decorators.js';
import { AccountsService } from './accounts.service.js';
import { Authenticated } from './auth.decorators.js';
import { AccountParams, AccountResponseDto, ApiTokenResponseDto, CreateAccountDto, CreateTokenDto } from './dto.js';

@Controller('admin/accounts')
@Authenticated('admin')
@ApiTags('admin')
export class AdminAccountsController {
  constructor(private readonly accounts: AccountsService) {}

  @Post()
  @HttpCode(200)
  @ApiOperation({ summary: 'Create an account' })
  @ApiResult(AccountResponseDto, { description: 'the new account' })
  @ApiErrors('validation')
  create(@Body() body: CreateAccountDto) {
    return this.accounts.createAccount(body.name);
  }

  @Get()
  @ApiOperation({ summary: 'List accounts' })
  @ApiResult(AccountResponseDto, { isArray: true, description: 'every account' })
  list() {
    return this.accounts.listAccounts();
  }

  @Post(':account_id/tokens')
  @HttpCode(200)
  @ApiOperation({ summary: 'Create an API token', description: 'Its `value` is shown only in this answer; only a hash is stored.' })
  @ApiResult(ApiTokenResponseDto, { description: 'the new token, with its secret' })
  @ApiErrors('validation', 'notFound')
  createToken(@Param() params: AccountParams, @Body() body: CreateTokenDto) {
    return this.accounts.createToken(params.account_id, body.name);
  }
}
