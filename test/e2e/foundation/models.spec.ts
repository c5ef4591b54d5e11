import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { call, createAccount, startTestApp, type TestAccount, type TestApp } from '../../helpers/app.js';

interface Card {
  id: string;
  name: string;
  task: { name: string };
  properties: { property_id: string; value: string }[];
}

let t: TestApp;
let acme: TestAccount;

beforeAll(async () => {
  t = await startTestApp();
  acme = await createAccount(t.baseUrl);
});
afterAll(() => t.close());

const search = (query = '') =>
  call<Card[]>(t.baseUrl, 'GET', `/accounts/${acme.id}/ai/models/search${query}`, { token: acme.token });

describe('models', () => {
  it('lists the built-in cards in the seed cards\' shape', async () => {
    const response = await search();
    expect(response.status).toBe(200);
    const names = response.body.result.map((c) => c.name);
    expect(names).toEqual(
      expect.arrayContaining([
        '@cf/meta-llama/llama-2-7b-chat-hf-lora',
        '@cf/google/gemma-7b-it-lora',
        '@cf/meta/llama-2-7b-chat-fp16',
        '@cf/meta/llama-2-7b-chat-int8',
        '@cf/mistral/mistral-7b-instruct-v0.2-lora',
        '@cf/google/gemma-2b-it-lora',
      ]),
    );
    const llama = response.body.result.find((c) => c.name === '@cf/meta-llama/llama-2-7b-chat-hf-lora')!;
    expect(llama).toMatchObject({ id: '7ed8d8e8-6040-4680-843a-aef402d6b013', task: { name: 'Text Generation' } });
    expect(llama.properties).toEqual(expect.arrayContaining([{ property_id: 'lora', value: 'true' }]));
    expect(JSON.stringify(response.body.result)).not.toContain('architecture');
  });

  it('filters by LoRA capability, task and search text', async () => {
    const lora = (await search('?lora=true')).body.result.map((c) => c.name);
    expect(lora.sort()).toEqual(
      [
        '@cf/google/gemma-2b-it-lora',
        '@cf/google/gemma-7b-it-lora',
        '@cf/meta-llama/llama-2-7b-chat-hf-lora',
        '@cf/mistral/mistral-7b-instruct-v0.2-lora',
      ].sort(),
    );
    expect((await search('?task=Text%20Generation')).body.result).toHaveLength(6);
    expect((await search('?task=Translation')).body.result).toHaveLength(0);
    expect((await search('?search=gemma')).body.result.map((c) => c.name).sort()).toEqual([
      '@cf/google/gemma-2b-it-lora',
      '@cf/google/gemma-7b-it-lora',
    ]);
    const bad = await search('?lora=maybe');
    expect(bad.status).toBe(400);
    expect(bad.body.errors[0]!.message).toContain('lora');
  });

  it('serves a model\'s input and output JSON Schemas', async () => {
    const response = await call<{ input: { oneOf: unknown[] }; output: unknown }>(
      t.baseUrl,
      'GET',
      `/accounts/${acme.id}/ai/models/schema?model=${encodeURIComponent('@cf/meta/llama-2-7b-chat-fp16')}`,
      { token: acme.token },
    );
    expect(response.status).toBe(200);
    expect(response.body.result.input.oneOf).toHaveLength(2);
    expect(JSON.stringify(response.body.result.input)).toContain('presence_penalty');
    expect(response.body.result.output).toBeDefined();
  });

  it('answers an unknown model with 400/5007 and a missing one with 400/5006', async () => {
    const unknown = await call(t.baseUrl, 'GET', `/accounts/${acme.id}/ai/models/schema?model=nope`, { token: acme.token });
    expect(unknown.status).toBe(400);
    expect(unknown.body.errors[0]).toMatchObject({ code: 5007, message: expect.stringContaining('nope') });
    const missing = await call(t.baseUrl, 'GET', `/accounts/${acme.id}/ai/models/schema`, { token: acme.token });
    expect(missing.status).toBe(400);
    expect(missing.body.errors[0]).toMatchObject({ code: 5006, message: expect.stringContaining('model') });
  });
});
