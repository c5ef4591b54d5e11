import { Injectable } from '@nestjs/common';

/** How long a verified token is trusted without asking the database again, should a revocation go unheard. */
const TTL_MS = 60_000;
const MAX_ENTRIES = 10_000;

interface Entry {
  hash: string;
  accountId: string;
  expires: number;
}

/**
 * Recently verified tokens, keeping the hot path off the database and off hashing: looked up by the secret as
 * presented, so a hit costs one map lookup. Revocations name a token by its hash (all the database and the other
 * replicas know of it), so each entry is also found by hash and dropped at once (TokenRevocations hears them from
 * every replica). A lookup that started before a drop is not cached, so a revocation racing with a database read
 * cannot leave the revoked token cached.
 */
@Injectable()
export class TokenCache {
  private readonly bySecret = new Map<string, Entry>();
  private readonly secretByHash = new Map<string, string>();
  private drops = 0;

  /** The account of a verified, unexpired secret. */
  get(secret: string): string | undefined {
    const entry = this.bySecret.get(secret);
    if (entry === undefined) return undefined;
    if (entry.expires > Date.now()) return entry.accountId;
    this.delete(secret, entry.hash);
    return undefined;
  }

  /** Marks the start of a database lookup; pass it to `set` with the lookup's result. */
  ticket(): number {
    return this.drops;
  }

  set(secret: string, hash: string, accountId: string, ticket: number): void {
    if (ticket !== this.drops) return;
    if (this.bySecret.size >= MAX_ENTRIES && !this.bySecret.has(secret)) {
      const [oldest, entry] = this.bySecret.entries().next().value!;
      this.delete(oldest, entry.hash);
    }
    this.bySecret.set(secret, { hash, accountId, expires: Date.now() + TTL_MS });
    this.secretByHash.set(hash, secret);
  }

  /** Forgets the token with this hash (revoked). */
  drop(hash: string): void {
    this.drops++;
    const secret = this.secretByHash.get(hash);
    if (secret !== undefined) this.delete(secret, hash);
  }

  clear(): void {
    this.drops++;
    this.bySecret.clear();
    this.secretByHash.clear();
  }

  private delete(secret: string, hash: string): void {
    this.bySecret.delete(secret);
    this.secretByHash.delete(hash);
  }
}
