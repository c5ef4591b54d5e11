/**
 * Where a request goes. Tiers, first match wins, each among healthy replicas not already tried for this request:
 *
 * 1. `hit`: a replica that holds the adapter (loaded by anyone, or running/waiting on it per its metrics);
 * 2. `free-slot`: a replica with fewer adapters than its capacity (`max_loras`);
 * 3. `evict`: a replica with an adapter it can unload (the least recently used one no request of this process is
 *    using, idle ones on the engine first) makes room; one whose every adapter is in use only when none has;
 * and requests without an adapter (`no-adapter`) go to any replica.
 *
 * Within a tier the least loaded wins: fewest in-flight requests from this process, then the shortest queue on the
 * engine (`num_requests_waiting`), then the fewest running there. Remaining ties are broken by rendezvous hashing
 * of (adapter, replica URL), so that service processes that see the same state put a new adapter on the same
 * replica; requests without an adapter hash a per-request key instead, spreading them.
 */
import type { Replica } from './replica.js';

export type PlacementKind = 'hit' | 'free-slot' | 'evict' | 'no-adapter';

export interface Placement {
  replica: Replica;
  kind: PlacementKind;
}

/** Negative when `a` is less loaded than `b`. */
export function loadOrder(a: Replica, b: Replica): number {
  return a.inFlight - b.inFlight || a.engineWaiting - b.engineWaiting || a.engineRunning - b.engineRunning;
}

/** FNV-1a over the key and the URL: a stable, well-spread score per (key, replica). */
export function rendezvous(key: string, url: string): number {
  let hash = 0x811c9dc5;
  const text = `${key}\u0000${url}`;
  for (let i = 0; i < text.length; i++) {
    hash ^= text.charCodeAt(i);
    hash = Math.imul(hash, 0x01000193);
  }
  // A final avalanche, so that keys differing in their last characters still spread.
  hash ^= hash >>> 15;
  hash = Math.imul(hash, 0x2c1b3c6d);
  hash ^= hash >>> 12;
  return hash >>> 0;
}

function best(candidates: readonly Replica[], key: string): Replica | undefined {
  let chosen: Replica | undefined;
  let chosenScore = 0;
  for (const replica of candidates) {
    const order = chosen === undefined ? -1 : loadOrder(replica, chosen);
    const score = rendezvous(key, replica.url);
    if (order < 0 || (order === 0 && score > chosenScore)) {
      chosen = replica;
      chosenScore = score;
    }
  }
  return chosen;
}

/**
 * The replica for a request, or undefined when every replica was tried. When none is healthy the down ones are
 * candidates too (their probe may lag behind a recovery, and failing on them names the actual error).
 */
export function place(
  replicas: readonly Replica[],
  adapter: string | undefined,
  capacity: (replica: Replica) => number,
  exclude: ReadonlySet<Replica>,
  requestKey: string,
): Placement | undefined {
  const untried = replicas.filter((r) => !exclude.has(r));
  const healthy = untried.filter((r) => r.healthy);
  const candidates = healthy.length > 0 ? healthy : untried;
  if (candidates.length === 0) return undefined;
  if (adapter === undefined) return { replica: best(candidates, requestKey)!, kind: 'no-adapter' };
  const holding = best(
    candidates.filter((r) => r.holds(adapter) || r.arriving.has(adapter)),
    adapter,
  );
  if (holding) return { replica: holding, kind: holding.holds(adapter) ? 'hit' : 'free-slot' };
  const roomy = best(
    candidates.filter((r) => r.slotsTaken() < capacity(r)),
    adapter,
  );
  if (roomy) return { replica: roomy, kind: 'free-slot' };
  // A replica whose every adapter is in use by this process has nothing to evict: others first.
  const evictable = candidates.filter((r) => r.evictionCandidate() !== undefined);
  return { replica: best(evictable.length > 0 ? evictable : candidates, adapter)!, kind: 'evict' };
}
