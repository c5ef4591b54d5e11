import { Injectable } from '@nestjs/common';

/** How long a verified token is trusted without asking the database again, should a revocation go unheard. */
const TTL_MS = 60_000;
const MAX_ENTRIES = 10_000;

/**
 * Token hash → account id of recently verified tokens, keeping the hot path off the database. Revocations drop
 * entries (TokenRevocations hears them from every replica); a lookup that started before a drop is not cached,
 * so a revocation racing with a database read cannot leave the revoked token cached.
 */
@Injectable()
export class TokenCache {
  private readonly entries = new Map<string, { accountId: string; expires: number }>();
  private drops = 0;

  get(hash: string): string | undefined {
    const entry = this.entries.get(hash);
    if (entry === undefined) return undefined;
    if (entry.expires > Date.now()) return entry.accountId;
    this.entries.delete(hash);
    return undefined;
  }

  /** Marks the start of a database lookup; pass it to `set` with the lookup's result. */
  ticket(): number {
    return this.drops;
  }

  set(hash: string, accountId: string, ticket: number): void {
    if (ticket !== this.drops) return;
    if (this.entries.size >= MAX_ENTRIES) this.entries.delete(this.entries.keys().next().value!);
    this.entries.set(hash, { accountId, expires: Date.now() + TTL_MS });
  }

  drop(hash: string): void {
    this.drops++;
    this.entries.delete(hash);
  }

  clear(): void {
    this.drops++;
    this.entries.clear();
  }
}
