import { Module } from '@nestjs/common';
import { InferenceModule } from '../inference/inference.module.js';
import { InferenceMetrics } from './inference-metrics.js';
import { MetricsModule } from './metrics.module.js';
import { ObservabilityController } from './observability.controller.js';
import { ReadinessService } from './readiness.service.js';

/** /healthz, /readyz and /metrics; request logging and latency are wired onto Fastify in app.factory.ts. */
@Module({
  imports: [MetricsModule, InferenceModule],
  controllers: [ObservabilityController],
  providers: [ReadinessService, InferenceMetrics],
})
export class ObservabilityModule {}
