import { describe, expect, it } from '@jest/globals';
import { BUILTIN_MODELS } from '../../../src/catalog/builtin-models.js';
import type { ModelDefinition } from '../../../src/catalog/model-definition.js';
import { ApiError } from '../../../src/common/errors.js';
import { checkContextLimits } from '../../../src/limits/context-limits.js';

const INT8 = BUILTIN_MODELS.find((m) => m.name === '@cf/meta/llama-2-7b-chat-int8')!;
const unlimited: ModelDefinition = { ...INT8, context_length_limit: null, sequence_length_limit: null };

/** A tokenizer stand-in counting one token per character, and whether it was asked. */
function counter(tokens?: number) {
  const calls: string[] = [];
  return { calls, count: async (prompt: string) => (calls.push(prompt), tokens ?? prompt.length) };
}

describe('checkContextLimits', () => {
  it('does not count tokens for a model without limits', async () => {
    const { calls, count } = counter();
    await checkContextLimits(unlimited, 'x'.repeat(10_000), 100_000, count);
    expect(calls).toEqual([]);
  });

  it('does not count tokens when the prompt is too short in bytes to reach the limit', async () => {
    const { calls, count } = counter();
    await checkContextLimits(INT8, 'x'.repeat(1000), 256, count);
    expect(calls).toEqual([]);
  });

  it('counts a long prompt and admits it when prompt tokens + max_tokens fit the tighter limit', async () => {
    const { calls, count } = counter(1544);
    await checkContextLimits(INT8, 'x'.repeat(6000), 256, count);
    expect(calls).toHaveLength(1);
  });

  it('rejects one token over sequence_length_limit with 400 naming the numbers', async () => {
    const { count } = counter(1545);
    const error = await checkContextLimits(INT8, 'x'.repeat(6000), 256, count).catch((e: unknown) => e);
    expect(error).toMatchObject({ error: 'validation' });
    expect((error as ApiError).status).toBe(400);
    expect((error as ApiError).message).toBe(
      "prompt tokens (1545) + max_tokens (256) = 1801, over @cf/meta/llama-2-7b-chat-int8's sequence_length_limit 1800: shorten the input or lower max_tokens",
    );
  });

  it('names both limits when both are exceeded', async () => {
    const { count } = counter(2000);
    await expect(checkContextLimits(INT8, 'x'.repeat(6000), 256, count)).rejects.toThrow('context_length_limit 2048 and sequence_length_limit 1800');
  });
});
