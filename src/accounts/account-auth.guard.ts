import { CanActivate, ExecutionContext, Injectable } from '@nestjs/common';
import type { FastifyRequest } from 'fastify';
import { AuthenticationError, ForbiddenError } from '../common/api-error.js';
import { AccountsService } from './accounts.service.js';
import { bearerToken } from './secrets.js';

/** Admits a request whose bearer token belongs to the `:account_id` in its path. */
@Injectable()
export class AccountAuthGuard implements CanActivate {
  constructor(private readonly accounts: AccountsService) {}

  async canActivate(context: ExecutionContext): Promise<boolean> {
    const request = context.switchToHttp().getRequest<FastifyRequest<{ Params: { account_id?: string } }>>();
    const secret = bearerToken(request.headers.authorization);
    if (secret === undefined) throw new AuthenticationError();
    const accountId = await this.accounts.authenticate(secret);
    if (accountId === null) throw new AuthenticationError('Authentication error: the bearer token is not valid');
    if (accountId !== request.params.account_id) throw new ForbiddenError();
    return true;
  }
}
