/**
 * Who takes part in each decode of a llama.cpp context that all requests of a model share. LoRA adapters are set
 * per context, for a whole batch, so a step serves one adapter: requests on the same adapter decode together (one
 * batch, as llama-server does), and adapters with waiting requests take steps in turn, the one served longest ago
 * first, so none is starved. One step runs at a time, and it is over once every request in it has come back for the
 * next one or left, so that a request still handling its token is not left out of the next batch.
 *
 * A step takes every generating request of its adapter (one token each) and the prompts waiting for it, in arrival
 * order, up to a budget of prompt tokens (at least one prompt), so that running requests get a token between the
 * parts of a long burst. A step does not start while a request that has been given a seat has not yet asked for its
 * first step: requests that arrive together start together, and one arriving during a step joins the next.
 */
export interface Seat {
  /**
   * Resolves true when the request's next step begins: it must then start its decode at once (in the same tick
   * as the others of the step, so that they are batched). Resolves false if the signal aborts while waiting.
   * @param promptTokens the prompt tokens the request evaluates in that step; 0 when it generates a token.
   */
  next(signal: AbortSignal, promptTokens?: number): Promise<boolean>;
  /** The request is done; idempotent. */
  leave(): void;
}

interface Waiting {
  seat: SeatState;
  promptTokens: number;
  resolve: (started: boolean) => void;
  reject: (error: unknown) => void;
  signal: AbortSignal;
  onAbort: () => void;
}

interface SeatState {
  /** Requests of a step start in this order (llama.cpp's sequence id: see `seat`). */
  order: number;
  /** Given a seat but not yet asked for a step. */
  joining: boolean;
  inStep: boolean;
}

export class StepScheduler<K> {
  /** Waiting requests by key; Map order is turn order (a key goes to the back when it gets a step). */
  private readonly waiting = new Map<K, Waiting[]>();
  /** Requests in the running step that have not come back or left. */
  private outstanding = 0;
  /** Seats whose request has not yet asked for its first step. */
  private joining = 0;
  private preparing = false;

  /**
   * @param prepare readies the context for a step of `key` (sets its adapter); no decode runs meanwhile.
   * @param promptBudget prompt tokens admitted into one step (a larger prompt still gets a step to itself).
   */
  constructor(
    private readonly prepare: (key: K) => Promise<void>,
    private readonly promptBudget: number,
  ) {}

  /**
   * Called when a request is given its llama.cpp sequence; steps wait until it asks for its first one.
   * @param order the request's llama.cpp sequence id. A step's requests start in increasing order: llama.cpp
   * splits a batch of a context with one KV stream per sequence into physical batches that each take a run of
   * consecutive sequence ids, so an unordered batch of 8 tokens would be computed as several. (node-llama-cpp
   * queues a request's first decode a few ticks after a generating request's next one, so a batch holds the
   * generating tokens, then the prompts, each in sequence order: the order llama-server builds its batches in.)
   */
  seat(key: K, order: number): Seat {
    const state: SeatState = { order, joining: true, inStep: false };
    this.joining++;
    return {
      next: (signal, promptTokens = 0) => this.next(state, key, signal, promptTokens),
      leave: () => {
        this.back(state);
        this.pump();
      },
    };
  }

  private next(state: SeatState, key: K, signal: AbortSignal, promptTokens: number): Promise<boolean> {
    this.back(state);
    return new Promise<boolean>((resolve, reject) => {
      if (signal.aborted) {
        this.pump();
        return resolve(false);
      }
      const entry: Waiting = {
        seat: state,
        promptTokens,
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

  /** The request is no longer joining nor in the running step. */
  private back(state: SeatState): void {
    if (state.joining) {
      state.joining = false;
      this.joining--;
    }
    if (!state.inStep) return;
    state.inStep = false;
    this.outstanding--;
  }

  private pump(): void {
    if (this.outstanding > 0 || this.preparing || this.joining > 0) return;
    const first = this.waiting.entries().next();
    if (first.done) return;
    const [key, entries] = first.value;
    this.waiting.delete(key);
    const step = this.admit(entries);
    // Prompts left for a later step wait for the key's next turn, behind the other keys.
    if (step.length < entries.length) this.waiting.set(key, entries.filter((entry) => !step.includes(entry)));
    for (const entry of step) entry.signal.removeEventListener('abort', entry.onAbort);
    this.preparing = true;
    this.prepare(key).then(
      () => {
        this.preparing = false;
        this.outstanding = step.length;
        step.sort((a, b) => a.seat.order - b.seat.order);
        for (const entry of step) {
          entry.seat.inStep = true;
          entry.resolve(true);
        }
      },
      (error: unknown) => {
        this.preparing = false;
        for (const entry of step) entry.reject(error);
        this.pump();
      },
    );
  }

  /**
   * Every generating request, and prompts in arrival order while they fit the budget (the first one whatever its
   * size); none overtakes a prompt left out.
   */
  private admit(entries: Waiting[]): Waiting[] {
    let budget = this.promptBudget;
    let prompts = 0;
    let full = false;
    return entries.filter((entry) => {
      if (entry.promptTokens === 0) return true;
      full ||= prompts > 0 && entry.promptTokens > budget;
      if (full) return false;
      prompts++;
      budget -= entry.promptTokens;
      return true;
    });
  }
}
