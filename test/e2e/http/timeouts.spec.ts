/**
 * Connection timeouts, made short through the config: headers must arrive within HTTP_HEADERS_TIMEOUT_MS and a
 * connection that stalls for HTTP_IDLE_TIMEOUT_MS while sending its request is closed, but nothing caps a request's
 * total time: a slow upload that keeps progressing succeeds, and so does a request waiting on the service.
 */
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { request as httpRequest } from 'node:http';
import { connect, type Socket } from 'node:net';
import { call, createAccount, startTestApp, type TestAccount, type TestApp } from '../../helpers/app.js';
import { TINY_LLAMA, tinySetup, type TinySetup } from '../../helpers/tiny.js';
import { testStorage, upload, uploadForm } from '../../helpers/uploads.js';
import { addLlamaVariants, holdSlot, ROOMY } from '../limits/helpers.js';

const TIMEOUT_MS = 1_000;
const QUEUED = '@cf/tiny/queued-llama';

let tiny: TinySetup;
let t: TestApp;
let acme: TestAccount;
let port: number;

beforeAll(async () => {
  tiny = await tinySetup();
  addLlamaVariants(tiny, { [QUEUED]: { limits: { max_concurrent_requests: 1, max_queue_wait_ms: 60_000 }, engine: ROOMY } });
  t = await startTestApp({
    MODELS_FILE: tiny.modelsFile,
    CACHE_DIR: `${tiny.dir}/cache`,
    HTTP_HEADERS_TIMEOUT_MS: String(TIMEOUT_MS),
    HTTP_IDLE_TIMEOUT_MS: String(TIMEOUT_MS),
  });
  port = Number(new URL(t.baseUrl).port);
  acme = await createAccount(t.baseUrl);
}, 60_000);
afterAll(() => t.close());

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

interface Trickle {
  /** Everything the server sent before it closed the connection. */
  closed: Promise<string>;
  /** Pieces written before the close. */
  written(): number;
}

/**
 * A raw connection that sends `head` and then `pieces`, one every `everyMs`, for as long as the server keeps it open.
 * `everyMs` below the idle timeout keeps bytes arriving, so only the headers timeout can close it.
 */
function trickle(head: string, pieces: string[], everyMs: number): Trickle {
  const socket: Socket = connect(port, '127.0.0.1');
  let received = '';
  let written = 0;
  socket.setEncoding('utf8');
  socket.on('data', (data: string) => (received += data));
  socket.on('error', () => undefined);
  // latin1: pieces may carry binary bytes one char each (a multipart body), which utf8 would re-encode.
  socket.write(head, 'latin1');
  const timer = setInterval(() => {
    if (written < pieces.length && !socket.destroyed) socket.write(pieces[written++]!, 'latin1');
  }, everyMs);
  const closed = new Promise<string>((resolve) => socket.on('close', () => {
    clearInterval(timer);
    resolve(received);
  }));
  return { closed, written: () => written };
}

describe('slow-loris connections are closed', () => {
  it('headers trickled a line at a time on five connections get 408 once the headers timeout has passed', async () => {
    const pieces = Array.from({ length: 200 }, (_, i) => `x-slow-${i}: ${i}\r\n`);
    const connections = Array.from({ length: 5 }, () => trickle(`GET /client/v4/accounts/${acme.id}/ai/finetunes HTTP/1.1\r\nhost: x\r\n`, pieces, 100));
    const answers = await Promise.all(connections.map((c) => c.closed));
    for (const [i, answer] of answers.entries()) {
      expect(answer).toMatch(/^HTTP\/1\.1 408 /);
      // Closed while the client was still sending headers, long before it would have run out of them.
      expect(connections[i]!.written()).toBeLessThan(pieces.length);
    }
  });

  it('a JSON body that stops arriving is closed without an answer', async () => {
    const body = JSON.stringify({ model: TINY_LLAMA, name: 'stalled' });
    const head = `POST /client/v4/accounts/${acme.id}/ai/finetunes HTTP/1.1\r\nhost: x\r\nauthorization: Bearer ${acme.token}\r\n` +
      `content-type: application/json\r\ncontent-length: ${body.length}\r\n\r\n`;
    // Two pieces a little apart, then nothing: the second pause outlasts the idle timeout.
    const connection = trickle(head, [body.slice(0, 5), body.slice(5, 10)], 300);
    expect(await connection.closed).toBe('');
    expect(connection.written()).toBe(2);
    const list = await call<{ name: string }[]>(t.baseUrl, 'GET', `/accounts/${acme.id}/ai/finetunes`, { token: acme.token });
    expect(list.body.result.map((f) => f.name)).not.toContain('stalled');
  });

  it('an upload that stalls half-way is closed and leaves nothing behind', async () => {
    await call(t.baseUrl, 'POST', `/accounts/${acme.id}/ai/finetunes`, { token: acme.token, body: { model: TINY_LLAMA, name: 'stalled-upload' } });
    const form = new Request('http://x/', { method: 'POST', body: uploadForm('adapter_model.safetensors', tiny.read('tiny-llama-qv').safetensors) });
    const body = Buffer.from(await form.arrayBuffer()).toString('latin1');
    const head = `POST /client/v4/accounts/${acme.id}/ai/finetunes/stalled-upload/finetune-assets HTTP/1.1\r\nhost: x\r\n` +
      `authorization: Bearer ${acme.token}\r\ncontent-type: ${form.headers.get('content-type')}\r\ncontent-length: ${body.length}\r\n\r\n`;
    const connection = trickle(head, [body.slice(0, body.length / 2)], 100);
    expect(await connection.closed).toBe('');
    const view = await call<{ status: string }>(t.baseUrl, 'GET', `/accounts/${acme.id}/ai/finetunes/stalled-upload`, { token: acme.token });
    expect(view.body.result.status).toBe('pending');
    // The rejected upload's staging object is removed once the failure is handled.
    for (let i = 0; i < 50 && (await testStorage(t.bucket).list('')).length > 0; i++) await sleep(100);
    expect(await testStorage(t.bucket).list('')).toEqual([]);
  });
});

describe('slow requests that progress are served', () => {
  it('an upload sent in small pieces over several idle timeouts succeeds', async () => {
    await call(t.baseUrl, 'POST', `/accounts/${acme.id}/ai/finetunes`, { token: acme.token, body: { model: TINY_LLAMA, name: 'slow-upload' } });
    const files = tiny.read('tiny-llama-qv');
    expect((await upload(t.baseUrl, acme, 'slow-upload', 'adapter_config.json', files.config)).status).toBe(200);
    const form = new Request('http://x/', { method: 'POST', body: uploadForm('adapter_model.safetensors', files.safetensors) });
    const body = Buffer.from(await form.arrayBuffer());
    const pieces = 16;
    const started = Date.now();
    const answer = await new Promise<{ status: number; text: string }>((resolve, reject) => {
      const request = httpRequest(
        `${t.baseUrl}/accounts/${acme.id}/ai/finetunes/slow-upload/finetune-assets`,
        { method: 'POST', headers: { authorization: `Bearer ${acme.token}`, 'content-type': form.headers.get('content-type')!, 'content-length': body.length } },
        (response) => {
          let text = '';
          response.setEncoding('utf8');
          response.on('data', (data: string) => (text += data));
          response.on('end', () => resolve({ status: response.statusCode!, text }));
        },
      );
      request.on('error', reject);
      request.flushHeaders();
      void (async () => {
        const size = Math.ceil(body.length / pieces);
        for (let offset = 0; offset < body.length; offset += size) {
          await sleep(TIMEOUT_MS / 4);
          request.write(body.subarray(offset, offset + size));
        }
        request.end();
      })();
    });
    // The upload took longer than both timeouts together, so neither can be a cap on the whole request.
    expect(Date.now() - started).toBeGreaterThan(2 * TIMEOUT_MS);
    expect(answer.status).toBe(200);
    expect(JSON.parse(answer.text).result).toMatchObject({ file_name: 'adapter_model.safetensors', bytes: files.safetensors.length });
    const view = await call<{ status: string }>(t.baseUrl, 'GET', `/accounts/${acme.id}/ai/finetunes/slow-upload`, { token: acme.token });
    expect(view.body.result.status).toBe('ready');
  });

  it('a request whose body has arrived may wait on the service longer than the idle timeout', async () => {
    const holder = await holdSlot(t, acme, QUEUED);
    let settled = false;
    const waiting = call<{ response: string }>(t.baseUrl, 'POST', `/accounts/${acme.id}/ai/run/${QUEUED}`, {
      token: acme.token,
      body: { prompt: 'hello', max_tokens: 2 },
    }).finally(() => (settled = true));
    await sleep(3 * TIMEOUT_MS);
    expect(settled).toBe(false);
    holder.abort();
    const answer = await waiting;
    expect(answer.status).toBe(200);
    expect(answer.body.result.response).toEqual(expect.any(String));
  });
});
