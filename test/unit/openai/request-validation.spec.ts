import { describe, expect, it } from '@jest/globals';
import { parseChatRequest, parseCompletionRequest } from '../../../src/openai/dto.js';

const base = { model: 'm', messages: [{ role: 'user', content: 'hi' }] };

function message(parse: (body: unknown) => unknown, body: unknown): string {
  try {
    parse(body);
  } catch (error) {
    expect(error).toMatchObject({ status: 400, code: 5006 });
    return (error as Error).message;
  }
  throw new Error('expected a validation error');
}

describe('OpenAI request validation', () => {
  it('accepts OpenAI bodies with nulls for unset fields, text parts and an empty stop list', () => {
    const body = { ...base, stop: [], n: null, user: null, max_tokens: null, stream_options: null, messages: [{ role: 'user', content: [{ type: 'text', text: 'a' }] }] };
    expect(parseChatRequest(body)).toBe(body);
    expect(parseCompletionRequest({ model: 'm', prompt: 'p', n: 1 })).toMatchObject({ prompt: 'p' });
  });

  it.each([
    [{ ...base, stop: ['\n'] }, "stop is not supported: generation ends at the model's end of turn or at max_tokens; remove stop"],
    [{ ...base, n: 2 }, 'n must be 1: one choice per request'],
    [{ ...base, tools: [] }, 'property tools should not exist'],
    [{ ...base, max_tokens: 0 }, 'max_tokens must not be less than 1'],
    [{ ...base, max_completion_tokens: 1.5 }, 'max_completion_tokens must be an integer number'],
    [{ ...base, messages: [{ role: 'user', content: [{ type: 'image_url', image_url: {} }] }] }, 'messages.0.content must be a string or an array of text parts ({"type": "text", "text": "..."})'],
    [{ ...base, messages: [] }, 'messages must contain at least 1 elements'],
    [{ messages: 'x' }, 'model must be a string; messages must be an array'],
    [{ ...base, messages: [{ content: 'x', foo: 1 }] }, 'messages.0.property foo should not exist; messages.0.role must be a string'],
    [{ ...base, stream_options: { include_usage: 'y', x: 1 } }, 'stream_options.property x should not exist; stream_options.include_usage must be a boolean value'],
    [{ ...base, temperature: 'hot', model: '' }, 'model must be longer than or equal to 1 characters; temperature must be a number conforming to the specified constraints'],
    [[base], 'body must be an object'],
  ])('%j: %s', (body, expected) => {
    expect(message(parseChatRequest, body)).toBe(expected);
  });

  it('names prompt when it is not one string', () => {
    expect(message(parseCompletionRequest, { model: 'm', prompt: ['a', 'b'] })).toBe('prompt must be a string (one prompt per request)');
  });
});
