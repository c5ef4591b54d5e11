import { Global, Module } from '@nestjs/common';
import { EngineReadiness } from './engine-readiness.js';
import { MetricsService } from './metrics.service.js';

/**
 * Global, so that any module records metrics (and reports its engines' readiness) without importing the modules
 * the scrape side reads from.
 */
@Global()
@Module({
  providers: [MetricsService, EngineReadiness],
  exports: [MetricsService, EngineReadiness],
})
export class MetricsModule {}
