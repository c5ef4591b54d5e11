import { expect } from '@jest/globals';
import { readFileSync, writeFileSync } from 'node:fs';
import { call, type TestAccount, type TestApp } from '../../helpers/app.js';
import { scrapeMetrics } from '../../helpers/metrics.js';
import { TINY_LLAMA, type TinySetup } from '../../helpers/tiny.js';
import { upload } from '../../helpers/uploads.js';

export interface RunResult {
  response: string;
  usage: { prompt_tokens: number; completion_tokens: number; total_tokens: number };
}

type Variant = { limits?: object; engine?: object; [field: string]: unknown };

/**
 * Adds copies of the tiny llama under other names to the setup's MODELS_FILE, each with its own settings
 * (`limits` and `engine` merged key by key), so one app can serve a model per setting under test.
 */
export function addLlamaVariants(tiny: TinySetup, variants: Record<string, Variant>): void {
  const entries = JSON.parse(readFileSync(tiny.modelsFile, 'utf8')) as ({ name: string } & Variant)[];
  const llama = entries.find((entry) => entry.name === TINY_LLAMA)!;
  for (const [name, extra] of Object.entries(variants)) {
    entries.push({ ...llama, ...extra, name, limits: { ...llama.limits, ...extra.limits }, engine: { ...llama.engine, ...extra.engine } });
  }
  writeFileSync(tiny.modelsFile, JSON.stringify(entries));
}

export function run(t: TestApp, account: TestAccount, model: string, body: unknown) {
  return call<RunResult>(t.baseUrl, 'POST', `/accounts/${account.id}/ai/run/${model}`, { token: account.token, body });
}

/** The raw response, for byte-for-byte comparisons and headers. */
export function runRaw(t: TestApp, account: TestAccount, model: string, body: unknown, signal?: AbortSignal): Promise<Response> {
  return fetch(`${t.baseUrl}/accounts/${account.id}/ai/run/${model}`, {
    method: 'POST',
    headers: { authorization: `Bearer ${account.token}`, 'content-type': 'application/json' },
    body: JSON.stringify(body),
    signal,
  });
}

/** The sum of a metric's samples whose labels include `labels` (0 when there is none yet). */
export async function metricSum(t: TestApp, name: string, labels: Record<string, string>): Promise<number> {
  const family = (await scrapeMetrics(t)).get(name);
  const matching = (family?.samples ?? []).filter((s) => Object.entries(labels).every(([k, v]) => s.labels[k] === v));
  return matching.reduce((sum, s) => sum + s.value, 0);
}

/** Generations this app's engine ran for a model, ended the given way or (without one) however they ended. */
export function engineRuns(t: TestApp, model: string, finishReason?: 'stop' | 'length' | 'aborted' | 'error'): Promise<number> {
  return metricSum(t, 'inference_runs_total', { model, ...(finishReason && { finish_reason: finishReason }) });
}

/** Requests of a model generating right now. */
export function activeRequests(t: TestApp, model: string): Promise<number> {
  return metricSum(t, 'inference_active_requests', { model });
}

/** Requests of a model waiting for a generation slot. */
export function queuedRequests(t: TestApp, model: string): Promise<number> {
  return metricSum(t, 'inference_queue_depth', { model });
}

/**
 * Greedy decoding of this prompt on the tiny llama goes on for over 18000 tokens (minutes on a CPU), so on an
 * engine with room for them (ROOMY) a stream of it holds its generation slot until it is aborted.
 */
export const ENDLESS = { prompt: 'x', max_tokens: 16_000, temperature: 0, stream: true };
export const ROOMY = { context_size: 65_536 };

/** Starts a stream and returns once its first piece arrived, i.e. once it holds a generation slot. */
export async function holdSlot(t: TestApp, account: TestAccount, model: string): Promise<AbortController> {
  const controller = new AbortController();
  const response = await runRaw(t, account, model, ENDLESS, controller.signal);
  expect(response.status).toBe(200);
  await response.body!.getReader().read();
  return controller;
}

/** Waits (bounded) until the app has no generation of the model running. */
export async function idle(t: TestApp, model: string): Promise<void> {
  const deadline = Date.now() + 15_000;
  while ((await activeRequests(t, model)) > 0 && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 50));
  expect(await activeRequests(t, model)).toBe(0);
}

export async function readyFinetune(t: TestApp, tiny: TinySetup, account: TestAccount, model: string, name: string) {
  const created = await call<{ id: string; name: string }>(t.baseUrl, 'POST', `/accounts/${account.id}/ai/finetunes`, {
    token: account.token,
    body: { model, name },
  });
  expect(created.status).toBe(200);
  const files = tiny.read('tiny-llama-qv');
  expect((await upload(t.baseUrl, account, name, 'adapter_config.json', files.config)).status).toBe(200);
  expect((await upload(t.baseUrl, account, name, 'adapter_model.safetensors', files.safetensors)).status).toBe(200);
  return created.body.result;
}
