import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { createAccount, startTestApp, type TestAccount, type TestApp } from '../../helpers/app.js';
import { tinySetup, type TinySetup } from '../../helpers/tiny.js';
import { activeRequests, addLlamaVariants, holdSlot, idle, queuedRequests, ROOMY, run } from './helpers.js';

const NARROW = '@cf/tiny/narrow-llama';
/** One slot and a queue wait longer than any test: a request that queued instead of being refused would time out. */
const PATIENT = '@cf/tiny/patient-llama';

let tiny: TinySetup;
let t: TestApp;
let acme: TestAccount;

beforeAll(async () => {
  tiny = await tinySetup();
  addLlamaVariants(tiny, {
    [NARROW]: { limits: { max_concurrent_requests: 1, max_queue_wait_ms: 200 }, engine: ROOMY },
    [PATIENT]: { limits: { max_concurrent_requests: 1, max_queue_wait_ms: 120_000 }, engine: ROOMY },
  });
  t = await startTestApp({ MODELS_FILE: tiny.modelsFile, CACHE_DIR: `${tiny.dir}/cache` });
  acme = await createAccount(t.baseUrl, 'acme');
}, 60_000);
afterAll(() => t.close());

describe('concurrent requests per model', () => {
  it('a burst beyond max_concurrent_requests waits max_queue_wait_ms, then gets 429/3040; the freed slot serves again', async () => {
    const holder = await holdSlot(t, acme, NARROW);
    expect(await activeRequests(t, NARROW)).toBe(1);

    const burst = await Promise.all(Array.from({ length: 5 }, () => run(t, acme, NARROW, { prompt: 'hi', max_tokens: 2 })));
    for (const response of burst) {
      expect(response.status).toBe(429);
      expect(response.body.errors[0]).toMatchObject({ code: 3040, message: expect.stringContaining('1 concurrent requests') });
      expect(response.headers.get('retry-after')).toBe('1');
    }

    holder.abort();
    await idle(t, NARROW);
    expect((await run(t, acme, NARROW, { prompt: 'hi', max_tokens: 2 })).status).toBe(200);
  });
});

/** POST to the OpenAI-compatible routes, which live at the root rather than under /client/v4. */
function openai(path: 'chat/completions' | 'completions', body: object) {
  return fetch(`${t.baseUrl.replace(/\/client\/v4$/, '/v1')}/${path}`, {
    method: 'POST',
    headers: { authorization: `Bearer ${acme.token}`, 'content-type': 'application/json' },
    body: JSON.stringify(body),
  });
}

/** Waits (bounded) until `count` requests of the model queue for its slot. */
async function queued(model: string, count: number): Promise<void> {
  const deadline = Date.now() + 15_000;
  while ((await queuedRequests(t, model)) < count && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 20));
  expect(await queuedRequests(t, model)).toBe(count);
}

describe('rejectIfBusy', () => {
  it('at capacity, a request with it is refused at once with 429/3040 on every route; without it, it queues as before', async () => {
    const holder = await holdSlot(t, acme, PATIENT);

    const refused = await run(t, acme, PATIENT, { prompt: 'hi', max_tokens: 2, options: { rejectIfBusy: true } });
    expect(refused.status).toBe(429);
    expect(refused.body.errors[0]).toMatchObject({ code: 3040, message: expect.stringContaining('rejectIfBusy') });
    expect(refused.headers.get('retry-after')).toBe('1');

    const messages = [{ role: 'user', content: 'hi' }];
    for (const [path, body] of [
      ['chat/completions', { model: PATIENT, messages, max_tokens: 2, rejectIfBusy: true }],
      ['completions', { model: PATIENT, prompt: 'hi', max_tokens: 2, rejectIfBusy: true }],
    ] as const) {
      const response = await openai(path, body);
      expect(response.status).toBe(429);
      expect(await response.json()).toMatchObject({ error: { type: 'rate_limit_error', code: '3040', message: expect.stringContaining('rejectIfBusy') } });
    }
    // Nothing was queued by the refusals.
    expect(await queuedRequests(t, PATIENT)).toBe(0);

    // Without it (or with it false) the same requests wait for the slot and are answered once it frees.
    const waiting = [
      run(t, acme, PATIENT, { prompt: 'hi', max_tokens: 2 }),
      run(t, acme, PATIENT, { prompt: 'hi', max_tokens: 2, options: { rejectIfBusy: false } }),
      openai('chat/completions', { model: PATIENT, messages, max_tokens: 2 }),
    ];
    await queued(PATIENT, 3);
    holder.abort();
    const [plain, optedOut, chat] = await Promise.all(waiting);
    expect([plain.status, optedOut.status, chat.status]).toEqual([200, 200, 200]);
    await idle(t, PATIENT);

    // With a free slot the option changes nothing.
    expect((await run(t, acme, PATIENT, { prompt: 'hi', max_tokens: 2, options: { rejectIfBusy: true } })).status).toBe(200);
    expect((await openai('chat/completions', { model: PATIENT, messages, max_tokens: 2, rejectIfBusy: true })).status).toBe(200);
  });

  it('options is taken off the model input: other keys in it are ignored, a malformed one is a 400 naming it', async () => {
    const ignored = await run(t, acme, PATIENT, { prompt: 'hi', max_tokens: 2, options: { rejectIfBusy: true, gateway: { id: 'g' } } });
    expect(ignored.status).toBe(200);
    for (const [options, field] of [
      ['yes', 'options'],
      [[true], 'options'],
      [{ rejectIfBusy: 'true' }, 'options.rejectIfBusy'],
    ] as const) {
      const response = await run(t, acme, PATIENT, { prompt: 'hi', max_tokens: 2, options });
      expect(response.status).toBe(400);
      expect(response.body.errors[0].message).toMatch(new RegExp(`^${field.replace('.', '\\.')}: `));
    }
    const chat = await openai('chat/completions', { model: PATIENT, messages: [{ role: 'user', content: 'hi' }], rejectIfBusy: 'yes' });
    expect(chat.status).toBe(400);
    expect(JSON.stringify(await chat.json())).toContain('rejectIfBusy');
  });
});
