import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { createAccount, startTestApp, type TestAccount, type TestApp } from '../../helpers/app.js';
import { tinySetup, type TinySetup } from '../../helpers/tiny.js';
import { activeRequests, addLlamaVariants, holdSlot, idle, ROOMY, run } from './helpers.js';

const NARROW = '@cf/tiny/narrow-llama';

let tiny: TinySetup;
let t: TestApp;
let acme: TestAccount;

beforeAll(async () => {
  tiny = await tinySetup();
  addLlamaVariants(tiny, { [NARROW]: { limits: { max_concurrent_requests: 1, max_queue_wait_ms: 200 }, engine: ROOMY } });
  t = await startTestApp({ MODELS_FILE: tiny.modelsFile, CACHE_DIR: `${tiny.dir}/cache` });
  acme = await createAccount(t.baseUrl, 'acme');
}, 60_000);
afterAll(() => t.close());

describe('concurrent requests per model', () => {
  it('a burst beyond max_concurrent_requests waits max_queue_wait_ms, then gets 429/3044; the freed slot serves again', async () => {
    const holder = await holdSlot(t, acme, NARROW);
    expect(await activeRequests(t, NARROW)).toBe(1);

    const burst = await Promise.all(Array.from({ length: 5 }, () => run(t, acme, NARROW, { prompt: 'hi', max_tokens: 2 })));
    for (const response of burst) {
      expect(response.status).toBe(429);
      expect(response.body.errors[0]).toMatchObject({ code: 3044, message: expect.stringContaining('1 concurrent requests') });
      expect(response.headers.get('retry-after')).toBe('1');
    }

    holder.abort();
    await idle(t, NARROW);
    expect((await run(t, acme, NARROW, { prompt: 'hi', max_tokens: 2 })).status).toBe(200);
  });
});
