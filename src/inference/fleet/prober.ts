/**
 * Reads every replica's state again every `intervalMs`, one read per replica at a time: a healthy replica's adapters
 * and gauges, a down replica's health (and, once it answers, its state). Timers are unref'd: they never keep the
 * process alive.
 */
import type { Replica } from './replica.js';

export class Prober {
  private timer?: NodeJS.Timeout;
  private readonly running = new Map<Replica, Promise<void>>();

  constructor(
    private readonly replicas: readonly Replica[],
    private readonly refresh: (replica: Replica) => Promise<void>,
    private readonly intervalMs: number,
  ) {}

  /** Starts; resolves once every replica has been read a first time. */
  start(): Promise<void> {
    const first = this.tick();
    this.timer = setInterval(() => void this.tick(), this.intervalMs);
    this.timer.unref();
    return first;
  }

  /** Reads one replica now (or joins a read under way); resolves when it is done, never rejects. */
  probe(replica: Replica): Promise<void> {
    let running = this.running.get(replica);
    if (running === undefined) {
      running = this.refresh(replica)
        .catch(() => undefined)
        .finally(() => this.running.delete(replica));
      this.running.set(replica, running);
    }
    return running;
  }

  stop(): void {
    clearInterval(this.timer);
  }

  private async tick(): Promise<void> {
    await Promise.all(this.replicas.map((replica) => this.probe(replica)));
  }
}
