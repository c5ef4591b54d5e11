import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { createAccount, startTestApp, type TestAccount, type TestApp } from '../../helpers/app.js';
import { tinySetup, type TinySetup } from '../../helpers/tiny.js';
import { addLlamaVariants, run } from './helpers.js';

const SHORT = '@cf/tiny/short-llama';
const CONTEXT = 64;
const SEQUENCE = 48;

let tiny: TinySetup;
let t: TestApp;
let acme: TestAccount;

beforeAll(async () => {
  tiny = await tinySetup();
  addLlamaVariants(tiny, { [SHORT]: { context_length_limit: CONTEXT, sequence_length_limit: SEQUENCE } });
  t = await startTestApp({ MODELS_FILE: tiny.modelsFile, CACHE_DIR: `${tiny.dir}/cache` });
  acme = await createAccount(t.baseUrl, 'acme');
}, 60_000);
afterAll(() => t.close());

describe('context limits from the card', () => {
  const prompt = 'hello there';

  it('prompt tokens + max_tokens within the limits run', async () => {
    const fits = await run(t, acme, SHORT, { prompt, max_tokens: 1 });
    expect(fits.status).toBe(200);
    const promptTokens = fits.body.result.usage.prompt_tokens;
    expect((await run(t, acme, SHORT, { prompt, max_tokens: SEQUENCE - promptTokens })).status).toBe(200);
  });

  it('one token over is 400 naming the prompt tokens, max_tokens and the limit exceeded', async () => {
    const promptTokens = (await run(t, acme, SHORT, { prompt, max_tokens: 1 })).body.result.usage.prompt_tokens;
    const maxTokens = SEQUENCE - promptTokens + 1;
    const over = await run(t, acme, SHORT, { prompt, max_tokens: maxTokens });
    expect(over.status).toBe(400);
    expect(over.body.errors[0]!.code).toBe(5006);
    const message = over.body.errors[0]!.message;
    expect(message).toContain(`prompt tokens (${promptTokens})`);
    expect(message).toContain(`max_tokens (${maxTokens})`);
    expect(message).toContain(`sequence_length_limit ${SEQUENCE}`);
    expect(message).not.toContain('context_length_limit');
  });

  it('over both limits names both', async () => {
    const over = await run(t, acme, SHORT, { prompt: 'x'.repeat(200), max_tokens: 1 });
    expect(over.status).toBe(400);
    expect(over.body.errors[0]!.message).toMatch(new RegExp(`context_length_limit ${CONTEXT} and sequence_length_limit ${SEQUENCE}`));
  });
});
