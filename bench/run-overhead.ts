/**
 * Run-path overhead benchmark: the same run requests through the HTTP endpoint and directly against the engine, in
 * one process and one run, on a zero-work engine (bench/zero-engine.ts) so that only the service's own cost shows.
 *
 * Usage (from the repository root; needs only PostgreSQL on 127.0.0.1:5432 with trust auth):
 *
 *   npx tsx bench/run-overhead.ts [--requests N] [--concurrency C] [--throughput-requests M] [--warmup W]
 *
 *   --requests N              sequential requests per level and scenario for latency (default 2000)
 *   --concurrency C           requests in flight for throughput (default 8)
 *   --throughput-requests M   requests per throughput measurement over HTTP (default 2 x N); the in-process levels
 *                             repeat rounds of M until at least 0.5 s has passed, so their rate is not a blip
 *   --warmup W                untimed requests per level and scenario first (default 500: JIT, token and lora caches)
 *   --memoize-ajv             what-if: make Ajv#compile reuse the validator of an identical schema (keyed by its JSON).
 *                             src/inference/run-input.ts already compiles once per model input schema and branch, so
 *                             this should change nothing now; it stays as a check that no per-request compile is back.
 *   --skip-usage-records      what-if: UsageRecorder#record does nothing, so no usage batches are written (Prisma
 *                             createMany of up to 500 rows, every second): shows what recording usage costs.
 *
 * What it does: writes the tiny models (test/helpers/tiny.ts), starts s3rver in this process, a fresh database and
 * the service (as test/helpers/app.ts does), then replaces EngineRegistry.get for the tiny llama with a ZeroEngine
 * (monkeypatching the app's instance; src/ is untouched). It creates an account and a ready finetune (the tiny llama
 * sample adapter uploaded through the API), so `lora` resolution runs for real: the database on first use, then
 * AdapterResolver's 10 s cache. Two scenarios, the same body each time: `base` (no lora) and `lora` (lora by name).
 *
 * Levels, timed per request, interleaved request by request (rotating order) so they share the machine's state:
 *   engine   engine.generate() with the request RunService.prepare made once (the floor: the "direct" figure)
 *   service  RunService.prepare(account, model, body) + RunService.answer() (as RunController does): ajv, lora
 *            (AdapterResolver), template, ModelGates (context and rate limits, the concurrency slot), usage recording
 *   bare     a plain node:http server in this process: read body, JSON.parse, engine.generate, JSON.stringify; what
 *            loopback HTTP + the client cost with no framework at all (not part of the targets; a reference)
 *   http     POST /client/v4/accounts/{id}/ai/run/{model} over loopback, node:http keep-alive Agent
 * The HTTP client runs in this process, so its CPU time is inside the http (and bare) figures.
 *
 * Reported: p50/p99 per level, added latency = http percentile - engine percentile (targets: +<= 1 ms p50,
 * +<= 5 ms p99), the split of that between service logic and HTTP/framework, throughput at C in flight (http vs
 * engine, and service), and database queries issued per phase (counted by wrapping pg.Client#query). No thresholds
 * are asserted; absolute figures on a shared machine are noise. Also printed: event-loop delay, memory (heap after
 * gc with NODE_OPTIONS=--expose-gc), the pg pool state.
 *
 * Profile: node --cpu-prof --cpu-prof-dir=/tmp/prof --import tsx bench/run-overhead.ts
 */
import { rm } from 'node:fs/promises';
import { Agent, createServer, request as httpRequest, type IncomingMessage, type ServerResponse } from 'node:http';
import { availableParallelism, cpus } from 'node:os';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import pg from 'pg';
import { registerSwcLoader } from './swc-hook.js';
import { ZERO_TEXT, ZeroEngine } from './zero-engine.js';
import type { GenerationRequest } from '../src/inference/engine.js';

const ADMIN_DATABASE_URL = 'postgresql://postgres@127.0.0.1:5432/postgres';
const FINETUNE = 'bench-qv';
const LEVELS = ['engine', 'service', 'bare', 'http'] as const;
type Level = (typeof LEVELS)[number];
const MIN_DIRECT_SECONDS = 0.5;
const LOOP_RESOLUTION_MS = 10;
const YIELD_EVERY = 64;

interface Options {
  requests: number;
  concurrency: number;
  throughputRequests: number;
  warmup: number;
  memoizeAjv: boolean;
  skipUsageRecords: boolean;
}

function parseArgs(argv: string[]): Options {
  const usage = 'usage: npx tsx bench/run-overhead.ts [--requests N] [--concurrency C] [--throughput-requests M] [--warmup W] [--memoize-ajv] [--skip-usage-records]';
  const values: Record<string, number> = {};
  let memoizeAjv = false;
  let skipUsageRecords = false;
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    if (arg === '--memoize-ajv') {
      memoizeAjv = true;
      continue;
    }
    if (arg === '--skip-usage-records') {
      skipUsageRecords = true;
      continue;
    }
    const [flag, inline] = arg.includes('=') ? arg.split('=', 2) : [arg, undefined];
    if (!['--requests', '--concurrency', '--throughput-requests', '--warmup'].includes(flag!)) throw new Error(`unknown argument ${arg}; ${usage}`);
    const value = Number(inline ?? argv[++i]);
    const min = flag === '--warmup' ? 0 : 1;
    if (!Number.isInteger(value) || value < min) throw new Error(`${flag} needs an integer >= ${min}`);
    values[flag!] = value;
  }
  const requests = values['--requests'] ?? 2000;
  return {
    requests,
    concurrency: values['--concurrency'] ?? 8,
    throughputRequests: values['--throughput-requests'] ?? 2 * requests,
    warmup: values['--warmup'] ?? 500,
    memoizeAjv,
    skipUsageRecords,
  };
}

// ---------------------------------------------------------------------------------------------------------------
// Statistics and formatting
// ---------------------------------------------------------------------------------------------------------------

/** Nearest-rank percentile of an ascending array. */
function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))]!;
}

interface Stats {
  p50: number;
  p90: number;
  p99: number;
  max: number;
  mean: number;
}

function stats(samples: number[]): Stats {
  const sorted = [...samples].sort((a, b) => a - b);
  return {
    p50: percentile(sorted, 50),
    p90: percentile(sorted, 90),
    p99: percentile(sorted, 99),
    max: sorted.at(-1)!,
    mean: sorted.reduce((sum, v) => sum + v, 0) / sorted.length,
  };
}

const ms = (value: number) => (Math.abs(value) >= 10 ? value.toFixed(1) : value >= 0.1 || value <= -0.1 ? value.toFixed(2) : value.toFixed(3));
const signed = (value: number) => `${value >= 0 ? '+' : '-'}${ms(Math.abs(value))} ms`;
const rate = (value: number) => Math.round(value >= 10_000 ? Math.round(value / 1000) * 1000 : value >= 1000 ? Math.round(value / 10) * 10 : value).toLocaleString('en-US');

const mb = (bytes: number) => `${Math.round(bytes / 1_000_000)} MB`;
const gcAvailable = () => typeof (globalThis as { gc?: unknown }).gc === 'function';

/** rss and heap used, after a full gc when --expose-gc allows it. */
function memory(): { rss: number; heapUsed: number } {
  if (gcAvailable()) {
    (globalThis as unknown as { gc: () => void }).gc();
    (globalThis as unknown as { gc: () => void }).gc();
  }
  const { rss, heapUsed } = process.memoryUsage();
  return { rss, heapUsed };
}

// ---------------------------------------------------------------------------------------------------------------
// Database query counter: every query the app's driver adapter sends goes through pg.Client#query.
// ---------------------------------------------------------------------------------------------------------------

let queries = 0;
/** The pg pools (Prisma's driver adapter makes one), seen when they first hand out a client. */
const pools = new Set<pg.Pool>();
const poolState = () =>
  [...pools].map((p) => `total ${p.totalCount}, idle ${p.idleCount}, waiting ${p.waitingCount}`).join('; ') || 'no pool seen';
{
  const poolPrototype = pg.Pool.prototype as unknown as { connect: (...args: unknown[]) => unknown };
  const connect = poolPrototype.connect;
  poolPrototype.connect = function (this: pg.Pool, ...args: unknown[]) {
    pools.add(this);
    return connect.apply(this, args);
  };
  const prototype = pg.Client.prototype as unknown as { query: (...args: unknown[]) => unknown };
  const original = prototype.query;
  prototype.query = function (this: unknown, ...args: unknown[]) {
    queries += 1;
    return original.apply(this, args);
  };
}

// ---------------------------------------------------------------------------------------------------------------
// HTTP client (keep-alive, one request at a time per socket)
// ---------------------------------------------------------------------------------------------------------------

interface Target {
  agent: Agent;
  port: number;
  path: string;
  headers: Record<string, string | number>;
  body: Buffer;
}

function post(target: Target): Promise<void> {
  return new Promise((resolvePromise, reject) => {
    const req = httpRequest(
      { agent: target.agent, host: '127.0.0.1', port: target.port, method: 'POST', path: target.path, headers: target.headers },
      (res: IncomingMessage) => {
        const chunks: Buffer[] = [];
        res.on('data', (chunk: Buffer) => chunks.push(chunk));
        res.on('error', reject);
        res.on('end', () => {
          const text = Buffer.concat(chunks).toString('utf8');
          if (res.statusCode !== 200) return reject(new Error(`POST ${target.path}: ${res.statusCode} ${text}`));
          const parsed = JSON.parse(text) as { result?: { response?: string }; response?: string };
          if ((parsed.result?.response ?? parsed.response) !== ZERO_TEXT) return reject(new Error(`POST ${target.path}: unexpected answer ${text}`));
          resolvePromise();
        });
      },
    );
    req.on('error', reject);
    req.end(target.body);
  });
}

/** A framework-free reference server: read the body, parse it, call the engine, answer JSON. */
function startBareServer(engine: ZeroEngine, request: Omit<GenerationRequest, 'signal'>): Promise<{ port: number; close(): Promise<void> }> {
  const server = createServer((req: IncomingMessage, res: ServerResponse) => {
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    req.on('end', () => {
      JSON.parse(Buffer.concat(chunks).toString('utf8'));
      void engine.generate({ ...request, signal: new AbortController().signal }).then((result) => {
        const body = JSON.stringify({ response: result.text, usage: result.usage });
        res.writeHead(200, { 'content-type': 'application/json; charset=utf-8', 'content-length': Buffer.byteLength(body) });
        res.end(body);
      });
    });
  });
  server.keepAliveTimeout = 60_000;
  return new Promise((resolvePromise) => {
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as { port: number };
      resolvePromise({
        port,
        close: () => new Promise<void>((done) => {
          server.closeAllConnections();
          server.close(() => done());
        }),
      });
    });
  });
}

// ---------------------------------------------------------------------------------------------------------------
// The benchmark
// ---------------------------------------------------------------------------------------------------------------

async function main(): Promise<void> {
  const options = parseArgs(process.argv.slice(2));
  const cleanups: (() => Promise<unknown>)[] = [];
  const cleanup = async () => {
    for (const step of cleanups.reverse()) await step().catch((error) => console.error(`cleanup: ${error}`));
  };

  try {
    if (options.memoizeAjv) {
      // The same CommonJS module src/inference/run-input.ts gets, so the same prototype.
      const { Ajv } = await import('ajv');
      const prototype = Ajv.prototype as unknown as { compile: (schema: object, meta?: boolean) => unknown };
      const compile = prototype.compile;
      const byJson = new WeakMap<object, Map<string, unknown>>();
      prototype.compile = function (this: object, schema: object, meta?: boolean) {
        let cache = byJson.get(this);
        if (!cache) byJson.set(this, (cache = new Map()));
        const key = `${meta ?? ''}:${JSON.stringify(schema)}`;
        let validate = cache.get(key);
        if (!validate) cache.set(key, (validate = compile.call(this, schema, meta)));
        return validate;
      };
    }
    process.env.TEST_DATABASE_URL ??= ADMIN_DATABASE_URL;
    registerSwcLoader();
    const { ADMIN_TOKEN, call, createAccount } = await import('../test/helpers/app.js');
    const { createTestDatabase } = await import('../test/helpers/database.js');
    const { TINY_LLAMA, tinySetup } = await import('../test/helpers/tiny.js');
    const { upload } = await import('../test/helpers/uploads.js');
    const { createApp } = await import('../src/app.factory.js');
    const { loadConfig } = await import('../src/config/app-config.js');
    const { EngineRegistry } = await import('../src/inference/engine-registry.service.js');
    const { RunService } = await import('../src/inference/run.service.js');
    const { UsageRecorder } = await import('../src/usage/usage-recorder.service.js');
    const { default: S3rver } = await import('s3rver');
    const MODEL = TINY_LLAMA;

    // 1. Tiny models (the MODELS_FILE with the tiny llama, and its sample adapter), s3rver, database, service.
    const tiny = await tinySetup();
    cleanups.push(() => rm(tiny.dir, { recursive: true, force: true }));
    const s3 = new S3rver({ port: 0, address: '127.0.0.1', silent: true, directory: `${tiny.dir}/s3rver` });
    const { port: s3port } = await s3.run();
    cleanups.push(() => s3.close());
    const db = await createTestDatabase();
    cleanups.push(() => db.drop());
    const app = await createApp(
      loadConfig({
        DATABASE_URL: db.url,
        ADMIN_TOKEN,
        S3_ENDPOINT: `http://127.0.0.1:${s3port}`,
        S3_BUCKET: 'bench-run-overhead',
        S3_ACCESS_KEY_ID: 'S3RVER',
        S3_SECRET_ACCESS_KEY: 'S3RVER',
        S3_FORCE_PATH_STYLE: 'true',
        S3_CREATE_BUCKET: 'true',
        MODELS_FILE: tiny.modelsFile,
        CACHE_DIR: `${tiny.dir}/cache`,
        LOG_LEVEL: 'error',
      }),
    );
    cleanups.push(() => app.close());
    await app.listen(0, '127.0.0.1');
    const { port } = app.getHttpServer().address() as { port: number };
    const baseUrl = `http://127.0.0.1:${port}/client/v4`;

    // 2. The zero-work engine in place of llama.cpp for the bench model.
    const engine = new ZeroEngine();
    const registry = app.get(EngineRegistry);
    const originalGet = registry.get.bind(registry);
    registry.get = (model) => (model.name === MODEL ? Promise.resolve(engine) : originalGet(model));
    const runs = app.get(RunService);
    if (options.skipUsageRecords) (app.get(UsageRecorder) as unknown as { record: () => void }).record = () => undefined;

    // 3. An account and a ready finetune (created and uploaded through the API, as test/e2e/inference/run.spec.ts).
    const account = await createAccount(baseUrl, 'bench');
    const created = await call<{ id: string }>(baseUrl, 'POST', `/accounts/${account.id}/ai/finetunes`, {
      token: account.token,
      body: { model: MODEL, name: FINETUNE },
    });
    if (created.status !== 200) throw new Error(`create finetune: ${created.status} ${JSON.stringify(created.body)}`);
    const files = tiny.read('tiny-llama-qv');
    for (const [name, content] of [['adapter_config.json', files.config], ['adapter_model.safetensors', files.safetensors]] as const) {
      const answer = await upload(baseUrl, account, FINETUNE, name, content);
      if (answer.status !== 200) throw new Error(`upload ${name}: ${answer.status} ${JSON.stringify(answer.body)}`);
    }

    const cpu = cpus()[0]?.model ?? 'unknown CPU';
    console.log(`node ${process.version}, ${availableParallelism()} CPU(s) (${cpu}); service at ${baseUrl}, model ${MODEL} on a zero-work engine`);
    console.log(
      `${options.requests} sequential requests per level and scenario after ${options.warmup} warm-up; ` +
        `throughput at ${options.concurrency} in flight (${options.throughputRequests} requests over HTTP)` +
        `${options.memoizeAjv ? '; WHAT-IF --memoize-ajv: Ajv#compile reuses validators of identical schemas' : ''}` +
        `${options.skipUsageRecords ? '; WHAT-IF --skip-usage-records: no usage recorded' : ''}`,
    );

    const scenarios = [
      // Sampled (temperature > 0, no seed), so the response cache, where a model has it on, never answers instead.
      { name: 'base', label: 'no lora', body: { prompt: 'hello world', max_tokens: 16, temperature: 0.7 } },
      { name: 'lora', label: `lora by name`, body: { prompt: 'hello world', max_tokens: 16, temperature: 0.7, lora: FINETUNE } },
    ];
    const summaries: string[] = [];

    for (const scenario of scenarios) {
      const memoryBefore = memory();
      const bodyText = JSON.stringify(scenario.body);
      const bodyBuffer = Buffer.from(bodyText);
      const preparing = performance.now();
      const prepared = await runs.prepare(account.id, MODEL, scenario.body).catch((error: unknown) => {
        throw new Error(`[${scenario.name}] first prepare failed after ${ms(performance.now() - preparing)} ms; pg pool: ${poolState()}`, { cause: error });
      });
      if (prepared.engine !== engine) throw new Error('the zero engine is not in place');
      if ((scenario.body as { lora?: string }).lora !== undefined && !prepared.request.adapter) throw new Error('lora did not resolve to an adapter');
      const engineRequest: GenerationRequest = { ...prepared.request, signal: new AbortController().signal };
      const bare = await startBareServer(engine, prepared.request);

      const agents: Agent[] = [];
      const target = (portNumber: number, path: string, headers: Record<string, string | number>, maxSockets: number): Target => {
        const agent = new Agent({ keepAlive: true, maxSockets, maxFreeSockets: maxSockets, keepAliveMsecs: 30_000 });
        agents.push(agent);
        return { agent, port: portNumber, path, headers: { ...headers, 'content-length': bodyBuffer.length }, body: bodyBuffer };
      };
      const runPath = `/client/v4/accounts/${account.id}/ai/run/${MODEL}`;
      const serviceHeaders = { authorization: `Bearer ${account.token}`, 'content-type': 'application/json' };
      const httpSeq = target(port, runPath, serviceHeaders, 1);
      const bareSeq = target(bare.port, '/', { 'content-type': 'application/json' }, 1);
      const httpPar = target(port, runPath, serviceHeaders, options.concurrency);

      const once_: Record<Level, () => Promise<unknown>> = {
        engine: () => engine.generate(engineRequest),
        service: async () => {
          // What RunController does for a non-streaming request.
          const p = await runs.prepare(account.id, MODEL, scenario.body);
          return runs.answer(p, new AbortController().signal);
        },
        bare: () => post(bareSeq),
        http: () => post(httpSeq),
      };

      // Warm-up: JIT, sockets, token cache, lora cache.
      for (let i = 0; i < options.warmup; i++) for (const level of LEVELS) await once_[level]();

      // Event-loop delay while requests are served (not during the in-process throughput runs, which by design
      // keep the loop busy with microtasks only).
      const loopDelay = monitorEventLoopDelay({ resolution: LOOP_RESOLUTION_MS });
      loopDelay.enable();
      // Latency: interleaved request by request, rotating the order.
      const samples: Record<Level, number[]> = { engine: [], service: [], bare: [], http: [] };
      const queriesBefore = queries;
      const callsBefore = engine.calls;
      for (let i = 0; i < options.requests; i++) {
        for (let k = 0; k < LEVELS.length; k++) {
          const level = LEVELS[(i + k) % LEVELS.length]!;
          const started = performance.now();
          await once_[level]();
          samples[level].push(performance.now() - started);
        }
      }
      const latencyQueries = queries - queriesBefore;
      if (engine.calls - callsBefore !== LEVELS.length * options.requests) throw new Error(`engine saw ${engine.calls - callsBefore} calls`);
      const s = Object.fromEntries(LEVELS.map((level) => [level, stats(samples[level])])) as Record<Level, Stats>;

      // Throughput: C workers sharing a budget of requests.
      // In-process work that never waits for I/O would hold the event loop for the whole run (and starve the app's
      // own timers and database connections), so the in-process levels let it turn every YIELD_EVERY requests.
      const throughput = async (work: () => Promise<unknown>, total: number, minSeconds = 0) => {
        let done = 0;
        const started = performance.now();
        do {
          let next = 0;
          await Promise.all(
            Array.from({ length: options.concurrency }, async () => {
              while (next < total) {
                next += 1;
                await work();
                if (minSeconds > 0 && next % YIELD_EVERY === 0) await new Promise((r) => setImmediate(r));
              }
            }),
          );
          done += total;
        } while ((performance.now() - started) / 1000 < minSeconds);
        return done / ((performance.now() - started) / 1000);
      };
      for (let i = 0; i < options.warmup; i++) await post(httpPar);
      const tpQueriesBefore = queries;
      const httpRate = await throughput(() => post(httpPar), options.throughputRequests);
      const tpQueries = queries - tpQueriesBefore;
      loopDelay.disable();
      const engineRate = await throughput(once_.engine, options.throughputRequests, MIN_DIRECT_SECONDS);
      const serviceRate = await throughput(once_.service, options.throughputRequests, MIN_DIRECT_SECONDS);

      for (const agent of agents) agent.destroy();
      await bare.close();

      console.log('');
      console.log(`[${scenario.name}] ${scenario.label}: ${bodyText}`);
      console.log(`  level      p50 ms    p90 ms    p99 ms    max ms   mean ms`);
      for (const level of LEVELS) {
        const x = s[level];
        console.log(`  ${level.padEnd(8)} ${[x.p50, x.p90, x.p99, x.max, x.mean].map((v) => ms(v).padStart(9)).join(' ')}`);
      }
      console.log(
        `  added (http - engine): ${signed(s.http.p50 - s.engine.p50)} p50, ${signed(s.http.p99 - s.engine.p99)} p99; ` +
          `of which service logic (service - engine) ${signed(s.service.p50 - s.engine.p50)} p50, ${signed(s.service.p99 - s.engine.p99)} p99; ` +
          `HTTP + Nest (http - service) ${signed(s.http.p50 - s.service.p50)} p50, ${signed(s.http.p99 - s.service.p99)} p99`,
      );
      console.log(`  reference: bare node:http + client over loopback (bare - engine) ${signed(s.bare.p50 - s.engine.p50)} p50, ${signed(s.bare.p99 - s.engine.p99)} p99`);
      console.log(
        `  throughput at ${options.concurrency} in flight: http ${rate(httpRate)} req/s, service ${rate(serviceRate)} req/s, engine ${rate(engineRate)} req/s; ` +
          `ratio http/engine ${(httpRate / engineRate).toPrecision(2)}, http/service ${(httpRate / serviceRate).toPrecision(2)}`,
      );
      console.log(
        `  database queries: ${latencyQueries} during the ${LEVELS.length * options.requests} latency requests, ` +
          `${tpQueries} during the ${options.throughputRequests} HTTP throughput requests; pg pool now: ${poolState()}`,
      );
      console.log(
        // The histogram holds whole timer intervals; what is beyond the interval is the delay.
        `  event-loop delay during the latency and HTTP throughput runs (beyond a ${LOOP_RESOLUTION_MS} ms timer): ` +
          `p50 ${ms(Math.max(0, loopDelay.percentile(50) / 1e6 - LOOP_RESOLUTION_MS))} ms, ` +
          `p99 ${ms(Math.max(0, loopDelay.percentile(99) / 1e6 - LOOP_RESOLUTION_MS))} ms, max ${ms(Math.max(0, loopDelay.max / 1e6 - LOOP_RESOLUTION_MS))} ms`,
      );
      const memoryAfter = memory();
      console.log(
        `  memory of this process across the scenario: rss ${mb(memoryBefore.rss)} -> ${mb(memoryAfter.rss)}, ` +
          `heap used ${mb(memoryBefore.heapUsed)} -> ${mb(memoryAfter.heapUsed)}${gcAvailable() ? ' (after gc)' : ' (run with NODE_OPTIONS=--expose-gc to gc first)'}`,
      );
      summaries.push(
        `run overhead (${scenario.label}): ${signed(s.http.p50 - s.engine.p50).replace(' ms', '')} ms p50, ${signed(s.http.p99 - s.engine.p99).replace(' ms', '')} ms p99; ` +
          `throughput ${rate(httpRate)} req/s over HTTP (direct ${rate(engineRate)} req/s)`,
      );
    }

    console.log('');
    const whatIf = [options.memoizeAjv && '--memoize-ajv', options.skipUsageRecords && '--skip-usage-records'].filter(Boolean).join(' ');
    console.log(`--- summary (targets: +<= 1 ms p50, +<= 5 ms p99)${whatIf ? ` WHAT-IF ${whatIf}, not the service as it is` : ''} ---`);
    for (const line of summaries) console.log(line);
  } finally {
    await cleanup();
  }
}

try {
  await main();
  process.exit(0);
} catch (error) {
  console.error(error);
  process.exit(1);
}
