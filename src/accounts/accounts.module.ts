import { Module } from '@nestjs/common';
import { AccountAuthGuard } from './account-auth.guard.js';
import { AccountsRepository } from './accounts.repository.js';
import { AccountsService } from './accounts.service.js';
import { AdminAccountsController } from './admin-accounts.controller.js';
import { AdminGuard } from './admin.guard.js';

@Module({
  controllers: [AdminAccountsController],
  providers: [AccountsRepository, AccountsService, AccountAuthGuard, AdminGuard],
  exports: [AccountsService, AccountAuthGuard, AdminGuard],
})
export class AccountsModule {}
