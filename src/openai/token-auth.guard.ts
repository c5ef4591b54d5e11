import { CanActivate, createParamDecorator, ExecutionContext, Injectable } from '@nestjs/common';
import type { FastifyRequest } from 'fastify';
import { AccountsService } from '../accounts/accounts.service.js';
import { bearerToken } from '../accounts/secrets.js';
import { AuthenticationError } from '../common/api-error.js';

/** The account each admitted request authenticated as. */
const callers = new WeakMap<FastifyRequest, string>();

/** Admits a request with any account's valid bearer token: OpenAI's paths carry no account id, the token names it. */
@Injectable()
export class TokenAuthGuard implements CanActivate {
  constructor(private readonly accounts: AccountsService) {}

  async canActivate(context: ExecutionContext): Promise<boolean> {
    const request = context.switchToHttp().getRequest<FastifyRequest>();
    const secret = bearerToken(request.headers.authorization);
    if (secret === undefined) throw new AuthenticationError();
    const accountId = await this.accounts.authenticate(secret);
    if (accountId === null) throw new AuthenticationError('Authentication error: the bearer token is not valid');
    callers.set(request, accountId);
    return true;
  }
}

/** The account id TokenAuthGuard found for this request. */
export const CallerAccount = createParamDecorator((_data: unknown, context: ExecutionContext): string => {
  const accountId = callers.get(context.switchToHttp().getRequest<FastifyRequest>());
  if (accountId === undefined) throw new Error('CallerAccount needs TokenAuthGuard on the route');
  return accountId;
});
