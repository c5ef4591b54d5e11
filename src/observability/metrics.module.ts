import { Global, Module } from '@nestjs/common';
import { MetricsService } from './metrics.service.js';

/** Global, so that any module records metrics without importing the modules the scrape side reads from. */
@Global()
@Module({
  providers: [MetricsService],
  exports: [MetricsService],
})
export class MetricsModule {}
