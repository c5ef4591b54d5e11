/**
 * WORKERS=2 as users run it: `node dist/main.js` (built first when stale, as `npm start` does) on PostgreSQL, with
 * the embedded S3 server hosted by the primary. Both workers answer on the one port, and SIGTERM to the primary
 * ends every process.
 */
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { execFileSync, spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ADMIN_TOKEN } from '../../helpers/app.js';
import { createTestDatabase, type TestDatabase } from '../../helpers/database.js';

const ROOT = join(import.meta.dirname, '../../..');
/** A build from scratch (when dist/ is stale) takes most of this on a busy machine. */
const START_TIMEOUT_MS = 240_000;

let db: TestDatabase;
let dir: string;
let server: ChildProcess;
let output = '';
let baseUrl: string;

const env = (extra: Record<string, string>) => ({ PATH: process.env.PATH!, HOME: process.env.HOME ?? '/tmp', ...extra });

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** The pids that wrote request log lines (pino's `pid` field) for `url`. */
function servingPids(url: string): Set<number> {
  const pids = new Set<number>();
  for (const line of output.split('\n')) {
    if (!line.startsWith('{')) continue;
    const entry = JSON.parse(line) as { pid?: number; url?: string; msg?: string };
    if (entry.msg === 'request completed' && entry.url === url && entry.pid !== undefined) pids.add(entry.pid);
  }
  return pids;
}

beforeAll(async () => {
  execFileSync(process.execPath, [join(ROOT, 'scripts/ensure-built.mjs')], { cwd: ROOT, stdio: 'ignore' });
  db = await createTestDatabase({ migrate: false });
  dir = mkdtempSync(join(tmpdir(), 'lora-cluster-'));
  server = spawn(process.execPath, [join(ROOT, 'dist/main.js')], {
    cwd: dir,
    env: env({ WORKERS: '2', PORT: '0', DATABASE_URL: db.url, ADMIN_TOKEN, DATA_DIR: join(dir, 'data'), CACHE_DIR: join(dir, 'cache') }),
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  baseUrl = await new Promise<string>((resolve, reject) => {
    server.stdout!.on('data', (chunk: Buffer) => {
      output += chunk.toString();
      const url = /lora-hub is ready at (http:\/\/\S+)\/client\/v4/.exec(output)?.[1];
      if (url !== undefined) resolve(url);
    });
    server.stderr!.on('data', (chunk: Buffer) => (output += chunk.toString()));
    server.on('exit', (code) => reject(new Error(`exited with ${code} before it was ready:\n${output}`)));
  });
}, START_TIMEOUT_MS);

afterAll(async () => {
  if (server?.exitCode === null) server.kill('SIGKILL');
  await db?.drop();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

describe('WORKERS=2', () => {
  it('serves from two worker processes on one port, sharing the database and storage', async () => {
    // Each request on a new connection: the primary hands connections to the workers in turn.
    const deadline = Date.now() + 60_000;
    let tries = 0;
    while (servingPids('/healthz').size < 2 && Date.now() < deadline) {
      const response = await fetch(`${baseUrl}/healthz`, { headers: { connection: 'close' } });
      expect(response.status).toBe(200);
      tries += 1;
      // The log lines are written asynchronously.
      if (tries % 10 === 0) await new Promise((resolve) => setTimeout(resolve, 200));
    }
    const pids = servingPids('/healthz');
    expect(pids.size).toBe(2);
    expect(pids.has(server.pid!)).toBe(false);

    // An account created through one worker is there for the other: both use the one database.
    const created = await fetch(`${baseUrl}/client/v4/admin/accounts`, {
      method: 'POST',
      headers: { authorization: `Bearer ${ADMIN_TOKEN}`, 'content-type': 'application/json', connection: 'close' },
      body: JSON.stringify({ name: 'shared' }),
    });
    const { result } = (await created.json()) as { result: { id: string } };
    for (let i = 0; i < 4; i++) {
      const read = await fetch(`${baseUrl}/client/v4/admin/accounts/${result.id}/tokens`, { headers: { authorization: `Bearer ${ADMIN_TOKEN}`, connection: 'close' } });
      expect(read.status).toBe(200);
    }
  }, 90_000);

  it('ends every process on SIGTERM to the primary', async () => {
    const workers = [...servingPids('/healthz')];
    const exited = new Promise<number | null>((resolve) => server.once('exit', (code) => resolve(code)));
    server.kill('SIGTERM');
    expect(await exited).toBe(0);
    const deadline = Date.now() + 20_000;
    while (workers.some(alive) && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 100));
    expect(workers.filter(alive)).toEqual([]);
  }, 30_000);

  it('refuses WORKERS above 1 with the embedded database, saying why', () => {
    const run = spawnSync(process.execPath, [join(ROOT, 'dist/main.js')], { cwd: dir, env: env({ WORKERS: '2' }), encoding: 'utf8' });
    expect(run.status).toBe(1);
    expect(run.stderr).toContain('configuration error: WORKERS=2 needs DATABASE_URL: the embedded database (PGlite) serves one process');
  });
});
