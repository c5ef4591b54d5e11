/**
 * The `lora` client against the real service (PostgreSQL, s3rver, llama.cpp on the tiny models).
 * Most cases call `main` in-process with captured output, which exercises everything but the launcher; the
 * cases about exit codes also run the client as a real process, from the TypeScript sources through tsx, so they
 * do not depend on a fresh `npm run build`. The built launcher itself is run once when dist/ has the client.
 */
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { spawn } from 'node:child_process';
import { copyFileSync, cpSync, existsSync, mkdirSync, mkdtempSync, readFileSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { formatBytes } from '../../../src/cli/format.js';
import { main } from '../../../src/cli/main.js';
import { writeSafetensors } from '../../../src/demo/safetensors-writer.js';
import { ADMIN_TOKEN, call, createAccount, startTestApp, type TestAccount, type TestApp } from '../../helpers/app.js';
import { TINY_LLAMA, tinySetup, type TinySetup } from '../../helpers/tiny.js';

const ROOT = join(import.meta.dirname, '../../..');

let tiny: TinySetup;
let t: TestApp;
let acme: TestAccount;

interface Outcome {
  code: number;
  stdout: string;
  stderr: string;
}

class Capture {
  text = '';
  constructor(
    readonly isTTY = false,
    readonly columns = 100,
  ) {}
  write(text: string): boolean {
    this.text += text;
    return true;
  }
}

const connection = () => ({ LORA_URL: t.baseUrl, LORA_ACCOUNT_ID: acme.id, LORA_API_TOKEN: acme.token });

async function lora(args: string[], options: { env?: Record<string, string>; tty?: boolean } = {}): Promise<Outcome> {
  const stdout = new Capture();
  const stderr = new Capture(options.tty);
  const code = await main(args, { stdout, stderr, env: options.env ?? connection() });
  return { code, stdout: stdout.text, stderr: stderr.text };
}

function run(command: string, args: string[], env: Record<string, string>): Promise<Outcome> {
  // A clean environment: no NODE_OPTIONS from jest, no connection settings of the machine running the tests.
  const child = spawn(command, args, { cwd: ROOT, env: { PATH: process.env.PATH!, ...env } });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (chunk) => (stdout += chunk));
  child.stderr.on('data', (chunk) => (stderr += chunk));
  return new Promise((resolve, reject) => {
    child.on('error', reject);
    child.on('close', (code) => resolve({ code: code ?? -1, stdout, stderr }));
  });
}

/** The client as its own process, as bin/lora.mjs runs it, but from the sources. */
const loraProcess = (args: string[], env: Record<string, string>) =>
  run(
    process.execPath,
    ['--import', 'tsx', '--input-type=module', '-e', "import { main } from './src/cli/main.ts'; process.exitCode = await main(process.argv.slice(1), process);", ...args],
    env,
  );

/** A copy of a sample adapter with `change` applied to its config. */
function adapterFolder(sample: string, change: (config: Record<string, unknown>) => void): string {
  const dir = mkdtempSync(join(tmpdir(), 'lora-cli-'));
  cpSync(tiny.adapters[sample], dir, { recursive: true });
  const config = JSON.parse(readFileSync(join(dir, 'adapter_config.json'), 'utf8'));
  change(config);
  writeFileSync(join(dir, 'adapter_config.json'), JSON.stringify(config));
  return dir;
}


const finetuneNames = async () =>
  (await call<{ name: string }[]>(t.baseUrl, 'GET', `/accounts/${acme.id}/ai/finetunes`, { token: acme.token })).body.result.map((f) => f.name);

beforeAll(async () => {
  tiny = await tinySetup();
  t = await startTestApp({ MODELS_FILE: tiny.modelsFile, CACHE_DIR: `${tiny.dir}/cache` });
  acme = await createAccount(t.baseUrl, 'acme');
}, 60_000);
afterAll(() => t.close());

describe('lora finetune, models and run against the service', () => {
  let id: string;

  it('finetune create checks and uploads the folder and prints only the new id; the finetune is ready', async () => {
    const created = await lora(['finetune', 'create', TINY_LLAMA, 'qv', tiny.adapters['tiny-llama-qv']]);
    expect(created).toMatchObject({ code: 0, stdout: expect.stringMatching(/^[0-9a-f-]{36}\n$/) });
    // Not a terminal: no bar, one summary line.
    expect(created.stderr).toMatch(/^uploaded adapter_model\.safetensors: [\d.]+ kB in [\d.]+ s \([\d.]+ [kMG]?B\/s\)\n$/);
    id = created.stdout.trim();
    const stored = await call<{ status: string; name: string }>(t.baseUrl, 'GET', `/accounts/${acme.id}/ai/finetunes/${id}`, { token: acme.token });
    expect(stored.body.result).toMatchObject({ name: 'qv', status: 'ready' });
  });

  it('draws a progress bar on a terminal, and --json prints the finetune object', async () => {
    const created = await lora(['finetune', 'create', TINY_LLAMA, 'all', tiny.adapters['tiny-llama-all-rslora'], '--json', '--description', 'every module'], { tty: true });
    expect(created.code).toBe(0);
    expect(JSON.parse(created.stdout)).toMatchObject({ name: 'all', model: TINY_LLAMA, description: 'every module', status: 'ready', public: false });
    // Redrawn in place: each state after a carriage return, cleared to the end of the line; a newline at the end.
    const states = created.stderr.split('\r');
    expect(states[0]).toBe('');
    const size = formatBytes(statSync(join(tiny.adapters['tiny-llama-all-rslora'], 'adapter_model.safetensors')).size).replace('.', '\\.');
    expect(states.at(-1)).toMatch(new RegExp(`^adapter_model\\.safetensors \\[#{30}\\] 100% {2}${size} / ${size} {2}[\\d.]+ [kMG]?B/s\x1b\\[K\n$`));
  });

  it('finetune list prints a table, or JSON with --json', async () => {
    const table = await lora(['finetune', 'list']);
    expect(table.code).toBe(0);
    const [header, ...rows] = table.stdout.trimEnd().split('\n');
    expect(header.split(/\s{2,}/)).toEqual(['id', 'name', 'model', 'status', 'public', 'created']);
    expect(rows).toHaveLength(2);
    expect(rows.find((row) => row.startsWith(id))!.split(/\s{2,}/)).toEqual([id, 'qv', TINY_LLAMA, 'ready', 'no', expect.stringMatching(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/)]);

    const json = await lora(['finetune', 'list', '--json']);
    expect((JSON.parse(json.stdout) as { name: string }[]).map((f) => f.name).sort()).toEqual(['all', 'qv']);
  });

  it('finetune get shows one by name or id', async () => {
    const byName = await lora(['finetune', 'get', 'qv']);
    expect(byName.code).toBe(0);
    expect(byName.stdout).toMatch(new RegExp(`^id +${id}\nname +qv\nmodel +${TINY_LLAMA}\n`));
    expect(byName.stdout).toMatch(/^status +ready$/m);
    expect(JSON.parse((await lora(['finetune', 'get', id, '--json'])).stdout)).toMatchObject({ id, name: 'qv' });
  });

  it('run prints the response; --stream prints the same text as it arrives; --verbose adds usage', async () => {
    const args = ['run', TINY_LLAMA, '--lora', 'qv', '--max-tokens', '12', '--temperature', '0', 'hello', 'world'];
    const whole = await lora([...args, '--verbose']);
    expect(whole).toMatchObject({ code: 0, stderr: expect.stringMatching(/^tokens: \d+ prompt \+ \d+ completion = \d+\n$/) });
    expect(whole.stdout.length).toBeGreaterThan(1);
    const streamed = await lora([...args, '--stream']);
    expect(streamed).toMatchObject({ code: 0, stdout: whole.stdout, stderr: '' });
    // The same as the API answers for the joined prompt.
    const api = await call<{ response: string }>(t.baseUrl, 'POST', `/accounts/${acme.id}/ai/run/${TINY_LLAMA}`, {
      token: acme.token,
      body: { prompt: 'hello world', lora: 'qv', max_tokens: 12, temperature: 0 },
    });
    expect(whole.stdout).toBe(`${api.body.result.response}\n`);
  });

  it('run reports the envelope error of a failed run, streamed or not', async () => {
    for (const stream of [[], ['--stream']]) {
      const failed = await lora(['run', TINY_LLAMA, '--lora', 'nope', ...stream, 'hi']);
      expect(failed).toEqual({ code: 1, stdout: '', stderr: 'error: finetune "nope" not found (code 3037)\n' });
    }
  });

  it('models list prints the catalog; --lora keeps the LoRA bases', async () => {
    const all = await lora(['models', 'list']);
    expect(all.code).toBe(0);
    expect(all.stdout.split('\n')[0].split(/\s{2,}/)).toEqual(['name', 'task', 'lora']);
    expect(all.stdout).toMatch(new RegExp(`^${TINY_LLAMA} +Text Generation +yes$`, 'm'));
    expect(all.stdout).toMatch(/^@cf\/meta\/llama-2-7b-chat-fp16 +Text Generation +no$/m);
    const lora_ = JSON.parse((await lora(['models', 'list', '--lora', '--json'])).stdout) as { name: string }[];
    expect(lora_.map((m) => m.name)).toContain(TINY_LLAMA);
    expect(lora_.map((m) => m.name)).not.toContain('@cf/meta/llama-2-7b-chat-fp16');
  });

  it('finetune delete removes it; getting it then fails with the envelope message', async () => {
    const deleted = await lora(['finetune', 'delete', 'all']);
    expect(deleted).toMatchObject({ code: 0, stdout: expect.stringMatching(/^deleted all \([0-9a-f-]{36}\)\n$/) });
    expect(await lora(['finetune', 'get', 'all'])).toEqual({ code: 1, stdout: '', stderr: 'error: finetune "all" not found (code 3037)\n' });
  });

  it('an existing name is refused by the service and the existing finetune is left alone', async () => {
    const again = await lora(['finetune', 'create', TINY_LLAMA, 'qv', tiny.adapters['tiny-llama-qv']]);
    expect(again).toMatchObject({ code: 1, stdout: '', stderr: expect.stringMatching(/^error: .*qv.* \(code 90002\)\n$/) });
    expect(await finetuneNames()).toContain('qv');
  });
});

describe('lora failures', () => {
  it('a rejected upload prints the service message and exits 1 (as a process); the finetune is not kept', async () => {
    // r=4 in the config, rank 8 in the weights: the config alone is fine, the weights then contradict it.
    const folder = adapterFolder('tiny-llama-qv', (config) => (config.r = 4));
    const failed = await loraProcess(['finetune', 'create', TINY_LLAMA, 'mismatch', folder], connection());
    expect(failed.code).toBe(1);
    expect(failed.stdout).toBe('');
    const lines = failed.stderr.trimEnd().split('\n');
    expect(lines).toEqual([
      'error: adapter_model.safetensors: base_model.model.model.layers.0.self_attn.q_proj.lora_B.weight has shape [64, 8], expected [64, 4] (r=4) (code 90001)',
      'hint: finetune "mismatch" was not kept; fix the adapter folder and run the command again',
    ]);
    expect(await finetuneNames()).not.toContain('mismatch');
  });

  it('a file the service rejects from its header stops being sent, and the rejection is reported', async () => {
    // A sound container of 40 MB whose tensor is no LoRA tensor: refused after the header, long before its end.
    const folder = adapterFolder('tiny-llama-qv', () => undefined);
    const data = new Uint8Array(40_000_000);
    writeFileSync(join(folder, 'adapter_model.safetensors'), writeSafetensors([{ name: 'junk', dtype: 'U8', shape: [data.length], data }]));
    const failed = await lora(['finetune', 'create', TINY_LLAMA, 'junk', folder], { tty: true });
    expect(failed.code).toBe(1);
    // The service answers as soon as the header shows the problem and discards the rest of the body, so the
    // answer reaches the client, which stops sending.
    expect(failed.stderr).toMatch(/\nerror: adapter_model\.safetensors: junk is not a LoRA weight .+ \(code 90001\)\nhint: finetune "junk" was not kept; .+\n$/);
    expect(await finetuneNames()).not.toContain('junk');
  });

  it('a bad folder is refused before anything is sent', async () => {
    const truncated = adapterFolder('tiny-llama-qv', () => undefined);
    const weights = readFileSync(join(truncated, 'adapter_model.safetensors'));
    writeFileSync(join(truncated, 'adapter_model.safetensors'), weights.subarray(0, weights.length - 10));
    expect(await lora(['finetune', 'create', TINY_LLAMA, 'truncated', truncated])).toEqual({
      code: 1,
      stdout: '',
      stderr: expect.stringMatching(/^error: adapter_model\.safetensors: data is truncated: file is \d+ bytes, expected \d+ \(8 \+ \d+ header \+ \d+ data bytes\)\n$/),
    });
    const notJson = adapterFolder('tiny-llama-qv', () => undefined);
    writeFileSync(join(notJson, 'adapter_config.json'), '{"r": 8,');
    expect((await lora(['finetune', 'create', TINY_LLAMA, 'not-json', notJson])).stderr).toMatch(/^error: adapter_config\.json: is not valid JSON \(.+\)\n$/);
    expect(await lora(['finetune', 'create', TINY_LLAMA, 'none', tiny.dir])).toEqual({ code: 1, stdout: '', stderr: `error: ${tiny.dir} has no adapter_config.json\n` });
    expect(await finetuneNames()).toEqual(expect.not.arrayContaining(['truncated', 'not-json', 'none']));
  });

  it('a missing token or account is a usage error: one line, exit 2 (as a process)', async () => {
    const { LORA_API_TOKEN: _, ...noToken } = connection();
    expect(await loraProcess(['finetune', 'list'], noToken)).toEqual({
      code: 2,
      stdout: '',
      stderr: 'error: no API token: pass --token or set LORA_API_TOKEN (or CLOUDFLARE_API_TOKEN)\n',
    });
    expect((await lora(['models', 'list'], { env: { LORA_URL: t.baseUrl } })).code).toBe(2);
  });

  it("wrangler's CLOUDFLARE_* variables are accepted and flags win over the environment", async () => {
    const env = { LORA_URL: t.baseUrl, CLOUDFLARE_ACCOUNT_ID: acme.id, CLOUDFLARE_API_TOKEN: acme.token };
    expect((await lora(['finetune', 'get', 'qv'], { env })).code).toBe(0);
    expect(await lora(['finetune', 'list', '--token', 'wrong'], { env })).toMatchObject({ code: 1, stderr: expect.stringMatching(/^error: .+ \(code 10000\)\n$/) });
  });

  it('an unreachable service exits 1 naming the URL (as a process)', async () => {
    // Nothing listens on port 2 (a privileged port fetch does not block), so the connection is refused.
    const url = 'http://127.0.0.1:2/client/v4';
    expect(await loraProcess(['finetune', 'list', '--url', url], connection())).toEqual({
      code: 1,
      stdout: '',
      stderr: `error: cannot reach ${url}: connect ECONNREFUSED ${url.slice('http://'.length, -'/client/v4'.length)}\n`,
    });
  });

  it('command-line mistakes exit 2 with one line', async () => {
    expect(await lora(['finetune', 'remove', 'x'])).toMatchObject({ code: 2, stderr: expect.stringMatching(/^error: unknown command "finetune remove" \(.+\)\n$/) });
    expect(await lora(['finetune', 'get'])).toMatchObject({ code: 2, stderr: 'error: missing <id_or_name> (usage: finetune get <id_or_name> [--json])\n' });
    expect(await lora(['finetune', 'list', '--bogus'])).toMatchObject({ code: 2, stderr: "error: unknown option '--bogus'\n" });
    expect(await lora(['run', TINY_LLAMA, '--max-tokens', 'many', 'hi'])).toMatchObject({ code: 2, stderr: 'error: --max-tokens must be a number, got "many"\n' });
    expect(await lora([])).toMatchObject({ code: 2 });
  });
});

// The launcher as installed where only bin/ and dist/ exist (no sources, so it runs dist as is rather than
// rebuilding it first); it needs a build that includes the client.
const built = existsSync(join(ROOT, 'dist', 'cli', 'main.js'));
(built ? it : it.skip)(`bin/lora.mjs runs the built client${built ? '' : ' (skipped: dist/cli is missing; run npm run build)'}`, async () => {
  const installed = mkdtempSync(join(tmpdir(), 'lora-installed-'));
  mkdirSync(join(installed, 'bin'));
  copyFileSync(join(ROOT, 'bin', 'lora.mjs'), join(installed, 'bin', 'lora.mjs'));
  symlinkSync(join(ROOT, 'dist'), join(installed, 'dist'));
  const launcher = join(installed, 'bin', 'lora.mjs');
  const help = await run(process.execPath, [launcher, 'finetune', 'get', '--help'], {});
  expect(help).toMatchObject({ code: 0, stdout: expect.stringMatching(/^Usage: lora finetune get <id_or_name>/) });
  expect(await run(process.execPath, [launcher, 'finetune', 'list'], { LORA_ACCOUNT_ID: acme.id })).toMatchObject({ code: 2, stderr: expect.stringMatching(/^error: no API token/) });
  expect(await run(process.execPath, [launcher, 'finetune', 'get', 'qv'], connection())).toMatchObject({ code: 0, stdout: expect.stringMatching(/^id +[0-9a-f-]{36}\nname +qv\n/) });
});

describe('lora tokens, with the admin token', () => {
  let globex: TestAccount;
  const adminEnv = () => ({ LORA_URL: t.baseUrl, LORA_ACCOUNT_ID: globex.id, LORA_ADMIN_TOKEN: ADMIN_TOKEN });

  beforeAll(async () => {
    globex = await createAccount(t.baseUrl, 'globex');
  });

  it("tokens list prints the account's tokens without their secrets, or JSON with --json", async () => {
    const table = await lora(['tokens', 'list'], { env: adminEnv() });
    expect(table).toMatchObject({ code: 0, stderr: '' });
    const [header, ...rows] = table.stdout.trimEnd().split('\n');
    expect(header!.split(/\s{2,}/)).toEqual(['id', 'name', 'secret', 'created']);
    expect(rows.map((row) => row.split(/\s{2,}/))).toEqual([
      [expect.stringMatching(/^[0-9a-f-]{36}$/), 'test', `…${globex.token.slice(-4)}`, expect.stringMatching(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/)],
    ]);
    const json = await lora(['tokens', 'list', '--json'], { env: adminEnv() });
    expect(JSON.parse(json.stdout)).toEqual([expect.objectContaining({ name: 'test', account_id: globex.id, last_four: globex.token.slice(-4) })]);
    expect(table.stdout + json.stdout).not.toContain(globex.token);
  });

  it('tokens revoke revokes a token: the next request with it is refused', async () => {
    const env = { LORA_URL: t.baseUrl, LORA_ACCOUNT_ID: globex.id, LORA_API_TOKEN: globex.token };
    expect((await lora(['finetune', 'list'], { env })).code).toBe(0);
    const [listed] = JSON.parse((await lora(['tokens', 'list', '--json'], { env: adminEnv() })).stdout) as { id: string }[];
    expect(await lora(['tokens', 'revoke', listed!.id], { env: adminEnv() })).toEqual({ code: 0, stdout: `revoked test (${listed!.id})\n`, stderr: '' });
    expect(await lora(['finetune', 'list'], { env })).toMatchObject({ code: 1, stderr: expect.stringMatching(/^error: .+ \(code 10000\)\n$/) });
    expect((await lora(['tokens', 'list', '--json'], { env: adminEnv() })).stdout).toBe('[]\n');
  });

  it("another account's token id is not found; an API token or no token is not the admin token", async () => {
    const [acmeToken] = JSON.parse((await lora(['tokens', 'list', '--json'], { env: { ...adminEnv(), LORA_ACCOUNT_ID: acme.id } })).stdout) as { id: string }[];
    expect(await lora(['tokens', 'revoke', acmeToken!.id], { env: adminEnv() })).toMatchObject({ code: 1, stderr: expect.stringMatching(/\(code 7003\)\n$/) });
    expect((await lora(['finetune', 'list'])).code).toBe(0);
    expect(await lora(['tokens', 'list', '--admin-token', acme.token], { env: adminEnv() })).toMatchObject({
      code: 1,
      stderr: expect.stringMatching(/^error: .+ \(code 10000\)\n$/),
    });
    const { LORA_ADMIN_TOKEN: _, ...noAdminToken } = adminEnv();
    expect(await lora(['tokens', 'list'], { env: { ...noAdminToken, LORA_API_TOKEN: acme.token } })).toEqual({
      code: 2,
      stdout: '',
      stderr: 'error: no admin token: pass --admin-token or set LORA_ADMIN_TOKEN\n',
    });
  });
});
