import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { buildTinyModel, TINY_MODELS } from '../../../src/demo/tiny-model.js';
import { call, createAccount, startTestApp, type TestAccount, type TestApp } from '../../helpers/app.js';
import { tinySetup, type TinySetup } from '../../helpers/tiny.js';
import { upload } from '../../helpers/uploads.js';

export const MODEL = '@cf/acme/fleet-llama-lora';
export const BASE = 'meta-llama/Llama-2-7b-chat-hf';

export interface Fleet {
  t: TestApp;
  tiny: TinySetup;
  acme: TestAccount;
  adapterDir: string;
  /** The finetunes' names, in order (the hottest first in skewed traffic). */
  finetunes: string[];
  env: Record<string, string>;
}

/** A service whose MODEL runs on `engine` (plus adapter_dir), with `count` ready finetunes of the tiny adapter. */
export async function startFleet(engine: Record<string, unknown>, count: number, adapterDir = mkdtempSync(join(tmpdir(), 'fleet-adapters-'))): Promise<Fleet> {
  const architecture = buildTinyModel(TINY_MODELS[0]!.spec).architecture;
  const tiny = await tinySetup([
    { name: MODEL, architecture, base_model: BASE, limits: { max_concurrent_requests: 32 }, engine: { served_model: BASE, adapter_dir: adapterDir, ...engine } },
  ]);
  const env = { MODELS_FILE: tiny.modelsFile, CACHE_DIR: join(tiny.dir, 'cache') };
  const t = await startTestApp(env);
  const acme = await createAccount(t.baseUrl);
  const files = tiny.read('tiny-llama-qv');
  const finetunes = Array.from({ length: count }, (_, i) => `ft${String(i).padStart(2, '0')}`);
  for (const name of finetunes) {
    await call(t.baseUrl, 'POST', `/accounts/${acme.id}/ai/finetunes`, { token: acme.token, body: { model: MODEL, name } });
    await upload(t.baseUrl, acme, name, 'adapter_config.json', files.config);
    await upload(t.baseUrl, acme, name, 'adapter_model.safetensors', files.safetensors);
  }
  return { t, tiny, acme, adapterDir, finetunes, env };
}

export interface RunOutcome {
  status: number;
  /** Non-streaming: the response text; streaming: the pieces joined. */
  text: string;
  /** Streaming: data events before the end, and how it ended. */
  pieces: number;
  ended: 'done' | 'error' | 'json';
  error?: { code: number; message: string };
}

/** One run through the service; `lora` undefined runs the base model. */
export async function run(app: TestApp, acme: TestAccount, body: { lora?: string; stream?: boolean; max_tokens?: number; prompt?: string }): Promise<RunOutcome> {
  const response = await fetch(`${app.baseUrl}/accounts/${acme.id}/ai/run/${MODEL}`, {
    method: 'POST',
    headers: { authorization: `Bearer ${acme.token}`, 'content-type': 'application/json' },
    body: JSON.stringify({ prompt: 'hello fleet', raw: true, max_tokens: 4, ...body }),
  });
  const text = await response.text();
  if (!body.stream || response.status !== 200) {
    const parsed = JSON.parse(text) as { result?: { response: string }; errors?: { code: number; message: string }[] };
    return { status: response.status, text: parsed.result?.response ?? '', pieces: 0, ended: 'json', error: parsed.errors?.[0] };
  }
  const events = text.split('\n\n').filter((e) => e.startsWith('data: '));
  const data = events.map((e) => e.slice(6));
  const objects = data.filter((d) => d !== '[DONE]').map((d) => JSON.parse(d) as { response?: string; error?: { code: number; message: string } });
  const failure = objects.find((o) => o.error !== undefined)?.error;
  return {
    status: response.status,
    text: objects.map((o) => o.response ?? '').join(''),
    pieces: objects.filter((o) => o.response).length,
    ended: failure ? 'error' : data.at(-1) === '[DONE]' ? 'done' : 'error',
    error: failure,
  };
}

/** A deterministic Zipf-like draw of `count` indices in [0, n): a few hot adapters, a long cold tail. */
export function skewed(n: number, count: number, seed = 7): number[] {
  const weights = Array.from({ length: n }, (_, i) => 1 / (i + 1) ** 1.3);
  const total = weights.reduce((a, b) => a + b, 0);
  let state = seed;
  const random = () => {
    state = (Math.imul(state, 1103515245) + 12345) >>> 0;
    return state / 2 ** 32;
  };
  return Array.from({ length: count }, () => {
    let r = random() * total;
    for (const [i, w] of weights.entries()) if ((r -= w) < 0) return i;
    return n - 1;
  });
}

/** Runs `jobs` with at most `concurrency` at once, in order of start. */
export async function pool<T>(jobs: (() => Promise<T>)[], concurrency: number): Promise<T[]> {
  const results: T[] = new Array(jobs.length);
  let next = 0;
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (next < jobs.length) {
        const i = next++;
        results[i] = await jobs[i]!();
      }
    }),
  );
  return results;
}

/** The served adapter name an answer came from: the stand-ins answer `<model> heard: ...`. */
export const servedName = (text: string): string => text.split(' ')[0]!;

export async function until(condition: () => boolean | Promise<boolean>, what: string, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await condition())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
}

export const rootOf = (app: TestApp) => app.baseUrl.replace(/\/client\/v4$/, '');
