import type { FastifyInstance } from 'fastify';
import type { Logger } from 'pino';
import { REQUEST_ID_HEADER, REQUEST_ID_LOG_LABEL, requestLineLogger } from './logging.js';
import { MetricsService, UNMATCHED_ROUTE } from './metrics.service.js';

/**
 * Every request: its id echoed in `x-request-id` (set first, so errors and streams carry it too), then, once the
 * response is over, one log line and one latency observation labelled with the route pattern.
 */
export function observeRequests(fastify: FastifyInstance, metrics: MetricsService): void {
  const lines = requestLineLogger(fastify.log as Logger);
  fastify.addHook('onRequest', (request, reply, done) => {
    void reply.header(REQUEST_ID_HEADER, request.id);
    // 'close' also comes when the client leaves mid-response (a stream), which onResponse never sees.
    reply.raw.once('close', () => {
      const route = request.routeOptions.url ?? UNMATCHED_ROUTE;
      const status = reply.statusCode;
      metrics.observeRequest(request.method, route, status, reply.elapsedTime / 1000);
      const aborted = !reply.raw.writableFinished;
      lines.info(
        {
          [REQUEST_ID_LOG_LABEL]: request.id,
          method: request.method,
          route,
          url: request.url,
          status,
          duration_ms: Math.round(reply.elapsedTime),
          // Left out unless true: pino skips undefined fields.
          aborted: aborted || undefined,
        },
        aborted ? 'request aborted' : 'request completed',
      );
    });
    done();
  });
}
