import { describe, expect, it } from '@jest/globals';
import { isDeterministic, ResponseCache, responseCacheKey, type RunAnswer } from '../../../src/limits/response-cache.js';

const answer = (response: string): RunAnswer => ({ response, usage: { prompt_tokens: 3, completion_tokens: 2, total_tokens: 5 } });
const bytesOf = (key: string, value: RunAnswer) => key.length + Buffer.byteLength(JSON.stringify(value));

describe('ResponseCache', () => {
  it('evicts the least recently used entry beyond maxEntries; a get counts as a use', () => {
    const cache = new ResponseCache({ maxEntries: 2, maxBytes: 1 << 20 });
    cache.set('a', answer('A'), null);
    cache.set('b', answer('B'), null);
    expect(cache.get('a')).toEqual(answer('A'));
    cache.set('c', answer('C'), null);
    expect(cache.get('b')).toBeUndefined();
    expect(cache.get('a')).toEqual(answer('A'));
    expect(cache.get('c')).toEqual(answer('C'));
    expect(cache.size).toBe(2);
  });

  it('keeps its bytes (keys and answers) within maxBytes, and never stores an answer larger than that', () => {
    const maxBytes = 2 * bytesOf('k1', answer('x'.repeat(100))) + 10;
    const cache = new ResponseCache({ maxEntries: 100, maxBytes });
    for (const key of ['k1', 'k2', 'k3']) cache.set(key, answer('x'.repeat(100)), null);
    expect(cache.size).toBe(2);
    expect(cache.bytes).toBe(2 * bytesOf('k1', answer('x'.repeat(100))));
    expect(cache.get('k1')).toBeUndefined();

    cache.set('huge', answer('x'.repeat(maxBytes)), null);
    expect(cache.get('huge')).toBeUndefined();
    expect(cache.size).toBe(2);
  });

  it('replacing an entry does not count its bytes twice', () => {
    const cache = new ResponseCache({ maxEntries: 10, maxBytes: 1 << 20 });
    cache.set('k', answer('one'), null);
    cache.set('k', answer('two'), null);
    expect(cache.size).toBe(1);
    expect(cache.bytes).toBe(bytesOf('k', answer('two')));
  });

  it("drops a finetune's entries and only those", () => {
    const cache = new ResponseCache();
    cache.set('base', answer('0'), null);
    cache.set('f1-a', answer('1'), 'f1');
    cache.set('f1-b', answer('2'), 'f1');
    cache.set('f2', answer('3'), 'f2');
    cache.dropFinetune('f1');
    expect([cache.get('base'), cache.get('f1-a'), cache.get('f1-b'), cache.get('f2')]).toEqual([answer('0'), undefined, undefined, answer('3')]);
    expect(cache.bytes).toBe(bytesOf('base', answer('0')) + bytesOf('f2', answer('3')));
  });
});

describe('responseCacheKey', () => {
  const request = { prompt: 'p', stop: ['</s>'], maxTokens: 8, sampling: { temperature: 0 } };
  const adapter = { finetuneId: 'f1', version: 'v1', configKey: 'c', weightsKey: 'w' };

  it('ignores absent sampling fields and their order', () => {
    expect(responseCacheKey('m', { ...request, sampling: { temperature: 0, seed: undefined } })).toBe(responseCacheKey('m', request));
    expect(responseCacheKey('m', { ...request, sampling: { topK: 3, temperature: 0 } })).toBe(
      responseCacheKey('m', { ...request, sampling: { temperature: 0, topK: 3 } }),
    );
  });

  it('differs with the model, the adapter (finetune and version) and every input that shapes the output', () => {
    const keys = [
      responseCacheKey('m', request),
      responseCacheKey('n', request),
      responseCacheKey('m', { ...request, adapter }),
      responseCacheKey('m', { ...request, adapter: { ...adapter, version: 'v2' } }),
      responseCacheKey('m', { ...request, adapter: { ...adapter, finetuneId: 'f2' } }),
      responseCacheKey('m', { ...request, prompt: 'q' }),
      responseCacheKey('m', { ...request, stop: [] }),
      responseCacheKey('m', { ...request, maxTokens: 9 }),
      responseCacheKey('m', { ...request, sampling: { temperature: 0, topP: 0.5 } }),
    ];
    expect(new Set(keys).size).toBe(keys.length);
  });
});

describe('isDeterministic', () => {
  it.each([
    [{ temperature: 0 }, true],
    [{ seed: 1 }, true],
    [{ temperature: 0.7, seed: 1 }, true],
    [{}, false],
    [{ temperature: 0.7 }, false],
  ])('%j -> %s', (sampling, expected) => {
    expect(isDeterministic(sampling)).toBe(expected);
  });
});
