/** HTTP plumbing shared by the engines whose replicas are remote servers (vLLM, SGLang): requests, errors, waiting. */

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

/** Requests to replicas: the API key, and timeouts that also end when the engine closes. */
export class RemoteClient {
  /** Aborted by close(): in-flight requests and background probes stop. */
  readonly closing = new AbortController();

  constructor(
    private readonly apiKey: string | undefined,
    readonly timeoutMs: number,
  ) {}

  post(baseUrl: string, path: string, body: object, signal: AbortSignal): Promise<Response> {
    const headers: Record<string, string> = { 'content-type': 'application/json', ...this.auth() };
    return fetch(`${baseUrl}${path}`, { method: 'POST', headers, body: JSON.stringify(body), signal });
  }

  get(baseUrl: string, path: string, signal: AbortSignal): Promise<Response> {
    return fetch(`${baseUrl}${path}`, { headers: this.auth(), signal });
  }

  /** A bounded signal for work not tied to one caller (a load shared by several requests, a probe). */
  ownSignal(timeoutMs = this.timeoutMs): AbortSignal {
    return AbortSignal.any([AbortSignal.timeout(timeoutMs), this.closing.signal]);
  }

  /** JSON of a 2xx answer; anything else is a ReplicaHttpError with the replica's own message. */
  async json<T>(response: Response, path: string): Promise<T> {
    if (!response.ok) throw new ReplicaHttpError(response.status, path, await errorMessage(response));
    return (await response.json()) as T;
  }

  private auth(): Record<string, string> {
    return this.apiKey ? { authorization: `Bearer ${this.apiKey}` } : {};
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
  // Fields, not instanceof: fetch's errors and DOMExceptions may come from another realm.
  const { name, cause } = (error ?? {}) as { name?: unknown; cause?: unknown };
  if (name === 'TimeoutError') return true;
  // undici's network failures are TypeErrors ("fetch failed", "terminated") carrying the socket error as their cause.
  return name === 'TypeError' && typeof cause === 'object' && cause !== null;
}

/** The socket error behind a network failure, for messages ("ECONNREFUSED"). */
export function networkCause(error: unknown): string | undefined {
  const { name, cause } = (error ?? {}) as { name?: unknown; cause?: { code?: unknown; message?: unknown } | null };
  if (name !== 'TypeError' || typeof cause !== 'object' || cause === null) return undefined;
  return String(cause.code ?? cause.message);
}

/** The message of any error body vLLM, SGLang or FastAPI under them answers. */
export function messageOf(body: unknown): string | undefined {
  if (typeof body !== 'object' || body === null) return undefined;
  const { error, message, detail, error_message } = body as { error?: unknown; message?: unknown; detail?: unknown; error_message?: unknown };
  // vLLM >= 0.10.1 nests {message, type, param, code} under `error`; SGLang and older vLLM answer it flat.
  if (typeof error === 'object' && error !== null && typeof (error as { message?: unknown }).message === 'string') {
    return (error as { message: string }).message;
  }
  // API-key middlewares answer {"error": "Unauthorized"}; FastAPI's own errors {"detail": ...}; SGLang's LoRA updates {"error_message": ...}.
  if (typeof error === 'string') return error;
  if (typeof message === 'string') return message;
  if (typeof detail === 'string') return detail;
  if (typeof error_message === 'string' && error_message !== '') return error_message;
  return undefined;
}

export async function errorMessage(response: Response): Promise<string> {
  const text = await response.text();
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    // Not JSON: a proxy's error page, say.
  }
  return messageOf(parsed) ?? (text.slice(0, 500) || response.statusText);
}

/** Waits for a shared promise, but lets this caller's signal stop the wait (the promise goes on for others). */
export function untilAborted<T>(promise: Promise<T>, signal: AbortSignal): Promise<T> {
  if (signal.aborted) return Promise.reject(signal.reason);
  return new Promise<T>((resolve, reject) => {
    const onAbort = () => reject(signal.reason);
    signal.addEventListener('abort', onAbort, { once: true });
    promise.then(resolve, reject).finally(() => signal.removeEventListener('abort', onAbort));
  });
}
