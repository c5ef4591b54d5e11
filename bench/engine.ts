/**
 * The embedded llama.cpp engine against llama-server on the same model, adapters and threads.
 *
 * Usage (from the repository root):
 *
 *   LLAMA_SERVER=/path/to/llama-server npx tsx bench/engine.ts [--models DIR] [--tokens N] [--rounds R] [--threads 1,2]
 *
 *   --models DIR   where the random ~363 MiB llama and its four r=16 adapters are written once (default
 *                  $TMPDIR/lora-hub-bench-models); see bench/engine-models.ts
 *   --tokens N     tokens generated per request (default 64)
 *   --rounds R     rounds; each runs every scenario on every contender, interleaved (default 2; 0: only the cold
 *                  adapter and conversion lines)
 *   --threads L    thread counts to measure (default "1,2"): the engine and llama-server each run at every one
 *
 * LLAMA_SERVER is a llama-server binary built from the llama.cpp source node-llama-cpp ships
 * (node_modules/node-llama-cpp/llama/gitRelease.bundle, a git bundle: clone it and build the llama-server target
 * with cmake -DLLAMA_CURL=OFF). Without it only the engine is measured. llama-server gets the four converted
 * adapters at start (it cannot add one later) with scale 0, and each request enables its own.
 *
 * Scenarios: 1, 4 and 8 concurrent requests on one adapter, 8 on one adapter sent 50 ms apart (each arriving while
 * the others run), and 8 spread over the four adapters (two each); every request greedy (temperature 0) with its own
 * prompt. Reported per contender: tokens/s (all tokens generated over wall time), tokens per CPU second of the
 * process running the model (the engine's figure includes this script's own client work; on a shared machine it is
 * steadier than wall time), time to first token p50/p90, and the ratios engine / llama-server. Outputs at
 * temperature 0 are compared text for text (byte for byte) and by token count. Then a cold adapter: the first
 * request on an adapter never seen (conversion included) against a warm first token, and conversion of a 300 MB
 * adapter, streamed from its file, against a plain file copy of the same bytes, in wall time and in this process's
 * CPU time (steadier on a shared machine), with the peak memory in buffers and the longest event-loop delay while
 * converting, and the time this process takes to merely read and write the same bytes.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createReadStream, createWriteStream } from 'node:fs';
import { copyFile, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { monitorEventLoopDelay, performance } from 'node:perf_hooks';
import type { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { loadModels } from '../src/catalog/models-file.js';
import { convertPeftToGguf } from '../src/formats/lora-to-gguf.js';
import { buildPeftAdapter } from '../src/demo/peft-adapter.js';
import { parsePeftConfig } from '../src/formats/peft-config.js';
import { tinyModelCatalogEntry } from '../src/demo/tiny-model.js';
import type { AdapterFileSource, AdapterRef, GenerationRequest } from '../src/inference/engine.js';
import { LlamaCppEngine } from '../src/inference/engines/llama-cpp.engine.js';
import { benchModels, type BenchModels } from './engine-models.js';

const args = process.argv.slice(2);
const option = (name: string, fallback: string) => {
  const at = args.indexOf(`--${name}`);
  return at === -1 ? fallback : args[at + 1];
};
const MODELS_DIR = option('models', join(tmpdir(), 'lora-hub-bench-models'));
const TOKENS = Number(option('tokens', '64'));
const ROUNDS = Number(option('rounds', '2'));
const THREADS = option('threads', '1,2').split(',').map(Number);
const SERVER_BIN = process.env.LLAMA_SERVER;
const CONTEXT = 1024;

const PROMPTS = [
  'hello world, is the world ok?',
  'the world is ok, hello',
  'is it the hello of the world?',
  'of the world: hello',
  'what is the world of hello?',
  'hello hello world',
  'the other world is here',
  'is the world ok or is it not?',
];

interface Outcome {
  text: string;
  tokens: number;
  /** ms from sending the request to its first streamed text. */
  firstToken: number;
}
interface Scenario {
  name: string;
  /** Adapter index per request. */
  adapters: number[];
  /** ms between two requests' start (0: all at once). */
  gap?: number;
}
const SCENARIOS: Scenario[] = [
  { name: '1 on one adapter', adapters: [0] },
  { name: '4 on one adapter', adapters: [0, 0, 0, 0] },
  { name: '8 on one adapter', adapters: [0, 0, 0, 0, 0, 0, 0, 0] },
  { name: '8 on one adapter, 50 ms apart', adapters: [0, 0, 0, 0, 0, 0, 0, 0], gap: 50 },
  { name: '8 over four adapters', adapters: [0, 1, 2, 3, 0, 1, 2, 3] },
];

interface Contender {
  name: string;
  generate(prompt: string, adapter: number): Promise<Outcome>;
  /** CPU seconds used so far by whatever runs the model (this process for the engine, the server's process). */
  cpuSeconds(): Promise<number>;
  close(): Promise<void>;
}

const processCpuSeconds = () => {
  const { user, system } = process.cpuUsage();
  return (user + system) / 1e6;
};

/** utime + stime of a process, from /proc (Linux). */
async function childCpuSeconds(pid: number): Promise<number> {
  const fields = (await readFile(`/proc/${pid}/stat`, 'utf8')).split(') ')[1].split(' ');
  return (Number(fields[11]) + Number(fields[12])) / 100;
}

class DirFiles implements AdapterFileSource {
  async readToFile(key: string, path: string): Promise<void> {
    await copyFile(key, path);
  }

  async readStream(key: string): Promise<Readable> {
    return createReadStream(key);
  }
}

async function engineContender(models: BenchModels, threads: number, work: string): Promise<Contender & { engine: LlamaCppEngine }> {
  const modelsFile = join(work, `models-${threads}.json`);
  const entry = tinyModelCatalogEntry({ name: '@cf/bench/llama', description: 'bench', architecture: models.architecture, modelPath: models.modelPath });
  await writeFile(modelsFile, JSON.stringify([{ ...entry, engine: { ...entry.engine, threads, context_size: CONTEXT, parallel: 8 } }]));
  const model = loadModels(modelsFile).find((m) => m.name === '@cf/bench/llama')!;
  const cacheDir = join(work, `cache-${threads}`);
  // The converted GGUFs are put in the engine's cache, as after a first use.
  await mkdir(join(cacheDir, 'gguf'), { recursive: true });
  const refs: AdapterRef[] = [];
  for (const a of models.adapters) {
    await copyFile(a.gguf, join(cacheDir, 'gguf', `${a.name}.gguf`));
    refs.push({ finetuneId: a.name, version: a.name, configKey: join(a.dir, 'adapter_config.json'), weightsKey: join(a.dir, 'adapter_model.safetensors') });
  }
  const engine = await LlamaCppEngine.create({ model, files: new DirFiles(), cacheDir });
  return {
    name: `engine (${threads} thread${threads > 1 ? 's' : ''})`,
    engine,
    async generate(prompt, adapter) {
      const started = performance.now();
      let firstToken = 0;
      const request: GenerationRequest = {
        prompt,
        stop: [],
        maxTokens: TOKENS,
        sampling: { temperature: 0 },
        adapter: refs[adapter],
        signal: new AbortController().signal,
      };
      const result = await engine.generate(request, () => {
        firstToken ||= performance.now() - started;
      });
      return { text: result.text, tokens: result.usage.completion_tokens, firstToken };
    },
    cpuSeconds: async () => processCpuSeconds(),
    close: () => engine.close(),
  };
}

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as { port: number };
      server.close(() => resolve(port));
    });
    server.on('error', reject);
  });
}

async function serverContender(bin: string, models: BenchModels, threads: number): Promise<Contender> {
  const port = await freePort();
  const argv = ['-m', models.modelPath, '--port', String(port), '--host', '127.0.0.1', '-t', String(threads), '-tb', String(threads)];
  argv.push('-np', '8', '-c', String(CONTEXT * 8), '--lora-init-without-apply', '--no-warmup', '-fa', 'off');
  for (const a of models.adapters) argv.push('--lora', a.gguf);
  const child: ChildProcess = spawn(bin, argv, { stdio: ['ignore', 'ignore', 'pipe'] });
  let log = '';
  child.stderr!.on('data', (chunk: Buffer) => (log = (log + chunk.toString()).slice(-4000)));
  const base = `http://127.0.0.1:${port}`;
  for (let i = 0; ; i++) {
    const ok = await fetch(`${base}/health`).then((r) => r.ok, () => false);
    if (ok) break;
    if (i > 600 || child.exitCode !== null) throw new Error(`llama-server did not start:\n${log}`);
    await new Promise((r) => setTimeout(r, 100));
  }
  return {
    name: `llama-server (${threads} thread${threads > 1 ? 's' : ''})`,
    async generate(prompt, adapter) {
      const started = performance.now();
      const response = await fetch(`${base}/completion`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({
          prompt,
          n_predict: TOKENS,
          temperature: 0,
          stream: true,
          cache_prompt: false,
          lora: models.adapters.map((_, id) => ({ id, scale: id === adapter ? 1 : 0 })),
        }),
      });
      let firstToken = 0;
      let text = '';
      let tokens = 0;
      let buffered = '';
      const decoder = new TextDecoder();
      for await (const chunk of response.body!) {
        buffered += decoder.decode(chunk as Uint8Array, { stream: true });
        let end: number;
        while ((end = buffered.indexOf('\n\n')) !== -1) {
          const event = buffered.slice(0, end);
          buffered = buffered.slice(end + 2);
          if (!event.startsWith('data: ')) continue;
          const data = JSON.parse(event.slice(6)) as { content: string; stop: boolean; tokens_predicted?: number };
          if (data.content) {
            firstToken ||= performance.now() - started;
            text += data.content;
          }
          if (data.stop) tokens = data.tokens_predicted ?? tokens;
        }
      }
      return { text, tokens, firstToken };
    },
    cpuSeconds: () => childCpuSeconds(child.pid!),
    async close() {
      child.kill('SIGTERM');
      await new Promise((r) => child.once('exit', r));
    },
  };
}

interface Measure {
  tokensPerSecond: number;
  /** Tokens per CPU second of the model's process: what the work costs, whatever else the machine runs. */
  tokensPerCpuSecond: number;
  firstTokens: number[];
  outcomes: Outcome[];
}

async function measure(contender: Contender, scenario: Scenario): Promise<Measure> {
  const started = performance.now();
  const cpu = await contender.cpuSeconds();
  const outcomes = await Promise.all(
    scenario.adapters.map(async (a, i) => {
      if (scenario.gap) await new Promise((resolve) => setTimeout(resolve, i * scenario.gap!));
      return contender.generate(PROMPTS[i % PROMPTS.length], a);
    }),
  );
  const seconds = (performance.now() - started) / 1000;
  const tokens = outcomes.reduce((n, o) => n + o.tokens, 0);
  return {
    tokensPerSecond: tokens / seconds,
    tokensPerCpuSecond: tokens / ((await contender.cpuSeconds()) - cpu),
    firstTokens: outcomes.map((o) => o.firstToken),
    outcomes,
  };
}

const quantile = (values: number[], q: number) => {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.ceil(q * sorted.length) - 1)];
};
const median = (values: number[]) => quantile(values, 0.5);
const ms = (v: number) => `${v.toFixed(0)} ms`;

async function coldAdapter(contender: Contender & { engine: LlamaCppEngine }, models: BenchModels, work: string): Promise<string> {
  const lines: string[] = [];
  const warm: number[] = [];
  const cold: number[] = [];
  const source = models.adapters[0];
  // Five of each: on a shared machine a median of three still swings with the other load.
  for (let i = 0; i < 5; i++) {
    warm.push((await contender.generate(PROMPTS[0], 0)).firstToken);
    // A new version of the same files: streamed from storage (here files), converted and loaded on first use.
    const dir = join(work, `cold-${i}`);
    await mkdir(dir, { recursive: true });
    const ref: AdapterRef = { finetuneId: 'cold', version: `cold-${i}`, configKey: join(source.dir, 'adapter_config.json'), weightsKey: join(source.dir, 'adapter_model.safetensors') };
    const started = performance.now();
    let first = 0;
    await contender.engine.generate(
      { prompt: PROMPTS[0], stop: [], maxTokens: 4, sampling: { temperature: 0 }, adapter: ref, signal: new AbortController().signal },
      () => (first ||= performance.now() - started),
    );
    cold.push(first);
  }
  lines.push(`cold adapter: first token ${ms(median(cold))} vs warm ${ms(median(warm))}, ratio ${(median(cold) / median(warm)).toFixed(2)}`);

  // A 300 MB adapter (llama-2-7b shaped q/k/v/o at r=72, F32) converted vs the same bytes copied.
  const arch = { model_type: 'llama' as const, hidden_size: 4096, intermediate_size: 11008, num_hidden_layers: 32, num_attention_heads: 32, num_key_value_heads: 32, head_dim: 128, vocab_size: 32000 };
  const bigPath = join(work, 'big.safetensors');
  // Only the file is kept: the conversion must not find the adapter in memory.
  const { configJson, bytes } = await (async () => {
    const big = buildPeftAdapter({ architecture: arch, r: 72, loraAlpha: 16, targetModules: ['q_proj', 'k_proj', 'v_proj', 'o_proj'], dtype: 'F32', seed: 9 });
    await writeFile(bigPath, big.safetensors);
    return { configJson: big.configJson, bytes: big.safetensors.length };
  })();
  const { config } = parsePeftConfig(configJson, { architecture: arch, maxLoraRank: 128 });
  const convert: number[] = [];
  const copy: number[] = [];
  const cpu = { convert: [] as number[], convertUser: [] as number[], copy: [] as number[] };
  const stream: number[] = [];
  const buffers = { convert: [] as number[], stream: [] as number[] };
  const delays = { convert: [] as number[], copy: [] as number[], stream: [] as number[] };
  /**
   * Runs `work`, sampling every 10 ms the memory in ArrayBuffers (what buffers the process holds; RSS would hide it
   * behind the memory the 300 MB adapter's generation freed) and the event loop's delay (what the service's monitor
   * sees).
   */
  const observed = async (work: () => Promise<unknown>) => {
    const buffersBefore = process.memoryUsage().arrayBuffers;
    let peak = buffersBefore;
    const sampler = setInterval(() => (peak = Math.max(peak, process.memoryUsage().arrayBuffers)), 10);
    const delay = monitorEventLoopDelay({ resolution: 1 });
    delay.enable();
    const started = performance.now();
    const cpuBefore = process.cpuUsage();
    await work();
    const elapsed = performance.now() - started;
    const { user, system } = process.cpuUsage(cpuBefore);
    delay.disable();
    clearInterval(sampler);
    return { elapsed, cpu: (user + system) / 1000, user: user / 1000, buffers: peak - buffersBefore, maxDelay: delay.max / 1e6 };
  };
  const fileStream = () => createReadStream(bigPath, { highWaterMark: 1024 * 1024 });
  for (let i = 0; i < 3; i++) {
    const converted = await observed(() => convertPeftToGguf({ safetensors: fileStream(), config, architecture: arch }, join(work, 'big.gguf')));
    convert.push(converted.elapsed);
    cpu.convert.push(converted.cpu);
    cpu.convertUser.push(converted.user);
    buffers.convert.push(converted.buffers);
    delays.convert.push(converted.maxDelay);
    const copied = await observed(() => copyFile(bigPath, join(work, 'big-copy')));
    copy.push(copied.elapsed);
    cpu.copy.push(copied.cpu);
    delays.copy.push(copied.maxDelay);
    const streamed = await observed(() => pipeline(fileStream(), createWriteStream(join(work, 'big-stream'))));
    stream.push(streamed.elapsed);
    delays.stream.push(streamed.maxDelay);
    buffers.stream.push(streamed.buffers);
    for (const name of ['big.gguf', 'big-copy', 'big-stream']) await rm(join(work, name), { force: true });
  }
  const mb = bytes / 1e6;
  lines.push(`convert ${mb.toFixed(0)} MB adapter (read + convert + write): ${ms(median(convert))} vs copying the file ${ms(median(copy))}, ratio ${(median(convert) / median(copy)).toFixed(2)}`);
  lines.push(
    `  CPU time: ${ms(median(cpu.convert))} (user ${ms(median(cpu.convertUser))}) vs ${ms(median(cpu.copy))} for the copy, ratio ${(median(cpu.convert) / median(cpu.copy)).toFixed(2)}`,
  );
  const mbOf = (values: number[]) => `${(Math.max(...values) / 1e6).toFixed(0)} MB`;
  lines.push(
    `  streamed tensor by tensor: buffers peak +${mbOf(buffers.convert)}, longest event-loop delay ${ms(Math.max(...delays.convert))}; ` +
      `the file only read and written by this process: ${ms(median(stream))}, buffers +${mbOf(buffers.stream)}, ` +
      `longest delay ${ms(Math.max(...delays.stream))} (${ms(Math.max(...delays.copy))} during the copies)`,
  );
  return lines.join('\n');
}

async function main(): Promise<void> {
  const models = await benchModels(MODELS_DIR);
  const work = await mkdtemp(join(tmpdir(), 'bench-engine-'));
  const engines = [];
  /** llama-server at the same threads as each engine. */
  const peers = new Map<Contender, Contender>();
  for (const t of THREADS) {
    const engine = await engineContender(models, t, work);
    engines.push(engine);
    if (SERVER_BIN) peers.set(engine, await serverContender(SERVER_BIN, models, t));
  }
  const contenders: Contender[] = [...engines, ...peers.values()];
  console.log(`model ${models.modelPath}; ${TOKENS} tokens per request; ${ROUNDS} rounds; ${contenders.map((c) => c.name).join(', ')}`);

  // Warm-up: every adapter once on every contender.
  for (const c of contenders) for (let a = 0; a < models.adapters.length; a++) await c.generate(PROMPTS[0], a);

  const results = new Map<string, Measure[]>();
  for (let round = 0; round < ROUNDS; round++) {
    for (const scenario of SCENARIOS) {
      // Rotating order so no contender always runs first.
      const order = contenders.map((_, i) => contenders[(i + round) % contenders.length]);
      for (const c of order) {
        const key = `${scenario.name}|${c.name}`;
        results.set(key, [...(results.get(key) ?? []), await measure(c, scenario)]);
      }
    }
  }

  for (const scenario of ROUNDS > 0 ? SCENARIOS : []) {
    console.log(`\n${scenario.name}:`);
    const of = (c: Contender) => results.get(`${scenario.name}|${c.name}`)!;
    const rate = (c: Contender) => median(of(c).map((m) => m.tokensPerSecond));
    const cpuRate = (c: Contender) => median(of(c).map((m) => m.tokensPerCpuSecond));
    for (const c of contenders) {
      const first = of(c).flatMap((m) => m.firstTokens);
      const peer = peers.get(c);
      const ratio = (f: (c: Contender) => number) => (peer ? ` (${(f(c) / f(peer)).toFixed(2)}x llama-server)` : '');
      console.log(
        `  ${c.name.padEnd(26)} ${rate(c).toFixed(1).padStart(6)} tok/s${ratio(rate)}, ${cpuRate(c).toFixed(1)} tok/CPU-s${ratio(cpuRate)}; ` +
          `first token p50 ${ms(median(first))}, p90 ${ms(quantile(first, 0.9))}`,
      );
    }
    for (const [c, peer] of peers) {
      const mine = of(c).flatMap((m) => m.outcomes);
      const theirs = of(peer).flatMap((m) => m.outcomes);
      const same = mine.filter((o, i) => o.text === theirs[i].text && o.tokens === theirs[i].tokens).length;
      const differs = mine.findIndex((o, i) => o.text !== theirs[i].text);
      const where = differs === -1 ? '' : ` (first difference: request ${differs}, character ${[...mine[differs].text].findIndex((ch, k) => ch !== [...theirs[differs].text][k])})`;
      console.log(`  ${c.name}: ${same}/${mine.length} outputs identical to ${peer.name}'s, text and token count${where}`);
    }
  }

  console.log(`\n${await coldAdapter(engines.at(-1)!, models, work)}`);
  for (const c of contenders) await c.close();
  await rm(work, { recursive: true, force: true });
}

await main();
