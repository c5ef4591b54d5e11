/**
 * Who takes part in each decode of a llama.cpp context that all requests of a model share. LoRA adapters are set
 * per context, for a whole batch, so a step takes every waiting request of one adapter: requests on the same
 * adapter decode together (one batch, as llama-server does), and adapters with waiting requests take steps in
 * turn, the one served longest ago first, so none is starved. One step runs at a time, and it is over once every
 * request in it has come back for the next one or left, so that a request still handling its token is not left
 * out of the next batch.
 */
export interface Seat {
  /**
   * Resolves true when the request's next step begins: it must then start its decode at once (in the same tick
   * as the others of the step, so that they are batched). Resolves false if the signal aborts while waiting.
   */
  next(signal: AbortSignal): Promise<boolean>;
  /** The request is done; idempotent. */
  leave(): void;
}

interface Waiting {
  seat: SeatState;
  resolve: (started: boolean) => void;
  reject: (error: unknown) => void;
  signal: AbortSignal;
  onAbort: () => void;
}

interface SeatState {
  key: unknown;
  /** Requests of a step start in this order (llama.cpp's sequence id: see `seat`). */
  order: number;
  inStep: boolean;
}

export class StepScheduler<K> {
  /** Waiting requests by key; Map order is turn order (a key goes to the back when it gets a step). */
  private readonly waiting = new Map<K, Waiting[]>();
  /** Requests in the running step that have not come back or left. */
  private outstanding = 0;
  private preparing = false;

  /** @param prepare readies the context for a step of `key` (sets its adapter); no decode runs meanwhile. */
  constructor(private readonly prepare: (key: K) => Promise<void>) {}

  /**
   * @param order the request's llama.cpp sequence id. A step's decodes are queued in increasing order: llama.cpp
   * splits a batch of a context with one KV stream per sequence into a run of consecutive sequence ids per
   * physical batch, so an unordered batch of 8 tokens would be computed as several.
   */
  seat(key: K, order: number): Seat {
    const state: SeatState = { key, order, inStep: false };
    return {
      next: (signal) => this.next(state, key, signal),
      leave: () => {
        this.back(state);
        this.pump();
      },
    };
  }

  private next(state: SeatState, key: K, signal: AbortSignal): Promise<boolean> {
    this.back(state);
    return new Promise<boolean>((resolve, reject) => {
      if (signal.aborted) {
        this.pump();
        return resolve(false);
      }
      const entry: Waiting = {
        seat: state,
        resolve,
        reject,
        signal,
        onAbort: () => {
          const entries = this.waiting.get(key);
          const at = entries?.indexOf(entry) ?? -1;
          if (at === -1) return;
          entries!.splice(at, 1);
          if (entries!.length === 0) this.waiting.delete(key);
          resolve(false);
        },
      };
      signal.addEventListener('abort', entry.onAbort, { once: true });
      const entries = this.waiting.get(key);
      if (entries) entries.push(entry);
      else this.waiting.set(key, [entry]);
      this.pump();
    });
  }

  private back(state: SeatState): void {
    if (!state.inStep) return;
    state.inStep = false;
    this.outstanding--;
  }

  private pump(): void {
    if (this.outstanding > 0 || this.preparing) return;
    const first = this.waiting.entries().next();
    if (first.done) return;
    const [key, entries] = first.value;
    this.waiting.delete(key);
    for (const entry of entries) entry.signal.removeEventListener('abort', entry.onAbort);
    this.preparing = true;
    this.prepare(key).then(
      () => {
        this.preparing = false;
        this.outstanding = entries.length;
        entries.sort((a, b) => a.seat.order - b.seat.order);
        for (const entry of entries) {
          entry.seat.inStep = true;
          entry.resolve(true);
        }
      },
      (error: unknown) => {
        this.preparing = false;
        for (const entry of entries) entry.reject(error);
        this.pump();
      },
    );
  }
}
