/** HTTP plumbing shared by the engines whose replicas are remote servers (vLLM, SGLang): requests, errors, waiting. */
import { EngineHttp, errorMessage, transportFailure, type EngineResponse, type EngineText } from '../engines/engine-http.js';

/** A non-2xx answer from a replica, or an error event inside its stream. */
export class ReplicaHttpError extends Error {
  constructor(
    readonly status: number,
    readonly path: string,
    message: string,
  ) {
    super(message);
  }
}

/** A stream that stopped before its end marker: the replica (or the connection to it) went away mid-answer. */
export class StreamCutError extends ReplicaHttpError {}

/** The replica refused to load one more adapter: it holds as many as it was started for. */
export class CapacityRefusedError extends ReplicaHttpError {}

/** The replica could not load an adapter's files (vLLM answers that 500): the adapter's fault, not the replica's. */
export class AdapterRejectedError extends ReplicaHttpError {}

/**
 * Requests to replicas: one keep-alive undici pool per replica (engine-http), with the API key and the engine's
 * timeouts (to the answer's headers, then between its chunks). A request carries only its caller's signal; close()
 * destroys the pools, which fails whatever is in flight.
 */
export class RemoteClient {
  /** Aborted by close(): background probes stop. */
  readonly closing = new AbortController();
  private readonly pools = new Map<string, EngineHttp>();

  constructor(
    private readonly apiKey: string | undefined,
    readonly timeoutMs: number,
  ) {}

  post(baseUrl: string, path: string, body: object, signal?: AbortSignal): Promise<EngineResponse> {
    return this.pool(baseUrl).postJson(path, body, signal);
  }

  /** POSTs and reads the whole answer: for answers that do not stream. */
  postForText(baseUrl: string, path: string, body: object, signal?: AbortSignal): Promise<EngineText> {
    return this.pool(baseUrl).postJsonForText(path, body, signal);
  }

  get(baseUrl: string, path: string, signal?: AbortSignal): Promise<EngineResponse> {
    return this.pool(baseUrl).get(path, signal);
  }

  /** JSON of a 2xx answer; anything else is a ReplicaHttpError with the replica's own message. */
  async json<T>(response: EngineResponse, path: string): Promise<T> {
    if (!response.ok) throw new ReplicaHttpError(response.status, path, await errorMessage(response));
    return (await response.body.json()) as T;
  }

  get closed(): boolean {
    return this.closing.signal.aborted;
  }

  async close(): Promise<void> {
    this.closing.abort();
    await Promise.all([...this.pools.values()].map((pool) => pool.close()));
  }

  private pool(baseUrl: string): EngineHttp {
    let pool = this.pools.get(baseUrl);
    if (pool === undefined) {
      pool = new EngineHttp(baseUrl, { timeoutMs: this.timeoutMs, apiKey: this.apiKey });
      this.pools.set(baseUrl, pool);
    }
    return pool;
  }
}

/**
 * Whether a failure says the replica itself is unwell (refused or reset connection, no answer in time, a 5xx, a
 * stream cut short) rather than something about this request: those mark it down and move the request elsewhere.
 */
export function isReplicaFailure(error: unknown): boolean {
  if (error instanceof CapacityRefusedError || error instanceof AdapterRejectedError) return false;
  if (error instanceof StreamCutError) return true;
  if (error instanceof ReplicaHttpError) return error.status >= 500;
  // A probe's own bound (AbortSignal.timeout) ran out.
  if ((error as { name?: unknown } | null)?.name === 'TimeoutError') return true;
  return transportFailure(error, 0) !== undefined;
}

/** The socket error behind a network failure, for messages ("ECONNREFUSED"). */
export function networkCause(error: unknown): string | undefined {
  const code = (error as { code?: unknown } | null)?.code;
  return transportFailure(error, 0) === undefined ? undefined : String(code);
}

/** Shared promises known to have resolved (see `remembered`). */
const fulfilled = new WeakSet<Promise<unknown>>();

/**
 * `promise`, noted once it has resolved, so that untilAborted hands it back at once from then on instead of
 * listening for an abort: what every request waits for (the first read of the replicas, an adapter's files) is
 * there long before most of them arrive. Not for a promise nobody else handles: its rejection would go unnoticed.
 */
export function remembered<T>(promise: Promise<T>): Promise<T> {
  promise.then(
    () => fulfilled.add(promise),
    () => undefined,
  );
  return promise;
}

/** Waits for a shared promise, but lets this caller's signal stop the wait (the promise goes on for others). */
export function untilAborted<T>(promise: Promise<T>, signal: AbortSignal): Promise<T> {
  if (signal.aborted) return Promise.reject(signal.reason);
  if (fulfilled.has(promise)) return promise;
  return new Promise<T>((resolve, reject) => {
    const onAbort = () => reject(signal.reason);
    signal.addEventListener('abort', onAbort, { once: true });
    promise.then(resolve, reject).finally(() => signal.removeEventListener('abort', onAbort));
  });
}
