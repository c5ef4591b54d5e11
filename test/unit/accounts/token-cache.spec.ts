import { describe, expect, it, jest } from '@jest/globals';
import { hashSecret } from '../../../src/accounts/secrets.js';
import { TokenCache } from '../../../src/accounts/token-cache.js';

/** Caches `secret` for `accountId` as a verified database lookup does. */
function verified(cache: TokenCache, secret: string, accountId: string): void {
  cache.set(secret, hashSecret(secret), accountId, cache.ticket());
}

describe('TokenCache', () => {
  it('finds a verified token by the secret as presented, and nothing else', () => {
    const cache = new TokenCache();
    verified(cache, 'secret-a', 'account-1');
    expect([cache.get('secret-a'), cache.get('secret-b'), cache.get(hashSecret('secret-a'))]).toEqual(['account-1', undefined, undefined]);
  });

  it('drops a token named by its hash, as revocations name it, and keeps the others', () => {
    const cache = new TokenCache();
    verified(cache, 'secret-a', 'account-1');
    verified(cache, 'secret-b', 'account-1');
    cache.drop(hashSecret('secret-a'));
    expect([cache.get('secret-a'), cache.get('secret-b')]).toEqual([undefined, 'account-1']);
  });

  it('does not cache a lookup that started before a revocation, nor one that started before a clear', () => {
    const cache = new TokenCache();
    const before = cache.ticket();
    cache.drop(hashSecret('secret-a'));
    cache.set('secret-a', hashSecret('secret-a'), 'account-1', before);
    expect(cache.get('secret-a')).toBeUndefined();

    const beforeClear = cache.ticket();
    cache.clear();
    cache.set('secret-b', hashSecret('secret-b'), 'account-1', beforeClear);
    expect(cache.get('secret-b')).toBeUndefined();
  });

  it('clears every token (the listening connection was lost)', () => {
    const cache = new TokenCache();
    verified(cache, 'secret-a', 'account-1');
    verified(cache, 'secret-b', 'account-2');
    cache.clear();
    expect([cache.get('secret-a'), cache.get('secret-b')]).toEqual([undefined, undefined]);
  });

  it('holds at most 10,000 tokens, forgetting the oldest first; revocations still find the others', () => {
    const cache = new TokenCache();
    for (let i = 0; i <= 10_000; i++) verified(cache, `secret-${i}`, 'account-1');
    expect([cache.get('secret-0'), cache.get('secret-1'), cache.get('secret-10000')]).toEqual([undefined, 'account-1', 'account-1']);
    cache.drop(hashSecret('secret-0'));
    cache.drop(hashSecret('secret-1'));
    expect(cache.get('secret-1')).toBeUndefined();
  });

  it('trusts a token for a minute at most', () => {
    jest.useFakeTimers({ now: 1_000_000 });
    try {
      const cache = new TokenCache();
      verified(cache, 'secret-a', 'account-1');
      jest.setSystemTime(1_000_000 + 59_999);
      expect(cache.get('secret-a')).toBe('account-1');
      jest.setSystemTime(1_000_000 + 60_000);
      expect(cache.get('secret-a')).toBeUndefined();
    } finally {
      jest.useRealTimers();
    }
  });
});
