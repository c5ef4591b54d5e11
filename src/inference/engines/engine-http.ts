import { Pool, type Dispatcher } from 'undici';

/** What an engine server answered: the status and a body that must be read (or dumped) to free the connection. */
export interface EngineResponse {
  status: number;
  ok: boolean;
  body: Dispatcher.ResponseData['body'];
}

/** What an engine server answered, read in full: the status and the body's text. */
export interface EngineText {
  status: number;
  ok: boolean;
  text: string;
}

export interface EngineHttpOptions {
  /** How long the server may take to start answering, and to send the next bytes of an answer. */
  timeoutMs: number;
  /** Sent as a bearer token. */
  apiKey?: string;
}

const IDLE_CONNECTION_MS = 2_000;

/** undici's error codes for a server that took longer than the timeout. */
const TIMEOUT_CODES = new Set(['UND_ERR_HEADERS_TIMEOUT', 'UND_ERR_BODY_TIMEOUT', 'UND_ERR_CONNECT_TIMEOUT']);

/**
 * HTTP to one engine server (vLLM, SGLang: OpenAI-compatible servers) through an undici Pool of keep-alive
 * connections for its origin. Global fetch builds WHATWG Request/Response objects and streams around every call;
 * the pool's `request` does not, which is most of an engine call's CPU cost on a fast engine.
 *
 * Timeouts are the pool's (time to the answer's headers, then between its chunks), and close() destroys the pool,
 * which fails whatever is in flight: so the only signal a request carries is its caller's, never a composed one.
 */
export class EngineHttp {
  /** The server's URL as configured, without a trailing slash (for messages). */
  readonly baseUrl: string;
  private readonly pool: Pool;
  private readonly prefix: string;
  private readonly headers: Record<string, string>;
  private destroyed = false;

  constructor(baseUrl: string, options: EngineHttpOptions) {
    this.baseUrl = baseUrl.replace(/\/+$/, '');
    const url = new URL(this.baseUrl);
    // A base URL may carry a path (a server behind a path-routing proxy): requests go under it.
    this.prefix = url.pathname.replace(/\/+$/, '');
    // Idle connections close well before uvicorn's (vLLM's and SGLang's server) 5 s, which sends no Keep-Alive hint:
    // a request must never go out on a connection the server is closing.
    this.pool = new Pool(url.origin, { headersTimeout: options.timeoutMs, bodyTimeout: options.timeoutMs, keepAliveTimeout: IDLE_CONNECTION_MS });
    this.headers = { 'content-type': 'application/json' };
    if (options.apiKey) this.headers.authorization = `Bearer ${options.apiKey}`;
  }

  /** True once close() was called: in-flight and later requests fail. */
  get closed(): boolean {
    return this.destroyed;
  }

  /** POSTs `body` as JSON; `signal` (the caller's) aborts the request, its connection included. */
  async postJson(path: string, body: object, signal?: AbortSignal): Promise<EngineResponse> {
    const { statusCode, body: stream } = await this.pool.request({
      path: this.prefix + path,
      method: 'POST',
      headers: this.headers,
      body: JSON.stringify(body),
      signal,
    });
    return { status: statusCode, ok: statusCode >= 200 && statusCode < 300, body: stream };
  }

  /**
   * POSTs `body` as JSON and reads the whole answer (a completion that does not stream). Dispatched to the pool with a
   * handler that only gathers the bytes: `request` would wrap the answer in a stream, an async resource and parsed
   * headers, which costs more than the rest of the call on a fast engine.
   */
  postJsonForText(path: string, body: object, signal?: AbortSignal): Promise<EngineText> {
    if (signal?.aborted) return Promise.reject(signal.reason);
    const payload = JSON.stringify(body);
    // Once the handler listens on the signal, the pool ends every path through it (answer or error), which removes
    // the listener: the signal may be the connection's, shared by the requests it carries.
    return new Promise((resolve, reject) => {
      this.pool.dispatch({ path: this.prefix + path, method: 'POST', headers: this.headers, body: payload }, new TextAnswer(resolve, reject, signal));
    });
  }

  /** GETs `path` (probes: health, models, metrics). */
  async get(path: string, signal?: AbortSignal): Promise<EngineResponse> {
    const { statusCode, body } = await this.pool.request({ path: this.prefix + path, method: 'GET', headers: this.headers, signal });
    return { status: statusCode, ok: statusCode >= 200 && statusCode < 300, body };
  }

  /** Ends in-flight requests (they fail) and the pool's connections. */
  async close(): Promise<void> {
    if (this.destroyed) return;
    this.destroyed = true;
    await this.pool.destroy();
  }
}

/** Gathers an answer's body; `signal` aborts the request (the error is its reason, as with the pool's `request`). */
class TextAnswer implements Dispatcher.DispatchHandler {
  private status = 0;
  private readonly chunks: Buffer[] = [];
  private controller: Dispatcher.DispatchController | undefined;
  private readonly onAbort = () => this.controller?.abort(this.signal!.reason);

  constructor(
    private readonly resolve: (answer: EngineText) => void,
    private readonly reject: (error: unknown) => void,
    private readonly signal: AbortSignal | undefined,
  ) {
    signal?.addEventListener('abort', this.onAbort, { once: true });
  }

  onRequestStart(controller: Dispatcher.DispatchController): void {
    this.controller = controller;
    if (this.signal?.aborted) controller.abort(this.signal.reason);
  }

  onResponseStart(_controller: Dispatcher.DispatchController, statusCode: number): void {
    // 1xx answers come before the real one.
    if (statusCode >= 200) this.status = statusCode;
  }

  onResponseData(_controller: Dispatcher.DispatchController, chunk: Buffer): void {
    this.chunks.push(chunk);
  }

  onResponseEnd(): void {
    this.signal?.removeEventListener('abort', this.onAbort);
    const { status } = this;
    this.resolve({ status, ok: status >= 200 && status < 300, text: Buffer.concat(this.chunks).toString('utf8') });
  }

  onResponseError(_controller: Dispatcher.DispatchController, error: Error): void {
    this.signal?.removeEventListener('abort', this.onAbort);
    this.reject(error);
  }
}

/**
 * Why a request to an engine server failed, when it is the server's or the network's fault: it took longer than
 * `timeoutMs` (`timeout`), or it cannot be reached (refused, reset, unresolvable). Undefined for anything else.
 */
export function transportFailure(error: unknown, timeoutMs: number): { timeout: boolean; message: string } | undefined {
  // Fields, not instanceof: undici's errors may come from another realm under a test runner.
  const { code, message } = (error ?? {}) as { code?: unknown; message?: unknown };
  if (typeof code !== 'string') return undefined;
  if (TIMEOUT_CODES.has(code)) return { timeout: true, message: `did not answer within ${timeoutMs} ms` };
  // undici's own socket failures (UND_ERR_SOCKET: "other side closed") and the system's (ECONNREFUSED, ENOTFOUND, ...).
  if (code === 'UND_ERR_SOCKET') return { timeout: false, message: `is unreachable (${String(message)})` };
  if (/^E[A-Z]+$/.test(code)) return { timeout: false, message: `is unreachable (${code})` };
  return undefined;
}

/** The message of an OpenAI-compatible server's error body (vLLM, SGLang, or FastAPI under them); undefined if it has none. */
export function errorBodyMessage(body: unknown): string | undefined {
  if (typeof body !== 'object' || body === null) return undefined;
  const { error, message, detail, error_message } = body as { error?: unknown; message?: unknown; detail?: unknown; error_message?: unknown };
  // vLLM >= 0.10.1 nests {message, type, param, code} under `error`; SGLang and older vLLM answer it flat.
  if (typeof error === 'object' && error !== null && typeof (error as { message?: unknown }).message === 'string') {
    return (error as { message: string }).message;
  }
  // vLLM's API-key middleware answers {"error": "Unauthorized"}; FastAPI's own errors {"detail": ...}.
  if (typeof error === 'string') return error;
  if (typeof message === 'string') return message;
  if (typeof detail === 'string') return detail;
  // SGLang's LoRA updates: {"success": false, "error_message": ...}.
  if (typeof error_message === 'string' && error_message !== '') return error_message;
  return undefined;
}

/** Reads a non-2xx answer's message (see errorTextMessage). */
export async function errorMessage(response: EngineResponse): Promise<string> {
  return errorTextMessage(await response.body.text(), response.status);
}

/** A non-2xx answer's message: the error body's, else its first 500 characters (a proxy's page, say). */
export function errorTextMessage(text: string, status: number): string {
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    // Not JSON.
  }
  return errorBodyMessage(parsed) ?? (text.slice(0, 500) || `status ${status}`);
}

/**
 * The `data` of each server-sent event of a body (`data: <json>\n\n` events, as OpenAI-compatible servers stream),
 * whose chunks can split anywhere, mid-character included; events without data (comments) are skipped.
 */
export async function* sseData(body: AsyncIterable<Uint8Array>): AsyncGenerator<string> {
  const decoder = new TextDecoder();
  let buffer = '';
  for await (const bytes of body) {
    buffer += decoder.decode(bytes, { stream: true });
    if (buffer.includes('\r')) buffer = buffer.replace(/\r\n/g, '\n');
    let end: number;
    while ((end = buffer.indexOf('\n\n')) >= 0) {
      const data = eventData(buffer.slice(0, end));
      buffer = buffer.slice(end + 2);
      if (data !== undefined) yield data;
    }
  }
}

/** The `data:` lines of one event, joined; undefined for an event without data. */
function eventData(event: string): string | undefined {
  let data: string | undefined;
  for (const line of event.split('\n')) {
    if (!line.startsWith('data:')) continue;
    const value = line.slice(line.startsWith('data: ') ? 6 : 5);
    data = data === undefined ? value : `${data}\n${value}`;
  }
  return data;
}
