/**
 * Soak test (not part of the default suite): lora-hub's live heap must stay flat under sustained load.
 *
 *   npm run soak -- [--requests N] [--bound-mib B] [--connections C]
 *
 * Starts the zero-work vLLM-compatible upstream and lora-hub as users do (`node dist/main.js`, which `npm run soak`
 * builds when stale; PostgreSQL on 127.0.0.1:5432), as bench/gateway.ts does, then sends N requests (default 100,000) at C in
 * flight (default 32), in turns over the three routes (`/ai/run` without and with `lora`, `/v1/chat/completions`,
 * plus streamed runs). It reads the heap used after a full GC (bench/heap-probe.mjs) after a warm-up and after
 * every quarter, prints them, and exits 1 when the last is more than B MiB (default 2) above the warm-up's: at the
 * ~35 bytes per request the service once kept, 100,000 requests grow it by 3.3 MiB; noise is about 1 MiB.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { BENCH_MODEL, load, startHub, startUpstream, type Target } from './gateway.js';

function parseArgs(argv: string[]): { requests: number; boundMib: number; connections: number } {
  const values: Record<string, number> = { '--requests': 100_000, '--bound-mib': 2, '--connections': 32 };
  for (let i = 0; i < argv.length; i++) {
    const [flag, inline] = argv[i]!.includes('=') ? argv[i]!.split('=', 2) : [argv[i]!, undefined];
    if (!(flag! in values)) throw new Error(`unknown argument ${argv[i]}; usage: bench/soak.ts [--requests N] [--bound-mib B] [--connections C]`);
    const value = Number(inline ?? argv[++i]);
    if (!(value > 0)) throw new Error(`${flag} needs a positive number`);
    values[flag!] = value;
  }
  return { requests: values['--requests']!, boundMib: values['--bound-mib']!, connections: values['--connections']! };
}

const mib = (bytes: number) => (bytes / 1024 / 1024).toFixed(2);

async function main(): Promise<number> {
  const options = parseArgs(process.argv.slice(2));
  const dir = await mkdtemp(join(tmpdir(), 'soak-'));
  const upstream = await startUpstream(join(dir, 'upstream.log'));
  try {
    const hub = await startHub(upstream.port, dir);
    try {
      const messages = [{ role: 'user', content: 'Say ok.' }];
      const headers = { authorization: `Bearer ${hub.token}` };
      const runUrl = `${hub.url}/client/v4/accounts/${hub.accountId}/ai/run/${BENCH_MODEL}`;
      const targets: Target[] = [
        { name: 'run', url: runUrl, headers, body: JSON.stringify({ messages, max_tokens: 16 }) },
        { name: 'run+lora', url: runUrl, headers, body: JSON.stringify({ messages, max_tokens: 16, lora: 'bench' }) },
        { name: 'chat', url: `${hub.url}/v1/chat/completions`, headers, body: JSON.stringify({ model: BENCH_MODEL, messages, max_tokens: 16 }) },
        { name: 'run stream', url: runUrl, headers, body: JSON.stringify({ messages, max_tokens: 16, stream: true }) },
      ];
      // Bounded by count, not time: a slice per target, in turns, so every route is exercised all along.
      const slice = 2500;
      let sent = 0;
      const send = async (count: number) => {
        for (let done = 0; done < count; done += slice) {
          const target = targets[(sent / slice) % targets.length]!;
          const measured = await load(target, options.connections, { amount: Math.min(slice, count - done) });
          if (measured.failures > 0) throw new Error(`${target.name}: ${measured.failures} failed requests (${JSON.stringify(measured.statuses)})`);
          sent += slice;
        }
      };
      await send(10_000);
      const baseline = await hub.started.heap();
      console.log(`after a 10,000-request warm-up: heap ${mib(baseline)} MiB after GC`);
      let last = baseline;
      const quarter = Math.ceil(options.requests / 4 / slice) * slice;
      for (let done = 0; done < options.requests; done += quarter) {
        const started = performance.now();
        await send(Math.min(quarter, options.requests - done));
        last = await hub.started.heap();
        const rate = Math.min(quarter, options.requests - done) / ((performance.now() - started) / 1000);
        console.log(`${(done + Math.min(quarter, options.requests - done)).toLocaleString('en-US')} requests: heap ${mib(last)} MiB (${Math.round(rate)} req/s)`);
      }
      const growth = last - baseline;
      const verdict = growth > options.boundMib * 1024 * 1024 ? 'FAIL' : 'ok';
      console.log(
        `${verdict}: heap grew ${mib(growth)} MiB over ${options.requests.toLocaleString('en-US')} requests ` +
          `(${(growth / options.requests).toFixed(1)} bytes per request; bound ${options.boundMib} MiB)`,
      );
      return verdict === 'ok' ? 0 : 1;
    } finally {
      await hub.cleanup();
    }
  } finally {
    await upstream.started.stop();
    await rm(dir, { recursive: true, force: true });
  }
}

try {
  process.exit(await main());
} catch (error) {
  console.error(error);
  process.exit(1);
}
