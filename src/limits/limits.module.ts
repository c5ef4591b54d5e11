import { Module } from '@nestjs/common';
import { AdminLimitsController } from './admin-limits.controller.js';
import { LimitsRepository } from './limits.repository.js';
import { ModelGates } from './model-gates.service.js';
import { RateLimiter } from './rate-limiter.service.js';
import { ResponseCache } from './response-cache.js';

@Module({
  controllers: [AdminLimitsController],
  providers: [LimitsRepository, RateLimiter, ModelGates, { provide: ResponseCache, useFactory: () => new ResponseCache() }],
  exports: [ModelGates, ResponseCache],
})
export class LimitsModule {}
