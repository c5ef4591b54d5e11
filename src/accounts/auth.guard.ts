import { Inject, Injectable, type CanActivate, type ExecutionContext, type OnModuleInit } from '@nestjs/common';
import { PATH_METADATA } from '@nestjs/common/constants.js';
import { DiscoveryService, MetadataScanner, Reflector } from '@nestjs/core';
import type { FastifyRequest } from 'fastify';
import { ApiError } from '../common/errors.js';
import { APP_CONFIG, type AppConfig } from '../config/app-config.js';
import { AccountsService } from './accounts.service.js';
import { AUTH_METADATA, type AuthMetadata } from './auth.decorators.js';
import { bearerToken, secretsEqual } from './secrets.js';

/**
 * The one guard of every route (registered as APP_GUARD): it admits a request as the route's `@Authenticated()`
 * or `@Public()` says. A route that says neither fails closed twice over: the application refuses to start
 * (checkRoutesDeclareAuth, at init), and should one slip past that check, the guard asks it for the admin token.
 */
@Injectable()
export class AuthGuard implements CanActivate {
  constructor(
    private readonly reflector: Reflector,
    private readonly accounts: AccountsService,
    @Inject(APP_CONFIG) private readonly config: AppConfig,
  ) {}

  async canActivate(context: ExecutionContext): Promise<boolean> {
    const required = this.requirementOf(context) ?? 'admin';
    if (required === 'public') return true;
    const request = context.switchToHttp().getRequest<FastifyRequest<{ Params: { account_id?: string } }>>();
    const secret = bearerToken(request.headers.authorization);
    if (required === 'admin') {
      if (secret === undefined || !secretsEqual(secret, this.config.adminToken)) {
        throw new ApiError('unauthenticated', 'Authentication error: the admin token is missing or wrong');
      }
      request.caller = { kind: 'admin' };
      return true;
    }
    if (secret === undefined) throw new ApiError('unauthenticated');
    const accountId = await this.accounts.authenticate(secret);
    if (accountId === null) throw new ApiError('unauthenticated', 'Authentication error: the bearer token is not valid');
    if (required === 'account' && accountId !== request.params.account_id) throw new ApiError('forbidden');
    request.caller = { kind: 'account', accountId };
    return true;
  }

  /** By controller class and handler: decorators are fixed once the application runs, and reading them is not free. */
  private readonly requirements = new WeakMap<object, WeakMap<object, AuthMetadata | undefined>>();

  private requirementOf(context: ExecutionContext): AuthMetadata | undefined {
    const controller = context.getClass();
    const handler = context.getHandler();
    let byHandler = this.requirements.get(controller);
    if (byHandler === undefined) this.requirements.set(controller, (byHandler = new WeakMap()));
    if (byHandler.has(handler)) return byHandler.get(handler);
    const requirement = this.reflector.getAllAndOverride<AuthMetadata | undefined>(AUTH_METADATA, [handler, controller]);
    byHandler.set(handler, requirement);
    return requirement;
  }
}

/** Refuses to start an application with a route that declares neither `@Authenticated()` nor `@Public()`. */
@Injectable()
export class RouteAuthCheck implements OnModuleInit {
  constructor(
    private readonly discovery: DiscoveryService,
    private readonly scanner: MetadataScanner,
    private readonly reflector: Reflector,
  ) {}

  onModuleInit(): void {
    const undeclared: string[] = [];
    for (const { metatype, instance } of this.discovery.getControllers()) {
      if (!metatype || !instance) continue;
      const prototype = Object.getPrototypeOf(instance) as Record<string, unknown>;
      for (const name of this.scanner.getAllMethodNames(prototype)) {
        const handler = prototype[name] as (...args: unknown[]) => unknown;
        if (Reflect.getMetadata(PATH_METADATA, handler) === undefined) continue;
        if (this.reflector.getAllAndOverride(AUTH_METADATA, [handler, metatype]) === undefined) undeclared.push(`${metatype.name}.${name}`);
      }
    }
    if (undeclared.length > 0) {
      throw new Error(`routes without @Authenticated() or @Public(): ${undeclared.join(', ')}; declare what each one needs`);
    }
  }
}
