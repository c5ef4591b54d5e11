/**
 * Who takes part in each decode of a llama.cpp context that all requests of a model share. LoRA adapters are set
 * per context, for a whole batch, so a step takes every waiting request of one adapter: requests on the same
 * adapter decode together (one batch, as llama-server does), and adapters with waiting requests take steps in
 * turn, the one served longest ago first, so none is starved. One step runs at a time.
 */
interface Entry {
  resolve: (started: boolean) => void;
  reject: (error: unknown) => void;
  signal: AbortSignal;
  onAbort: () => void;
}

export class StepScheduler<K> {
  /** Waiting requests by key; Map order is turn order (a key goes to the back when it gets a step). */
  private readonly waiting = new Map<K, Entry[]>();
  /** Requests of the running step that have not called `done` yet. */
  private outstanding = 0;

  /** @param prepare readies the context for a step of `key` (sets its adapter); no decode runs meanwhile. */
  constructor(private readonly prepare: (key: K) => Promise<void>) {}

  /**
   * Resolves true when the caller's next step begins: it must then start its decode at once (in the same tick as
   * the others of the step, so they are batched) and call `done` when the decode has returned. Resolves false if
   * the signal aborts while waiting.
   */
  turn(key: K, signal: AbortSignal): Promise<boolean> {
    return new Promise<boolean>((resolve, reject) => {
      if (signal.aborted) return resolve(false);
      const entry: Entry = {
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

  /** The caller's step is over for it (its decode returned, or failed). */
  done(): void {
    this.outstanding--;
    this.pump();
  }

  private pump(): void {
    if (this.outstanding > 0) return;
    const next = this.waiting.entries().next();
    if (next.done) return;
    const [key, entries] = next.value;
    this.waiting.delete(key);
    for (const entry of entries) entry.signal.removeEventListener('abort', entry.onAbort);
    this.outstanding = entries.length;
    this.prepare(key).then(
      () => {
        for (const entry of entries) entry.resolve(true);
      },
      (error: unknown) => {
        this.outstanding = 0;
        for (const entry of entries) entry.reject(error);
        this.pump();
      },
    );
  }
}
