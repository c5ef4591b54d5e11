/**
 * A stand-in for vLLM's OpenAI-compatible server (`vllm serve --enable-lora`, with
 * VLLM_ALLOW_RUNTIME_LORA_UPDATING=True), answering as vLLM 0.11.x does: errors nested under
 * `error` (versions before 0.10.1 answered them flat; later ones add `param: "model"` to the
 * unknown-model 404), and `token_ids` / `prompt_token_ids` (null unless asked for) on each choice.
 * Where each answer comes from, in vllm/entrypoints/openai/:
 *
 * - api_server.py: routes. `/v1/load_lora_adapter` exists only with VLLM_ALLOW_RUNTIME_LORA_UPDATING;
 *   without it FastAPI's default 404 `{"detail":"Not Found"}` answers. Success is
 *   `Response(status_code=200, content=<str>)`: a plain-text body with no content type. Errors are
 *   `JSONResponse(ErrorResponse.model_dump(), status_code=error.code)`. `validate_json_request` refuses
 *   other content types with a 400 (its message is FastAPI's rendering of the validation error; only
 *   the inner text is reproduced here).
 *   AuthenticationMiddleware (--api-key): paths under `/v1` only need `Authorization: Bearer <key>`,
 *   else 401 `{"error":"Unauthorized"}`; `/tokenize` is not guarded.
 * - protocol.py: `ErrorResponse{error: ErrorInfo{message, type, param, code}}`, CompletionResponse,
 *   CompletionStreamResponse, UsageInfo, TokenizeResponse{count, max_model_len, tokens, token_strs};
 *   CompletionRequest defaults (max_tokens 16; null means "up to max_model_len"; stop: str | list).
 * - serving_models.py, `load_lora_adapter` / `_check_load_lora_adapter_request`: 400 InvalidUserInput
 *   "Both 'lora_name' and 'lora_path' must be provided." / "The lora adapter '<name>' has already been
 *   loaded."; an engine failure is 404 NotFoundError when its text has "No adapter found"
 *   (vllm/lora/worker_manager.py: "Loading lora <name> failed: No adapter found for <path>", raised when
 *   adapter_config.json cannot be opened), else 400 BadRequestError with the exception's text (an
 *   unparsable adapter_config.json; vllm/lora/models.py "<dir> doesn't contain tensors").
 * - serving_engine.py `_check_model`: an unknown model or LoRA name is 404 NotFoundError
 *   "The model `<name>` does not exist." (param null).
 * - serving_completion.py: non-streaming `CompletionResponse.model_dump()`; streaming
 *   `data: <chunk.model_dump_json()>\n\n` per delta (the last one with finish_reason and stop_reason),
 *   `usage` on every chunk with stream_options.continuous_usage_stats, a final usage-only chunk
 *   (choices [], dumped with exclude_none) with stream_options.include_usage, then `data: [DONE]\n\n`.
 *   A closed connection aborts the request (the engine stops generating).
 * - serving_tokenization.py: `/tokenize` answers TokenizeResponse.
 *
 * Not reproduced: pydantic validation messages for malformed bodies, sampling-parameter validation,
 * context-length errors, unload_lora_adapter, /v1/models, chat completions.
 *
 * The "model" is deterministic: it answers `<model> heard: <prompt words>` and then ends (EOS), one
 * whitespace-separated word per token, so a LoRA's name shows in its output; prompt tokens are the
 * prompt's words. max_tokens and stop strings apply as in vLLM (the stop string is cut from the text).
 */
import { existsSync, readFileSync } from 'node:fs';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';

export interface VllmStandInOptions {
  /** `--served-model-name`. */
  servedModel?: string;
  /** `--api-key`. */
  apiKey?: string;
  /** VLLM_ALLOW_RUNTIME_LORA_UPDATING (default true). */
  runtimeLoraUpdating?: boolean;
  /** Pause before each streamed chunk, so a client can leave mid-stream. */
  chunkDelayMs?: number;
  /** Write streamed events this many bytes at a time, with a pause between: TCP may split vLLM's output anywhere. */
  fragmentBytes?: number;
}

export interface VllmStandIn {
  url: string;
  served: string;
  /** `lora_name` of every load call, in order, failed ones included. */
  loads: string[];
  /** Every `/v1/completions` body, in order. */
  completions: Record<string, unknown>[];
  /** The Authorization header of every request (undefined when absent). */
  authorizations: (string | undefined)[];
  /** Streams whose client left before `data: [DONE]`. */
  disconnects(): number;
  /** Resolves once a client has left a stream mid-way. */
  disconnected(): Promise<void>;
  /** Names of the adapters loaded now. */
  loaded(): string[];
  /** What a vLLM restart does to runtime-loaded adapters: forgets them all. */
  restart(): void;
  close(): Promise<void>;
}

/** The stand-in tokenizer: one token per whitespace-separated word. */
export function standInTokens(text: string): string[] {
  return text.split(/\s+/).filter((word) => word !== '');
}

/** Everything the stand-in model would say to `prompt` as `model`, before max_tokens or a stop string cut it. */
export function standInAnswer(model: string, prompt: string): string {
  return [model, 'heard:', ...standInTokens(prompt)].join(' ');
}

function tokenId(word: string): number {
  let hash = 0;
  for (const char of word) hash = (hash * 31 + char.charCodeAt(0)) % 32000;
  return hash;
}

function errorBody(message: string, type: string, code: number): object {
  return { error: { message, type, param: null, code } };
}

function sendJson(res: ServerResponse, status: number, body: object): void {
  res.writeHead(status, { 'content-type': 'application/json' });
  res.end(JSON.stringify(body));
}

function sendError(res: ServerResponse, message: string, type: string, status: number): void {
  sendJson(res, status, errorBody(message, type, status));
}

function readBody(req: IncomingMessage): Promise<string> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    req.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
    req.on('error', reject);
  });
}

/** `--max-model-len`. */
const MAX_MODEL_LEN = 4096;

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

export async function startVllmStandIn(options: VllmStandInOptions = {}): Promise<VllmStandIn> {
  const served = options.servedModel ?? 'stand-in/base-model';
  const runtimeLoraUpdating = options.runtimeLoraUpdating ?? true;
  const chunkDelayMs = options.chunkDelayMs ?? 0;

  const adapters = new Map<string, string>();
  const loads: string[] = [];
  const completions: Record<string, unknown>[] = [];
  const authorizations: (string | undefined)[] = [];
  let disconnects = 0;
  let onDisconnect: () => void = () => undefined;
  const disconnectedOnce = new Promise<void>((resolve) => (onDisconnect = resolve));
  let requestCounter = 0;

  function authorized(req: IncomingMessage, path: string): boolean {
    if (options.apiKey === undefined || !path.startsWith('/v1')) return true;
    const [scheme, ...rest] = (req.headers.authorization ?? '').split(' ');
    return scheme.toLowerCase() === 'bearer' && rest.join(' ') === options.apiKey;
  }

  function loadAdapter(res: ServerResponse, body: Record<string, unknown>): void {
    const name = typeof body.lora_name === 'string' ? body.lora_name : '';
    const path = typeof body.lora_path === 'string' ? body.lora_path : '';
    loads.push(name);
    if (name === '' || path === '') {
      return sendError(res, "Both 'lora_name' and 'lora_path' must be provided.", 'InvalidUserInput', 400);
    }
    if (adapters.has(name)) {
      return sendError(res, `The lora adapter '${name}' has already been loaded.`, 'InvalidUserInput', 400);
    }
    // vLLM opens adapter_config.json first (PEFTHelper.from_local_dir), then looks for the tensors.
    const configPath = join(path, 'adapter_config.json');
    if (!existsSync(configPath)) {
      return sendError(res, `Loading lora ${name} failed: No adapter found for ${path}`, 'NotFoundError', 404);
    }
    try {
      JSON.parse(readFileSync(configPath, 'utf8'));
    } catch (error) {
      return sendError(res, (error as Error).message, 'BadRequestError', 400);
    }
    if (!['adapter_model.safetensors', 'adapter_model.bin', 'adapter_model.pt'].some((file) => existsSync(join(path, file)))) {
      return sendError(res, `${path} doesn't contain tensors`, 'BadRequestError', 400);
    }
    adapters.set(name, path);
    res.writeHead(200);
    res.end(`Success: LoRA adapter '${name}' added successfully.`);
  }

  function modelKnown(model: unknown): boolean {
    return model === undefined || model === null || model === served || (typeof model === 'string' && adapters.has(model));
  }

  function tokenize(res: ServerResponse, body: Record<string, unknown>): void {
    if (!modelKnown(body.model)) return sendError(res, `The model \`${String(body.model)}\` does not exist.`, 'NotFoundError', 404);
    const words = standInTokens(String(body.prompt ?? ''));
    sendJson(res, 200, {
      count: words.length,
      max_model_len: MAX_MODEL_LEN,
      tokens: words.map(tokenId),
      token_strs: body.return_token_strs === true ? words : null,
    });
  }

  async function complete(res: ServerResponse, body: Record<string, unknown>): Promise<void> {
    completions.push(body);
    if (!modelKnown(body.model)) return sendError(res, `The model \`${String(body.model)}\` does not exist.`, 'NotFoundError', 404);
    const model = typeof body.model === 'string' ? body.model : served;
    const prompt = String(body.prompt ?? '');
    const promptTokens = standInTokens(prompt).length;
    const maxTokens = body.max_tokens === null ? MAX_MODEL_LEN - promptTokens : typeof body.max_tokens === 'number' ? body.max_tokens : 16;
    const stops = typeof body.stop === 'string' ? [body.stop] : Array.isArray(body.stop) ? (body.stop as string[]) : [];
    const answer = standInTokens(standInAnswer(model, prompt)).map((word, i) => (i === 0 ? word : ` ${word}`));

    const id = `cmpl-${++requestCounter}`;
    const created = Math.floor(Date.now() / 1000);

    // The engine's outputs: one text delta per token; the last carries why generation ended.
    const deltas: { text: string; finish_reason: string | null; stop_reason: string | null }[] = [];
    let text = '';
    for (const token of answer.slice(0, maxTokens)) {
      const before = text.length;
      text += token;
      const hit = stops.map((stop) => ({ stop, at: text.indexOf(stop) })).find(({ at }) => at >= 0);
      if (hit) {
        deltas.push({ text: text.slice(before, Math.max(before, hit.at)), finish_reason: 'stop', stop_reason: hit.stop });
        text = text.slice(0, hit.at);
        break;
      }
      deltas.push({ text: text.slice(before), finish_reason: null, stop_reason: null });
    }
    const last = deltas.at(-1);
    if (last && last.finish_reason === null) last.finish_reason = deltas.length < answer.length ? 'length' : 'stop';
    const usage = (completionTokens: number) => ({
      prompt_tokens: promptTokens,
      total_tokens: promptTokens + completionTokens,
      completion_tokens: completionTokens,
    });

    if (body.stream !== true) {
      return sendJson(res, 200, {
        id,
        object: 'text_completion',
        created,
        model,
        choices: [
          {
            index: 0,
            text,
            logprobs: null,
            finish_reason: last?.finish_reason ?? 'length',
            stop_reason: last?.stop_reason ?? null,
            token_ids: null,
            prompt_logprobs: null,
            prompt_token_ids: null,
          },
        ],
        service_tier: null,
        system_fingerprint: null,
        usage: { ...usage(deltas.length), prompt_tokens_details: null },
        kv_transfer_params: null,
      });
    }

    // should_include_usage(): StreamOptions.include_usage defaults to true once stream_options is sent.
    const streamOptions = body.stream_options as { include_usage?: boolean | null; continuous_usage_stats?: boolean | null } | null | undefined;
    const includeUsage = streamOptions ? (streamOptions.include_usage === undefined ? true : streamOptions.include_usage === true) : false;
    const continuousUsage = includeUsage && streamOptions?.continuous_usage_stats === true;
    let finished = false;
    let gone = false;
    res.on('close', () => {
      if (!finished) {
        gone = true;
        disconnects++;
        onDisconnect();
      }
    });
    res.writeHead(200, { 'content-type': 'text/event-stream; charset=utf-8' });
    for (const [i, delta] of deltas.entries()) {
      if (chunkDelayMs > 0) await sleep(chunkDelayMs);
      if (gone) return; // vLLM aborts the request when the client disconnects.
      const chunk = {
        id,
        object: 'text_completion',
        created,
        model,
        choices: [
          {
            index: 0,
            text: delta.text,
            logprobs: null,
            finish_reason: delta.finish_reason,
            stop_reason: delta.stop_reason,
            token_ids: null,
            prompt_token_ids: null,
          },
        ],
        usage: continuousUsage ? usage(i + 1) : null,
      };
      await send(`data: ${JSON.stringify(chunk)}\n\n`);
    }
    if (includeUsage) await send(`data: ${JSON.stringify({ id, object: 'text_completion', created, model, choices: [], usage: usage(deltas.length) })}\n\n`);
    await send('data: [DONE]\n\n');
    if (gone) return;
    finished = true;
    res.end();

    async function send(event: string): Promise<void> {
      const bytes = Buffer.from(event, 'utf8');
      const step = options.fragmentBytes ?? bytes.length;
      for (let at = 0; at < bytes.length; at += step) {
        if (at > 0) await sleep(1);
        if (gone) return;
        res.write(bytes.subarray(at, at + step));
      }
    }
  }

  const server = createServer((req, res) => {
    void (async () => {
      const path = new URL(req.url ?? '/', 'http://stand-in').pathname;
      authorizations.push(req.headers.authorization);
      if (!authorized(req, path)) return sendJson(res, 401, { error: 'Unauthorized' });
      const routes: Record<string, boolean> = {
        '/v1/completions': true,
        '/tokenize': true,
        '/v1/load_lora_adapter': runtimeLoraUpdating,
      };
      if (!routes[path]) return sendJson(res, 404, { detail: 'Not Found' });
      if (req.method !== 'POST') return sendJson(res, 405, { detail: 'Method Not Allowed' });
      const mediaType = (req.headers['content-type'] ?? '').toLowerCase().split(';')[0].trim();
      if (mediaType !== 'application/json') {
        return sendError(res, "Unsupported Media Type: Only 'application/json' is allowed", 'Bad Request', 400);
      }
      let body: Record<string, unknown>;
      try {
        body = JSON.parse(await readBody(req)) as Record<string, unknown>;
      } catch (error) {
        return sendError(res, (error as Error).message, 'Bad Request', 400);
      }
      if (path === '/v1/load_lora_adapter') return loadAdapter(res, body);
      if (path === '/tokenize') return tokenize(res, body);
      return complete(res, body);
    })();
  });

  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;

  return {
    url: `http://127.0.0.1:${port}`,
    served,
    loads,
    completions,
    authorizations,
    disconnects: () => disconnects,
    disconnected: () => disconnectedOnce,
    loaded: () => [...adapters.keys()],
    restart: () => adapters.clear(),
    close: () =>
      new Promise<void>((resolve, reject) => {
        server.closeAllConnections();
        server.close((error) => (error ? reject(error) : resolve()));
      }),
  };
}
