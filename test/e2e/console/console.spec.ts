/**
 * The web console in a real Chromium against the real service (llama.cpp on the tiny models, PostgreSQL, s3rver):
 * sign in, browse the catalog, create a finetune and upload the demo adapter folder, stream a run and stop it (the
 * server's generation ends), compare with and without the adapter, see the API's errors, read usage, delete.
 * Screenshots of each page go to test-artifacts/console/.
 */
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { execFile } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import pg from 'pg';
import type { BrowserContext, Page } from 'playwright-core';
import { CONSOLE_CSP } from '../../../src/console/console-routes.js';
import { UsageRecorder } from '../../../src/usage/usage-recorder.service.js';
import { call, createAccount, startTestApp, type TestAccount, type TestApp } from '../../helpers/app.js';
import { parsePrometheusText, sampleValue } from '../../helpers/prometheus-text.js';
import { TINY_LLAMA, tinySetup, type TinySetup } from '../../helpers/tiny.js';
import { upload } from '../../helpers/uploads.js';
import { buildConsole, launchChromium, screenshot } from './browser.js';

const ROOT = join(import.meta.dirname, '../../..');
const ADAPTER = 'tiny-llama-qv';
/** Long enough that a run is still going when Stop is pressed (the engine's context is widened to allow it). */
const LONG_RUN_TOKENS = 15_000;

let tiny: TinySetup;
let t: TestApp;
let origin: string;
let account: TestAccount;
let browser: { context: BrowserContext; close: () => Promise<void> };
let page: Page;
let finetuneId: string;
const cspViolations: string[] = [];
const pageErrors: string[] = [];

const run = promisify(execFile);

async function activeGenerations(): Promise<number> {
  const text = await (await fetch(`${origin}/metrics`)).text();
  return sampleValue(parsePrometheusText(text), 'inference_active_requests', { model: TINY_LLAMA });
}

async function until<T>(probe: () => Promise<T>, done: (value: T) => boolean, what: string, timeoutMs = 20_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (done(value)) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what} (last: ${JSON.stringify(value)})`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

async function usageRecords(): Promise<{ status: string; completion_tokens: number; finetune_id: string | null }[]> {
  await t.app.get(UsageRecorder).flush();
  const client = new pg.Client({ connectionString: t.db.url });
  await client.connect();
  try {
    const { rows } = await client.query('SELECT status::text, completion_tokens, finetune_id FROM usage_records WHERE account_id = $1 ORDER BY id', [account.id]);
    return rows;
  } finally {
    await client.end();
  }
}

const outputs = () => page.locator('section.output');

beforeAll(async () => {
  buildConsole();
  tiny = await tinySetup();
  // A context far beyond the tiny model's trained 512 tokens, so a run can be long enough to stop by hand.
  const models = JSON.parse(readFileSync(tiny.modelsFile, 'utf8')) as { name: string; engine: Record<string, unknown> }[];
  models.find((m) => m.name === TINY_LLAMA)!.engine.context_size = LONG_RUN_TOKENS + 1024;
  writeFileSync(tiny.modelsFile, JSON.stringify(models));
  t = await startTestApp({ MODELS_FILE: tiny.modelsFile, CACHE_DIR: join(tiny.dir, 'cache') });
  origin = new URL(t.baseUrl).origin;
  account = await createAccount(t.baseUrl);
  browser = await launchChromium();
  page = browser.context.pages()[0] ?? (await browser.context.newPage());
  // Below jest's own timeout, so a missing element fails with Playwright's description of what it waited for.
  page.setDefaultTimeout(15_000);
  page.on('console', (message) => {
    if (/Content.Security.Policy/i.test(message.text())) cspViolations.push(message.text());
  });
  page.on('pageerror', (error) => pageErrors.push(error.message));
}, 120_000);

afterAll(async () => {
  await browser?.close();
  await t?.close();
});

describe('web console', () => {
  it('serves its page with a strict Content-Security-Policy and its hashed assets as immutable', async () => {
    const response = await fetch(`${origin}/console/`);
    expect(response.status).toBe(200);
    expect(response.headers.get('content-security-policy')).toBe(CONSOLE_CSP);
    expect(CONSOLE_CSP).toContain("script-src 'self'");
    expect(CONSOLE_CSP).toContain("connect-src 'self'");
    expect(CONSOLE_CSP).not.toContain('unsafe-inline');
    const html = await response.text();
    // Nothing inline: every script and stylesheet is a file of this origin.
    expect(html).not.toMatch(/<script(?![^>]*\bsrc=)[^>]*>/);
    expect(html).not.toMatch(/<style|style=/);
    const assets = [...html.matchAll(/(?:src|href)="\.\/(assets\/[^"]+)"/g)].map((m) => m[1]!);
    expect(assets.length).toBeGreaterThanOrEqual(2);
    for (const asset of assets) {
      const file = await fetch(`${origin}/console/${asset}`);
      expect(file.status).toBe(200);
      expect(file.headers.get('cache-control')).toBe('public, max-age=31536000, immutable');
      await file.arrayBuffer();
    }
    const missing = await fetch(`${origin}/console/assets/none-such.js`);
    expect(missing.status).toBe(404);
    expect(((await missing.json()) as { success: boolean }).success).toBe(false);
    const bare = await fetch(`${origin}/console`, { redirect: 'manual' });
    expect(bare.status).toBe(301);
    expect(bare.headers.get('location')).toBe('/console/');
  });

  it('refuses a wrong token with a readable message, then signs in with account id and token', async () => {
    await page.goto(`${origin}/console/`);
    await page.getByLabel('Account id').fill(account.id);
    await page.getByLabel('API token').fill('not-a-valid-token');
    await screenshot(page, '01-sign-in');
    await page.getByRole('button', { name: 'Sign in' }).click();
    await page.getByRole('alert').getByText('The API token was not accepted').waitFor();

    // From the keyboard this time: Enter in the token field submits.
    await page.getByLabel('API token').fill(account.token);
    await page.getByLabel('API token').press('Enter');
    await page.getByRole('heading', { name: 'Playground' }).waitFor();
    const stored = await page.evaluate(() => sessionStorage.getItem('lora-hub.session'));
    expect(JSON.parse(stored!)).toEqual({ account: account.id, token: account.token });
    expect(page.url()).not.toContain(account.token);
    expect(await page.evaluate(() => localStorage.length)).toBe(0);
  });

  it('lists the models with their LoRA flag, description and readable input schema', async () => {
    await page.getByRole('link', { name: 'Models' }).click();
    const card = page.locator('article', { hasText: TINY_LLAMA });
    await card.waitFor();
    await card.locator('.badge-lora').waitFor();
    await card.getByText('Tiny random-weight Llama').waitFor();
    await card.getByRole('button', { name: 'Show input schema' }).click();
    await card.getByRole('cell', { name: 'max_tokens' }).first().waitFor();
    await card.getByRole('cell', { name: 'temperature' }).first().waitFor();
    // A built-in card without an engine says so.
    await page.locator('article', { hasText: '@cf/meta/llama-2-7b-chat-int8' }).getByText('no engine').waitFor();
    await screenshot(page, '02-models');
  });

  it('creates a finetune, uploads the demo adapter folder with progress per file, and sees it ready', async () => {
    await page.getByRole('link', { name: 'Finetunes' }).click();
    await page.getByLabel('Base model').selectOption(TINY_LLAMA);
    await page.getByLabel('Name', { exact: true }).fill('console-lora');
    await page.getByLabel('Description (optional)').fill('uploaded from the console');
    await page.getByRole('button', { name: 'Create finetune' }).click();
    await page.getByRole('heading', { name: /console-lora/ }).waitFor();
    finetuneId = (await page.locator('dd code').first().textContent())!;
    expect(finetuneId).toMatch(/^[0-9a-f-]{36}$/);

    await page.getByLabel('Choose adapter folder').setInputFiles(tiny.adapters[ADAPTER]!);
    await page.locator('[data-file="adapter_model.safetensors"]').getByText('ready to upload').waitFor();
    await screenshot(page, '03-finetune-upload');
    await page.getByRole('button', { name: 'Upload', exact: true }).click();
    await page.getByText('the finetune is ready to use').waitFor();
    await page.locator('.badge-ready', { hasText: 'ready' }).first().waitFor();
    await screenshot(page, '04-finetune-ready');

    const stored = await call<{ status: string; description: string }>(t.baseUrl, 'GET', `/accounts/${account.id}/ai/finetunes/${finetuneId}`, { token: account.token });
    expect(stored.body.result).toMatchObject({ status: 'ready', description: 'uploaded from the console' });

    await page.getByRole('link', { name: 'Finetunes' }).first().click();
    await page.getByRole('link', { name: 'console-lora' }).waitFor();
    await screenshot(page, '05-finetunes');
  });

  it("shows the service's validation error inline, naming the file and tensor exactly as the API does", async () => {
    // The demo adapter's tensors with a config claiming another rank.
    const dir = mkdtempSync(join(tmpdir(), 'broken-adapter-'));
    const files = tiny.read(ADAPTER);
    const config = JSON.parse(files.config.toString('utf8')) as { r: number };
    config.r = 4;
    writeFileSync(join(dir, 'adapter_config.json'), JSON.stringify(config));
    writeFileSync(join(dir, 'adapter_model.safetensors'), files.safetensors);
    // What the API says for these files.
    await call(t.baseUrl, 'POST', `/accounts/${account.id}/ai/finetunes`, { token: account.token, body: { model: TINY_LLAMA, name: 'broken-api' } });
    expect((await upload(t.baseUrl, account, 'broken-api', 'adapter_config.json', Buffer.from(JSON.stringify(config)))).status).toBe(200);
    const rejected = await upload(t.baseUrl, account, 'broken-api', 'adapter_model.safetensors', files.safetensors);
    expect(rejected.status).toBe(400);
    const message = rejected.body.errors[0]!.message;
    expect(message).toMatch(/^adapter_model\.safetensors: .*lora_/);

    await page.goto(`${origin}/console/#/finetunes`);
    await page.getByLabel('Base model').selectOption(TINY_LLAMA);
    await page.getByLabel('Name', { exact: true }).fill('broken-console');
    await page.getByRole('button', { name: 'Create finetune' }).click();
    await page.getByRole('heading', { name: /broken-console/ }).waitFor();
    await page.getByLabel('Choose adapter files').setInputFiles([join(dir, 'adapter_config.json'), join(dir, 'adapter_model.safetensors')]);
    await page.getByRole('button', { name: 'Upload', exact: true }).click();
    const row = page.locator('[data-file="adapter_model.safetensors"]');
    await row.getByText('rejected').waitFor();
    expect(await row.locator('.file-error strong').textContent()).toBe(message);
    expect(await row.locator('.file-error').textContent()).toContain(`(code ${rejected.body.errors[0]!.code})`);
    await page.locator('[data-file="adapter_config.json"]').getByText('uploaded').waitFor();
    await screenshot(page, '06-upload-rejected');
  });

  it('shows an unknown finetune as a message, not a blank page', async () => {
    await page.goto(`${origin}/console/#/finetunes/no-such-finetune`);
    await page.getByRole('alert').getByText('Not found.').waitFor();
    await page.getByRole('alert').getByText('no-such-finetune').waitFor();
  });

  it('streams a run with the finetune: text arrives, then usage and latency', async () => {
    await page.goto(`${origin}/console/#/playground`);
    await page.getByLabel('Model', { exact: true }).selectOption(TINY_LLAMA);
    await page.getByLabel('Finetune (optional)').selectOption({ label: 'console-lora' });
    await page.getByLabel('max_tokens', { exact: true }).fill('48');
    await page.getByLabel('seed', { exact: true }).fill('7');
    await page.getByRole('button', { name: 'Run', exact: true }).click();
    const pane = outputs().first();
    await until(() => pane.getAttribute('data-state'), (s) => s === 'done', 'the run to finish');
    expect((await pane.locator('.output-text').textContent())!.length).toBeGreaterThan(0);
    const stats = await pane.locator('.stats dd').allTextContents();
    expect(stats[0]).toMatch(/^\d[\d,]* ms$/);
    expect(stats[2]).toMatch(/^\d/);
    expect(stats[3]).toMatch(/^\d+ \/ \d+$/);
    const snippet = await page.getByTestId('snippet').textContent();
    expect(snippet).toContain(`"lora":"${finetuneId}"`);
    await screenshot(page, '07-playground');
    const records = await usageRecords();
    expect(records.at(-1)).toMatchObject({ status: 'ok', finetune_id: finetuneId });
  });

  it('runs a messages chat without streaming', async () => {
    await page.getByRole('radio', { name: 'Chat messages' }).check();
    await page.getByRole('textbox', { name: 'Content of message 2' }).fill('Name three colours.');
    await page.getByRole('button', { name: 'Add message' }).click();
    await page.getByRole('textbox', { name: 'Content of message 3' }).waitFor();
    await page.getByRole('button', { name: 'Remove message 3' }).click();
    await page.getByRole('checkbox', { name: /Stream the answer/ }).uncheck();
    const snippet = JSON.parse(/-d '(.*)'$/m.exec((await page.getByTestId('snippet').textContent())!)![1]!) as Record<string, unknown>;
    expect(snippet).toEqual({
      messages: [
        { role: 'system', content: 'You are a helpful assistant.' },
        { role: 'user', content: 'Name three colours.' },
      ],
      max_tokens: 48,
      seed: 7,
      lora: finetuneId,
    });
    await page.getByRole('button', { name: 'Run', exact: true }).click();
    const pane = outputs().first();
    await until(() => pane.getAttribute('data-state'), (s) => s === 'done', 'the run to finish');
    expect((await pane.locator('.output-text').textContent())!.length).toBeGreaterThan(0);
    expect(await pane.locator('.stats dd').nth(3).textContent()).toMatch(/^\d+ \/ \d+$/);
    await page.getByRole('radio', { name: 'Prompt' }).check();
    await page.getByRole('checkbox', { name: /Stream the answer/ }).check();
  });

  it('copies the request shown as curl and openai SDK code that runs as shown', async () => {
    const curl = (await page.getByTestId('snippet').textContent())!;
    expect(curl).toMatch(/^curl -N -X POST/);
    const fromCurl = await run('bash', ['-c', curl], { env: { PATH: process.env.PATH!, TOKEN: account.token } });
    expect(fromCurl.stdout).toContain('data: {"response":');
    expect(fromCurl.stdout).toContain('data: [DONE]');

    await page.getByRole('tab', { name: 'openai SDK' }).click();
    const openai = (await page.getByTestId('snippet').textContent())!;
    expect(openai).toContain(`"model": ${JSON.stringify(`${TINY_LLAMA}:${finetuneId}`)}`);
    const fromOpenai = await run(process.execPath, ['--input-type=module', '-e', openai], { cwd: ROOT, env: { PATH: process.env.PATH!, TOKEN: account.token } });
    expect(fromOpenai.stdout.length).toBeGreaterThan(0);

    await page.getByRole('tab', { name: 'cloudflare SDK' }).click();
    const cloudflare = (await page.getByTestId('snippet').textContent())!;
    const fromCloudflare = await run(process.execPath, ['--input-type=module', '-e', cloudflare], { cwd: ROOT, env: { PATH: process.env.PATH!, TOKEN: account.token } });
    expect(fromCloudflare.stdout).toContain('response');

    await page.getByRole('tab', { name: 'lora CLI' }).click();
    const cli = (await page.getByTestId('snippet').textContent())!;
    expect(cli).toContain(`lora run ${TINY_LLAMA} --lora '${finetuneId}' --stream --max-tokens 48`);
    await page.getByRole('tab', { name: 'curl' }).click();
  }, 60_000);

  it('Stop aborts the generation on the server', async () => {
    // Greedy decoding of this raw prompt on the base model never meets an end of turn: it runs to max_tokens.
    await page.getByLabel('Finetune (optional)').selectOption({ label: 'None (base model)' });
    await page.getByRole('textbox', { name: 'Prompt', exact: true }).fill('x');
    await page.getByRole('checkbox', { name: /raw/ }).check();
    await page.getByLabel('temperature', { exact: true }).fill('0');
    await page.getByLabel('seed', { exact: true }).fill('');
    await page.getByLabel('max_tokens', { exact: true }).fill(String(LONG_RUN_TOKENS));
    await page.getByRole('button', { name: 'Run', exact: true }).click();
    const text = outputs().first().locator('.output-text');
    const first = await until(async () => (await text.textContent())!.length, (n) => n > 0, 'the first text');
    // Text keeps arriving while the server generates.
    await until(async () => (await text.textContent())!.length, (n) => n > first, 'more text');
    expect(await activeGenerations()).toBe(1);
    await page.getByRole('button', { name: 'Stop' }).click();
    await until(() => outputs().first().getAttribute('data-state'), (s) => s === 'stopped', 'the pane to show stopped');
    await until(activeGenerations, (n) => n === 0, 'the server to end the generation');
    const records = await usageRecords();
    expect(records.at(-1)!.status).toBe('aborted');
    expect(records.at(-1)!.completion_tokens).toBeGreaterThan(0);
    expect(records.at(-1)!.completion_tokens).toBeLessThan(LONG_RUN_TOKENS);
    await screenshot(page, '08-playground-stopped');
  });

  it('compare mode runs the same input with and without the adapter side by side, with one seed', async () => {
    await page.getByRole('textbox', { name: 'Prompt', exact: true }).fill('Tell me a short story about a lighthouse.');
    await page.getByRole('checkbox', { name: /raw/ }).uncheck();
    await page.getByLabel('temperature', { exact: true }).fill('');
    await page.getByLabel('max_tokens', { exact: true }).fill('32');
    await page.getByLabel('Compare side by side').check();
    await page.getByLabel('Adapter A').selectOption({ label: 'console-lora' });
    await page.getByLabel('Adapter B').selectOption({ label: 'None (base model)' });
    // The random-weight model may end its turn at the first token for some seeds; such a run is done but empty, so
    // run again (with a new seed) until both sides have text to compare.
    let seed = '';
    for (let attempt = 0; attempt < 5; attempt++) {
      const previous = seed;
      await page.getByLabel('seed', { exact: true }).fill('');
      await page.getByRole('button', { name: 'Run both' }).click();
      // The seed is drawn in the same update that starts both runs: once it shows, the panes are this run's.
      seed = await until(() => page.getByLabel('seed', { exact: true }).inputValue(), (v) => v !== '' && v !== previous, 'a new seed');
      expect(seed).toMatch(/^\d+$/);
      const states = await until(
        () => outputs().evaluateAll((els) => els.map((e) => e.getAttribute('data-state'))),
        (s) => s.length === 2 && s.every((x) => x !== 'running'),
        'both runs',
      );
      expect(states).toEqual(['done', 'done']);
      const texts = await outputs().locator('.output-text').allTextContents();
      if (texts.every((text) => text.length > 0)) break;
    }
    const [withAdapter, base] = await outputs().locator('.output-text').allTextContents();
    expect(withAdapter!.length).toBeGreaterThan(0);
    expect(base!.length).toBeGreaterThan(0);
    // The adapter changes the tiny model's output for the same seed.
    expect(withAdapter).not.toBe(base);
    expect(await outputs().locator('h3').allTextContents()).toEqual(['with console-lora', 'base model']);
    const snippetA = (await page.getByTestId('snippet').textContent())!;
    await page.getByLabel('Request to copy').selectOption('1');
    const snippetB = (await page.getByTestId('snippet').textContent())!;
    expect(snippetA).toContain(`"seed":${seed}`);
    expect(snippetB).toContain(`"seed":${seed}`);
    expect(snippetA).toContain(`"lora":"${finetuneId}"`);
    expect(snippetB).not.toContain('"lora"');
    await screenshot(page, '09-playground-compare');
    await screenshot(page, '09-playground-compare-viewport', false);
    await page.getByLabel('Compare side by side').uncheck();
  });

  it("shows the API's 503 for a model without an engine as a readable message", async () => {
    await page.getByLabel('Model', { exact: true }).selectOption('@cf/meta/llama-2-7b-chat-int8');
    await page.getByRole('button', { name: 'Run', exact: true }).click();
    await until(() => outputs().first().getAttribute('data-state'), (s) => s === 'failed', 'the run to fail');
    await outputs().first().getByRole('alert').getByText('A part of the service is unavailable').waitFor();
  });

  it('charts usage per day and per finetune from the usage API', async () => {
    await t.app.get(UsageRecorder).flush();
    await page.getByRole('link', { name: 'Usage' }).click();
    await page.locator('.kpi-value').first().waitFor();
    const requests = Number((await page.locator('.kpi-value').first().textContent())!.replace(/,/g, ''));
    expect(requests).toBe((await usageRecords()).length);
    await page.getByRole('img', { name: 'Tokens per day, tokens' }).waitFor();
    await page.getByRole('img', { name: 'Tokens per finetune, tokens' }).waitFor();
    await page.getByRole('link', { name: 'console-lora' }).waitFor();
    expect(await page.locator('svg.chart-svg rect').count()).toBeGreaterThan(0);
    await screenshot(page, '10-usage');
  });

  it('is readable at 360 px wide', async () => {
    await page.setViewportSize({ width: 360, height: 780 });
    for (const [route, name] of [['playground', '11-narrow-playground'], ['finetunes', '12-narrow-finetunes'], ['usage', '13-narrow-usage']]) {
      await page.goto(`${origin}/console/#/${route}`);
      await page.locator('h1').waitFor();
      await page.waitForLoadState('networkidle');
      // A string: the test is type-checked without the DOM library.
      expect(await page.evaluate<number>('document.documentElement.scrollWidth')).toBeLessThanOrEqual(360);
      await screenshot(page, name!);
    }
    await page.setViewportSize({ width: 1280, height: 860 });
  });

  it('deletes a finetune after confirmation', async () => {
    await page.goto(`${origin}/console/#/finetunes`);
    await page.getByRole('button', { name: 'Delete console-lora' }).click();
    const dialog = page.getByRole('dialog');
    await dialog.getByText('cannot be undone').waitFor();
    await screenshot(page, '14-delete-confirm');
    await dialog.getByRole('button', { name: 'Delete' }).click();
    await page.getByRole('link', { name: 'console-lora' }).waitFor({ state: 'detached' });
    const gone = await call(t.baseUrl, 'GET', `/accounts/${account.id}/ai/finetunes/${finetuneId}`, { token: account.token });
    expect(gone.status).toBe(404);
  });

  it('ran without a Content-Security-Policy violation or an uncaught error', () => {
    expect(cspViolations).toEqual([]);
    expect(pageErrors).toEqual([]);
  });
});
