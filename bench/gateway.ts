/**
 * Gateway benchmark: lora-hub against the Portkey gateway, both in front of the same zero-work vLLM-compatible
 * upstream (bench/zero-upstream.ts), under the same load, in one run.
 *
 *   npm run bench:gateway -- [--rounds R] [--seconds S] [--workers N]
 *
 *   --rounds R    interleaved rounds (default 3); each round runs every target at c=1, c=8 and c=32, the targets in
 *                 a rotating order, so all of them share the machine's state alike
 *   --seconds S   seconds per target and level in a round (default 2)
 *   --workers N   start lora-hub with WORKERS=N (default 1)
 *
 * Processes (each its own, so none shares an event loop with another): the upstream; lora-hub started as users do,
 * `node dist/main.js` (`npm run bench:gateway` builds it when stale) on a fresh PostgreSQL database (127.0.0.1:5432, trust auth) with a
 * MODELS_FILE whose vLLM model points at the upstream (no rate limit, 64 concurrent generations, no response cache);
 * the Portkey gateway (`@portkey-ai/gateway`'s node server) routed to the upstream with its custom-host headers;
 * the load generator (autocannon, in this process). Both gateways run with `--expose-gc --import
 * bench/heap-probe.mjs`, which answers SIGWINCH with the heap used after a full GC. BENCH_MAIN=<path> runs another
 * build of lora-hub instead of dist/main.js (an older one, to compare).
 *
 * Targets: `upstream` (the upstream's own /v1/chat/completions: the baseline), `floor` (bench/floor-proxy.ts: Fastify
 * and an undici Pool forwarding the run body, nothing else: the stack's own cost), `portkey` (its /v1/chat/completions),
 * and lora-hub's three routes: `run` (POST /client/v4/accounts/{id}/ai/run/{model}), `run+lora` (the same with
 * `lora`: a finetune uploaded through the API) and `chat` (/v1/chat/completions). Same messages in every body.
 *
 * Printed per target: added latency at c=1 (the target's p50/p99 minus the upstream's in the same round, median over
 * rounds), requests/s at c=8 and c=32 (median over rounds), the gateway process's CPU time per request over the
 * c=32 runs (from /proc, all its processes), the heap after GC before and after the rounds; then the ratios against
 * Portkey, and what each route adds above the floor. No thresholds: on a shared machine only ratios measured in the same run mean anything.
 */
import autocannon from 'autocannon';
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { openSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import pg from 'pg';
import { buildTinyModel, TINY_MODELS } from '../src/demo/tiny-model.js';
import { writeTinyModels } from '../src/demo/tiny-model-files.js';

const ROOT = resolve(fileURLToPath(import.meta.url), '..', '..');
const ADMIN_DATABASE_URL = process.env.BENCH_DATABASE_URL ?? 'postgresql://postgres@127.0.0.1:5432/postgres';
const ADMIN_TOKEN = 'bench-admin-token-0123456789';
export const BENCH_MODEL = '@cf/bench/zero-vllm-lora';
const LEVELS = [1, 8, 32] as const;
const TICKS_PER_SECOND = 100;
const MESSAGES = [
  { role: 'system', content: 'You are a helpful assistant.' },
  { role: 'user', content: 'Say ok.' },
];

interface Options {
  rounds: number;
  seconds: number;
  workers: number;
}

function parseArgs(argv: string[]): Options {
  const values: Record<string, number> = { '--rounds': 3, '--seconds': 2, '--workers': 1 };
  for (let i = 0; i < argv.length; i++) {
    const [flag, inline] = argv[i]!.includes('=') ? argv[i]!.split('=', 2) : [argv[i]!, undefined];
    if (!(flag! in values)) throw new Error(`unknown argument ${argv[i]}; usage: bench/gateway.ts [--rounds R] [--seconds S] [--workers N]`);
    const value = Number(inline ?? argv[++i]);
    if (!Number.isInteger(value) || value < 1) throw new Error(`${flag} needs an integer >= 1`);
    values[flag!] = value;
  }
  return { rounds: values['--rounds']!, seconds: values['--seconds']!, workers: values['--workers']! };
}

// ---------------------------------------------------------------------------------------------------------------
// Processes
// ---------------------------------------------------------------------------------------------------------------

export interface Started {
  child: ChildProcess;
  /** The heap used after a full GC, read through bench/heap-probe.mjs. */
  heap(): Promise<number>;
  stop(): Promise<void>;
}

/** Starts a node process with the heap probe, its stdout to `logFile` (a gateway's request log costs what it costs). */
export function startNode(args: string[], env: Record<string, string>, logFile: string, cwd = ROOT): Started {
  const out = openSync(logFile, 'a');
  const child = spawn(process.execPath, ['--expose-gc', '--import', join(ROOT, 'bench/heap-probe.mjs'), ...args], {
    cwd,
    env: { ...process.env, ...env },
    stdio: ['ignore', out, 'pipe'],
  });
  let stderr = '';
  const probes: ((bytes: number) => void)[] = [];
  child.stderr!.setEncoding('utf8').on('data', (text: string) => {
    for (const line of text.split('\n')) {
      const probe = /^heap-probe (\d+)$/.exec(line);
      if (probe) probes.shift()?.(Number(probe[1]));
      else if (line) stderr = (stderr + line + '\n').slice(-4000);
    }
  });
  const exited = new Promise<number | null>((done) => child.once('exit', (code) => done(code)));
  void exited.then((code) => {
    if (code !== 0 && code !== null && !stopping) console.error(`${args.join(' ')} exited ${code}:\n${stderr}`);
  });
  let stopping = false;
  return {
    child,
    heap: () =>
      new Promise<number>((done) => {
        probes.push(done);
        child.kill('SIGWINCH');
      }),
    stop: async () => {
      stopping = true;
      if (child.exitCode === null) child.kill('SIGTERM');
      await exited;
    },
  };
}

export async function waitFor(url: string, started: Started, timeoutMs = 60_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (started.child.exitCode !== null) throw new Error(`${url}: the process exited (${started.child.exitCode})`);
    const ok = await fetch(url).then((r) => r.status < 500, () => false);
    if (ok) return;
    await new Promise((r) => setTimeout(r, 200));
  }
  throw new Error(`${url} did not answer within ${timeoutMs} ms`);
}

export function startUpstream(logFile: string): Promise<{ port: number; started: Started }> {
  return startListening(join(ROOT, 'bench/zero-upstream.ts'), [], logFile);
}

/** Runs a bench script that prints `listening <port>` once it accepts connections. */
function startListening(script: string, args: string[], logFile: string): Promise<{ port: number; started: Started }> {
  const started = startNode(['--import', 'tsx', script, ...args], {}, logFile);
  return new Promise((done, fail) => {
    const timer = setInterval(async () => {
      const text = await readFile(logFile, 'utf8').catch(() => '');
      const match = /listening (\d+)/.exec(text);
      if (match) {
        clearInterval(timer);
        done({ port: Number(match[1]), started });
      } else if (started.child.exitCode !== null) {
        clearInterval(timer);
        fail(new Error(`${script} did not start`));
      }
    }, 100);
  });
}

/** Every process of a tree (a cluster primary and its workers). */
async function descendants(pid: number): Promise<number[]> {
  const all = [pid];
  const tasks = await readdir(`/proc/${pid}/task`).catch(() => [] as string[]);
  for (const task of tasks) {
    const children = await readFile(`/proc/${pid}/task/${task}/children`, 'utf8').catch(() => '');
    for (const child of children.split(' ').filter(Boolean)) all.push(...(await descendants(Number(child))));
  }
  return all;
}

/** User + system CPU seconds used so far by a process and its descendants. */
export async function cpuSeconds(pid: number): Promise<number> {
  let ticks = 0;
  for (const p of await descendants(pid)) {
    const stat = await readFile(`/proc/${p}/stat`, 'utf8').catch(() => '');
    // Fields after the command (which may hold spaces): state is field 3, utime 14, stime 15.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    ticks += Number(fields[11] ?? 0) + Number(fields[12] ?? 0);
  }
  return ticks / TICKS_PER_SECOND;
}

// ---------------------------------------------------------------------------------------------------------------
// lora-hub setup
// ---------------------------------------------------------------------------------------------------------------

export interface Hub {
  url: string;
  accountId: string;
  token: string;
  started: Started;
  cleanup(): Promise<void>;
}

async function api<T>(url: string, method: string, token: string, body?: unknown): Promise<T> {
  const init: RequestInit = { method, headers: { authorization: `Bearer ${token}` } };
  if (body instanceof FormData) init.body = body;
  else if (body !== undefined) {
    init.body = JSON.stringify(body);
    (init.headers as Record<string, string>)['content-type'] = 'application/json';
  }
  const response = await fetch(url, init);
  const text = await response.text();
  if (!response.ok) throw new Error(`${method} ${url}: ${response.status} ${text}`);
  return (JSON.parse(text) as { result: T }).result;
}

/** `node dist/main.js` on a fresh database, with a vLLM model on `upstreamPort`, an account and a ready finetune `bench`. */
export async function startHub(upstreamPort: number, dir: string, extraEnv: Record<string, string> = {}, nodeArgs: string[] = []): Promise<Hub> {
  const tiny = await writeTinyModels(join(dir, 'tiny'));
  const entries = JSON.parse(await readFile(tiny.modelsFile, 'utf8')) as object[];
  entries.push({
    name: BENCH_MODEL,
    architecture: buildTinyModel(TINY_MODELS[0]!.spec).architecture,
    lora: true,
    engine: { type: 'vllm', base_url: `http://127.0.0.1:${upstreamPort}`, served_model: 'zero', adapter_dir: join(dir, 'adapters') },
    limits: { max_requests_per_min: null, max_concurrent_requests: 64 },
    response_cache: false,
  });
  const modelsFile = join(dir, 'models.json');
  await writeFile(modelsFile, JSON.stringify(entries));

  const database = `lora_bench_${randomBytes(6).toString('hex')}`;
  const admin = async (sql: string) => {
    const client = new pg.Client({ connectionString: ADMIN_DATABASE_URL });
    await client.connect();
    try {
      await client.query(sql);
    } finally {
      await client.end();
    }
  };
  await admin(`CREATE DATABASE "${database}"`);
  const databaseUrl = new URL(ADMIN_DATABASE_URL);
  databaseUrl.pathname = `/${database}`;

  const port = 20_000 + Math.floor(Math.random() * 20_000);
  const started = startNode(
    [...nodeArgs, process.env.BENCH_MAIN ?? join(ROOT, 'dist/main.js')],
    {
      PORT: String(port),
      DATABASE_URL: databaseUrl.toString(),
      ADMIN_TOKEN,
      MODELS_FILE: modelsFile,
      DATA_DIR: join(dir, 'data'),
      CACHE_DIR: join(dir, 'cache'),
      ...extraEnv,
    },
    join(dir, 'lora-hub.log'),
  );
  const url = `http://127.0.0.1:${port}`;
  const cleanup = async () => {
    await started.stop();
    await admin(`DROP DATABASE IF EXISTS "${database}" WITH (FORCE)`);
  };
  try {
    await waitFor(`${url}/healthz`, started);
    const account = await api<{ id: string }>(`${url}/client/v4/admin/accounts`, 'POST', ADMIN_TOKEN, { name: 'bench' });
    const { value: token } = await api<{ value: string }>(`${url}/client/v4/admin/accounts/${account.id}/tokens`, 'POST', ADMIN_TOKEN, { name: 'bench' });
    const base = `${url}/client/v4/accounts/${account.id}/ai/finetunes`;
    await api(base, 'POST', token, { model: BENCH_MODEL, name: 'bench' });
    for (const file of ['adapter_config.json', 'adapter_model.safetensors']) {
      const form = new FormData();
      form.append('file_name', file);
      form.append('file', new Blob([await readFile(join(tiny.adapters['tiny-llama-qv']!, file))]), file);
      await api(`${base}/bench/finetune-assets`, 'POST', token, form);
    }
    return { url, accountId: account.id, token, started, cleanup };
  } catch (error) {
    await cleanup();
    throw error;
  }
}

// ---------------------------------------------------------------------------------------------------------------
// Load
// ---------------------------------------------------------------------------------------------------------------

export interface Target {
  name: string;
  url: string;
  headers: Record<string, string>;
  body: string;
  /** The gateway process whose CPU is counted (none for the upstream baseline). */
  pid?: number;
}

export interface Measured {
  requests: number;
  seconds: number;
  /** Per-request latencies in ms (autocannon's own, hrtime-based). */
  latencies: number[];
  failures: number;
  /** Answers by status code. */
  statuses: Record<string, { count: number }>;
  cpu: number;
}

/** Load at `connections` in flight for `limit` seconds, or until `limit.amount` requests are answered. */
export function load(target: Target, connections: number, limit: number | { amount: number }): Promise<Measured> {
  return new Promise((done, fail) => {
    const latencies: number[] = [];
    let cpuBefore = 0;
    const begin = async () => {
      if (target.pid) cpuBefore = await cpuSeconds(target.pid);
      const instance = autocannon(
        { url: target.url, method: 'POST', headers: { 'content-type': 'application/json', ...target.headers }, body: target.body, connections, ...(typeof limit === 'number' ? { duration: limit } : limit) },
        (error, result) => {
          if (error) return fail(error);
          void (async () => {
            const cpu = target.pid ? (await cpuSeconds(target.pid)) - cpuBefore : 0;
            const failures = result.errors + result.timeouts + result.non2xx;
            done({ requests: result.requests.total, seconds: result.duration, latencies, failures, statuses: result.statusCodeStats, cpu });
          })();
        },
      );
      (instance as unknown as { once(e: string, l: (error: Error) => void): void }).once('reqError', (error) => console.error(`${target.name}: ${error}`));
      instance.on('response', (_client, status, _bytes, ms) => {
        if (status === 200) latencies.push(ms);
      });
    };
    void begin();
  });
}

export function percentile(values: number[], p: number): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))] ?? NaN;
}

const median = (values: number[]) => percentile(values, 50);
const fmt = (value: number, digits = 2) => (Number.isFinite(value) ? value.toFixed(digits) : 'n/a');
const mib = (bytes: number) => `${(bytes / 1024 / 1024).toFixed(1)} MiB`;

// ---------------------------------------------------------------------------------------------------------------
// The benchmark
// ---------------------------------------------------------------------------------------------------------------

async function main(): Promise<void> {
  const options = parseArgs(process.argv.slice(2));
  const dir = await mkdtemp(join(tmpdir(), 'bench-gateway-'));
  const cleanups: (() => Promise<unknown>)[] = [() => rm(dir, { recursive: true, force: true })];
  try {
    const upstream = await startUpstream(join(dir, 'upstream.log'));
    cleanups.push(() => upstream.started.stop());
    const upstreamUrl = `http://127.0.0.1:${upstream.port}`;

    const hub = await startHub(upstream.port, dir, { WORKERS: String(options.workers) });
    cleanups.push(() => hub.cleanup());

    const floor = await startListening(join(ROOT, 'bench/floor-proxy.ts'), [String(upstream.port)], join(dir, 'floor.log'));
    cleanups.push(() => floor.started.stop());

    const portkeyPort = 20_000 + Math.floor(Math.random() * 20_000);
    const portkey = startNode(
      [join(ROOT, 'node_modules/@portkey-ai/gateway/build/start-server.js'), `--port=${portkeyPort}`, '--headless'],
      {},
      join(dir, 'portkey.log'),
    );
    cleanups.push(() => portkey.stop());
    const portkeyUrl = `http://127.0.0.1:${portkeyPort}`;
    await waitFor(`${portkeyUrl}/`, portkey);

    const chatBody = (model: string) => JSON.stringify({ model, messages: MESSAGES, max_tokens: 16 });
    const runBody = (lora?: string) => JSON.stringify({ messages: MESSAGES, max_tokens: 16, ...(lora && { lora }) });
    const bearer = { authorization: `Bearer ${hub.token}` };
    const runUrl = `${hub.url}/client/v4/accounts/${hub.accountId}/ai/run/${BENCH_MODEL}`;
    const targets: Target[] = [
      { name: 'upstream', url: `${upstreamUrl}/v1/chat/completions`, headers: {}, body: chatBody('zero') },
      {
        name: 'portkey',
        url: `${portkeyUrl}/v1/chat/completions`,
        headers: { authorization: 'Bearer unused', 'x-portkey-provider': 'openai', 'x-portkey-custom-host': `${upstreamUrl}/v1` },
        body: chatBody('zero'),
        pid: portkey.child.pid,
      },
      { name: 'floor', url: `http://127.0.0.1:${floor.port}/run`, headers: {}, body: runBody(), pid: floor.started.child.pid },
      { name: 'run', url: runUrl, headers: bearer, body: runBody(), pid: hub.started.child.pid },
      { name: 'run+lora', url: runUrl, headers: bearer, body: runBody('bench'), pid: hub.started.child.pid },
      { name: 'chat', url: `${hub.url}/v1/chat/completions`, headers: bearer, body: chatBody(BENCH_MODEL), pid: hub.started.child.pid },
    ];

    // Each target answers correctly before anything is timed.
    for (const target of targets) {
      const response = await fetch(target.url, { method: 'POST', headers: { 'content-type': 'application/json', ...target.headers }, body: target.body });
      const text = await response.text();
      if (response.status !== 200 || !text.includes('"ok"')) throw new Error(`${target.name}: ${response.status} ${text}`);
    }
    console.log(`warming up (${targets.length} targets, 2 s each at c=8)...`);
    for (const target of targets) await load(target, 8, 2);
    const heapBefore = { hub: await hub.started.heap(), portkey: await portkey.heap(), floor: await floor.started.heap() };

    type Key = `${string}@${number}`;
    const runs = new Map<Key, Measured[]>();
    for (let round = 0; round < options.rounds; round++) {
      for (const level of LEVELS) {
        for (let k = 0; k < targets.length; k++) {
          const target = targets[(round + k) % targets.length]!;
          const measured = await load(target, level, options.seconds);
          if (measured.failures > 0) throw new Error(`${target.name} at c=${level}: ${measured.failures} failed requests (${JSON.stringify(measured.statuses)})`);
          const key: Key = `${target.name}@${level}`;
          runs.set(key, [...(runs.get(key) ?? []), measured]);
        }
      }
      console.log(`round ${round + 1}/${options.rounds} done`);
    }
    const heapAfter = { hub: await hub.started.heap(), portkey: await portkey.heap(), floor: await floor.started.heap() };

    const rps = (name: string, level: number) => median(runs.get(`${name}@${level}`)!.map((m) => m.requests / m.seconds));
    const added = (name: string, p: number) =>
      median(runs.get(`${name}@1`)!.map((m, i) => percentile(m.latencies, p) - percentile(runs.get(`upstream@1`)![i]!.latencies, p)));
    const cpuPerRequest = (name: string) => {
      const all = runs.get(`${name}@32`)!;
      return (all.reduce((s, m) => s + m.cpu, 0) / all.reduce((s, m) => s + m.requests, 0)) * 1e6;
    };

    console.log('');
    console.log(`gateway benchmark: ${options.rounds} interleaved rounds of ${options.seconds} s per target and level; lora-hub WORKERS=${options.workers}`);
    console.log(`upstream alone: p50 ${fmt(percentile(runs.get('upstream@1')!.flatMap((m) => m.latencies), 50), 3)} ms at c=1, ${Math.round(rps('upstream', 32))} req/s at c=32`);
    console.log('target      added p50   added p99   req/s c=8   req/s c=32   CPU us/req   heap after GC before -> after');
    for (const target of targets.slice(1)) {
      const owner = target.name === 'portkey' || target.name === 'floor' ? target.name : 'hub';
      // With WORKERS the probe answers for the primary, which serves nothing.
      const heapText = owner === 'hub' && options.workers > 1 ? 'n/a (workers)' : `${mib(heapBefore[owner])} -> ${mib(heapAfter[owner])}`;
      console.log(
        `${target.name.padEnd(10)} ${`+${fmt(added(target.name, 50))} ms`.padStart(10)} ${`+${fmt(added(target.name, 99))} ms`.padStart(11)} ` +
          `${String(Math.round(rps(target.name, 8))).padStart(11)} ${String(Math.round(rps(target.name, 32))).padStart(12)} ` +
          `${String(Math.round(cpuPerRequest(target.name))).padStart(12)}   ${heapText}`,
      );
    }
    console.log('');
    console.log('against Portkey (same run, same upstream and load):');
    for (const name of ['run', 'run+lora', 'chat']) {
      console.log(
        `  ${name.padEnd(9)} req/s at c=32 x${fmt(rps(name, 32) / rps('portkey', 32))}, at c=8 x${fmt(rps(name, 8) / rps('portkey', 8))}; ` +
          `added p50 x${fmt(added(name, 50) / added('portkey', 50))}; CPU per request x${fmt(cpuPerRequest(name) / cpuPerRequest('portkey'))}`,
      );
    }
    console.log('above the floor (what lora-hub adds to Fastify and undici alone):');
    for (const name of ['run', 'run+lora', 'chat']) {
      console.log(
        `  ${name.padEnd(9)} added p50 +${fmt(added(name, 50) - added('floor', 50))} ms; ` +
          `CPU per request +${Math.round(cpuPerRequest(name) - cpuPerRequest('floor'))} us (x${fmt(cpuPerRequest(name) / cpuPerRequest('floor'))})`,
      );
    }
  } finally {
    for (const step of cleanups.reverse()) await step().catch((error: unknown) => console.error(`cleanup: ${String(error)}`));
  }
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  try {
    await main();
    process.exit(0);
  } catch (error) {
    console.error(error);
    process.exit(1);
  }
}
