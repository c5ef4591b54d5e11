import { describe, expect, it } from '@jest/globals';
import { BUILTIN_MODELS } from '../../../src/catalog/builtin-models.js';
import { neuronsFor } from '../../../src/usage/usage-recorder.service.js';

const INT8 = BUILTIN_MODELS.find((m) => m.name === '@cf/meta/llama-2-7b-chat-int8')!;
const usage = { prompt_tokens: 100, completion_tokens: 20, total_tokens: 120 };

describe('neuronsFor', () => {
  it("is prompt tokens times the input cost plus completion tokens times the output cost (the int8 card's 0.1836 each)", () => {
    expect(neuronsFor(INT8, usage)).toBeCloseTo(120 * 0.1836, 10);
    expect(neuronsFor({ ...INT8, neuron_costs: { input_tokens: 0.5, output_tokens: 2 } }, usage)).toBe(90);
  });

  it('is 0 for a model without costs', () => {
    expect(neuronsFor({ ...INT8, neuron_costs: null }, usage)).toBe(0);
  });
});
