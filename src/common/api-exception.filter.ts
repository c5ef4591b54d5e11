import { ArgumentsHost, Catch, ExceptionFilter, HttpException, Logger } from '@nestjs/common';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { ApiError } from './errors.js';
import { failure } from './envelope.js';

/** An error as the contract reports it: HTTP status, numeric code, message and extra headers. */
export interface MappedError {
  status: number;
  code: number;
  message: string;
  headers?: Record<string, string>;
}

/**
 * Recognises a feature's own failures (a database driver's outage errors, a parser's rejection) and says which
 * catalog entry they are. Features export these and the application registers them with the filter, so common
 * knows no feature.
 */
export type ErrorTranslator = (error: unknown) => ApiError | undefined;

declare module 'fastify' {
  interface FastifyInstance {
    /** The features' translators, registered once (registerErrorTranslators) for every mapping of an error. */
    errorTranslators?: ErrorTranslator[];
  }
}

/** Registers the translators every error mapping uses: the filter's, and a stream's error event's. */
export function registerErrorTranslators(fastify: FastifyInstance, translators: ErrorTranslator[]): void {
  fastify.decorate('errorTranslators', translators);
}

/** Turns a mapped error into a JSON body; each API surface has its own error shape. */
export type ErrorRenderer = (mapped: MappedError) => unknown;

export interface ApiExceptionFilterOptions {
  /** Error shapes by URL prefix; the Cloudflare envelope elsewhere. */
  renderers?: Record<string, ErrorRenderer>;
}

const logger = new Logger('Http');

function mapped(error: ApiError): MappedError {
  return { status: error.status, code: error.code, message: error.message, headers: error.headers };
}

/** Fastify's own errors (body parsing, content type, size) carry a statusCode and an FST_ code. */
function fastifyError(error: unknown): ApiError | undefined {
  const e = error as { statusCode?: number; code?: string; message?: string };
  if (typeof e?.code !== 'string' || !e.code.startsWith('FST_') || typeof e.statusCode !== 'number') return undefined;
  if (e.statusCode === 413) return new ApiError('tooLarge', `Request body too large: ${e.message}`);
  return new ApiError('validation', `Invalid request body: ${e.message}`);
}

/** Nest's own exceptions: its router's 404, and 4xx from its pipes. */
function httpException(error: HttpException): ApiError | undefined {
  const status = error.getStatus();
  if (status === 404) return new ApiError('routeNotFound');
  if (status >= 500) return undefined;
  const response = error.getResponse();
  const detail = typeof response === 'object' && response !== null && 'message' in response ? (response as { message: unknown }).message : error.message;
  const message = Array.isArray(detail) ? detail.join('; ') : String(detail);
  return status === 413 ? new ApiError('tooLarge', message) : new ApiError('validation', message);
}

/** A client that went away mid-request: its body stream ends with an abort or a reset. */
function clientAborted(error: unknown, request: FastifyRequest): ApiError | undefined {
  if (!request.raw.destroyed || request.raw.complete) return undefined;
  return new ApiError('aborted', `The client closed the connection before its request was read: ${String(error)}`, { cause: error });
}

function where(request: FastifyRequest): string {
  return `${request.method} ${request.routeOptions?.url ?? request.url}`;
}

/**
 * Catalog errors keep their status and code; anything unexpected is logged and becomes a 500 that leaks no stack.
 * `quiet`: the caller logs the error itself (a stream's failure, logged once with its context).
 */
export function mapError(error: unknown, request: FastifyRequest, { quiet = false } = {}): MappedError {
  if (error instanceof ApiError) return mapped(error);
  for (const translate of request.server.errorTranslators ?? []) {
    const translated = translate(error);
    if (translated) {
      if (translated.status >= 500 && !quiet) logger.error(`${translated.error} on ${where(request)}: ${String(error)}`);
      return mapped(translated);
    }
  }
  const known = error instanceof HttpException ? httpException(error) : fastifyError(error);
  if (known) return mapped(known);
  const aborted = clientAborted(error, request);
  if (aborted) {
    // Nobody reads this answer; the log says what became of the request.
    if (!quiet) logger.log(`${aborted.status}/${aborted.code} on ${where(request)}: ${aborted.message}`);
    return mapped(aborted);
  }
  if (!quiet) logger.error(`unhandled error on ${where(request)} (request ${request.id})`, error instanceof Error ? error.stack : String(error));
  return mapped(new ApiError('internal', `Internal server error (request ${request.id})`));
}

const renderEnvelope: ErrorRenderer = (mapped) => failure([{ code: mapped.code, message: mapped.message }]);

/**
 * The one place errors become responses: the Cloudflare envelope, or another surface's shape for URLs under
 * one of the `renderers`' prefixes (decided by URL, so errors raised before routing, e.g. bad JSON, get it too).
 */
@Catch()
export class ApiExceptionFilter implements ExceptionFilter {
  constructor(private readonly options: ApiExceptionFilterOptions = {}) {}

  catch(error: unknown, host: ArgumentsHost): void {
    const request = host.switchToHttp().getRequest<FastifyRequest>();
    const reply = host.switchToHttp().getResponse<FastifyReply>();
    const render = Object.entries(this.options.renderers ?? {}).find(([prefix]) => request.url.startsWith(prefix))?.[1] ?? renderEnvelope;
    const answer = mapError(error, request);
    if (reply.sent || reply.raw.headersSent) {
      // A stream already started: the status line is gone, so end the connection instead.
      reply.raw.destroy();
      return;
    }
    void reply
      .status(answer.status)
      .headers(answer.headers ?? {})
      .type('application/json')
      .send(render(answer));
  }
}
