import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { rm } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { buildTinyModel, TINY_MODELS } from '../../../src/demo/tiny-model.js';
import { call, createAccount, startTestApp, type TestAccount, type TestApp } from '../../helpers/app.js';
import { eventLoopStalls } from '../../helpers/metrics.js';
import { parsePrometheusText, sampleValue } from '../../helpers/prometheus-text.js';
import { TINY_GEMMA, TINY_LLAMA, tinySetup, type TinySetup } from '../../helpers/tiny.js';
import { addLlamaVariants, idle, queuedRequests, readyFinetune, run, runRaw } from '../limits/helpers.js';

const REMOTE = '@cf/test/remote-lora';
const HUNG = '@cf/test/hung-lora';
/** One generation at a time, so that a second request queues. */
const SINGLE = '@cf/test/single-lora';
const FINETUNES_ROUTE = '/client/v4/accounts/:account_id/ai/finetunes';

let tiny: TinySetup;
let t: TestApp;
let acme: TestAccount;
/** Answers GET /health as vLLM's OpenAI server does while its engine runs: 200, empty body. */
let vllmHealth: Server;

async function listening(server: Server): Promise<string> {
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
}

/** The service's root (the probes and /metrics are not under /client/v4). */
const rootOf = (app: TestApp) => app.baseUrl.replace(/\/client\/v4$/, '');

async function scrape(app: TestApp) {
  const response = await fetch(`${rootOf(app)}/metrics`);
  expect(response.status).toBe(200);
  expect(response.headers.get('content-type')).toBe('text/plain; version=0.0.4; charset=utf-8');
  return parsePrometheusText(await response.text());
}

async function readyz(app: TestApp) {
  const response = await fetch(`${rootOf(app)}/readyz`);
  return { status: response.status, body: (await response.json()) as { status: string; checks: Record<string, unknown> } };
}

/** Polls /readyz while the llama.cpp models load at start-up (they report 'the model is still loading' until then). */
async function loaded(app: TestApp, model: string) {
  for (let i = 0; i < 60; i++) {
    const { body } = await readyz(app);
    const engine = (body.checks.engines as Record<string, string>)[model];
    if (engine !== 'the model is still loading') return;
  }
  throw new Error(`${model} still loading`);
}

const remoteModel = (name: string, base_url: string) => ({
  name,
  architecture: buildTinyModel(TINY_MODELS[0]!.spec).architecture,
  engine: { type: 'vllm', base_url, served_model: 'remote', adapter_dir: tmpdir() },
});

beforeAll(async () => {
  vllmHealth = createServer((req, res) => res.writeHead(req.url === '/health' ? 200 : 404).end());
  tiny = await tinySetup([remoteModel(REMOTE, `${await listening(vllmHealth)}/`)]);
  addLlamaVariants(tiny, { [SINGLE]: { limits: { max_concurrent_requests: 1, max_queue_wait_ms: 30_000 } } });
  t = await startTestApp({ MODELS_FILE: tiny.modelsFile, CACHE_DIR: join(tiny.dir, 'cache') });
  acme = await createAccount(t.baseUrl, 'acme');
}, 60_000);
afterAll(async () => {
  await t.close();
  await new Promise((resolve) => vllmHealth.close(resolve));
});

describe('probes', () => {
  it('/healthz answers 200 at the root, without a token', async () => {
    const response = await fetch(`${rootOf(t)}/healthz`);
    expect(response.status).toBe(200);
    expect(await response.json()).toEqual({ status: 'ok' });
    expect((await fetch(`${t.baseUrl}/healthz`)).status).toBe(404);
  });

  it('/readyz answers 200 once the database, the storage and every configured engine answer', async () => {
    for (const model of [TINY_LLAMA, TINY_GEMMA, SINGLE]) await loaded(t, model);
    expect(await readyz(t)).toEqual({
      status: 200,
      body: {
        status: 'ready',
        checks: {
          database: 'ok',
          storage: 'ok',
          engines: { [TINY_LLAMA]: 'ok', [TINY_GEMMA]: 'ok', [REMOTE]: 'ok', [SINGLE]: 'ok' },
          replicas: { [REMOTE]: { [`http://127.0.0.1:${(vllmHealth.address() as AddressInfo).port}`]: 'ok' } },
        },
      },
    });
  });

  it('/readyz answers 503 naming each engine that does not answer, within its time bound', async () => {
    const closed = createServer();
    const refused = await listening(closed);
    await new Promise((resolve) => closed.close(resolve));
    // Accepts connections and never answers.
    const hung = createServer(() => undefined);
    const broken = await tinySetup([remoteModel(REMOTE, refused), remoteModel(HUNG, await listening(hung))]);
    const app = await startTestApp({ MODELS_FILE: broken.modelsFile, CACHE_DIR: join(broken.dir, 'cache') });
    try {
      const missing = join(broken.dir, 'tiny-gemma.gguf');
      await loaded(app, TINY_LLAMA);
      await rm(missing);
      const started = Date.now();
      const { status, body } = await readyz(app);
      // The hung engine is given up on after the check's 2 s bound, not waited for; the upper bound leaves room for a
      // loaded machine.
      expect(Date.now() - started).toBeGreaterThanOrEqual(2_000);
      expect(Date.now() - started).toBeLessThan(10_000);
      expect(status).toBe(503);
      expect(body.status).toBe('not ready');
      expect(body.checks).toMatchObject({ database: 'ok', storage: 'ok' });
      const engines = body.checks.engines as Record<string, string>;
      expect(engines[TINY_LLAMA]).toBe('ok');
      expect(engines[TINY_GEMMA]).toBe(`model file ${missing} is missing or unreadable`);
      expect(engines[REMOTE]).toBe(`cannot reach ${refused}/health: fetch failed (ECONNREFUSED)`);
      expect(engines[HUNG]).toBe('no answer within 2000 ms');
    } finally {
      await app.close();
      hung.closeAllConnections();
      await new Promise((resolve) => hung.close(resolve));
    }
  });

  it('/readyz turns 503, naming the database, when the app database goes away', async () => {
    const app = await startTestApp();
    try {
      expect((await readyz(app)).status).toBe(200);
      // A real outage of this app's database only: its connections are terminated and it no longer exists.
      await app.db.drop();
      const { status, body } = await readyz(app);
      expect(status).toBe(503);
      expect(body.status).toBe('not ready');
      expect(body.checks.storage).toBe('ok');
      expect(body.checks.database).toMatch(/does not exist/);
    } finally {
      await app.close();
    }
  });
});

describe('request ids', () => {
  it('every response carries x-request-id: generated, or the caller’s when it is safe to repeat', async () => {
    const ok = await call(t.baseUrl, 'GET', `/accounts/${acme.id}/ai/finetunes`, { token: acme.token });
    expect(ok.status).toBe(200);
    expect(ok.headers.get('x-request-id')).toMatch(/^[0-9a-f-]{36}$/);

    const denied = await call(t.baseUrl, 'GET', `/accounts/${acme.id}/ai/finetunes`);
    expect(denied.status).toBe(401);
    expect(denied.body.success).toBe(false);
    expect(denied.headers.get('x-request-id')).toMatch(/^[0-9a-f-]{36}$/);
    expect(denied.headers.get('x-request-id')).not.toBe(ok.headers.get('x-request-id'));

    const unrouted = await call(t.baseUrl, 'GET', '/nowhere', { headers: { 'x-request-id': 'trace-42.a:b/c' } });
    expect(unrouted.status).toBe(404);
    expect(unrouted.headers.get('x-request-id')).toBe('trace-42.a:b/c');

    for (const unsafe of ['has space', 'x'.repeat(129), 'quote"d']) {
      const response = await call(t.baseUrl, 'GET', `/accounts/${acme.id}/ai/finetunes`, { token: acme.token, headers: { 'x-request-id': unsafe } });
      expect(response.headers.get('x-request-id')).toMatch(/^[0-9a-f-]{36}$/);
    }
  });
});

describe('/metrics', () => {
  it('is valid text format with latency by route pattern and status, upload bytes, adapter cache and requests in progress', async () => {
    const files = tiny.read('tiny-llama-qv');
    await readyFinetune(t, tiny, acme, TINY_LLAMA, 'qv');
    expect((await call(t.baseUrl, 'GET', `/accounts/${acme.id}/ai/finetunes/missing`, { token: acme.token })).status).toBe(404);
    expect((await call(t.baseUrl, 'GET', `/accounts/${acme.id}/nowhere`, { token: acme.token })).status).toBe(404);
    // Two uses of the adapter: the first converts it, the second finds it converted (prompts differ: no response cache).
    const runs = [
      await run(t, acme, TINY_LLAMA, { prompt: 'one', max_tokens: 2, lora: 'qv' }),
      await run(t, acme, TINY_LLAMA, { prompt: 'two', max_tokens: 2, lora: 'qv' }),
    ];
    expect(runs.map((r) => r.status)).toEqual([200, 200]);
    const tokens = (kind: 'prompt' | 'completion') => runs.reduce((sum, r) => sum + r.body.result.usage[`${kind}_tokens`], 0);

    // A stream in progress, and a request queued behind it: the stream's headers carry the request id, and the scrape sees both.
    const stream = new AbortController();
    const streamed = await runRaw(t, acme, SINGLE, { prompt: 'x', max_tokens: 2000, temperature: 0, stream: true }, stream.signal);
    expect(streamed.headers.get('content-type')).toBe('text/event-stream');
    expect(streamed.headers.get('x-request-id')).toMatch(/^[0-9a-f-]{36}$/);
    await streamed.body!.getReader().read();
    const queued = run(t, acme, SINGLE, { prompt: 'queued', max_tokens: 2 });
    while ((await queuedRequests(t, SINGLE)) === 0) await new Promise((resolve) => setTimeout(resolve, 10));
    const during = await scrape(t);
    stream.abort();
    expect((await queued).status).toBe(200);
    await idle(t, SINGLE);
    expect(sampleValue(during, 'inference_active_requests', { model: SINGLE })).toBe(1);
    expect(sampleValue(during, 'inference_queue_depth', { model: SINGLE })).toBe(1);

    const metrics = await scrape(t);
    expect(metrics.get('http_request_duration_seconds')?.type).toBe('histogram');
    const count = (route: string, method: string, status: string) =>
      sampleValue(metrics, 'http_request_duration_seconds_count', { route, method, status });
    expect(count(FINETUNES_ROUTE, 'POST', '200')).toBe(1);
    expect(count(`${FINETUNES_ROUTE}/:id_or_name`, 'GET', '404')).toBe(1);
    expect(count(`${FINETUNES_ROUTE}/:id_or_name/finetune-assets`, 'POST', '200')).toBe(2);
    expect(count('/client/v4/accounts/:account_id/ai/run/*', 'POST', '200')).toBe(4);
    expect(count('unmatched', 'GET', '404')).toBeGreaterThanOrEqual(1);
    // Labels are route patterns: no series per account, finetune or URL.
    const routes = metrics.get('http_request_duration_seconds')!.samples.map((s) => s.labels.route);
    expect(routes.filter((route) => route.includes(acme.id) || route.includes('missing') || route.includes('nowhere'))).toEqual([]);

    expect(sampleValue(metrics, 'adapter_upload_bytes_total', { file_name: 'adapter_config.json' })).toBe(files.config.length);
    expect(sampleValue(metrics, 'adapter_upload_bytes_total', { file_name: 'adapter_model.safetensors' })).toBe(files.safetensors.length);
    expect(sampleValue(metrics, 'adapter_cache_misses_total', { model: TINY_LLAMA })).toBe(1);
    expect(sampleValue(metrics, 'adapter_cache_hits_total', { model: TINY_LLAMA })).toBe(1);
    expect(sampleValue(metrics, 'inference_active_requests', { model: SINGLE })).toBe(0);
    expect(sampleValue(metrics, 'inference_queue_depth', { model: SINGLE })).toBe(0);
    expect(sampleValue(metrics, 'inference_tokens_total', { model: TINY_LLAMA, kind: 'prompt' })).toBe(tokens('prompt'));
    expect(sampleValue(metrics, 'inference_tokens_total', { model: TINY_LLAMA, kind: 'completion' })).toBe(tokens('completion'));
    expect(sampleValue(metrics, 'inference_generation_duration_seconds_count', { model: TINY_LLAMA })).toBe(2);
    // The aborted stream's tokens count too: the engine did that work.
    expect(sampleValue(metrics, 'inference_tokens_total', { model: SINGLE, kind: 'completion' })).toBeGreaterThan(0);
    expect(sampleValue(metrics, 'process_cpu_seconds_total')).toBeGreaterThan(0);
  });
});

describe('event-loop delay', () => {
  it('nodejs_eventloop_max_delay_seconds counts the seconds in which the loop stalled, so a window can be checked', async () => {
    expect((await scrape(t)).get('nodejs_eventloop_max_delay_seconds')?.type).toBe('histogram');
    // The app runs in this process: blocking it here stalls the app's loop.
    const block = (ms: number) => {
      const end = performance.now() + ms;
      while (performance.now() < end);
    };
    expect(await eventLoopStalls(t, '0.25', () => block(600))).toBeGreaterThanOrEqual(1);
    // A stall shorter than the bound does not count over it.
    expect(await eventLoopStalls(t, '1', () => block(300))).toBe(0);
  });
});
