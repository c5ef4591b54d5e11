import { ApiError } from '../common/errors.js';
import type { ModelDefinition } from '../catalog/model-definition.js';

/**
 * Beyond its bytes, a prompt's tokens include only the few special ones a tokenizer adds (BOS, a leading-space
 * piece): every other token spans at least one byte of the text.
 */
const ADDED_TOKENS_MARGIN = 4;

/**
 * Rejects a run whose prompt tokens + max_tokens exceed the card's `context_length_limit` or
 * `sequence_length_limit` (the tighter applies), 400 naming the numbers. Prompts short enough in bytes to fit
 * are not tokenized, which saves engines with a remote tokenizer a round trip per request.
 */
export async function checkContextLimits(
  model: ModelDefinition,
  prompt: string,
  maxTokens: number,
  countTokens: (prompt: string) => Promise<number>,
): Promise<void> {
  const limits = [
    { name: 'context_length_limit', tokens: model.context_length_limit },
    { name: 'sequence_length_limit', tokens: model.sequence_length_limit },
  ].filter((l): l is { name: string; tokens: number } => l.tokens !== null);
  if (limits.length === 0) return;
  const tightest = Math.min(...limits.map((l) => l.tokens));
  if (Buffer.byteLength(prompt) + ADDED_TOKENS_MARGIN + maxTokens <= tightest) return;

  const promptTokens = await countTokens(prompt);
  const total = promptTokens + maxTokens;
  const exceeded = limits.filter((l) => total > l.tokens);
  if (exceeded.length === 0) return;
  const named = exceeded.map((l) => `${l.name} ${l.tokens}`).join(' and ');
  throw new ApiError('validation', 
    `prompt tokens (${promptTokens}) + max_tokens (${maxTokens}) = ${total}, over ${model.name}'s ${named}: shorten the input or lower max_tokens`,
  );
}
