import { CanActivate, ExecutionContext, Inject, Injectable } from '@nestjs/common';
import type { FastifyRequest } from 'fastify';
import { AuthenticationError } from '../common/api-error.js';
import { APP_CONFIG, type AppConfig } from '../config/app-config.js';
import { bearerToken, secretsEqual } from './secrets.js';

@Injectable()
export class AdminGuard implements CanActivate {
  constructor(@Inject(APP_CONFIG) private readonly config: AppConfig) {}

  canActivate(context: ExecutionContext): boolean {
    const secret = bearerToken(context.switchToHttp().getRequest<FastifyRequest>().headers.authorization);
    if (secret === undefined || !secretsEqual(secret, this.config.adminToken)) {
      throw new AuthenticationError('Authentication error: the admin token is missing or wrong');
    }
    return true;
  }
}
