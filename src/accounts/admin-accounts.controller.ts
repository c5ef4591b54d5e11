import { Body, Controller, HttpCode, Get, Param, Post, UseGuards } from '@nestjs/common';
import { AccountsService } from './accounts.service.js';
import { AdminGuard } from './admin.guard.js';
import { AccountParams, CreateAccountDto, CreateTokenDto } from './dto.js';

@Controller('admin/accounts')
@UseGuards(AdminGuard)
export class AdminAccountsController {
  constructor(private readonly accounts: AccountsService) {}

  @Post()
  @HttpCode(200)
  create(@Body() body: CreateAccountDto) {
    return this.accounts.createAccount(body.name);
  }

  @Get()
  list() {
    return this.accounts.listAccounts();
  }

  @Post(':account_id/tokens')
  @HttpCode(200)
  createToken(@Param() params: AccountParams, @Body() body: CreateTokenDto) {
    return this.accounts.createToken(params.account_id, body.name);
  }
}
