/**
 * The README's quick start as a newcomer runs it: `npm start` in a fresh copy of the repository with nothing
 * configured (no database, storage, admin token or models file), the banner's `export` line pasted into bash, then
 * the README's walkthrough block run as written: create a finetune, upload the sample adapter, run with it.
 *
 * The copy holds the working tree's files that git tracks or would track (so uncommitted changes are what is tested)
 * and links node_modules instead of installing it; `npm start` builds it from scratch as on a fresh clone.
 */
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { launchChromium } from '../console/browser.js';

const ROOT = join(import.meta.dirname, '../../..');
/** Building (prisma generate + nest build) and creating the database take most of this on a busy machine. */
const START_TIMEOUT_MS = 240_000;

let dir: string;
let server: ChildProcess;
let output = '';
let exportLine: string;

function copyWorkingTree(): string {
  const target = mkdtempSync(join(tmpdir(), 'lora-quickstart-'));
  const files = execFileSync('git', ['ls-files', '-z', '--cached', '--others', '--exclude-standard'], { cwd: ROOT, encoding: 'utf8' });
  for (const file of files.split('\0')) {
    // Listed but deleted in the working tree: absent from a clone of it too.
    if (file === '' || !existsSync(join(ROOT, file))) continue;
    mkdirSync(dirname(join(target, file)), { recursive: true });
    cpSync(join(ROOT, file), join(target, file));
  }
  symlinkSync(join(ROOT, 'node_modules'), join(target, 'node_modules'), 'dir');
  return target;
}


/** Nothing of the machine's or jest's environment: no DATABASE_URL, S3_*, ADMIN_TOKEN, MODELS_FILE, NODE_OPTIONS. */
const cleanEnv = (extra: Record<string, string> = {}) => ({ PATH: process.env.PATH!, HOME: process.env.HOME ?? dir, ...extra });

/** Resolves with the banner's `export BASE=… ACCOUNT=… TOKEN=…` line once the service is ready. */
function waitForBanner(child: ChildProcess): Promise<string> {
  return new Promise((resolve, reject) => {
    const onData = (chunk: Buffer) => {
      output += chunk.toString();
      const line = /^\s*(export BASE=\S+ ACCOUNT=\S+ TOKEN=\S+)\s*$/m.exec(output)?.[1];
      if (line !== undefined) resolve(line);
    };
    child.stdout!.on('data', onData);
    child.stderr!.on('data', (chunk: Buffer) => (output += chunk.toString()));
    child.on('exit', (code) => reject(new Error(`npm start exited with ${code} before it was ready:\n${output}`)));
  });
}

/** The first ```sh block after the README's walkthrough heading. */
function walkthrough(): string {
  const readme = readFileSync(join(dir, 'README.md'), 'utf8');
  const block = /^### Walkthrough$[\s\S]*?^```sh\n([\s\S]*?)^```$/m.exec(readme)?.[1];
  if (block === undefined) throw new Error('README.md has no ```sh block under "### Walkthrough"');
  return block;
}

function bash(script: string): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const child = spawn('bash', ['-c', script], { cwd: dir, env: cleanEnv(), stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (chunk) => (stdout += chunk));
  child.stderr.on('data', (chunk) => (stderr += chunk));
  return new Promise((resolve, reject) => {
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, stdout, stderr }));
  });
}

/** True while any process of the server's group (npm, its shell, node) is alive. */
function groupAlive(pid: number): boolean {
  try {
    process.kill(-pid, 0);
    return true;
  } catch {
    return false;
  }
}

beforeAll(async () => {
  dir = copyWorkingTree();
  // PORT=0: the service picks a free port itself and prints it (a probed port can be taken by the time it starts).
  // Its own process group, so teardown can signal npm, the shell it starts and the service alike.
  server = spawn('npm', ['start'], { cwd: dir, env: cleanEnv({ PORT: '0', HOST: '127.0.0.1' }), detached: true, stdio: ['ignore', 'pipe', 'pipe'] });
  exportLine = await waitForBanner(server);
}, START_TIMEOUT_MS);

afterAll(async () => {
  if (server?.pid !== undefined && groupAlive(server.pid)) {
    process.kill(-server.pid, 'SIGTERM');
    const deadline = Date.now() + 20_000;
    while (groupAlive(server.pid) && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 200));
    if (groupAlive(server.pid)) process.kill(-server.pid, 'SIGKILL');
  }
  if (dir) rmSync(dir, { recursive: true, force: true });
}, 30_000);

describe('README quick start', () => {
  it('prints the first account, its token and the admin token on first start, keeping the admin token private', () => {
    expect(output).toMatch(/^lora-hub is ready at http:\/\/127\.0\.0\.1:\d+\/client\/v4$/m);
    expect(output).toMatch(/^Admin token for \S+: \S{16,} \(saved in \.data\/admin-token;/m);
    expect(output).toContain('Demo model: @cf/tiny/tiny-llama-lora');
    expect(statSync(join(dir, '.data/admin-token')).mode & 0o777).toBe(0o600);
  });

  it('creates a finetune, uploads the sample adapter and runs with it through the README walkthrough', async () => {
    const { code, stdout, stderr } = await bash(`set -eu\n${exportLine}\n${walkthrough()}`);
    expect({ code, stderr }).toEqual({ code: 0, stderr: '' });
    const responses = stdout.trim().split('\n').map((line) => JSON.parse(line) as { success: boolean; result: { response?: string } });
    expect(responses.map((r) => r.success)).toEqual(responses.map(() => true));
    expect(responses.length).toBeGreaterThanOrEqual(4);
    expect(stdout.trim().split('\n').at(-1)).toContain('"success":true');
    expect(responses.at(-1)!.result.response).toEqual(expect.any(String));
    expect(responses.at(-1)!.result.response!.length).toBeGreaterThan(0);
  }, 60_000);

  it("follows the banner's console link into a signed-in Playground, the token taken out of the address bar", async () => {
    const link = /^Or open the web console, signed in:\n\s*(http:\/\/\S+\/console\/#account=\S+&token=\S+)$/m.exec(output)?.[1];
    expect(link).toBeDefined();
    const token = /TOKEN=(\S+)/.exec(exportLine)![1]!;
    expect(new URL(link!).hash).toContain(`token=${token}`);
    const browser = await launchChromium();
    try {
      const page = browser.context.pages()[0] ?? (await browser.context.newPage());
      page.setDefaultTimeout(20_000);
      await page.goto(link!);
      await page.getByRole('heading', { name: 'Playground' }).waitFor();
      expect(new URL(page.url()).hash).toBe('#/playground');
      // Signed in: the account's finetune from the walkthrough is offered for the demo model.
      await page.getByLabel('Finetune (optional)').locator('option', { hasText: 'my-first-lora' }).waitFor({ state: 'attached' });
      // The link's entry was replaced, not kept behind: going back leaves the console (the tab opened blank).
      await page.goBack();
      expect(page.url()).toBe('about:blank');
    } finally {
      await browser.close();
    }
  }, 60_000);

  it('shuts down gracefully on SIGTERM: every process exits and the embedded database is closed', async () => {
    const pid = server.pid!;
    process.kill(-pid, 'SIGTERM');
    const deadline = Date.now() + 20_000;
    while (groupAlive(pid) && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 200));
    expect(groupAlive(pid)).toBe(false);
    // Removed by the database's shutdown hook, after PGlite closed its files.
    expect(existsSync(join(dir, '.data/pglite.pid'))).toBe(false);
  }, 30_000);
});
