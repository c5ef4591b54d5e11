import { ArgumentsHost, Catch, ExceptionFilter, HttpException, Logger } from '@nestjs/common';
import type { FastifyReply, FastifyRequest } from 'fastify';
import { ApiError } from './api-error.js';
import { failure } from './envelope.js';
import { isDatabaseUnavailable } from '../database/prisma.service.js';
import { AdapterFormatError } from '../formats/format-error.js';

/** An error as the contract reports it: HTTP status, numeric code, message and extra headers. */
export interface MappedError {
  status: number;
  code: number;
  message: string;
  headers?: Record<string, string>;
}

const logger = new Logger('Http');

/** Fastify's own errors (body parsing, content type, size) carry a statusCode and an FST_ code. */
function fastifyError(error: unknown): MappedError | undefined {
  const e = error as { statusCode?: number; code?: string; message?: string };
  if (typeof e?.code !== 'string' || !e.code.startsWith('FST_') || typeof e.statusCode !== 'number') return undefined;
  if (e.statusCode === 413) return { status: 413, code: 3041, message: `Request body too large: ${e.message}` };
  return { status: 400, code: 5006, message: `Invalid request body: ${e.message}` };
}

function httpException(error: HttpException): MappedError {
  const status = error.getStatus();
  if (status === 404) return { status, code: 7000, message: 'No route for that URI' };
  if (status === 405) return { status, code: 7000, message: 'Method not allowed for that URI' };
  const response = error.getResponse();
  const detail = typeof response === 'object' && response !== null && 'message' in response ? (response as { message: unknown }).message : error.message;
  return { status, code: status === 400 ? 5006 : 1000, message: Array.isArray(detail) ? detail.join('; ') : String(detail) };
}

/** Typed errors keep their status and code; anything unexpected is logged and becomes a 500 that leaks no stack. */
export function mapError(error: unknown, request: FastifyRequest): MappedError {
  if (error instanceof ApiError) {
    return { status: error.status, code: error.code, message: error.message, headers: error.headers };
  }
  if (error instanceof AdapterFormatError) return { status: 400, code: 3040, message: error.message };
  if (error instanceof HttpException) return httpException(error);
  const fromFastify = fastifyError(error);
  if (fromFastify) return fromFastify;
  if (isDatabaseUnavailable(error)) {
    logger.error(`database unavailable on ${request.method} ${request.routeOptions?.url ?? request.url}: ${String(error)}`);
    return { status: 503, code: 7002, message: 'The database is unavailable; try again shortly' };
  }
  logger.error(
    `unhandled error on ${request.method} ${request.routeOptions?.url ?? request.url} (request ${request.id})`,
    error instanceof Error ? error.stack : String(error),
  );
  return { status: 500, code: 1000, message: `Internal server error (request ${request.id})` };
}

/** Turns a mapped error into a JSON body; each API surface has its own error shape. */
export type ErrorRenderer = (mapped: MappedError) => unknown;

const renderEnvelope: ErrorRenderer = (mapped) => failure([{ code: mapped.code, message: mapped.message }]);

function replyWithError(host: ArgumentsHost, error: unknown, render: ErrorRenderer): void {
  const reply = host.switchToHttp().getResponse<FastifyReply>();
  const mapped = mapError(error, host.switchToHttp().getRequest<FastifyRequest>());
  if (reply.sent || reply.raw.headersSent) {
    // A stream already started: the status line is gone, so end the connection instead.
    reply.raw.destroy();
    return;
  }
  void reply
    .status(mapped.status)
    .headers(mapped.headers ?? {})
    .type('application/json')
    .send(render(mapped));
}

/**
 * The one place errors become responses: the Cloudflare envelope, or another surface's shape for URLs under
 * one of `renderers`' prefixes (decided by URL, so errors raised before routing, e.g. bad JSON, get it too).
 */
@Catch()
export class ApiExceptionFilter implements ExceptionFilter {
  constructor(private readonly renderers: Record<string, ErrorRenderer> = {}) {}

  catch(error: unknown, host: ArgumentsHost): void {
    const url = host.switchToHttp().getRequest<FastifyRequest>().url;
    const render = Object.entries(this.renderers).find(([prefix]) => url.startsWith(prefix))?.[1] ?? renderEnvelope;
    replyWithError(host, error, render);
  }
}
