import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import pg from 'pg';
import { UsageRecorder } from '../../../src/usage/usage-recorder.service.js';
import { ADMIN_TOKEN, call, createAccount, startTestApp, type TestAccount, type TestApp } from '../../helpers/app.js';
import { createTestDatabase } from '../../helpers/database.js';
import { TINY_LLAMA, tinySetup, type TinySetup } from '../../helpers/tiny.js';
import { addLlamaVariants, holdSlot, idle, readyFinetune, ROOMY, run, runRaw, type RunResult } from './helpers.js';

const METERED = '@cf/tiny/metered-llama';
const COSTS = { input_tokens: 0.25, output_tokens: 1.5 };
/** Its engine's context is far smaller than a long prompt: generation fails inside the engine. */
const CRAMPED = '@cf/tiny/cramped-llama';

interface Totals {
  key: string | null;
  requests: number;
  cache_hits: number;
  prompt_tokens: number;
  completion_tokens: number;
  total_tokens: number;
  neurons: number;
}

let tiny: TinySetup;
let t: TestApp;
let acme: TestAccount;

function usage(account: TestAccount, query = '') {
  return call<Totals[]>(t.baseUrl, 'GET', `/accounts/${account.id}/ai/usage${query}`, { token: account.token });
}

/** The usage object of each answer, streamed or not. */
async function usageOf(response: Response): Promise<RunResult['usage']> {
  if (!response.headers.get('content-type')?.includes('text/event-stream')) return ((await response.json()) as { result: RunResult }).result.usage;
  const events = (await response.text()).split('\n\n').filter((e) => e.startsWith('data: {'));
  return JSON.parse(events.at(-1)!.slice('data: '.length)).usage;
}

function sum(usages: RunResult['usage'][], costs?: typeof COSTS) {
  return {
    requests: usages.length,
    prompt_tokens: usages.reduce((n, u) => n + u.prompt_tokens, 0),
    completion_tokens: usages.reduce((n, u) => n + u.completion_tokens, 0),
    total_tokens: usages.reduce((n, u) => n + u.total_tokens, 0),
    neurons: costs ? usages.reduce((n, u) => n + u.prompt_tokens * costs.input_tokens + u.completion_tokens * costs.output_tokens, 0) : 0,
  };
}

/** The UTC date `offset` days from now, as YYYY-MM-DD. */
function utcDay(offset: number): string {
  return new Date(Date.now() + offset * 86_400_000).toISOString().slice(0, 10);
}

async function queryDb<R>(url: string, sql: string, values: unknown[]): Promise<R[]> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    return (await client.query(sql, values)).rows as R[];
  } finally {
    await client.end();
  }
}

beforeAll(async () => {
  tiny = await tinySetup();
  addLlamaVariants(tiny, {
    [METERED]: { neuron_costs: COSTS, engine: ROOMY },
    [CRAMPED]: { engine: { context_size: 32 } },
  });
  t = await startTestApp({ MODELS_FILE: tiny.modelsFile, CACHE_DIR: `${tiny.dir}/cache` });
  acme = await createAccount(t.baseUrl, 'acme');
}, 60_000);
afterAll(() => t.close());

describe('usage metering', () => {
  const metered: RunResult['usage'][] = [];
  const withLora: RunResult['usage'][] = [];
  const plain: RunResult['usage'][] = [];
  let lora: { id: string };
  /** UTC days the runs started and ended on (the same one unless they straddled midnight). */
  let days: string[];

  beforeAll(async () => {
    const firstDay = utcDay(0);
    lora = await readyFinetune(t, tiny, acme, METERED, 'qv');
    const bodies = [
      { prompt: 'hello world', max_tokens: 6, temperature: 0 },
      { prompt: 'another one', max_tokens: 9 },
      { messages: [{ role: 'user', content: 'hi there' }], max_tokens: 5 },
      { prompt: 'stream it', max_tokens: 7, stream: true },
    ];
    for (const body of bodies) {
      metered.push(await usageOf(await runRaw(t, acme, METERED, body)));
      const adapted = await usageOf(await runRaw(t, acme, METERED, { ...body, lora: 'qv' }));
      metered.push(adapted);
      withLora.push(adapted);
      plain.push(await usageOf(await runRaw(t, acme, TINY_LLAMA, body)));
    }
    days = [...new Set([firstDay, utcDay(0)])];
  }, 60_000);

  it('totals by model equal the sums of the usage objects the runs returned; neurons are tokens times the costs', async () => {
    await t.app.get(UsageRecorder).flush();
    const response = await usage(acme, '?group_by=model');
    expect(response.status).toBe(200);
    const byModel = Object.fromEntries(response.body.result.map((row) => [row.key, row]));
    const expected = sum(metered, COSTS);
    expect(byModel[METERED]).toMatchObject({ ...expected, cache_hits: 0, neurons: expect.any(Number) });
    expect(byModel[METERED]!.neurons).toBeCloseTo(expected.neurons, 6);
    expect(byModel[TINY_LLAMA]).toEqual({ key: TINY_LLAMA, ...sum(plain), cache_hits: 0 });
  });

  it('groups by finetune (base-model runs under null) and by UTC day; without group_by, one grand total', async () => {
    const byFinetune = (await usage(acme, '?group_by=finetune')).body.result;
    expect(byFinetune.map((row) => row.key)).toEqual([null, lora.id]);
    const { neurons: _, ...adapted } = sum(withLora);
    expect(byFinetune[1]).toMatchObject(adapted);
    expect(byFinetune[1]!.neurons).toBeCloseTo(sum(withLora, COSTS).neurons, 6);

    const all = sum([...metered, ...plain]);
    const byDay = (await usage(acme, '?group_by=day')).body.result;
    expect(byDay.map((row) => row.key)).toEqual(days);
    expect(byDay.reduce((n, row) => n + row.requests, 0)).toBe(all.requests);
    expect(sum(byDay)).toMatchObject({ prompt_tokens: all.prompt_tokens, completion_tokens: all.completion_tokens });
    const total = (await usage(acme)).body.result;
    expect(total).toEqual([expect.objectContaining({ key: null, requests: all.requests, prompt_tokens: all.prompt_tokens, completion_tokens: all.completion_tokens })]);
  });

  it('reads only the caller\'s own account; the admin surface reads any account', async () => {
    const other = await createAccount(t.baseUrl, 'other');
    expect((await usage(other)).body.result).toEqual([
      { key: null, requests: 0, cache_hits: 0, prompt_tokens: 0, completion_tokens: 0, total_tokens: 0, neurons: 0 },
    ]);
    expect((await call(t.baseUrl, 'GET', `/accounts/${acme.id}/ai/usage`, { token: other.token })).status).toBe(403);
    const admin = await call<Totals[]>(t.baseUrl, 'GET', `/admin/accounts/${acme.id}/usage?group_by=model`, { token: ADMIN_TOKEN });
    expect(admin.status).toBe(200);
    expect(admin.body.result).toEqual((await usage(acme, '?group_by=model')).body.result);
    expect((await call(t.baseUrl, 'GET', `/admin/accounts/${acme.id}/usage`, { token: acme.token })).status).toBe(401);
  });

  it('from (inclusive) and to (exclusive) bound the totals', async () => {
    expect((await usage(acme, `?from=${utcDay(1)}&to=${utcDay(2)}&group_by=model`)).body.result).toEqual([]);
    expect((await usage(acme, `?to=${days[0]}&group_by=model`)).body.result).toEqual([]);
    expect((await usage(acme, `?from=${days[0]}&to=${utcDay(1)}`)).body.result[0]!.requests).toBe(metered.length + plain.length);
  });

  it.each([
    ['?group_by=week', 'group_by'],
    ['?from=yesterday', 'from'],
    ['?to=2026-13-01', 'to'],
    ['?from=2026-02-01&to=2026-01-01', 'before'],
    ['?colour=red', 'colour'],
  ])('query %s is 400/5006 naming %s', async (query, named) => {
    const response = await usage(acme, query);
    expect(response.status).toBe(400);
    expect(response.body.errors[0]).toMatchObject({ code: 5006, message: expect.stringContaining(named) });
  });

  it('aborted streams and failed generations are recorded with their status', async () => {
    const holder = await holdSlot(t, acme, METERED);
    holder.abort();
    await idle(t, METERED);
    const failed = await run(t, acme, CRAMPED, { prompt: 'x'.repeat(500), max_tokens: 4 });
    expect(failed.status).toBe(400);
    await t.app.get(UsageRecorder).flush();
    const rows = await queryDb<{ model: string; status: string; completion_tokens: number }>(
      t.db.url,
      `SELECT model, status::text, completion_tokens FROM usage_records WHERE account_id = $1 AND status <> 'ok' ORDER BY id`,
      [acme.id],
    );
    expect(rows).toEqual([
      { model: METERED, status: 'aborted', completion_tokens: expect.any(Number) },
      { model: CRAMPED, status: 'error', completion_tokens: 0 },
    ]);
  });
});

describe('usage on graceful shutdown', () => {
  it('records still buffered, and runs aborted by the shutdown itself, are written before the process ends', async () => {
    const db = await createTestDatabase();
    const app = await startTestApp({ MODELS_FILE: tiny.modelsFile, CACHE_DIR: `${tiny.dir}/cache` }, { database: db });
    try {
      const account = await createAccount(app.baseUrl, 'acme');
      for (let i = 0; i < 2; i++) expect((await run(app, account, METERED, { prompt: 'hi', max_tokens: 3 })).status).toBe(200);
      const holder = await holdSlot(app, account, METERED);
      await app.close();
      holder.abort();
      const rows = await queryDb<{ status: string }>(db.url, 'SELECT status::text FROM usage_records WHERE account_id = $1 ORDER BY id', [account.id]);
      expect(rows.map((r) => r.status)).toEqual(['ok', 'ok', 'aborted']);
    } finally {
      await db.drop();
    }
  });
});
