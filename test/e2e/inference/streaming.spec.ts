import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { Logger } from '@nestjs/common';
import { fastify, type FastifyInstance, type FastifyReply, type FastifyRequest } from 'fastify';
import type { AddressInfo } from 'node:net';
import { Writable } from 'node:stream';
import { ApiError } from '../../../src/common/errors.js';
import type { GenerationResult } from '../../../src/inference/engine.js';
import { registerErrorTranslators } from '../../../src/common/api-exception.filter.js';
import { databaseOutage } from '../../../src/database/prisma.service.js';
import { RUN_FRAMING } from '../../../src/inference/sse.js';
import { abortOnDisconnect, openEventStream, type Generate } from '../../../src/inference/streaming.js';
import { createLogger, fastifyLogging, JsonLogger } from '../../../src/observability/logging.js';
import { chatFormat } from '../../../src/openai/formats.js';
import { completionFraming } from '../../../src/openai/sse.js';

/**
 * The responder both dialects stream through, on a bare Fastify with the service's logging, so that what it
 * logs can be read; generations here are scripted functions with the engine's contract (pieces, then a result
 * or a failure, honouring the abort signal), since what is under test is the responder's handling of each.
 */
const lines: Record<string, unknown>[] = [];
const capture = new Writable({
  write(chunk: Buffer, _encoding, done) {
    for (const line of chunk.toString('utf8').split('\n').filter(Boolean)) lines.push(JSON.parse(line));
    done();
  },
});

const USAGE = { prompt_tokens: 2, completion_tokens: 2, total_tokens: 4 };
const ok = (finishReason: GenerationResult['finishReason']): GenerationResult => ({ text: 'ab', usage: USAGE, finishReason });
const tick = () => new Promise((resolve) => setTimeout(resolve, 5));

/** Abort reasons the endless generation saw. */
const aborted: unknown[] = [];

/** Each route streams one scripted generation. */
const generations: Record<string, Generate> = {
  fine: async (_signal, onText) => {
    onText('a');
    await tick();
    onText('b');
    return ok('stop');
  },
  'fails-midway': async (_signal, onText) => {
    onText('a');
    await tick();
    throw new ApiError('engineUnavailable', 'the engine went away');
  },
  'outage-midway': async (_signal, onText) => {
    onText('a');
    await tick();
    // What the pg pool raises when no connection frees up in time (say, recording usage while PostgreSQL is full).
    throw new Error('timeout exceeded when trying to connect');
  },
  'bug-midway': async (_signal, onText) => {
    onText('a');
    await tick();
    throw new TypeError("Cannot read properties of undefined (reading 'text')");
  },
  'fails-early': async () => {
    await tick();
    throw new ApiError('engineUnavailable', 'the engine is not there');
  },
  endless: (signal, onText) =>
    new Promise((resolve) => {
      const timer = setInterval(() => onText('x'), 5);
      signal.addEventListener('abort', () => {
        clearInterval(timer);
        aborted.push(signal.reason);
        resolve(ok('aborted'));
      });
    }),
};

let server: FastifyInstance;
let base: string;

beforeAll(async () => {
  // The aborted fetch's connection can outlive the test: close it rather than wait for it.
  server = fastify({ ...fastifyLogging(createLogger('log', capture)), forceCloseConnections: true });
  registerErrorTranslators(server, [databaseOutage]);
  // Nest's loggers (the error mapping's among them) write to the same capture, as in the service.
  Logger.overrideLogger(new JsonLogger(createLogger('log', capture)));
  const route = (dialect: 'run' | 'openai') => async (request: FastifyRequest<{ Params: { name: string } }>, reply: FastifyReply) => {
    const framing = dialect === 'run' ? RUN_FRAMING : completionFraming(chatFormat('m'), true);
    const aborter = abortOnDisconnect(reply);
    try {
      return reply.send(await openEventStream(request, reply, aborter, generations[request.params.name]!, framing));
    } catch (error) {
      // Before any output: what the controllers let the error filter answer.
      return reply.status((error as ApiError).status).send({ failed: (error as Error).message });
    }
  };
  server.get('/run/:name', route('run'));
  server.get('/openai/:name', route('openai'));
  await server.listen({ port: 0, host: '127.0.0.1' });
  base = `http://127.0.0.1:${(server.server.address() as AddressInfo).port}`;
});
afterAll(() => server.close());

const events = async (response: Response) =>
  (await response.text())
    .split('\n\n')
    .filter(Boolean)
    .map((block) => block.replace(/^data: /, ''));

describe('openEventStream', () => {
  it('streams the run dialect: pieces, usage, [DONE]', async () => {
    const response = await fetch(`${base}/run/fine`);
    expect(response.headers.get('content-type')).toBe('text/event-stream');
    expect(await events(response)).toEqual(['{"response":"a"}', '{"response":"b"}', `{"response":"","usage":${JSON.stringify(USAGE)}}`, '[DONE]']);
  });

  it('streams the OpenAI dialect: opening, pieces, closing, usage, [DONE]', async () => {
    const chunks = await events(await fetch(`${base}/openai/fine`));
    expect(chunks.at(-1)).toBe('[DONE]');
    const parsed = chunks.slice(0, -1).map((c) => JSON.parse(c));
    expect(parsed.map((c) => c.choices[0]?.delta ?? null)).toEqual([{ role: 'assistant', content: '' }, { content: 'a' }, { content: 'b' }, {}, null]);
    expect(parsed[3].choices[0].finish_reason).toBe('stop');
    expect(parsed[4].usage).toEqual(USAGE);
  });

  it('a failure before any output is answered with its status, not a stream', async () => {
    for (const dialect of ['run', 'openai']) {
      const response = await fetch(`${base}/${dialect}/fails-early`);
      expect(response.status).toBe(503);
      expect(await response.json()).toEqual({ failed: 'the engine is not there' });
    }
  });

  it('a failure after output ends the stream with the dialect error event and is logged with the request id', async () => {
    const run = await fetch(`${base}/run/fails-midway`, { headers: { 'x-request-id': 'midway-run' } });
    expect(run.status).toBe(200);
    expect((await events(run)).map((e) => JSON.parse(e))).toEqual([
      { response: 'a' },
      { error: { code: 90503, message: 'the engine went away' } },
    ]);
    const openai = await fetch(`${base}/openai/fails-midway`, { headers: { 'x-request-id': 'midway-openai' } });
    const last = JSON.parse((await events(openai)).at(-1)!);
    expect(last).toEqual({ error: { message: 'the engine went away', type: 'server_error', param: null, code: '90503' } });

    for (const id of ['midway-run', 'midway-openai']) {
      const logged = lines.find((line) => line.request_id === id && line.level === 'error');
      expect(logged).toMatchObject({ msg: 'generation failed after its event stream started', err: { message: 'the engine went away' } });
    }
  });

  it("a failure after output is mapped as the error filter maps it (the features' translators included) and logged once", async () => {
    const outage = await fetch(`${base}/run/outage-midway`, { headers: { 'x-request-id': 'midway-outage' } });
    expect((await events(outage)).map((e) => JSON.parse(e)).at(-1)).toEqual({ error: { code: 90502, message: expect.stringContaining('database') } });
    const bug = await fetch(`${base}/openai/bug-midway`, { headers: { 'x-request-id': 'midway-bug' } });
    expect(JSON.parse((await events(bug)).at(-1)!)).toEqual({
      error: { message: 'Internal server error (request midway-bug)', type: 'server_error', param: null, code: '3043' },
    });
    for (const id of ['midway-outage', 'midway-bug']) {
      const logged = lines.filter((line) => line.request_id === id && line.level === 'error');
      expect(logged).toEqual([expect.objectContaining({ msg: 'generation failed after its event stream started' })]);
    }
    // Not a second time by the mapping.
    expect(lines.filter((line) => /unhandled error|databaseUnavailable on/.test(String(line.msg)))).toEqual([]);
  });

  it('a client that disconnects aborts the generation', async () => {
    const before = aborted.length;
    const controller = new AbortController();
    const response = await fetch(`${base}/run/endless`, { signal: controller.signal });
    await response.body!.getReader().read();
    controller.abort();
    const deadline = Date.now() + 5_000;
    while (aborted.length === before && Date.now() < deadline) await tick();
    expect(aborted.length).toBe(before + 1);
  });
});
