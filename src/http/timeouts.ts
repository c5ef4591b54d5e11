import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { Socket } from 'node:net';

export interface HttpTimeouts {
  /** Time allowed for a request's headers to arrive in full. */
  headersTimeoutMs: number;
  /** Time a connection may go without a byte arriving while the service waits on the client. */
  idleTimeoutMs: number;
}

/** Longer than common load balancers' idle timeouts, so they close first (Fastify's own default). */
const KEEP_ALIVE_TIMEOUT_MS = 72_000;

/**
 * The HTTP server, for Fastify's `serverFactory`. There is no cap on a request's total time (a slow but progressing
 * 300 MB upload must finish); instead headers must arrive within `headersTimeoutMs`, and a connection that stalls
 * for `idleTimeoutMs` while sending its request (a trickled or stalled body) is closed. A request whose body has
 * fully arrived is left alone while the service works on the answer (a long generation sends nothing for a while),
 * unless its response is stuck behind a client that stopped reading. Idle keep-alive connections close after
 * KEEP_ALIVE_TIMEOUT_MS (Node sets that timeout between requests).
 */
export function createHttpServer(timeouts: HttpTimeouts) {
  return (handler: (request: IncomingMessage, response: ServerResponse) => void): Server => {
    const server = createServer(
      {
        headersTimeout: timeouts.headersTimeoutMs,
        requestTimeout: 0,
        keepAliveTimeout: KEEP_ALIVE_TIMEOUT_MS,
        // How often Node checks the headers timeout (default 30 s, too coarse for a short timeout).
        connectionsCheckingInterval: Math.min(1_000, timeouts.headersTimeoutMs),
      },
      handler,
    );
    const current = new WeakMap<Socket, { request: IncomingMessage; response: ServerResponse }>();
    server.on('request', (request: IncomingMessage, response: ServerResponse) => current.set(request.socket, { request, response }));
    server.setTimeout(timeouts.idleTimeoutMs);
    // With a listener here Node no longer closes timed-out sockets itself: this decides.
    server.on('timeout', (socket: Socket) => {
      const exchange = current.get(socket);
      // The service is the slow side when it works on a complete request, or reads a body slower than it arrives
      // (the socket is paused for backpressure, e.g. storage is slow); a client that stopped reading is not waited for.
      const serviceBusy = exchange !== undefined && !exchange.response.writableEnded && (exchange.request.complete || socket.isPaused());
      if (serviceBusy && socket.writableLength === 0) return;
      socket.destroy();
    });
    return server;
  };
}
