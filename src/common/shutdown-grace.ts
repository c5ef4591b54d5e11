import { BeforeApplicationShutdown, Inject, Injectable } from '@nestjs/common';
import { HttpAdapterHost } from '@nestjs/core';
import type { Server } from 'node:http';
import { APP_CONFIG, type AppConfig } from '../config/app-config.js';

/**
 * On shutdown, requests in flight get a grace period to finish; connections still open after it
 * (a stalled client, a half-closed socket) are closed so shutdown never waits on them forever.
 */
@Injectable()
export class ShutdownGrace implements BeforeApplicationShutdown {
  constructor(
    private readonly adapterHost: HttpAdapterHost,
    @Inject(APP_CONFIG) private readonly config: AppConfig,
  ) {}

  beforeApplicationShutdown(): void {
    const server = this.adapterHost.httpAdapter?.getHttpServer() as Server | undefined;
    if (!server) return;
    setTimeout(() => server.closeAllConnections(), this.config.shutdownGraceMs).unref();
  }
}
