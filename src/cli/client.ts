import type { Envelope, EnvelopeMessage } from '../common/envelope.js';
import type { LocalFile } from './adapter-folder.js';
import { ApiError, CliError, unreachable } from './errors.js';
import { postFile, type RawAnswer } from './multipart.js';

export interface Connection {
  /** Base URL ending in /client/v4, without a trailing slash. */
  url: string;
  /** The routes calls are relative to, under `url`: `/accounts/{id}/ai`, or `/admin/accounts/{id}` for admin calls. */
  scope: string;
  token: string;
}

export interface Answer<T> {
  result: T;
  /** Non-fatal messages, such as warnings about an accepted adapter. */
  messages: EnvelopeMessage[];
}

/** The routes of one service under one scope: an account's Workers AI routes, or the admin routes of an account. */
export class ApiClient {
  constructor(private readonly connection: Connection) {}

  /** `path` is relative to the connection's scope. */
  async call<T>(method: string, path: string, body?: unknown): Promise<Answer<T>> {
    const response = await this.#fetch(path, method, body);
    return this.#unwrap<T>({ status: response.status, text: await response.text() });
  }

  /** Uploads one adapter file to a finetune's assets. */
  async upload<T>(finetune: string, file: LocalFile, onProgress: (sent: number) => void): Promise<Answer<T>> {
    const url = new URL(this.#url(`/finetunes/${encodeURIComponent(finetune)}/finetune-assets`));
    let answer: RawAnswer;
    try {
      answer = await postFile(url, this.#headers(), file, onProgress);
    } catch (error) {
      throw error instanceof CliError ? error : unreachable(this.connection.url, error);
    }
    return this.#unwrap<T>(answer);
  }

  /**
   * POSTs a request that answers with an event stream on success and with an envelope on failure (the service
   * only starts the stream once generation is under way), and returns the stream's body.
   */
  async stream(path: string, body: unknown): Promise<ReadableStream<Uint8Array>> {
    const response = await this.#fetch(path, 'POST', body);
    if (!response.headers.get('content-type')?.startsWith('text/event-stream') || !response.body) {
      this.#unwrap({ status: response.status, text: await response.text() });
      throw new CliError(`${this.connection.url} answered without an event stream (HTTP ${response.status})`);
    }
    return response.body;
  }

  #url(path: string): string {
    return `${this.connection.url}${this.connection.scope}${path}`;
  }

  #headers(): Record<string, string> {
    return { authorization: `Bearer ${this.connection.token}` };
  }

  async #fetch(path: string, method: string, body: unknown): Promise<Response> {
    const headers = this.#headers();
    if (body !== undefined) headers['content-type'] = 'application/json';
    try {
      return await fetch(this.#url(path), { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
    } catch (error) {
      throw unreachable(this.connection.url, error);
    }
  }

  #unwrap<T>({ status, text }: RawAnswer): Answer<T> {
    let envelope: Partial<Envelope<T>> | undefined;
    try {
      const parsed: unknown = JSON.parse(text);
      if (typeof parsed === 'object' && parsed !== null) envelope = parsed;
    } catch {
      // Handled below with any other answer that is not an envelope.
    }
    // Not the service: a proxy's error page, or a --url pointing somewhere else.
    if (!envelope) throw new CliError(`${this.connection.url} answered HTTP ${status} without a JSON envelope; is --url right?`);
    if (envelope.success === true) return { result: envelope.result as T, messages: envelope.messages ?? [] };
    const first = envelope.errors?.[0];
    if (first) throw new ApiError(first.code, first.message);
    throw new CliError(`${this.connection.url} answered HTTP ${status} without an error message`);
  }
}
