import type { FastifyReply, FastifyRequest } from 'fastify';
import type { Socket } from 'node:net';
import { PassThrough, type Readable } from 'node:stream';
import { mapError, type MappedError } from '../common/api-exception.filter.js';
import type { GenerationResult } from './engine.js';

/** How one API dialect frames a generation as server-sent events; each object becomes one `data:` event. */
export interface StreamFraming {
  /** Events sent before any piece (OpenAI's chat opens with the assistant role). */
  opening(): object[];
  piece(text: string): object;
  /** Events after the last piece, then `[DONE]`; undefined ends the stream without them (nobody is reading). */
  finish(result: GenerationResult): object[] | undefined;
  /** The in-band error event (the status line is long gone), for the error as the error filter maps it. */
  error(error: MappedError): object;
}

export type Generate = (signal: AbortSignal, onText: (piece: string) => void) => Promise<GenerationResult>;

const connectionSignals = new WeakMap<Socket, AbortSignal>();

/**
 * Aborted when the request's connection closes, i.e. when the client went away: a generation answered in one piece
 * must stop. One signal per connection, shared by the requests it carries: Node 20 makes each AbortSignal by giving a
 * new EventTarget another prototype, which V8 handles on its slow path, so a signal per request cost its creation
 * plus missed inline caches wherever it was used (about 4% of a request's main-thread time). Whoever listens on it
 * removes the listener once done, as with any signal.
 */
export function connectionSignal(request: FastifyRequest): AbortSignal {
  const socket = request.raw.socket;
  let signal = connectionSignals.get(socket);
  if (signal === undefined) {
    const aborter = new AbortController();
    socket.once('close', () => aborter.abort());
    signal = aborter.signal;
    connectionSignals.set(socket, signal);
  }
  return signal;
}

/**
 * Aborted when the response closes before it finished, i.e. when the client went away: generation must stop. For
 * event streams, whose own end aborts them too (openEventStream), so each needs a controller of its own.
 */
export function abortOnDisconnect(reply: FastifyReply): AbortController {
  const aborter = new AbortController();
  reply.raw.on('close', () => {
    if (!reply.raw.writableFinished) aborter.abort();
  });
  return aborter;
}

const event = (data: object | string) => `data: ${typeof data === 'string' ? data : JSON.stringify(data)}\n\n`;

/**
 * Starts the generation and resolves with its event stream once the first piece (or the end) is there, with the
 * reply's stream headers set: a failure before any output rejects instead, so it is answered with its own status.
 * A failure after that ends the stream with the dialect's error event and is logged with the request's id, since
 * no status or error handler will ever see it.
 */
export async function openEventStream(
  request: FastifyRequest,
  reply: FastifyReply,
  aborter: AbortController,
  generate: Generate,
  framing: StreamFraming,
): Promise<Readable> {
  const events = new PassThrough();
  events.on('close', () => aborter.abort());
  for (const opening of framing.opening()) events.write(event(opening));

  let streaming = false;
  let started!: () => void;
  const firstOutput = new Promise<void>((resolve) => (started = resolve));
  const generation = generate(aborter.signal, (piece) => {
    streaming = true;
    if (piece) events.write(event(framing.piece(piece)));
    started();
  });
  generation.then(
    (result) => {
      const closing = framing.finish(result);
      if (!closing) return void events.end();
      for (const data of closing) events.write(event(data));
      events.end(event('[DONE]'));
    },
    (error: unknown) => {
      // Before any output the race below rethrows it.
      if (!streaming) return;
      request.log.error({ err: error }, 'generation failed after its event stream started');
      events.end(event(framing.error(mapError(error, request, { quiet: true }))));
    },
  );
  await Promise.race([firstOutput, generation]);
  void reply.header('content-type', 'text/event-stream').header('cache-control', 'no-cache');
  return events;
}
