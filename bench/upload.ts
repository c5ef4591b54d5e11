/**
 * Upload benchmark: a ~300 MB PEFT adapter through the service's finetune-assets endpoint versus the same bytes
 * sent straight to the same S3 bucket with @aws-sdk/lib-storage (same partSize/queueSize as ObjectStorage).
 *
 * Usage (from the repository root; needs only PostgreSQL on 127.0.0.1:5432 with trust auth):
 *
 *   npx tsx bench/upload.ts [--rounds N] [--client http|fetch|curl] [--s3rver-in-process]
 *   NODE_OPTIONS=--expose-gc npx tsx bench/upload.ts      # lets it run gc before each RSS baseline
 *
 *   --rounds N                 measured rounds (default 3); service and direct alternate, swapping order each round
 *   --client http|fetch|curl   how the multipart body is sent: a curl child process (default: the client's CPU and
 *                              memory stay out of the measured service process, as for a real client), node:http in
 *                              this process, or fetch in this process (holds the whole body in memory, see postFile)
 *   --s3rver-in-process        run s3rver inside the measured process (as the e2e tests do), not in a child process
 *
 * What it does: builds a valid llama-2-7b adapter (all 7 modules, 32 layers, F32, the largest rank <= max_lora_rank
 * that fits max_adapter_bytes) in a child process and writes it to a temp file, so the measured process never holds
 * it; starts s3rver (by default in a child process, like external storage: its CPU and memory stay out of the
 * measurement), a fresh database and the service in-process (as test/helpers/app.ts does). Each round uploads
 * adapter_config.json to a fresh finetune (untimed), then times adapter_model.safetensors streamed from disk in a
 * multipart body (see --client), and separately times a direct lib-storage Upload of the same file.
 *
 * Reported: median times, ratio service/direct (target <= 1.05), and the peak RSS growth of this process during the
 * service uploads (rss sampled every 20 ms, max minus the value just before; target <= 50 MB). With --client http or
 * fetch the HTTP client runs in this process too, so its memory and CPU are included. Per round it also prints where the service time went (ObjectStorage upload/delete, timed by
 * wrapping the app's ObjectStorage), the CPU time of this process and of the s3rver child. No thresholds are
 * asserted: absolute times on a shared machine are noise; the ratio is what matters.
 *
 * Node's TypeScript loader (tsx/esbuild) does not emit decorator metadata, which Nest's DI needs, so src/ and test/
 * are loaded through a module hook that compiles them with @swc/core using jest.config.js's settings (bench/swc-hook.ts).
 */
import { execFile, fork, type ChildProcess } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { createReadStream, openAsBlob } from 'node:fs';
import { request as httpRequest } from 'node:http';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { mkdir, mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { registerSwcLoader } from './swc-hook.js';

const SELF = fileURLToPath(import.meta.url);
const MODEL = '@cf/meta-llama/llama-2-7b-chat-hf-lora';
const ADMIN_DATABASE_URL = 'postgresql://postgres@127.0.0.1:5432/postgres';
// The service's ObjectStorage settings (src/storage/object-storage.ts: PART_SIZE, QUEUE_SIZE and client options).
const PART_SIZE = 5 * 1024 * 1024;
const QUEUE_SIZE = 2;
const S3_CLIENT_OPTIONS = {
  maxAttempts: 3,
  requestHandler: { connectionTimeout: 3_000, socketTimeout: 60_000 },
};
const RSS_SAMPLE_MS = 20;
const MB = 1_000_000;

interface BuiltAdapter {
  weightsPath: string;
  configPath: string;
  bytes: number;
  sha256: string;
  r: number;
  dtype: string;
  seconds: number;
}

// ---------------------------------------------------------------------------------------------------------------
// Child process modes
// ---------------------------------------------------------------------------------------------------------------

/** Child: builds the adapter in memory, writes it to `dir`, reports its size and hash, exits (freeing the memory). */
async function buildAdapterChild(dir: string): Promise<void> {
  const started = performance.now();
  const { BUILTIN_MODELS } = await import('../src/catalog/builtin-models.js');
  const { LORA_MODULES, moduleFeatures } = await import('../src/formats/architecture.js');
  const { buildPeftAdapter } = await import('../src/demo/peft-adapter.js');
  const model = BUILTIN_MODELS.find((m) => m.name === MODEL);
  if (!model?.architecture) throw new Error(`${MODEL} is not a built-in LoRA model with an architecture`);
  const arch = model.architecture;
  const limit = model.limits.max_adapter_bytes;
  const dtype = 'F32' as const;
  // Elements per unit of rank, over all layers and modules: A is [r, in], B is [out, r].
  const perRank = LORA_MODULES.reduce((sum, m) => sum + moduleFeatures(arch, m).in + moduleFeatures(arch, m).out, 0) * arch.num_hidden_layers;
  const headerAllowance = 100_000;
  let r = model.limits.max_lora_rank;
  while (r > 1 && perRank * r * 4 + headerAllowance > limit) r--;
  const { configJson, safetensors } = buildPeftAdapter({
    architecture: arch,
    r,
    loraAlpha: 2 * r,
    targetModules: [...LORA_MODULES],
    dtype,
    seed: 42,
  });
  if (safetensors.length > limit) throw new Error(`adapter is ${safetensors.length} bytes, over the ${limit} byte limit`);
  const weightsPath = join(dir, 'adapter_model.safetensors');
  const configPath = join(dir, 'adapter_config.json');
  await writeFile(weightsPath, safetensors);
  await writeFile(configPath, configJson);
  const built: BuiltAdapter = {
    weightsPath,
    configPath,
    bytes: safetensors.length,
    sha256: createHash('sha256').update(safetensors).digest('hex'),
    r,
    dtype,
    seconds: (performance.now() - started) / 1000,
  };
  process.send!(built);
}

/** Child (or in-process): an s3rver on a random port over `dir`, as test/setup/global-setup.ts starts it. */
async function startS3rver(dir: string): Promise<{ port: number; close(): Promise<void> }> {
  const { default: S3rver } = await import('s3rver');
  const server = new S3rver({ port: 0, address: '127.0.0.1', silent: true, directory: dir });
  const { port } = await server.run();
  return { port, close: () => server.close() };
}

async function s3rverChild(dir: string): Promise<void> {
  const server = await startS3rver(dir);
  const stop = async () => {
    await server.close().catch(() => undefined);
    process.exit(0);
  };
  process.on('message', (message) => {
    if (message === 'close') void stop();
  });
  process.on('disconnect', () => void stop());
  process.send!({ port: server.port });
}

/** Forks this script in `mode` and resolves with the first IPC message it sends. */
function forkSelf<T>(mode: string, arg: string): { child: ChildProcess; first: Promise<T> } {
  // fork() reuses process.execArgv, i.e. tsx's loader flags.
  const child = fork(SELF, [mode, arg], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
  const first = new Promise<T>((resolvePromise, reject) => {
    child.once('message', (message) => resolvePromise(message as T));
    child.once('exit', (code, signal) => reject(new Error(`${mode} child exited (${code ?? signal}) before reporting`)));
    child.once('error', reject);
  });
  return { child, first };
}

function waitForExit(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((resolvePromise) => child.once('exit', () => resolvePromise()));
}

// ---------------------------------------------------------------------------------------------------------------
// Measurement helpers
// ---------------------------------------------------------------------------------------------------------------

function gc(): void {
  const collect = (globalThis as { gc?: () => void }).gc;
  if (collect) {
    collect();
    collect();
  }
}

/** Samples rss every RSS_SAMPLE_MS; stop() returns the peak minus the baseline taken at start. */
function rssSampler(): { stop(): number } {
  const baseline = process.memoryUsage.rss();
  let peak = baseline;
  const timer = setInterval(() => {
    peak = Math.max(peak, process.memoryUsage.rss());
  }, RSS_SAMPLE_MS);
  return {
    stop() {
      clearInterval(timer);
      peak = Math.max(peak, process.memoryUsage.rss());
      return peak - baseline;
    },
  };
}

interface Measured {
  seconds: number;
  rssGrowth: number;
  cpuSeconds: number;
  /** CPU time of the s3rver child (Linux /proc), when it runs in one. */
  storageCpuSeconds?: number;
}

/** user + system CPU seconds of another process, from /proc/<pid>/stat (undefined where that is unavailable). */
async function processCpuSeconds(pid: number | undefined): Promise<number | undefined> {
  if (pid === undefined) return undefined;
  try {
    const text = await readFile(`/proc/${pid}/stat`, 'utf8');
    // Fields after the parenthesised command name; utime and stime are fields 14 and 15 (clock ticks, 100/s on Linux).
    const fields = text.slice(text.lastIndexOf(')') + 2).split(' ');
    return (Number(fields[11]) + Number(fields[12])) / 100;
  } catch {
    return undefined;
  }
}

let storagePid: number | undefined;

async function measure(work: () => Promise<void>): Promise<Measured> {
  gc();
  await new Promise((r) => setTimeout(r, 50));
  const storageCpu = await processCpuSeconds(storagePid);
  const cpu = process.cpuUsage();
  const sampler = rssSampler();
  const started = performance.now();
  let rssGrowth: number;
  try {
    await work();
  } finally {
    // Also clears the timer when work() fails.
    rssGrowth = sampler.stop();
  }
  const seconds = (performance.now() - started) / 1000;
  const used = process.cpuUsage(cpu);
  const storageCpuAfter = await processCpuSeconds(storagePid);
  const storageCpuSeconds = storageCpu !== undefined && storageCpuAfter !== undefined ? storageCpuAfter - storageCpu : undefined;
  return { seconds, rssGrowth, cpuSeconds: (used.user + used.system) / 1e6, storageCpuSeconds };
}

/**
 * POSTs a multipart form (the file_name field, then the file streamed from disk) with node:http. Not fetch: Node 20's
 * fetch (undici 6) keeps the whole request body in memory (nodejs/undici#4058), FormData + fs.openAsBlob included:
 * +330 MB RSS for 300 MB sent to a plain draining server, versus ~40 MB for this.
 */
async function postFile(url: string, token: string, fileName: string, path: string): Promise<{ status: number; body: unknown }> {
  const boundary = `----lora-bench-${randomBytes(12).toString('hex')}`;
  const head = Buffer.from(
    `--${boundary}\r\ncontent-disposition: form-data; name="file_name"\r\n\r\n${fileName}\r\n` +
      `--${boundary}\r\ncontent-disposition: form-data; name="file"; filename="${fileName}"\r\n` +
      `content-type: application/octet-stream\r\n\r\n`,
  );
  const tail = Buffer.from(`\r\n--${boundary}--\r\n`);
  const size = (await stat(path)).size;
  async function* body(): AsyncGenerator<Buffer> {
    yield head;
    yield* createReadStream(path) as AsyncIterable<Buffer>;
    yield tail;
  }
  return new Promise((resolvePromise, reject) => {
    const request = httpRequest(
      url,
      {
        method: 'POST',
        headers: {
          authorization: `Bearer ${token}`,
          'content-type': `multipart/form-data; boundary=${boundary}`,
          'content-length': head.length + size + tail.length,
        },
      },
      (response) => {
        const chunks: Buffer[] = [];
        response.on('data', (chunk: Buffer) => chunks.push(chunk));
        response.on('error', reject);
        response.on('end', () => {
          const text = Buffer.concat(chunks).toString('utf8');
          try {
            resolvePromise({ status: response.statusCode ?? 0, body: text ? JSON.parse(text) : undefined });
          } catch {
            resolvePromise({ status: response.statusCode ?? 0, body: text });
          }
        });
      },
    );
    request.on('error', reject);
    // A service that answers early (a rejected file) may stop reading: the answer still arrives.
    pipeline(Readable.from(body()), request).catch(() => undefined);
  });
}

/** The same form sent by a curl child process (which streams -F @file from disk). */
function curlFile(url: string, token: string, fileName: string, path: string): Promise<{ status: number; body: unknown }> {
  const args = ['-sS', '-o', '-', '-w', '\n%{http_code}', '-H', `authorization: Bearer ${token}`, '-H', 'expect:'];
  args.push('-F', `file_name=${fileName}`, '-F', `file=@${path};filename=${fileName};type=application/octet-stream`, url);
  return new Promise((resolvePromise, reject) => {
    execFile('curl', args, { maxBuffer: 1024 * 1024 }, (error, stdout) => {
      if (error) return reject(error);
      const cut = stdout.lastIndexOf('\n');
      const text = stdout.slice(0, cut);
      let body: unknown = text;
      try {
        body = JSON.parse(text);
      } catch {
        // Not JSON: reported as text.
      }
      resolvePromise({ status: Number(stdout.slice(cut + 1)), body });
    });
  });
}

const median = (values: number[]): number => {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
};
const s = (seconds: number) => `${seconds.toFixed(2)} s`;
const mb = (bytes: number) => `${Math.round(bytes / MB)} MB`;

type Client = 'http' | 'fetch' | 'curl';

function parseArgs(argv: string[]): { rounds: number; s3rverInProcess: boolean; client: Client } {
  let rounds = 3;
  let s3rverInProcess = false;
  let client: Client = 'curl';
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    if (arg === '--rounds') {
      rounds = Number(argv[++i]);
      if (!Number.isInteger(rounds) || rounds < 1) throw new Error('--rounds needs a positive integer');
    } else if (arg?.startsWith('--rounds=')) {
      rounds = Number(arg.slice('--rounds='.length));
      if (!Number.isInteger(rounds) || rounds < 1) throw new Error('--rounds needs a positive integer');
    } else if (arg === '--client') {
      const value = argv[++i];
      if (value !== 'http' && value !== 'fetch' && value !== 'curl') throw new Error('--client needs http, fetch or curl');
      client = value;
    } else if (arg === '--s3rver-in-process') {
      s3rverInProcess = true;
    } else {
      throw new Error(`unknown argument ${arg}; usage: npx tsx bench/upload.ts [--rounds N] [--client http|fetch|curl] [--s3rver-in-process]`);
    }
  }
  return { rounds, s3rverInProcess, client };
}

// ---------------------------------------------------------------------------------------------------------------
// The benchmark
// ---------------------------------------------------------------------------------------------------------------

async function main(): Promise<void> {
  const options = parseArgs(process.argv.slice(2));
  const work = await mkdtemp(join(tmpdir(), 'lora-bench-upload-'));
  const cleanups: (() => Promise<unknown>)[] = [() => rm(work, { recursive: true, force: true })];
  const cleanup = async () => {
    for (const step of cleanups.reverse()) await step().catch((error) => console.error(`cleanup: ${error}`));
  };

  try {
    // 1. The adapter, built in a child so this process never holds it.
    const adapterDir = join(work, 'adapter');
    await mkdir(adapterDir);
    console.log(`building the adapter (${MODEL}, all 7 modules, 32 layers, F32) ...`);
    const builder = forkSelf<BuiltAdapter>('--build-adapter', adapterDir);
    const adapter = await builder.first;
    await waitForExit(builder.child);
    const onDisk = (await stat(adapter.weightsPath)).size;
    if (onDisk !== adapter.bytes) throw new Error(`adapter file is ${onDisk} bytes, expected ${adapter.bytes}`);
    console.log(`  r=${adapter.r} ${adapter.dtype}: ${adapter.bytes} bytes (${mb(adapter.bytes)}) in ${s(adapter.seconds)}`);

    // 2. s3rver.
    const s3dir = join(work, 's3rver');
    await mkdir(s3dir);
    let port: number;
    if (options.s3rverInProcess) {
      const server = await startS3rver(s3dir);
      cleanups.push(() => server.close());
      port = server.port;
    } else {
      const s3 = forkSelf<{ port: number }>('--s3rver', s3dir);
      cleanups.push(async () => {
        if (s3.child.connected) s3.child.send('close');
        await Promise.race([waitForExit(s3.child), new Promise((r) => setTimeout(r, 5_000))]);
        if (s3.child.exitCode === null && s3.child.signalCode === null) s3.child.kill();
      });
      port = (await s3.first).port;
      storagePid = s3.child.pid;
    }
    const endpoint = `http://127.0.0.1:${port}`;
    console.log(`s3rver at ${endpoint} (${options.s3rverInProcess ? 'in this process' : 'child process'})`);

    // 3. Database + service (test/helpers/database.ts reads TEST_DATABASE_URL when imported).
    process.env.TEST_DATABASE_URL ??= ADMIN_DATABASE_URL;
    registerSwcLoader();
    const { ADMIN_TOKEN, createAccount, call } = await import('../test/helpers/app.js');
    const { createTestDatabase } = await import('../test/helpers/database.js');
    const { createApp } = await import('../src/app.factory.js');
    const { loadConfig } = await import('../src/config/app-config.js');
    const { ObjectStorage } = await import('../src/storage/object-storage.js');
    const { S3Client, DeleteObjectCommand } = await import('@aws-sdk/client-s3');
    const { Upload } = await import('@aws-sdk/lib-storage');

    const cacheDir = join(work, 'cache');
    // As test/helpers/app.ts startTestApp does, but the database is dropped even when the app fails to start.
    const db = await createTestDatabase();
    cleanups.push(() => db.drop());
    const bucket = `bench-${randomBytes(6).toString('hex')}`;
    const app = await createApp(
      loadConfig({
        DATABASE_URL: db.url,
        ADMIN_TOKEN,
        S3_ENDPOINT: endpoint,
        S3_BUCKET: bucket,
        S3_ACCESS_KEY_ID: 'S3RVER',
        S3_SECRET_ACCESS_KEY: 'S3RVER',
        S3_FORCE_PATH_STYLE: 'true',
        S3_CREATE_BUCKET: 'true',
        CACHE_DIR: cacheDir,
        LOG_LEVEL: 'error',
      }),
    );
    cleanups.push(() => app.close());
    await app.listen(0, '127.0.0.1');
    const { port: servicePort } = app.getHttpServer().address() as { port: number };
    const t = { app, bucket, baseUrl: `http://127.0.0.1:${servicePort}/client/v4` };
    console.log(`service at ${t.baseUrl}, database ${db.name}, bucket ${t.bucket}`);
    const account = await createAccount(t.baseUrl, 'bench');

    // Where the service's time goes: wrap the app's ObjectStorage instance.
    const storage = t.app.get(ObjectStorage);
    let storageLog: { op: string; ms: number }[] = [];
    for (const op of ['upload', 'delete'] as const) {
      const original = storage[op].bind(storage) as (...args: unknown[]) => Promise<unknown>;
      (storage as unknown as Record<string, unknown>)[op] = async (...args: unknown[]) => {
        const started = performance.now();
        try {
          return await original(...args);
        } finally {
          storageLog.push({ op, ms: performance.now() - started });
        }
      };
    }

    const direct = new S3Client({
      endpoint,
      region: 'us-east-1',
      forcePathStyle: true,
      credentials: { accessKeyId: 'S3RVER', secretAccessKey: 'S3RVER' },
      ...S3_CLIENT_OPTIONS,
    });
    cleanups.push(async () => direct.destroy());

    const configJson = await readFile(adapter.configPath);
    const assetsPath = (finetune: string) => `/accounts/${account.id}/ai/finetunes/${finetune}/finetune-assets`;
    const form = (fileName: string, file: Blob) => {
      const body = new FormData();
      body.append('file_name', fileName);
      body.append('file', file, fileName);
      return body;
    };

    async function serviceRound(round: number): Promise<Measured & { breakdown: string }> {
      const created = await call<{ id: string }>(t.baseUrl, 'POST', `/accounts/${account.id}/ai/finetunes`, {
        token: account.token,
        body: { model: MODEL, name: `bench-${round}` },
      });
      if (created.status !== 200) throw new Error(`create finetune: ${created.status} ${JSON.stringify(created.body)}`);
      const finetune = created.body.result.id;
      const config = await call(t.baseUrl, 'POST', assetsPath(finetune), {
        token: account.token,
        body: form('adapter_config.json', new Blob([configJson])),
      });
      if (config.status !== 200) throw new Error(`config upload: ${config.status} ${JSON.stringify(config.body)}`);

      storageLog = [];
      let answer: { status: number; body: unknown } | undefined;
      const measured = await measure(async () => {
        const url = `${t.baseUrl}${assetsPath(finetune)}`;
        if (options.client === 'http') {
          answer = await postFile(url, account.token, 'adapter_model.safetensors', adapter.weightsPath);
        } else if (options.client === 'curl') {
          answer = await curlFile(url, account.token, 'adapter_model.safetensors', adapter.weightsPath);
        } else {
          const blob = await openAsBlob(adapter.weightsPath);
          const response = await fetch(url, {
            method: 'POST',
            headers: { authorization: `Bearer ${account.token}` },
            body: form('adapter_model.safetensors', blob),
          });
          answer = { status: response.status, body: await response.json() };
        }
      });
      if (answer?.status !== 200) throw new Error(`weights upload: ${answer?.status} ${JSON.stringify(answer?.body)}`);
      const { bytes, sha256 } = (answer.body as { result: { bytes: number; sha256: string } }).result;
      if (bytes !== adapter.bytes || sha256 !== adapter.sha256) throw new Error(`weights upload stored ${bytes} bytes, sha256 ${sha256}`);
      const view = await call<{ status: string }>(t.baseUrl, 'GET', `/accounts/${account.id}/ai/finetunes/${finetune}`, { token: account.token });
      if (view.body.result.status !== 'ready') throw new Error(`finetune is ${view.body.result.status} after both uploads, not ready`);
      const log = storageLog;
      const total = measured.seconds * 1000;
      const timed = log.reduce((sum, entry) => sum + entry.ms, 0);
      const breakdown = [...log.map((e) => `${e.op} ${(e.ms / 1000).toFixed(2)}`), `rest ${((total - timed) / 1000).toFixed(2)}`].join(', ');
      // Untimed: free the storage (deletes the finetune's objects).
      await call(t.baseUrl, 'DELETE', `/accounts/${account.id}/ai/finetunes/${finetune}`, { token: account.token });
      return { ...measured, breakdown };
    }

    async function directRound(round: number): Promise<Measured> {
      const key = `bench/direct-${round}/adapter_model.safetensors`;
      const measured = await measure(async () => {
        const upload = new Upload({
          client: direct,
          params: { Bucket: t.bucket, Key: key, Body: createReadStream(adapter.weightsPath), ContentType: 'application/octet-stream' },
          partSize: PART_SIZE,
          queueSize: QUEUE_SIZE,
          leavePartsOnError: false,
        });
        await upload.done();
      });
      await direct.send(new DeleteObjectCommand({ Bucket: t.bucket, Key: key }));
      return measured;
    }

    const service: Measured[] = [];
    const straight: Measured[] = [];
    const line = (label: string, m: Measured, extra = '') =>
      console.log(
        `  ${label.padEnd(7)} ${s(m.seconds).padStart(8)}  cpu ${s(m.cpuSeconds).padStart(8)}` +
          `${m.storageCpuSeconds === undefined ? '' : `  s3rver cpu ${s(m.storageCpuSeconds).padStart(8)}`}  rss +${mb(m.rssGrowth)}${extra}`,
      );
    console.log(`${options.rounds} round(s), alternating order; ${mb(adapter.bytes)} each:`);
    for (let round = 1; round <= options.rounds; round++) {
      console.log(`round ${round}`);
      const runService = async () => {
        const m = await serviceRound(round);
        service.push(m);
        line('service', m, `  [${m.breakdown}]`);
      };
      const runDirect = async () => {
        const m = await directRound(round);
        straight.push(m);
        line('direct', m);
      };
      if (round % 2 === 1) {
        await runService();
        await runDirect();
      } else {
        await runDirect();
        await runService();
      }
    }

    const serviceMedian = median(service.map((m) => m.seconds));
    const directMedian = median(straight.map((m) => m.seconds));
    const peakGrowth = Math.max(...service.map((m) => m.rssGrowth));
    const directPeak = Math.max(...straight.map((m) => m.rssGrowth));
    const throughput = (seconds: number) => `${(adapter.bytes / MB / seconds).toFixed(0)} MB/s`;
    console.log('');
    console.log('--- summary ---');
    console.log(
      `upload ${mb(adapter.bytes)}: service ${s(serviceMedian)}, direct ${s(directMedian)}, ratio ${(serviceMedian / directMedian).toFixed(2)}; ` +
        `peak RSS growth ${mb(peakGrowth)}`,
    );
    console.log(
      `  medians of ${options.rounds} round(s); service ${throughput(serviceMedian)}, direct ${throughput(directMedian)}; ` +
        `direct-upload peak RSS growth ${mb(directPeak)}; targets: ratio <= 1.05, RSS growth <= 50 MB`,
    );
    console.log(
      `  RSS is this process: service + its HTTP client (${{ http: 'node:http, streaming from disk', fetch: 'fetch, which buffers the body', curl: 'none: curl runs in a child process' }[options.client]})${options.s3rverInProcess ? ' + s3rver' : '; s3rver runs in a child process'}` +
        `${(globalThis as { gc?: unknown }).gc ? '' : '; run with NODE_OPTIONS=--expose-gc for gc before each baseline'}`,
    );
  } finally {
    await cleanup();
  }
}

const [mode, arg] = process.argv.slice(2);
if (mode === '--build-adapter' && arg) {
  await buildAdapterChild(arg);
} else if (mode === '--s3rver' && arg) {
  await s3rverChild(arg);
} else {
  try {
    await main();
    process.exit(0);
  } catch (error) {
    console.error(error);
    process.exit(1);
  }
}
