import { StreamableFile } from '@nestjs/common';
import { FastifyAdapter } from '@nestjs/platform-fastify';
import { Readable } from 'node:stream';
import { success, WithMessages } from './envelope.js';

/**
 * Nest's Fastify adapter, wrapping every handler result in the envelope as Nest hands it over to be sent. Streams
 * go out as they are (Nest sends a handler's Readable as a StreamableFile); handlers that take the reply (`@Res()`)
 * send their own bodies and errors are sent by ApiExceptionFilter, neither through here. A global interceptor would
 * do the same with an rxjs pipeline per request, which costs more than the rest of Nest's work on a request.
 */
export class EnvelopeFastifyAdapter extends FastifyAdapter {
  override reply(response: Parameters<FastifyAdapter['reply']>[0], body: unknown, statusCode?: number): ReturnType<FastifyAdapter['reply']> {
    if (body instanceof StreamableFile || body instanceof Readable) return super.reply(response, body, statusCode);
    return super.reply(response, body instanceof WithMessages ? success(body.result, body.messages) : success(body ?? null), statusCode);
  }
}
