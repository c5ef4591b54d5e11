import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import Cloudflare from 'cloudflare';
import { createAccount, startTestApp, type TestAccount, type TestApp } from '../../helpers/app.js';

let t: TestApp;
let acme: TestAccount;
let cf: Cloudflare;

beforeAll(async () => {
  t = await startTestApp();
  acme = await createAccount(t.baseUrl);
  cf = new Cloudflare({ apiToken: acme.token, baseURL: t.baseUrl, maxRetries: 0 });
});
afterAll(() => t.close());

describe('the official cloudflare SDK, unmodified', () => {
  it('creates and lists finetunes, and lists public ones', async () => {
    const created = await cf.ai.finetunes.create({
      account_id: acme.id,
      model: '@cf/meta-llama/llama-2-7b-chat-hf-lora',
      name: 'sdk-bot',
      description: 'made by the SDK',
      public: true,
    });
    expect(created).toMatchObject({ name: 'sdk-bot', model: '@cf/meta-llama/llama-2-7b-chat-hf-lora', public: true });

    // The SDK types this as one object, but the API (Cloudflare's too) returns the flat array.
    const listed: unknown = await cf.ai.finetunes.list({ account_id: acme.id });
    expect(listed).toEqual([expect.objectContaining({ id: created.id, name: 'sdk-bot' })]);

    const publicNames: string[] = [];
    for await (const finetune of cf.ai.finetunes.public.list({ account_id: acme.id })) publicNames.push(finetune.name);
    expect(publicNames).toEqual(['sdk-bot']);
  });

  it('surfaces the envelope\'s errors as SDK errors', async () => {
    await expect(
      cf.ai.finetunes.create({ account_id: acme.id, model: '@cf/meta/llama-2-7b-chat-fp16', name: 'nope' }),
    ).rejects.toMatchObject({ status: 400 });
  });
});
