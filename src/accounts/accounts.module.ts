import { Module } from '@nestjs/common';
import { APP_GUARD, DiscoveryModule } from '@nestjs/core';
import { AccountsRepository } from './accounts.repository.js';
import { AccountsService } from './accounts.service.js';
import { AdminAccountsController } from './admin-accounts.controller.js';
import { AuthGuard, RouteAuthCheck } from './auth.guard.js';
import { TokenCache } from './token-cache.js';
import { TokenRevocations } from './token-revocations.js';

/** Accounts, API tokens and the authentication of every route (the global AuthGuard). */
@Module({
  imports: [DiscoveryModule],
  controllers: [AdminAccountsController],
  providers: [
    AccountsRepository,
    AccountsService,
    TokenCache,
    TokenRevocations,
    RouteAuthCheck,
    { provide: APP_GUARD, useClass: AuthGuard },
  ],
})
export class AccountsModule {}
