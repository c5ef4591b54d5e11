import { Module, type OnModuleInit } from '@nestjs/common';
import { HttpAdapterHost } from '@nestjs/core';
import type { FastifyInstance } from 'fastify';
import { CONSOLE_BUILD_DIR, serveConsole } from './console-routes.js';

/**
 * The web console: static files built from console/ by `npm run build`, served under /console/. It is a client of
 * the public API only (same origin, bearer tokens), so this module adds no endpoint beyond its files.
 */
@Module({})
export class ConsoleModule implements OnModuleInit {
  constructor(private readonly adapterHost: HttpAdapterHost) {}

  onModuleInit(): void {
    serveConsole(this.adapterHost.httpAdapter.getInstance<FastifyInstance>(), CONSOLE_BUILD_DIR);
  }
}
