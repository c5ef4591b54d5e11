/**
 * A stand-in for vLLM's OpenAI-compatible server (`vllm serve --enable-lora`, with
 * VLLM_ALLOW_RUNTIME_LORA_UPDATING=True), answering as the current release does: errors nested under `error`
 * (`{message, type, param, code}`), `token_ids` / `prompt_token_ids` (null unless asked for) on each choice.
 * Where each answer comes from, in vllm/:
 *
 * - entrypoints/openai/api_server.py and entrypoints/serve/lora/api_router.py: routes. `/v1/load_lora_adapter` and
 *   `/v1/unload_lora_adapter` exist only with VLLM_ALLOW_RUNTIME_LORA_UPDATING; without it FastAPI's default 404
 *   `{"detail":"Not Found"}` answers. Success is `Response(status_code=200, content=<str>)`: a plain-text body with
 *   no content type. Errors are `JSONResponse(ErrorResponse.model_dump(), status_code=error.code)`.
 *   `validate_json_request` refuses other content types with a 400 (only the inner text is reproduced here).
 *   AuthenticationMiddleware (--api-key): paths under `/v1` need `Authorization: Bearer <key>`, else 401
 *   `{"error":"Unauthorized"}`; `/tokenize`, `/health` and `/metrics` are not guarded. `/health` answers 200 with
 *   an empty body once the engine runs.
 * - entrypoints/openai/models/serving.py (OpenAIServingModels): `load_lora_adapter`: 400 InvalidUserInput "Both
 *   'lora_name' and 'lora_path' must be provided." / "The lora adapter '<name>' has already been loaded. If you want
 *   to load the adapter in place, set 'load_inplace' to True."; an engine failure is 404 NotFoundError when it is
 *   exceptions.py's LoRAAdapterNotFoundError ("Loading lora <name> failed: No adapter found for <path>", raised
 *   when adapter_config.json cannot be opened), else 500 InternalServerError with the exception's text (an
 *   unparsable adapter_config.json; "<dir> doesn't contain tensors"). `unload_lora_adapter`: 200 "Success: LoRA
 *   adapter '<name>' removed successfully."; 400 "'lora_name' needs to be provided to unload a LoRA adapter."; 404
 *   NotFoundError "The lora adapter '<name>' cannot be found.". `show_available_models` (`GET /v1/models`): the base
 *   model card, then one card per loaded adapter with `root` its path and `parent` the base model's name.
 *   `resolve_lora`: with a resolver registered, a name that is not loaded is offered to the resolvers; found and
 *   loaded, it serves; found but not loadable: 400 BadRequestError "LoRA adapter '<name>' was found but could not
 *   be loaded."; else the unknown-model 404.
 * - plugins/lora_resolvers/filesystem_resolver.py (VLLM_PLUGINS=lora_filesystem_resolver,
 *   VLLM_LORA_RESOLVER_CACHE_DIR=<dir>): `<dir>/<name>/adapter_config.json` with `peft_type` "LORA" and
 *   `base_model_name_or_path` equal to vLLM's `--model` resolves to that folder.
 * - entrypoints/openai/models/serving.py `check_model`: an unknown model or LoRA name is 404 NotFoundError
 *   "The model `<name>` does not exist." with param "model".
 * - v1/metrics/loggers.py (PrometheusStatLogger): `vllm:num_requests_running` / `vllm:num_requests_waiting`
 *   (labels engine, model_name), and with LoRA enabled `vllm:lora_requests_info{max_lora, waiting_lora_adapters,
 *   running_lora_adapters}` set to the current time every step: adapters as comma-separated names, and one series
 *   per label combination ever seen (the newest timestamp is the current one).
 * - completion/protocol.py and completion/serving.py: non-streaming `CompletionResponse.model_dump()`; streaming
 *   `data: <chunk.model_dump_json()>\n\n` per delta (the last one with finish_reason and stop_reason), `usage` on
 *   every chunk with stream_options.continuous_usage_stats, a final usage-only chunk (choices []) with
 *   stream_options.include_usage, then `data: [DONE]\n\n`. A closed connection aborts the request.
 *   CompletionRequest defaults: max_tokens 16 (null means "up to max_model_len"); stop: str | list.
 * - serving_tokenization.py: `/tokenize` answers TokenizeResponse{count, max_model_len, tokens, token_strs}.
 *
 * Where it departs from vLLM, on purpose: vLLM never refuses a load for capacity (its workers keep `--max-cpu-loras`
 * adapters in an LRU cache and swap `--max-loras` GPU slots per batch). With `maxLoras` set, the stand-in refuses a
 * load beyond it with a 500 InternalServerError naming max_loras (as an add_lora failure is reported), and its
 * resolver answers "found but could not be loaded", so tests can prove a client never asks a replica for more than
 * it was started with. `kill()` / `revive()` are a crash and a restart on the same port.
 *
 * Not reproduced: pydantic validation messages for malformed bodies, sampling-parameter validation,
 * context-length errors, chat completions.
 *
 * The "model" is deterministic: it answers `<model> heard: <prompt words>` and then ends (EOS), one
 * whitespace-separated word per token, so a LoRA's name shows in its output; prompt tokens are the
 * prompt's words. max_tokens and stop strings apply as in vLLM (the stop string is cut from the text).
 */
import { existsSync, readFileSync } from 'node:fs';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';

export interface VllmStandInOptions {
  /** `--served-model-name`. */
  servedModel?: string;
  /** `--model` (what the filesystem resolver compares base_model_name_or_path with); default: servedModel. */
  model?: string;
  /** `--api-key`. */
  apiKey?: string;
  /** VLLM_ALLOW_RUNTIME_LORA_UPDATING (default true). */
  runtimeLoraUpdating?: boolean;
  /** `--max-loras`: the `max_lora` label, and (stand-in only) the most adapters it accepts. */
  maxLoras?: number;
  /** VLLM_PLUGINS=lora_filesystem_resolver with VLLM_LORA_RESOLVER_CACHE_DIR=<this folder>. */
  resolverDir?: string;
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
  /** `lora_name` of every unload call, in order. */
  unloads: string[];
  /** Adapters its resolver loaded, in order. */
  resolved: string[];
  /** Loads (or resolutions) refused because maxLoras adapters were loaded. */
  refusals(): number;
  /** The most adapters it ever held at once. */
  peakLoaded(): number;
  /** Every `/v1/completions` body, in order. */
  completions: Record<string, unknown>[];
  /** The Authorization header of every request (undefined when absent). */
  authorizations: (string | undefined)[];
  /** Completions whose client left before the answer ended (a stream before `data: [DONE]`). */
  disconnects(): number;
  /** Resolves once a client has left a completion mid-way. */
  disconnected(): Promise<void>;
  /** Names of the adapters loaded now. */
  loaded(): string[];
  /** Completions running now. */
  running(): number;
  /** What a vLLM restart does to runtime-loaded adapters: forgets them all. */
  restart(): void;
  /** A crash: the port stops answering and every open connection (streams included) is cut. */
  kill(): Promise<void>;
  /** Up again on the same port, with nothing loaded (a restart). */
  revive(): Promise<void>;
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

function sendJson(res: ServerResponse, status: number, body: object): void {
  res.writeHead(status, { 'content-type': 'application/json' });
  res.end(JSON.stringify(body));
}

function sendError(res: ServerResponse, message: string, type: string, status: number, param: string | null = null): void {
  sendJson(res, status, { error: { message, type, param, code: status } });
}

function sendText(res: ServerResponse, text: string): void {
  res.writeHead(200);
  res.end(text);
}

export function readBody(req: IncomingMessage): Promise<string> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    req.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
    req.on('error', reject);
  });
}

/** Listens on `port` (0: any free one) on loopback; resolves with the port. */
export async function listenOn(server: Server, port: number): Promise<number> {
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, '127.0.0.1', () => {
      server.off('error', reject);
      resolve();
    });
  });
  return (server.address() as AddressInfo).port;
}

export function closeServer(server: Server): Promise<void> {
  return new Promise<void>((resolve) => {
    server.closeAllConnections();
    server.close(() => resolve());
  });
}

/** `--max-model-len`. */
const MAX_MODEL_LEN = 4096;

export const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

export async function startVllmStandIn(options: VllmStandInOptions = {}): Promise<VllmStandIn> {
  const served = options.servedModel ?? 'stand-in/base-model';
  const baseModel = options.model ?? served;
  const runtimeLoraUpdating = options.runtimeLoraUpdating ?? true;
  const chunkDelayMs = options.chunkDelayMs ?? 0;
  const maxLoras = options.maxLoras ?? Infinity;

  const adapters = new Map<string, string>();
  const loads: string[] = [];
  const unloads: string[] = [];
  const resolved: string[] = [];
  const completions: Record<string, unknown>[] = [];
  const authorizations: (string | undefined)[] = [];
  let refusals = 0;
  let peak = 0;
  let disconnects = 0;
  let onDisconnect: () => void = () => undefined;
  const disconnectedOnce = new Promise<void>((resolve) => (onDisconnect = resolve));
  let requestCounter = 0;
  /** Adapters of running completions (null: the base model), for the gauges. */
  const running = new Map<number, string | null>();
  /** vllm:lora_requests_info: every label combination set so far, with when it was last set. */
  const loraInfo = new Map<string, number>();
  /** Cuts every stream in progress: a crash. */
  let crash = new AbortController();

  function remember(name: string, path: string): void {
    adapters.set(name, path);
    peak = Math.max(peak, adapters.size);
  }

  /** What the engine loop sets each step: the adapters of the running requests. */
  function step(): void {
    const names = [...new Set([...running.values()].filter((n): n is string => n !== null))];
    const labels = `max_lora="${Number.isFinite(maxLoras) ? maxLoras : 1}",waiting_lora_adapters="",running_lora_adapters="${names.join(',')}"`;
    loraInfo.set(labels, Math.max(Date.now() / 1000, ...loraInfo.values()) + 1e-6);
  }

  function authorized(req: IncomingMessage, path: string): boolean {
    if (options.apiKey === undefined || !path.startsWith('/v1')) return true;
    const [scheme, ...rest] = (req.headers.authorization ?? '').split(' ');
    return scheme.toLowerCase() === 'bearer' && rest.join(' ') === options.apiKey;
  }

  /** Why the adapter folder cannot be added, as vLLM's error, or undefined when it can. */
  function unloadable(name: string, path: string): { message: string; type: string; status: number } | undefined {
    // vLLM opens adapter_config.json first (PEFTHelper.from_local_dir), then looks for the tensors.
    const configPath = join(path, 'adapter_config.json');
    if (!existsSync(configPath)) return { message: `Loading lora ${name} failed: No adapter found for ${path}`, type: 'NotFoundError', status: 404 };
    try {
      JSON.parse(readFileSync(configPath, 'utf8'));
    } catch (error) {
      return { message: (error as Error).message, type: 'InternalServerError', status: 500 };
    }
    if (!['adapter_model.safetensors', 'adapter_model.bin', 'adapter_model.pt'].some((file) => existsSync(join(path, file)))) {
      return { message: `${path} doesn't contain tensors`, type: 'InternalServerError', status: 500 };
    }
    if (adapters.size >= maxLoras) {
      refusals++;
      return { message: `cannot add LoRA ${name}: ${adapters.size} adapters are loaded and max_loras is ${maxLoras}`, type: 'InternalServerError', status: 500 };
    }
    return undefined;
  }

  function loadAdapter(res: ServerResponse, body: Record<string, unknown>): void {
    const name = typeof body.lora_name === 'string' ? body.lora_name : '';
    const path = typeof body.lora_path === 'string' ? body.lora_path : '';
    loads.push(name);
    if (name === '' || path === '') {
      return sendError(res, "Both 'lora_name' and 'lora_path' must be provided.", 'InvalidUserInput', 400);
    }
    if (adapters.has(name)) {
      return sendError(
        res,
        `The lora adapter '${name}' has already been loaded. If you want to load the adapter in place, set 'load_inplace' to True.`,
        'InvalidUserInput',
        400,
      );
    }
    const refused = unloadable(name, path);
    if (refused) return sendError(res, refused.message, refused.type, refused.status);
    remember(name, path);
    sendText(res, `Success: LoRA adapter '${name}' added successfully.`);
  }

  function unloadAdapter(res: ServerResponse, body: Record<string, unknown>): void {
    const name = typeof body.lora_name === 'string' ? body.lora_name : '';
    unloads.push(name);
    if (name === '') return sendError(res, "'lora_name' needs to be provided to unload a LoRA adapter.", 'InvalidUserInput', 400);
    if (!adapters.delete(name)) return sendError(res, `The lora adapter '${name}' cannot be found.`, 'NotFoundError', 404);
    sendText(res, `Success: LoRA adapter '${name}' removed successfully.`);
  }

  function listModels(res: ServerResponse): void {
    const created = Math.floor(Date.now() / 1000);
    const card = (id: string, root: string, parent: string | null, maxModelLen: number | null) => ({
      id,
      object: 'model',
      created,
      owned_by: 'vllm',
      root,
      parent,
      max_model_len: maxModelLen,
      permission: [{ id: `modelperm-${id}`, object: 'model_permission', created, allow_create_engine: false, allow_sampling: true }],
    });
    sendJson(res, 200, {
      object: 'list',
      data: [card(served, baseModel, null, MAX_MODEL_LEN), ...[...adapters].map(([name, path]) => card(name, path, served, null))],
    });
  }

  function metrics(res: ServerResponse): void {
    const labels = `engine="0",model_name="${served}"`;
    const lines = [
      '# HELP vllm:num_requests_running Number of requests in model execution batches.',
      '# TYPE vllm:num_requests_running gauge',
      `vllm:num_requests_running{${labels}} ${running.size}.0`,
      '# HELP vllm:num_requests_waiting Number of requests waiting to be processed.',
      '# TYPE vllm:num_requests_waiting gauge',
      `vllm:num_requests_waiting{${labels}} 0.0`,
      '# HELP vllm:lora_requests_info Running stats on lora requests.',
      '# TYPE vllm:lora_requests_info gauge',
      ...[...loraInfo].map(([combination, at]) => `vllm:lora_requests_info{${combination}} ${at}`),
    ];
    res.writeHead(200, { 'content-type': 'text/plain; version=0.0.4; charset=utf-8' });
    res.end(`${lines.join('\n')}\n`);
  }

  /** check_model, with resolve_lora first when a resolver is registered. */
  function checkModel(res: ServerResponse, model: unknown): boolean {
    if (model === undefined || model === null || model === served || (typeof model === 'string' && adapters.has(model))) return true;
    if (options.resolverDir !== undefined && runtimeLoraUpdating && typeof model === 'string' && !model.startsWith('/')) {
      const path = join(options.resolverDir, model);
      const configPath = join(path, 'adapter_config.json');
      if (existsSync(configPath)) {
        const config = JSON.parse(readFileSync(configPath, 'utf8')) as { peft_type?: unknown; base_model_name_or_path?: unknown };
        if (config.peft_type === 'LORA' && config.base_model_name_or_path === baseModel) {
          if (unloadable(model, path) === undefined) {
            remember(model, path);
            resolved.push(model);
            return true;
          }
          sendError(res, `LoRA adapter '${model}' was found but could not be loaded.`, 'BadRequestError', 400);
          return false;
        }
      }
    }
    sendError(res, `The model \`${String(model)}\` does not exist.`, 'NotFoundError', 404, 'model');
    return false;
  }

  function tokenize(res: ServerResponse, body: Record<string, unknown>): void {
    if (!checkModel(res, body.model)) return;
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
    if (!checkModel(res, body.model)) return;
    const model = typeof body.model === 'string' ? body.model : served;
    const id = ++requestCounter;
    running.set(id, model === served ? null : model);
    step();
    try {
      await generate(res, body, model, id);
    } finally {
      running.delete(id);
      step();
    }
  }

  async function generate(res: ServerResponse, body: Record<string, unknown>, model: string, requestId: number): Promise<void> {
    const prompt = String(body.prompt ?? '');
    const promptTokens = standInTokens(prompt).length;
    const maxTokens = body.max_tokens === null ? MAX_MODEL_LEN - promptTokens : typeof body.max_tokens === 'number' ? body.max_tokens : 16;
    const stops = typeof body.stop === 'string' ? [body.stop] : Array.isArray(body.stop) ? (body.stop as string[]) : [];
    const answer = standInTokens(standInAnswer(model, prompt)).map((word, i) => (i === 0 ? word : ` ${word}`));

    const id = `cmpl-${requestId}`;
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
      // The engine takes as long as a stream would; a client that leaves meanwhile aborts the request.
      res.on('close', () => {
        if (!res.writableFinished && !crash.signal.aborted) {
          disconnects++;
          onDisconnect();
        }
      });
      if (chunkDelayMs > 0) await sleep(chunkDelayMs * deltas.length);
      if (res.destroyed) return;
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
    const crashed = crash.signal;
    res.on('close', () => {
      if (!finished && !crashed.aborted) {
        gone = true;
        disconnects++;
        onDisconnect();
      }
    });
    res.writeHead(200, { 'content-type': 'text/event-stream; charset=utf-8' });
    for (const [i, delta] of deltas.entries()) {
      if (chunkDelayMs > 0) await sleep(chunkDelayMs);
      if (gone || crashed.aborted) return; // vLLM aborts the request when the client disconnects.
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
    if (gone || crashed.aborted) return;
    finished = true;
    res.end();

    async function send(event: string): Promise<void> {
      const bytes = Buffer.from(event, 'utf8');
      const step = options.fragmentBytes ?? bytes.length;
      for (let at = 0; at < bytes.length; at += step) {
        if (at > 0) await sleep(1);
        if (gone || crashed.aborted) return;
        res.write(bytes.subarray(at, at + step));
      }
    }
  }

  const handle = (req: IncomingMessage, res: ServerResponse) => {
    void (async () => {
      const path = new URL(req.url ?? '/', 'http://stand-in').pathname;
      authorizations.push(req.headers.authorization);
      if (!authorized(req, path)) return sendJson(res, 401, { error: 'Unauthorized' });
      const gets: Record<string, (() => void) | undefined> = {
        '/health': () => sendText(res, ''),
        '/v1/models': () => listModels(res),
        '/metrics': () => metrics(res),
      };
      const posts: Record<string, ((body: Record<string, unknown>) => void | Promise<void>) | undefined> = {
        '/v1/completions': (body) => complete(res, body),
        '/tokenize': (body) => tokenize(res, body),
        ...(runtimeLoraUpdating && {
          '/v1/load_lora_adapter': (body: Record<string, unknown>) => loadAdapter(res, body),
          '/v1/unload_lora_adapter': (body: Record<string, unknown>) => unloadAdapter(res, body),
        }),
      };
      const get = gets[path];
      const post = posts[path];
      if (!get && !post) return sendJson(res, 404, { detail: 'Not Found' });
      if (get) return req.method === 'GET' ? get() : sendJson(res, 405, { detail: 'Method Not Allowed' });
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
      return post!(body);
    })();
  };

  let server = createServer(handle);
  const port = await listenOn(server, 0);

  return {
    url: `http://127.0.0.1:${port}`,
    served,
    loads,
    unloads,
    resolved,
    refusals: () => refusals,
    peakLoaded: () => peak,
    completions,
    authorizations,
    disconnects: () => disconnects,
    disconnected: () => disconnectedOnce,
    loaded: () => [...adapters.keys()],
    running: () => running.size,
    restart: () => adapters.clear(),
    kill: async () => {
      crash.abort();
      await closeServer(server);
    },
    revive: async () => {
      adapters.clear();
      running.clear();
      crash = new AbortController();
      server = createServer(handle);
      await listenOn(server, port);
    },
    close: () => closeServer(server),
  };
}
