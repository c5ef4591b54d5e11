/**
 * The replicas of one engine entry, as this process sees them, and the decisions made on them: where a request goes
 * (router.ts), bringing its adapter there (loading it, evicting the least recently used one when the replica is
 * full), and marking replicas down and up (prober.ts). Engine-specific calls go through a ReplicaDriver.
 */
import { CapacityRefusedError, isReplicaFailure, networkCause, remembered, untilAborted } from './remote-client.js';
import { Prober } from './prober.js';
import { Replica, type EngineGauges } from './replica.js';
import { place, type PlacementKind } from './router.js';

/** What the fleet asks of a replica, in the engine's own API. */
export interface ReplicaDriver {
  /** Resolves when the replica answers its health check. */
  health(url: string, signal: AbortSignal): Promise<void>;
  /** The adapters it holds (`GET /v1/models`, entries whose `parent` is the base). */
  adapters(url: string, signal: AbortSignal): Promise<string[]>;
  /** Its gauges (`GET /metrics`), or undefined when it exposes none. */
  gauges(url: string, signal: AbortSignal): Promise<EngineGauges | undefined>;
  /** Loads an adapter; resolves when it is loaded (already being loaded counts); CapacityRefusedError when full. */
  load(url: string, name: string, signal: AbortSignal): Promise<void>;
  /** Unloads an adapter; resolves also when the replica did not hold it. */
  unload(url: string, name: string, signal: AbortSignal): Promise<void>;
}

export interface FleetOptions {
  /** Adapter slots per replica; undefined: what the replica reports, else unbounded. */
  maxLoras?: number;
  refreshMs: number;
  /** Bound of a load, an unload or a state read. */
  timeoutMs: number;
  /** False in resolver mode: the replica loads an adapter itself on the first request naming it. */
  loadsAdapters: boolean;
  closing: AbortSignal;
}

/** One request's place on a replica, from placement until release. */
export interface Lease {
  replica: Replica;
  adapter?: string;
  kind: PlacementKind;
}

export class NoReplicaError extends Error {}

export class Fleet {
  readonly replicas: Replica[];
  private readonly prober: Prober;
  private requestCounter = 0;

  constructor(
    urls: readonly string[],
    private readonly driver: ReplicaDriver,
    private readonly options: FleetOptions,
  ) {
    this.replicas = urls.map((url) => new Replica(url.replace(/\/+$/, '')));
    this.prober = new Prober(this.replicas, (replica) => this.refresh(replica), options.refreshMs);
  }

  /**
   * Resolves once every replica's state was read a first time (or found unreachable): the first placements of a
   * new process then follow what the replicas hold, rather than guessing.
   */
  ready: Promise<void> = Promise.resolve();

  start(): void {
    this.ready = remembered(this.prober.start());
  }

  stop(): void {
    this.prober.stop();
  }

  capacity(replica: Replica): number {
    return this.options.maxLoras ?? replica.reportedMaxLoras ?? Infinity;
  }

  /** Places a request (synchronously, so that concurrent placements see each other's load). */
  place(adapter: string | undefined, exclude: ReadonlySet<Replica> = new Set()): Lease {
    const placement = place(this.replicas, adapter, (r) => this.capacity(r), exclude, String(this.requestCounter++));
    if (placement === undefined) throw new NoReplicaError('every replica was tried');
    placement.replica.enter(adapter);
    const lease: Lease = { replica: placement.replica, kind: placement.kind, adapter };
    // The slot is taken now, before anything is awaited: placements in the same tick see it.
    if (adapter !== undefined && !placement.replica.holds(adapter)) void this.arrival(lease).catch(() => undefined);
    return lease;
  }

  release(lease: Lease, outcome: 'served' | 'failed' | 'aborted', error?: unknown): void {
    const { replica, adapter } = lease;
    replica.leave(adapter);
    if (outcome === 'served' && adapter !== undefined) {
      replica.counters.adapterRequests++;
      if (lease.kind === 'hit') replica.counters.hits++;
      replica.touch(adapter);
    }
    if (outcome !== 'failed') return;
    replica.counters.errors++;
    if (isReplicaFailure(error)) {
      replica.markDown(networkCause(error) ?? (error as Error).message ?? String(error));
      // Probed at once: a replica that merely dropped one connection is back within one read.
      void this.prober.probe(replica);
    }
  }

  /** Makes the lease's adapter available on its replica: loaded there, or (resolver mode) a slot free for it. */
  async prepare(lease: Lease, signal: AbortSignal): Promise<void> {
    if (lease.adapter === undefined || lease.replica.holds(lease.adapter)) return;
    await untilAborted(this.arrival(lease), signal);
  }

  /** The adapter's arrival on the lease's replica: started once, shared by every request waiting for it. */
  private arrival({ replica, adapter }: Lease): Promise<void> {
    let arriving = replica.arriving.get(adapter!);
    if (arriving === undefined) {
      // Not tied to one request's signal: others may be waiting for the same load. Started a microtask later, once
      // it is registered as arriving, so that its own slot counts when it makes room.
      arriving = Promise.resolve()
        .then(() => this.bring(replica, adapter!))
        .finally(() => replica.arriving.delete(adapter!));
      replica.arriving.set(adapter!, arriving);
    }
    return arriving;
  }

  /**
   * The replica does not hold an adapter this process thought it did (it restarted, another process evicted it,
   * or its resolver found no room): re-read what it holds and bring the adapter again. The request is no hit.
   */
  async recover(lease: Lease, signal: AbortSignal): Promise<void> {
    lease.kind = 'evict';
    if (lease.adapter !== undefined) lease.replica.drop(lease.adapter);
    await untilAborted(this.readAdapters(lease.replica), signal);
    await this.prepare(lease, signal);
  }

  private async bring(replica: Replica, name: string): Promise<void> {
    const signal = AbortSignal.any([AbortSignal.timeout(this.options.timeoutMs), this.options.closing]);
    await this.makeRoom(replica, signal);
    if (this.options.loadsAdapters) {
      try {
        await this.driver.load(replica.url, name, signal);
      } catch (error) {
        if (!(error instanceof CapacityRefusedError)) throw error;
        // Another service process filled the slot meanwhile: read what the replica holds, make room, try once more.
        await this.readAdapters(replica);
        await this.makeRoom(replica, signal);
        await this.driver.load(replica.url, name, signal);
      }
    }
    replica.counters.loads++;
    replica.touch(name);
  }

  /**
   * Unloads least recently used idle adapters until the ones arriving fit, then waits for every unload under way
   * on the replica: a load sent while an unload is still in flight could find the replica full.
   */
  private async makeRoom(replica: Replica, signal: AbortSignal): Promise<void> {
    while (replica.slotsTaken() > this.capacity(replica)) {
      const victim = replica.evictionCandidate();
      if (victim === undefined) {
        // Every adapter there is in use by this process: wait for a request to finish, as the engine would queue.
        await untilAborted(replica.nextRelease(), signal);
        continue;
      }
      replica.drop(victim);
      replica.counters.evictions++;
      const leaving = this.driver.unload(replica.url, victim, signal).finally(() => replica.leaving.delete(victim));
      replica.leaving.set(victim, leaving);
    }
    const unloads = [...replica.leaving.values()];
    const results = await Promise.allSettled(unloads);
    const failed = results.find((r): r is PromiseRejectedResult => r.status === 'rejected');
    if (failed) throw failed.reason;
  }

  private async readAdapters(replica: Replica): Promise<void> {
    const since = Date.now();
    replica.syncHeld(await this.driver.adapters(replica.url, this.stateSignal()), since);
  }

  /**
   * One probe: health first when down; then what it holds and its gauges. A healthy replica whose read failed is
   * marked down only if its health check fails too: one failed read (say, on a keep-alive connection the server was
   * closing) is no outage, and marking it down would send its adapters' traffic elsewhere meanwhile.
   */
  private async refresh(replica: Replica): Promise<void> {
    const wasDown = !replica.healthy;
    try {
      if (wasDown) await this.driver.health(replica.url, this.stateSignal());
      const since = Date.now();
      const [names, gauges] = await Promise.all([this.driver.adapters(replica.url, this.stateSignal()), this.driver.gauges(replica.url, this.stateSignal())]);
      if (wasDown) replica.markUp(names, since);
      else replica.syncHeld(names, since);
      if (gauges) replica.applyGauges(gauges);
    } catch (error) {
      if (!isReplicaFailure(error)) return;
      if (!wasDown && (await this.answersHealth(replica))) return;
      replica.markDown(networkCause(error) ?? (error as Error).message);
    }
  }

  private answersHealth(replica: Replica): Promise<boolean> {
    return this.driver.health(replica.url, this.stateSignal()).then(
      () => true,
      () => false,
    );
  }

  private stateSignal(): AbortSignal {
    return AbortSignal.any([AbortSignal.timeout(Math.min(this.options.timeoutMs, 5_000)), this.options.closing]);
  }
}
