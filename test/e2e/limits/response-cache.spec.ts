import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { ResponseCache } from '../../../src/limits/response-cache.js';
import { call, createAccount, startTestApp, type TestAccount, type TestApp } from '../../helpers/app.js';
import { TINY_LLAMA, tinySetup, type TinySetup } from '../../helpers/tiny.js';
import { addLlamaVariants, engineRuns, readyFinetune, runRaw } from './helpers.js';

const CACHED = '@cf/tiny/cached-llama';
const HEADER = 'cf-aig-cache-status';

let tiny: TinySetup;
let t: TestApp;
let acme: TestAccount;
let hits = 0;
let answered = 0;

/** One run: its status, cache header, exact body text and how many generations the engine ran for it. */
async function ask(model: string, body: object) {
  const before = await engineRuns(t, model);
  const response = await runRaw(t, acme, model, body);
  const text = await response.text();
  const cache = response.headers.get(HEADER);
  if (response.status === 200) answered += 1;
  if (cache === 'HIT') hits += 1;
  return { status: response.status, cache, text, generated: (await engineRuns(t, model)) - before };
}

beforeAll(async () => {
  tiny = await tinySetup();
  addLlamaVariants(tiny, { [CACHED]: { response_cache: true } });
  t = await startTestApp({ MODELS_FILE: tiny.modelsFile, CACHE_DIR: `${tiny.dir}/cache` });
  acme = await createAccount(t.baseUrl, 'acme');
}, 60_000);
afterAll(() => t.close());

describe('response cache', () => {
  it('a repeated greedy request is a HIT with the identical body and never reaches the engine', async () => {
    const body = { prompt: 'hello world', max_tokens: 8, temperature: 0 };
    const first = await ask(CACHED, body);
    expect(first).toMatchObject({ status: 200, cache: 'MISS', generated: 1 });
    const second = await ask(CACHED, body);
    expect(second).toMatchObject({ status: 200, cache: 'HIT', generated: 0 });
    expect(second.text).toBe(first.text);
  });

  it('a seed makes a sampled request cacheable; any change to the input is a MISS', async () => {
    const body = { prompt: 'hello world', max_tokens: 8, temperature: 0.8, seed: 42 };
    expect(await ask(CACHED, body)).toMatchObject({ cache: 'MISS', generated: 1 });
    expect(await ask(CACHED, body)).toMatchObject({ cache: 'HIT', generated: 0 });
    for (const changed of [{ seed: 43 }, { max_tokens: 9 }, { top_k: 5 }, { prompt: 'hello world!' }]) {
      expect(await ask(CACHED, { ...body, ...changed })).toMatchObject({ cache: 'MISS', generated: 1 });
    }
  });

  it('run options are not part of the key: the same request with options.rejectIfBusy is a HIT', async () => {
    const body = { prompt: 'options aside', max_tokens: 5, temperature: 0 };
    expect(await ask(CACHED, body)).toMatchObject({ status: 200, cache: 'MISS', generated: 1 });
    expect(await ask(CACHED, { ...body, options: { rejectIfBusy: true } })).toMatchObject({ status: 200, cache: 'HIT', generated: 0 });
  });

  it('keys on the prompt the engine sees: a bare prompt and its templated raw form share an entry', async () => {
    const bare = await ask(CACHED, { prompt: 'hi', max_tokens: 6, temperature: 0 });
    const raw = await ask(CACHED, { prompt: '<s>[INST] hi [/INST]', raw: true, max_tokens: 6, temperature: 0 });
    expect([bare.cache, raw.cache]).toEqual(['MISS', 'HIT']);
    expect(raw.text).toBe(bare.text);
  });

  it('non-deterministic and streaming requests, and models without response_cache, always generate', async () => {
    const cases: [string, object][] = [
      [CACHED, { prompt: 'sampled', max_tokens: 4, temperature: 0.7 }],
      [CACHED, { prompt: 'default sampling', max_tokens: 4 }],
      [CACHED, { prompt: 'streamed', max_tokens: 4, temperature: 0, stream: true }],
      [TINY_LLAMA, { prompt: 'not cached here', max_tokens: 4, temperature: 0 }],
    ];
    for (const [model, body] of cases) {
      for (let i = 0; i < 2; i++) expect(await ask(model, body)).toMatchObject({ status: 200, cache: null, generated: 1 });
    }
  });

  it("answers are per finetune, and deleting a finetune drops its entries", async () => {
    const cache = t.app.get(ResponseCache);
    const finetune = await readyFinetune(t, tiny, acme, CACHED, 'qv');
    const body = { prompt: 'adapted', max_tokens: 8, temperature: 0 };
    const base = await ask(CACHED, body);
    const adapted = await ask(CACHED, { ...body, lora: 'qv' });
    expect([base.cache, adapted.cache]).toEqual(['MISS', 'MISS']);
    expect(adapted.text).not.toBe(base.text);
    expect(await ask(CACHED, { ...body, lora: finetune.id })).toMatchObject({ cache: 'HIT', text: adapted.text });

    const entries = cache.size;
    expect((await call(t.baseUrl, 'DELETE', `/accounts/${acme.id}/ai/finetunes/qv`, { token: acme.token })).status).toBe(200);
    expect(cache.size).toBe(entries - 1);
    // The same files under a new finetune are a new adapter identity.
    await readyFinetune(t, tiny, acme, CACHED, 'qv');
    expect(await ask(CACHED, { ...body, lora: 'qv' })).toMatchObject({ cache: 'MISS', generated: 1, text: adapted.text });
    expect(await ask(CACHED, body)).toMatchObject({ cache: 'HIT', text: base.text });
  });

  it('hits are metered as requests without neurons', async () => {
    const usage = await call<{ requests: number; cache_hits: number }[]>(t.baseUrl, 'GET', `/accounts/${acme.id}/ai/usage`, { token: acme.token });
    expect(usage.body.result[0]).toMatchObject({ requests: answered, cache_hits: hits });
  });
});
