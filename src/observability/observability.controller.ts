import { Controller, Get, Res } from '@nestjs/common';
import type { FastifyReply } from 'fastify';
import { Public } from '../accounts/auth.decorators.js';
import { MetricsService } from './metrics.service.js';
import { ReadinessService } from './readiness.service.js';

/** Served at the root, outside the API prefix and its envelope: probes and scrapers read status codes and plain bodies. */
export const OBSERVABILITY_PATHS = ['healthz', 'readyz', 'metrics'];

/** Unauthenticated, for orchestrators and Prometheus: keep these paths off the public network. */
@Controller()
@Public()
export class ObservabilityController {
  constructor(
    private readonly metrics: MetricsService,
    private readonly readiness: ReadinessService,
  ) {}

  /** Liveness: the process answers. */
  @Get('healthz')
  healthz(@Res() reply: FastifyReply): void {
    void reply.send({ status: 'ok' });
  }

  /** Readiness: 200 when the database, storage and every configured engine answer, else 503 naming what failed. */
  @Get('readyz')
  async readyz(@Res() reply: FastifyReply): Promise<void> {
    const readiness = await this.readiness.check();
    void reply.status(readiness.status === 'ready' ? 200 : 503).send(readiness);
  }

  @Get('metrics')
  async scrape(@Res() reply: FastifyReply): Promise<void> {
    const { contentType, text } = await this.metrics.scrape();
    void reply.type(contentType).send(text);
  }
}
