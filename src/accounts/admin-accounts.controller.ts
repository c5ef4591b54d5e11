import { Body, Controller, Delete, HttpCode, Get, Param, Post } from '@nestjs/common';
import { ApiOperation, ApiTags } from '@nestjs/swagger';
import { ApiErrors, ApiResult } from '../docs/decorators.js';
import { AccountsService } from './accounts.service.js';
import { Authenticated } from './auth.decorators.js';
import {
  AccountParams,
  AccountResponseDto,
  ApiTokenResponseDto,
  ApiTokenSummaryResponseDto,
  CreateAccountDto,
  CreateTokenDto,
  TokenParams,
} from './dto.js';

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
  @ApiErrors('validation', 'objectNotFound')
  createToken(@Param() params: AccountParams, @Body() body: CreateTokenDto) {
    return this.accounts.createToken(params.account_id, body.name);
  }

  @Get(':account_id/tokens')
  @ApiOperation({ summary: "List an account's API tokens", description: 'Never their secrets: id, name, last four characters, creation time.' })
  @ApiResult(ApiTokenSummaryResponseDto, { isArray: true, description: "the account's tokens, oldest first" })
  @ApiErrors('validation', 'objectNotFound')
  listTokens(@Param() params: AccountParams) {
    return this.accounts.listTokens(params.account_id);
  }

  @Delete(':account_id/tokens/:token_id')
  @ApiOperation({
    summary: 'Revoke an API token',
    description: 'The token is refused from the moment this answers, by every replica on the database.',
  })
  @ApiResult(ApiTokenSummaryResponseDto, { description: 'the revoked token' })
  @ApiErrors('validation', 'objectNotFound')
  revokeToken(@Param() params: TokenParams) {
    return this.accounts.revokeToken(params.account_id, params.token_id);
  }
}
