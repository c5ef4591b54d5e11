/** What one process knows about one replica: health, load, and which adapter versions it holds. */

export interface ReplicaCounters {
  /** Attempts placed on the replica (a retried request counts on both replicas). */
  requests: number;
  /** Attempts that failed there. */
  errors: number;
  /** Times it was marked down (refused, reset or timed out; answered 5xx). */
  downs: number;
  /** Adapters it loaded for this process (explicitly, or through its resolver on first use). */
  loads: number;
  /** Adapters this process unloaded from it to make room. */
  evictions: number;
  /** Requests with an adapter it served... */
  adapterRequests: number;
  /** ...of which it already held the adapter when the request was placed. */
  hits: number;
}

/** The engine's own view of its load, from its /metrics. */
export interface EngineGauges {
  running: number;
  waiting: number;
  /** Adapters of requests running or waiting on the engine (vLLM's `vllm:lora_requests_info`). */
  activeAdapters?: string[];
  /** Adapter slots it was started with (vLLM's `max_lora` label). */
  maxLoras?: number;
}

export class Replica {
  healthy = true;
  /** Why it was marked down. */
  downReason?: string;
  /** Requests this process has running on it now. */
  inFlight = 0;
  engineRunning = 0;
  engineWaiting = 0;
  /** Adapter slots it reports (metrics), used when the engine entry sets no `max_loras`. */
  reportedMaxLoras?: number;
  /** Adapters it holds, by served name, with when this process last used each (the LRU order). */
  readonly held = new Map<string, number>();
  /** Adapters this process is bringing onto it now: they take a slot before the load answers. */
  readonly arriving = new Map<string, Promise<void>>();
  /** Adapters this process is unloading from it now: still there until the unload answers. */
  readonly leaving = new Map<string, Promise<void>>();
  /** Adapters the engine reports running or waiting: never evicted, and as good as held. */
  active = new Set<string>();
  /** This process's in-flight requests per adapter: never evicted from under them. */
  private readonly using = new Map<string, number>();
  /**
   * Adapters this process took out of `held` (evicted, or found missing), with when: a list the replica sent
   * before it unloaded one must not bring it back.
   */
  private readonly dropped = new Map<string, number>();
  private released?: Promise<void>;
  private onRelease: () => void = () => undefined;
  readonly counters: ReplicaCounters = { requests: 0, errors: 0, downs: 0, loads: 0, evictions: 0, adapterRequests: 0, hits: 0 };

  constructor(readonly url: string) {}

  holds(name: string): boolean {
    return this.held.has(name) || this.active.has(name);
  }

  /** Slots taken: held adapters and those on their way. */
  slotsTaken(): number {
    let arriving = 0;
    for (const name of this.arriving.keys()) if (!this.held.has(name)) arriving++;
    return this.held.size + arriving;
  }

  touch(name: string): void {
    this.held.set(name, Date.now());
  }

  /** Forgets that it holds `name` (this process is unloading it, or the replica said it has not got it). */
  drop(name: string): void {
    this.held.delete(name);
    this.dropped.set(name, Date.now());
  }

  enter(adapter: string | undefined): void {
    this.inFlight++;
    this.counters.requests++;
    if (adapter !== undefined) this.using.set(adapter, (this.using.get(adapter) ?? 0) + 1);
  }

  /** Resolves when one of this process's requests on the replica ends. */
  nextRelease(): Promise<void> {
    return (this.released ??= new Promise<void>((resolve) => (this.onRelease = resolve)));
  }

  leave(adapter: string | undefined): void {
    this.inFlight--;
    if (this.released) {
      this.onRelease();
      this.released = undefined;
    }
    if (adapter === undefined) return;
    const left = (this.using.get(adapter) ?? 1) - 1;
    if (left === 0) this.using.delete(adapter);
    else this.using.set(adapter, left);
  }

  /**
   * The adapter to unload for room: the least recently used one that no request is using, here or (per its
   * metrics) on the engine; failing that, the least recently used one this process is not using (the engine's
   * report may be a scrape old, or count another process's requests). Undefined when this process uses them all.
   */
  evictionCandidate(): string | undefined {
    let idle: string | undefined;
    let unused: string | undefined;
    let idleUsed = Infinity;
    let unusedUsed = Infinity;
    for (const [name, used] of this.held) {
      if (this.using.has(name) || this.arriving.has(name)) continue;
      if (used < unusedUsed) {
        unusedUsed = used;
        unused = name;
      }
      if (!this.active.has(name) && used < idleUsed) {
        idleUsed = used;
        idle = name;
      }
    }
    return idle ?? unused;
  }

  /**
   * Replaces what it holds with its own list (`GET /v1/models`, read from `since` on). Timestamps of known adapters
   * stay; newcomers (loaded by another process) count as least recently used; adapters this process touched after
   * `since` (a load that answered after the list was read) or has a request on are kept; adapters it dropped after
   * `since`, or is still unloading, are not taken back (the list may predate the unload).
   */
  syncHeld(names: readonly string[], since: number): void {
    const listed = new Set(names);
    for (const [name, used] of this.held) {
      // A request of this process is on it with the adapter: in resolver mode the replica may not have loaded it yet.
      if (!listed.has(name) && used < since && !this.using.has(name)) this.held.delete(name);
    }
    for (const name of listed) {
      const dropped = this.dropped.get(name);
      if (this.held.has(name) || this.leaving.has(name) || (dropped !== undefined && dropped >= since)) continue;
      this.held.set(name, 0);
    }
    // Drops older than this list and no longer under way are what the list shows now.
    for (const [name, at] of this.dropped) if (at < since && !this.leaving.has(name)) this.dropped.delete(name);
  }

  applyGauges(gauges: EngineGauges): void {
    this.engineRunning = gauges.running;
    this.engineWaiting = gauges.waiting;
    this.active = new Set(gauges.activeAdapters ?? []);
    if (gauges.maxLoras !== undefined) this.reportedMaxLoras = gauges.maxLoras;
  }

  markDown(reason: string): void {
    if (this.healthy) this.counters.downs++;
    this.healthy = false;
    this.downReason = reason;
  }

  /**
   * Back after being down, with its list of adapters read `since` (it may have restarted: nothing it held before is
   * assumed, and the engine's gauges wait for their next read). One synchronous step, so that no placement sees it
   * healthy with a stale or empty list.
   */
  markUp(names: readonly string[], since: number): void {
    this.active.clear();
    this.syncHeld(names, since);
    this.healthy = true;
    this.downReason = undefined;
  }
}
