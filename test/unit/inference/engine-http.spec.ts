import { afterEach, describe, expect, it } from '@jest/globals';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { EngineHttp, errorMessage, errorTextMessage, sseData, transportFailure } from '../../../src/inference/engines/engine-http.js';

let server: Server | undefined;
let http: EngineHttp | undefined;

afterEach(async () => {
  await http?.close();
  await new Promise((resolve) => (server ? server.close(resolve) : resolve(undefined)));
  server = http = undefined;
});

/** A server that answers every request with what it saw: method, path, headers, body. */
async function echo(): Promise<string> {
  server = createServer((req, res) => {
    let body = '';
    req.on('data', (chunk: Buffer) => (body += chunk.toString()));
    req.on('end', () => {
      res.writeHead(req.url?.endsWith('/fail') ? 400 : 200, { 'content-type': 'application/json' });
      res.end(req.url?.endsWith('/fail') ? '{"error":{"message":"bad input"}}' : JSON.stringify({ method: req.method, url: req.url, headers: req.headers, body }));
    });
  });
  await new Promise<void>((resolve) => server!.listen(0, '127.0.0.1', resolve));
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
}

async function* chunks(...parts: string[]): AsyncGenerator<Uint8Array> {
  for (const part of parts) yield Buffer.from(part);
}

async function collect(body: AsyncIterable<Uint8Array>): Promise<string[]> {
  const events: string[] = [];
  for await (const data of sseData(body)) events.push(data);
  return events;
}

describe('EngineHttp', () => {
  it('posts JSON under the base URL path, with the api key as a bearer token, over kept-alive connections', async () => {
    const url = await echo();
    http = new EngineHttp(`${url}/vllm/`, { timeoutMs: 1000, apiKey: 'sk-1' });
    const first = await http.postJson('/v1/completions', { prompt: 'hi' });
    const seen = (await first.body.json()) as { method: string; url: string; headers: Record<string, string>; body: string };
    expect(first).toMatchObject({ status: 200, ok: true });
    expect(seen).toMatchObject({ method: 'POST', url: '/vllm/v1/completions', body: '{"prompt":"hi"}' });
    expect(seen.headers).toMatchObject({ authorization: 'Bearer sk-1', 'content-type': 'application/json', connection: 'keep-alive' });

    // Sequential requests reuse the pool's connections (a second one may open while the first is being released).
    let connections = 0;
    server!.on('connection', () => (connections += 1));
    for (let i = 0; i < 6; i++) await (await http.postJson('/again', {})).body.dump();
    expect(connections).toBeLessThanOrEqual(1);
  });

  it("reads an error answer's message", async () => {
    http = new EngineHttp(await echo(), { timeoutMs: 1000 });
    const response = await http.postJson('/fail', {});
    expect(response).toMatchObject({ status: 400, ok: false });
    expect(await errorMessage(response)).toBe('bad input');
  });

  it('fails in-flight and later requests once closed, and says so', async () => {
    server = createServer(() => undefined);
    await new Promise<void>((resolve) => server!.listen(0, '127.0.0.1', resolve));
    http = new EngineHttp(`http://127.0.0.1:${(server.address() as AddressInfo).port}`, { timeoutMs: 5000 });
    const pending = http.postJson('/slow', {}).then(
      () => 'answered',
      () => 'failed',
    );
    await new Promise((resolve) => setTimeout(resolve, 50));
    await http.close();
    expect(http.closed).toBe(true);
    expect(await pending).toBe('failed');
    server.closeAllConnections();
  });

  it("reads a whole answer as text: its status, a body written in small pieces, an error's message", async () => {
    const text = JSON.stringify({ text: 'héllo '.repeat(5000) });
    server = createServer((req, res) => {
      req.resume().on('end', () => {
        const bytes = Buffer.from(req.url === '/fail' ? '{"detail":"no such model"}' : text);
        res.writeHead(req.url === '/fail' ? 404 : 200, { 'content-type': 'application/json' });
        // Written in pieces of 7 bytes: characters split between chunks.
        for (let i = 0; i < bytes.length; i += 7) res.write(bytes.subarray(i, i + 7));
        res.end();
      });
    });
    await new Promise<void>((resolve) => server!.listen(0, '127.0.0.1', resolve));
    http = new EngineHttp(`http://127.0.0.1:${(server.address() as AddressInfo).port}`, { timeoutMs: 1000 });
    expect(await http.postJsonForText('/v1/completions', {})).toEqual({ status: 200, ok: true, text });
    const failed = await http.postJsonForText('/fail', {});
    expect([failed.status, failed.ok, errorTextMessage(failed.text, failed.status)]).toEqual([404, false, 'no such model']);
  });

  it('posts a whole-answer request as postJson does: under the base URL path, with the api key', async () => {
    http = new EngineHttp(`${await echo()}/vllm/`, { timeoutMs: 1000, apiKey: 'sk-1' });
    const answer = await http.postJsonForText('/v1/completions', { prompt: 'hi' });
    const seen = JSON.parse(answer.text) as { method: string; url: string; headers: Record<string, string>; body: string };
    expect(seen).toMatchObject({ method: 'POST', url: '/vllm/v1/completions', body: '{"prompt":"hi"}' });
    expect(seen.headers).toMatchObject({ authorization: 'Bearer sk-1', 'content-type': 'application/json' });
  });

  it("stops a whole-answer request when the caller's signal aborts, before or while it waits, with the signal's reason", async () => {
    let arrived = 0;
    server = createServer(() => (arrived += 1));
    await new Promise<void>((resolve) => server!.listen(0, '127.0.0.1', resolve));
    http = new EngineHttp(`http://127.0.0.1:${(server.address() as AddressInfo).port}`, { timeoutMs: 5000 });
    const early = new AbortController();
    early.abort(new Error('gone already'));
    await expect(http.postJsonForText('/slow', {}, early.signal)).rejects.toThrow('gone already');

    const late = new AbortController();
    const pending = http.postJsonForText('/slow', {}, late.signal);
    while (arrived === 0) await new Promise((resolve) => setTimeout(resolve, 10));
    late.abort(new Error('client left'));
    await expect(pending).rejects.toThrow('client left');
    expect(arrived).toBe(1);
    server.closeAllConnections();
  });

  it('fails a whole-answer request that gets no answer in time, or on a closed pool, as the pool does', async () => {
    server = createServer(() => undefined);
    await new Promise<void>((resolve) => server!.listen(0, '127.0.0.1', resolve));
    http = new EngineHttp(`http://127.0.0.1:${(server.address() as AddressInfo).port}`, { timeoutMs: 200 });
    const timedOut = await http.postJsonForText('/slow', {}).catch((error: unknown) => error);
    expect(transportFailure(timedOut, 200)).toEqual({ timeout: true, message: 'did not answer within 200 ms' });
    await http.close();
    await expect(http.postJsonForText('/later', {})).rejects.toThrow();
    server.closeAllConnections();
  });

  it('names timeouts and network failures, and nothing else', () => {
    const timeout = { timeout: true, message: 'did not answer within 250 ms' };
    expect(transportFailure({ code: 'UND_ERR_HEADERS_TIMEOUT' }, 250)).toEqual(timeout);
    expect(transportFailure({ code: 'UND_ERR_BODY_TIMEOUT' }, 250)).toEqual(timeout);
    expect(transportFailure({ code: 'ECONNREFUSED' }, 250)).toEqual({ timeout: false, message: 'is unreachable (ECONNREFUSED)' });
    expect(transportFailure({ code: 'UND_ERR_SOCKET', message: 'other side closed' }, 250)).toEqual({ timeout: false, message: 'is unreachable (other side closed)' });
    expect(transportFailure(new SyntaxError('Unexpected token'), 250)).toBeUndefined();
    expect(transportFailure(undefined, 250)).toBeUndefined();
  });
});

describe('sseData', () => {
  it('yields each event\'s data, whatever the chunking, CRLF and multi-line data included, skipping comments', async () => {
    expect(await collect(chunks('data: {"a":1}\n\n: keep-alive\n\nda', 'ta: x\r', '\ndata: y\r\n\r\ndata:[DONE]\n\n'))).toEqual(['{"a":1}', 'x\ny', '[DONE]']);
  });

  it('decodes characters split between chunks', async () => {
    const bytes = Buffer.from('data: héllo\n\n');
    expect(await collect(chunks(bytes.subarray(0, 8).toString('latin1')))).toEqual([]);
    async function* split(): AsyncGenerator<Uint8Array> {
      yield bytes.subarray(0, 8);
      yield bytes.subarray(8);
    }
    expect(await collect(split())).toEqual(['héllo']);
  });
});
