import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { fastify, type FastifyInstance } from 'fastify';
import { Writable } from 'node:stream';
import type { AddressInfo } from 'node:net';
import { createLogger, fastifyLogging, JsonLogger } from '../../../src/observability/logging.js';
import { MetricsService } from '../../../src/observability/metrics.service.js';
import { observeRequests } from '../../../src/observability/request-observer.js';

/** What the logger wrote, one parsed JSON object per line. */
const lines: Record<string, unknown>[] = [];
const capture = new Writable({
  write(chunk: Buffer, _encoding, done) {
    for (const line of chunk.toString('utf8').split('\n').filter(Boolean)) lines.push(JSON.parse(line));
    done();
  },
});
const logger = createLogger('log', capture);
let server: FastifyInstance;
let base: string;

/** The server logs once the response is over, just after the client has it. */
async function logged(match: (line: Record<string, unknown>) => boolean): Promise<Record<string, unknown>> {
  for (let i = 0; i < 100; i++) {
    const line = lines.find(match);
    if (line) return line;
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
  throw new Error('no such log line');
}

beforeAll(async () => {
  // The same wiring as app.factory.ts, on a bare Fastify so that its log output can be read.
  server = fastify(fastifyLogging(logger));
  observeRequests(server, new MetricsService());
  server.get('/things/:id', async () => ({ ok: true }));
  server.get('/boom', async () => {
    throw new Error('boom');
  });
  await server.listen({ port: 0, host: '127.0.0.1' });
  base = `http://127.0.0.1:${(server.server.address() as AddressInfo).port}`;
});
afterAll(() => server.close());

describe('request logs', () => {
  it('one JSON line per request: request id, method, route pattern, URL, status, duration; credentials never', async () => {
    const response = await fetch(`${base}/things/42`, { headers: { 'x-request-id': 'req-1', authorization: 'Bearer very-secret' } });
    expect(response.headers.get('x-request-id')).toBe('req-1');
    const line = await logged((l) => l.request_id === 'req-1');
    expect(line).toMatchObject({ level: 'info', msg: 'request completed', method: 'GET', route: '/things/:id', url: '/things/42', status: 200 });
    expect(typeof line.duration_ms).toBe('number');
    expect(Date.parse(line.time as string)).not.toBeNaN();
    expect(lines.filter((l) => l.request_id === 'req-1')).toHaveLength(1);
    expect(JSON.stringify(lines)).not.toContain('very-secret');
  });

  it('failed requests too, under a generated id', async () => {
    const response = await fetch(`${base}/boom`);
    expect(response.status).toBe(500);
    const id = response.headers.get('x-request-id');
    expect(id).toMatch(/^[0-9a-f-]{36}$/);
    expect(await logged((l) => l.request_id === id && l.msg === 'request completed')).toMatchObject({ route: '/boom', status: 500 });
  });
});

describe("Nest's logger", () => {
  const nest = new JsonLogger(logger);

  it('writes JSON lines with the context, the stack of errors, and the levels LOG_LEVEL lets through', () => {
    lines.length = 0;
    nest.log('started', 'Main');
    nest.error('it failed', 'Error: it failed\n    at somewhere (file.js:1:1)', 'Http');
    nest.warn({ token: 'abc', size: 3 }, 'Storage');
    nest.debug('not at level log', 'Main');
    expect(lines).toEqual([
      expect.objectContaining({ level: 'info', context: 'Main', msg: 'started' }),
      expect.objectContaining({ level: 'error', context: 'Http', msg: 'it failed', stack: expect.stringContaining('at somewhere') }),
      expect.objectContaining({ level: 'warn', context: 'Storage', data: { token: '[redacted]', size: 3 } }),
    ]);
  });
});
