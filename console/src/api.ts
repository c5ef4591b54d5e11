/** A client of the service's public API (/client/v4 and /v1), with the signed-in account's bearer token. */

export interface Session {
  account: string;
  token: string;
}

export interface Envelope<T> {
  result: T;
  success: boolean;
  errors: { code: number; message: string }[];
  messages: { code: number; message: string }[];
}

export interface ModelCard {
  id: string;
  name: string;
  description: string;
  task: { id: string; name: string; description: string };
  tags: string[];
  properties: { property_id: string; value: string | unknown }[];
}

export type JsonSchema = Record<string, unknown>;

export interface Finetune {
  id: string;
  name: string;
  model: string;
  description: string;
  public: boolean;
  status: string;
  created_at: string;
  modified_at: string;
}

export interface UsageTotal {
  key: string | null;
  requests: number;
  cache_hits: number;
  prompt_tokens: number;
  completion_tokens: number;
  total_tokens: number;
  neurons: number;
}

export interface Usage {
  prompt_tokens: number;
  completion_tokens: number;
  total_tokens: number;
}

/** The API's base, next to the console's own path (`/console/` → `/client/v4`), so a path prefix carries over. */
export const API_BASE = new URL('../client/v4', location.href).href.replace(/\/$/, '');
export const OPENAI_BASE = new URL('../v1', location.href).href.replace(/\/$/, '');

/** An API failure: the envelope's first error, the HTTP status and, for 429, the seconds to wait. */
export class ApiError extends Error {
  constructor(
    message: string,
    readonly status: number,
    readonly code?: number,
    readonly retryAfter?: number,
  ) {
    super(message);
  }
}

/** Wording a person understands; the API's own message (which names the field, file or tensor) is kept. */
export function describeError(error: unknown): { title: string; detail?: string } {
  if (!(error instanceof ApiError)) {
    if (error instanceof DOMException && error.name === 'AbortError') return { title: 'Stopped.' };
    return { title: 'Cannot reach the service.', detail: error instanceof Error ? error.message : String(error) };
  }
  const detail = error.code === undefined ? error.message : `${error.message} (code ${error.code})`;
  switch (error.status) {
    case 0:
      return { title: 'Cannot reach the service. Check that it is running, then try again.', detail: error.message };
    case 401:
      return { title: 'The API token was not accepted. Sign in again with a valid token.', detail };
    case 403:
      return { title: 'This token belongs to another account.', detail };
    case 404:
      return { title: 'Not found.', detail };
    case 413:
      return { title: 'The file is too large.', detail };
    case 429:
      return {
        title:
          error.retryAfter !== undefined
            ? `Too many requests right now. Try again in ${error.retryAfter} second${error.retryAfter === 1 ? '' : 's'}.`
            : 'Too many requests right now. Try again shortly.',
        detail,
      };
    case 503:
      return { title: 'A part of the service is unavailable at the moment.', detail };
    default:
      if (error.status >= 500) return { title: 'The service failed to answer.', detail };
      return { title: error.message, detail: error.code === undefined ? undefined : `code ${error.code}` };
  }
}

async function failureOf(response: Response): Promise<ApiError> {
  const retry = response.headers.get('retry-after');
  const retryAfter = retry !== null && /^\d+$/.test(retry) ? Number(retry) : undefined;
  const text = await response.text().catch(() => '');
  try {
    const body = JSON.parse(text) as { errors?: { code: number; message: string }[]; error?: { message: string; code: string } };
    const first = body.errors?.[0];
    if (first) return new ApiError(first.message, response.status, first.code, retryAfter);
    if (body.error) return new ApiError(body.error.message, response.status, Number(body.error.code) || undefined, retryAfter);
  } catch {
    // not JSON: a proxy's page, say
  }
  return new ApiError(`${response.status} ${response.statusText}`.trim(), response.status, undefined, retryAfter);
}

export class Api {
  constructor(readonly session: Session) {}

  private headers(extra: Record<string, string> = {}): Record<string, string> {
    return { authorization: `Bearer ${this.session.token}`, ...extra };
  }

  get accountPath(): string {
    return `/accounts/${encodeURIComponent(this.session.account)}`;
  }

  /** A JSON call under /client/v4; resolves with the envelope (for its `messages`), throws ApiError. */
  async call<T>(method: string, path: string, body?: unknown, signal?: AbortSignal): Promise<Envelope<T>> {
    let response: Response;
    try {
      response = await fetch(`${API_BASE}${path}`, {
        method,
        headers: this.headers(body === undefined ? {} : { 'content-type': 'application/json' }),
        body: body === undefined ? undefined : JSON.stringify(body),
        signal,
        credentials: 'omit',
        cache: 'no-store',
      });
    } catch (error) {
      if (error instanceof DOMException && error.name === 'AbortError') throw error;
      throw new ApiError(error instanceof Error ? error.message : String(error), 0);
    }
    if (!response.ok) throw await failureOf(response);
    return (await response.json()) as Envelope<T>;
  }

  async get<T>(path: string): Promise<T> {
    return (await this.call<T>('GET', path)).result;
  }

  models = () => this.get<ModelCard[]>(`${this.accountPath}/ai/models/search?per_page=1000`);
  schema = (model: string) =>
    this.get<{ input: JsonSchema; output: JsonSchema }>(`${this.accountPath}/ai/models/schema?model=${encodeURIComponent(model)}`);
  finetunes = () => this.get<Finetune[]>(`${this.accountPath}/ai/finetunes`);
  publicFinetunes = (orderBy: string) =>
    this.get<Finetune[]>(`${this.accountPath}/ai/finetunes/public?limit=1000&orderBy=${encodeURIComponent(orderBy)}`);
  finetune = (idOrName: string) => this.get<Finetune>(`${this.accountPath}/ai/finetunes/${encodeURIComponent(idOrName)}`);
  usage = (from: string, to: string, groupBy: 'day' | 'finetune' | 'model') =>
    this.get<UsageTotal[]>(`${this.accountPath}/ai/usage?from=${from}&to=${to}&group_by=${groupBy}`);

  /** Names of the models that have an engine (only they can run), from the OpenAI-compatible list. */
  async runnableModels(): Promise<Set<string>> {
    const response = await fetch(`${OPENAI_BASE}/models`, { headers: this.headers(), credentials: 'omit', cache: 'no-store' });
    if (!response.ok) throw await failureOf(response);
    const body = (await response.json()) as { data: { id: string; owned_by: string }[] };
    return new Set(body.data.filter((m) => m.owned_by === 'system').map((m) => m.id));
  }

  /**
   * Uploads one adapter file. XMLHttpRequest rather than fetch: only it reports upload progress.
   * Resolves with the envelope's messages (warnings), rejects with ApiError.
   */
  upload(
    idOrName: string,
    fileName: string,
    file: Blob,
    onProgress: (sent: number, total: number) => void,
  ): { done: Promise<Envelope<Finetune>['messages']>; abort: () => void } {
    const xhr = new XMLHttpRequest();
    const done = new Promise<Envelope<Finetune>['messages']>((resolve, reject) => {
      xhr.open('POST', `${API_BASE}${this.accountPath}/ai/finetunes/${encodeURIComponent(idOrName)}/finetune-assets`);
      xhr.setRequestHeader('authorization', `Bearer ${this.session.token}`);
      xhr.upload.onprogress = (event) => onProgress(event.loaded, event.lengthComputable ? event.total : file.size);
      xhr.onerror = () => reject(new ApiError('the connection failed during the upload', 0));
      xhr.onabort = () => reject(new DOMException('upload aborted', 'AbortError'));
      xhr.onload = () => {
        const response = new Response(xhr.responseText, {
          status: xhr.status,
          headers: { 'retry-after': xhr.getResponseHeader('retry-after') ?? '' },
        });
        if (xhr.status >= 200 && xhr.status < 300) {
          resolve(response.json().then((body: Envelope<Finetune>) => body.messages));
        } else {
          failureOf(response).then(reject, reject);
        }
      };
      const form = new FormData();
      form.append('file_name', fileName);
      form.append('file', file, fileName);
      xhr.send(form);
    });
    return { done, abort: () => xhr.abort() };
  }

  /**
   * A streamed run: reads the server-sent events as they arrive. Aborting `signal` closes the connection, which
   * makes the server stop generating.
   */
  async stream(model: string, body: Record<string, unknown>, signal: AbortSignal, onText: (text: string) => void): Promise<Usage | undefined> {
    let response: Response;
    try {
      response = await fetch(`${API_BASE}${this.accountPath}/ai/run/${model}`, {
        method: 'POST',
        headers: this.headers({ 'content-type': 'application/json', accept: 'text/event-stream' }),
        body: JSON.stringify({ ...body, stream: true }),
        signal,
        credentials: 'omit',
        cache: 'no-store',
      });
    } catch (error) {
      if (error instanceof DOMException && error.name === 'AbortError') throw error;
      throw new ApiError(error instanceof Error ? error.message : String(error), 0);
    }
    if (!response.ok) throw await failureOf(response);
    const reader = response.body!.pipeThrough(new TextDecoderStream()).getReader();
    let buffer = '';
    let usage: Usage | undefined;
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      buffer += value;
      let end: number;
      while ((end = buffer.indexOf('\n\n')) >= 0) {
        const event = buffer.slice(0, end);
        buffer = buffer.slice(end + 2);
        const data = event
          .split('\n')
          .filter((line) => line.startsWith('data:'))
          .map((line) => line.slice(5).trimStart())
          .join('\n');
        if (data === '' || data === '[DONE]') continue;
        const parsed = JSON.parse(data) as { response?: string; usage?: Usage; error?: { code: number; message: string } };
        // A failure after the answer started arrives in-band; the HTTP status was already 200.
        if (parsed.error) throw new ApiError(parsed.error.message, 200, parsed.error.code);
        if (parsed.response) onText(parsed.response);
        if (parsed.usage) usage = parsed.usage;
      }
    }
    return usage;
  }

  /** A run answered at once (no streaming). */
  async run(model: string, body: Record<string, unknown>, signal: AbortSignal): Promise<{ response: string; usage?: Usage }> {
    return (await this.call<{ response: string; usage?: Usage }>('POST', `${this.accountPath}/ai/run/${model}`, body, signal)).result;
  }
}
