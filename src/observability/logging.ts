import type { LoggerService } from '@nestjs/common';
import { LogController, type FastifyServerOptions } from 'fastify';
import { randomUUID } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import { pino, type DestinationStream, type Level, type Logger } from 'pino';
import type { AppConfig } from '../config/app-config.js';

export const REQUEST_ID_HEADER = 'x-request-id';
/** The field that carries the request id in log lines. */
export const REQUEST_ID_LOG_LABEL = 'request_id';

/** A caller's id is kept only when it is short and made of characters that cannot forge log lines or headers. */
const SAFE_REQUEST_ID = /^[\w.:/+=-]{1,128}$/;

/** Log lines leave in writes of at least this many bytes, or after FLUSH_MS. */
const BATCH_BYTES = 8 * 1024;
const FLUSH_MS = 100;

const LEVELS: Record<AppConfig['logLevel'], Level> = { error: 'error', warn: 'warn', log: 'info', debug: 'debug', verbose: 'trace' };

/** Whatever ends up in a log line, these never do. */
const REDACTED = [
  'req.headers.authorization',
  'req.headers.cookie',
  'headers.authorization',
  'authorization',
  'token',
  '*.token',
  'adminToken',
  '*.adminToken',
];

const FORMAT = { formatters: { level: (label: string) => ({ level: label }) }, timestamp: pino.stdTimeFunctions.isoTime };

/** JSON lines on stdout (or `destination`), at LOG_LEVEL. */
export function createLogger(level: AppConfig['logLevel'], destination?: DestinationStream): Logger {
  const options = { level: LEVELS[level], ...FORMAT, redact: { paths: REDACTED, censor: '[redacted]' } };
  // Written asynchronously and in batches, so the request path neither waits for stdout nor pays a write (a hand-off
  // to libuv's threads and a wake-up when it is done) per line: lines go out once BATCH_BYTES have gathered, or within
  // FLUSH_MS. pino flushes what is left when the process exits; a process killed outright loses at most FLUSH_MS.
  return pino(options, destination ?? pino.destination({ dest: 1, sync: false, minLength: BATCH_BYTES, periodicFlush: FLUSH_MS }));
}

/**
 * The logger of request lines (observeRequests): `logger`'s output, level and format, without redaction. A request line
 * holds only the fields observeRequests names (id, method, route, URL, status, duration), which no redacted path
 * matches, and redaction would walk each of them on every request.
 */
export function requestLineLogger(logger: Logger): Logger {
  return pino({ level: logger.level, ...FORMAT }, (logger as unknown as Record<symbol, DestinationStream>)[pino.symbols.streamSym]);
}

/** The caller's `x-request-id` when it is safe to repeat, else a fresh UUID. */
export function requestId(request: IncomingMessage): string {
  const given = request.headers[REQUEST_ID_HEADER];
  return typeof given === 'string' && SAFE_REQUEST_ID.test(given) ? given : randomUUID();
}

/** Fastify's side of request logging: its logger is `logger`, and requests are logged once each by `observeRequests`. */
export function fastifyLogging(logger: Logger): Pick<FastifyServerOptions, 'loggerInstance' | 'logController' | 'genReqId'> {
  return {
    loggerInstance: logger,
    logController: new LogController({ disableRequestLogging: true, requestIdLogLabel: REQUEST_ID_LOG_LABEL }),
    genReqId: requestId,
  };
}

const STACK = /\n\s+at /;

/**
 * Nest's Logger written through the same JSON logger. Nest passes the logger's context as the last string
 * argument and, for errors, a stack before it (ConsoleLogger tells them apart the same way).
 */
export class JsonLogger implements LoggerService {
  constructor(private readonly logger: Logger) {}

  log(message: unknown, ...params: unknown[]): void {
    this.write('info', message, params);
  }

  error(message: unknown, ...params: unknown[]): void {
    this.write('error', message, params);
  }

  warn(message: unknown, ...params: unknown[]): void {
    this.write('warn', message, params);
  }

  debug(message: unknown, ...params: unknown[]): void {
    this.write('debug', message, params);
  }

  verbose(message: unknown, ...params: unknown[]): void {
    this.write('trace', message, params);
  }

  fatal(message: unknown, ...params: unknown[]): void {
    this.write('fatal', message, params);
  }

  private write(level: Level, message: unknown, params: unknown[]): void {
    const rest = [...params];
    const last = rest.at(-1);
    const context = typeof last === 'string' && !STACK.test(last) ? (rest.pop() as string) : undefined;
    const stack = rest.find((p): p is string => typeof p === 'string' && STACK.test(p));
    const details = rest.filter((p) => p !== stack && p !== undefined);
    const fields = { context, ...(stack && { stack }), ...(details.length > 0 && { details }) };
    if (message instanceof Error) this.logger[level]({ ...fields, err: message }, message.message);
    else if (typeof message === 'string') this.logger[level](fields, message);
    else this.logger[level]({ ...fields, data: message });
  }
}
