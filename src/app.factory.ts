import 'reflect-metadata';
import fastifyMultipart from '@fastify/multipart';
import { NestFactory } from '@nestjs/core';
import type { NestFastifyApplication } from '@nestjs/platform-fastify';
import { adapterRejection } from './adapters/adapter-rejection.js';
import { AppModule } from './app.module.js';
import { CatalogService } from './catalog/catalog.service.js';
import { ApiExceptionFilter, registerErrorTranslators } from './common/api-exception.filter.js';
import { EnvelopeFastifyAdapter } from './common/envelope-adapter.js';
import { createValidationPipe } from './common/validation.js';
import type { AppConfig } from './config/app-config.js';
import { databaseOutage } from './database/prisma.service.js';
import { setupOpenApi } from './docs/openapi.js';
import { rejectMalformedInput } from './http/edge-checks.js';
import { JSON_BODY_TYPES, jsonBodyParser } from './http/json-body.js';
import { createHttpServer } from './http/timeouts.js';
import { createLogger, fastifyLogging, JsonLogger } from './observability/logging.js';
import { MetricsService } from './observability/metrics.service.js';
import { OBSERVABILITY_PATHS } from './observability/observability.controller.js';
import { observeRequests } from './observability/request-observer.js';
import { OPENAI_PATHS } from './openai/openai.controller.js';
import { toOpenAiError } from './openai/openai-errors.js';

export const API_PREFIX = 'client/v4';

/** Builds the application (not yet listening); shared by main.ts and the tests. */
export async function createApp(config: AppConfig): Promise<NestFastifyApplication> {
  // One JSON logger for Fastify's request logs and Nest's own.
  const logger = createLogger(config.logLevel);
  const bodyLimit = 2 * 1024 * 1024;
  const adapter = new EnvelopeFastifyAdapter({ ...fastifyLogging(logger), bodyLimit, serverFactory: createHttpServer(config) });
  const app = await NestFactory.create<NestFastifyApplication>(AppModule.forRoot(config), adapter, { logger: new JsonLogger(logger) });
  const fastify = app.getHttpAdapter().getInstance();
  observeRequests(fastify, app.get(MetricsService));
  app.useBodyParser(JSON_BODY_TYPES, { bodyLimit }, jsonBodyParser(fastify));
  rejectMalformedInput(fastify);
  // Per-model size limits are enforced while streaming; this is only the outer bound.
  const largestAdapter = Math.max(...app.get(CatalogService).all().map((m) => m.limits.max_adapter_bytes));
  await app.register(fastifyMultipart, { limits: { fileSize: largestAdapter + 1, files: 2, fields: 4, fieldSize: 1024, parts: 6 } });
  app.setGlobalPrefix(API_PREFIX, { exclude: [...OBSERVABILITY_PATHS, ...OPENAI_PATHS] });
  registerErrorTranslators(fastify, [databaseOutage, adapterRejection]);
  app.useGlobalFilters(new ApiExceptionFilter({ renderers: { '/v1/': toOpenAiError } }));
  app.useGlobalPipes(createValidationPipe());
  setupOpenApi(app, API_PREFIX);
  app.enableShutdownHooks();
  return app;
}
