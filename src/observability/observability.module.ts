import { Module } from '@nestjs/common';
import { MetricsModule } from './metrics.module.js';
import { ObservabilityController } from './observability.controller.js';
import { ReadinessService } from './readiness.service.js';

/** /healthz, /readyz and /metrics; request logging and latency are wired onto Fastify in app.factory.ts. */
@Module({
  imports: [MetricsModule],
  controllers: [ObservabilityController],
  providers: [ReadinessService],
})
export class ObservabilityModule {}
