import { expect } from '@jest/globals';
import { readFileSync, writeFileSync } from 'node:fs';
import { RunService } from '../../../src/inference/run.service.js';
import { call, type TestAccount, type TestApp } from '../../helpers/app.js';
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

/** Generations this app's engine ran for a model, however they ended. */
export function engineRuns(t: TestApp, model: string): number {
  const counts = t.app.get(RunService).finishCounts(model);
  return counts.stop + counts.length + counts.aborted;
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
  const runs = t.app.get(RunService);
  const deadline = Date.now() + 15_000;
  while (runs.activeRequests(model) > 0 && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 50));
  expect(runs.activeRequests(model)).toBe(0);
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
