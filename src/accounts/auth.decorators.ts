import { applyDecorators, createParamDecorator, SetMetadata, type ExecutionContext } from '@nestjs/common';
import { ApiBearerAuth } from '@nestjs/swagger';
import type { FastifyRequest } from 'fastify';
import { ADMIN_TOKEN_AUTH, API_TOKEN_AUTH, ApiErrors } from '../docs/decorators.js';

/**
 * What a route asks of its caller:
 * - `account`: an API token of the account named by the `account_id` in the path;
 * - `token`: any valid API token, the account being the token's (OpenAI's /v1 paths carry no account);
 * - `admin`: the admin token.
 */
export type AuthRequirement = 'account' | 'token' | 'admin';

/** Metadata key read by AuthGuard; `public` marks a route that takes no token. */
export const AUTH_METADATA = 'lora-hub:auth';
export type AuthMetadata = AuthRequirement | 'public';

/** Who an admitted request authenticated as. */
export type AuthenticatedCaller = { kind: 'admin' } | { kind: 'account'; accountId: string };

declare module 'fastify' {
  interface FastifyRequest {
    /** Set by AuthGuard on every route that takes a token. */
    caller?: AuthenticatedCaller;
  }
}

/** Declares the token a controller's routes (or one route) need, for the guard and for the OpenAPI document alike. */
export function Authenticated(requirement: AuthRequirement) {
  const document =
    requirement === 'admin'
      ? [ApiBearerAuth(ADMIN_TOKEN_AUTH), ApiErrors('unauthenticated')]
      : requirement === 'account'
        ? [ApiBearerAuth(API_TOKEN_AUTH), ApiErrors('unauthenticated', 'forbidden')]
        : [ApiBearerAuth(API_TOKEN_AUTH), ApiErrors('unauthenticated')];
  return applyDecorators(SetMetadata(AUTH_METADATA, requirement satisfies AuthMetadata), ...document);
}

/** Declares routes that take no token (probes, metrics): saying so is required, the default is refusal. */
export const Public = () => SetMetadata(AUTH_METADATA, 'public' satisfies AuthMetadata);

/**
 * The caller AuthGuard admitted: `@Caller() caller: AuthenticatedCaller`, or `@Caller('accountId') accountId: string`
 * on routes that take an API token.
 */
export const Caller = createParamDecorator((field: 'accountId' | undefined, context: ExecutionContext) => {
  const caller = context.switchToHttp().getRequest<FastifyRequest>().caller;
  // Only reachable through a route declared public (or a guard bypassed): a programming error, not a client's.
  if (caller === undefined) throw new Error('@Caller() on a route without @Authenticated()');
  if (field === undefined) return caller;
  if (caller.kind !== 'account') throw new Error(`@Caller('accountId') on a route that takes the ${caller.kind} token`);
  return caller.accountId;
});
