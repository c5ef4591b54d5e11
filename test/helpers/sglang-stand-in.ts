/**
 * A stand-in for an SGLang server with dynamic LoRA (`python -m sglang.launch_server --enable-lora
 * --max-loaded-loras N --enable-metrics`), answering as the current release does. Where each answer comes from, in
 * python/sglang/srt/:
 *
 * - entrypoints/http_server.py: `POST /load_lora_adapter` and `POST /unload_lora_adapter` answer the
 *   LoRAUpdateOutput as JSON, 200 when `success`, else 400 (`{"success": false, "error_message": ...,
 *   "loaded_adapters": {name: path}}`, with `rid` and `http_worker_ipc` null). `GET /v1/models`: the served model's
 *   card, then one card per registered adapter with `root` its path and `parent` the served model. `GET /health`
 *   answers 200. `--api-key` guards every route but the health check with `Authorization: Bearer <key>`.
 * - managers/tokenizer_manager.py (`load_lora_adapter` / `unload_lora_adapter`, ValueErrors returned as
 *   `error_message`): "LoRA is not enabled. Please set `--enable-lora` to enable LoRA."; "Cannot load LoRA adapter
 *   <name> at path <path>. Maximum number of loaded LoRA adapters is <N>. Please unload some LoRA adapters before
 *   loading new ones." when `--max-loaded-loras` adapters are registered.
 * - lora/lora_manager.py (`validate_new_adapter`): "Failed to load LoRA adapter <name> because it is already
 *   loaded"; a folder without a readable adapter_config.json fails to load (the loader's exception text, prefixed
 *   here with "Failed to load LoRA adapter <name>: ").
 * - lora/lora_registry.py: `unregister` of an unknown name: "LoRA with name <name> does not exist. Loaded LoRAs:
 *   dict_keys([...])"; `acquire` of an adapter that is not loaded: "The following requested LoRA adapters are not
 *   loaded: <name>\nLoaded adapters: dict_keys([...])." (a ValueError: the OpenAI route answers 400).
 * - entrypoints/openai/serving_completions.py and protocol.py: `model` "<served model>:<adapter>" selects an
 *   adapter (docs/advanced_features/lora.ipynb, "OpenAI-compatible API usage"); errors are ErrorResponse
 *   `{"object": "error", "message", "type": "BadRequestError", "param": null, "code": 400}`; streaming chunks
 *   `data: {id, object: "text_completion", created, model, choices: [{index, text, logprobs, finish_reason,
 *   matched_stop}], usage}` then, with stream_options.include_usage, a usage chunk with `choices: []`, then
 *   `data: [DONE]`. `POST /v1/tokenize` answers `{tokens, count, max_model_len}`.
 * - managers/scheduler_metrics_mixin.py / metrics/collector.py (`--enable-metrics`): gauges
 *   `sglang:num_running_reqs` and `sglang:num_queue_reqs` (label model_name, among others).
 *
 * The model is the vLLM stand-in's: `<model> heard: <prompt words>`, one word per token, the adapter's name first.
 */
import { existsSync, readFileSync } from 'node:fs';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import { join } from 'node:path';
import { closeServer, listenOn, readBody, sleep, standInAnswer, standInTokens } from './vllm-stand-in.js';

export interface SglangStandInOptions {
  /** `--served-model-name`. */
  servedModel?: string;
  /** `--max-loaded-loras`. */
  maxLoadedLoras?: number;
  /** `--enable-lora` (default true). */
  enableLora?: boolean;
  /** `--enable-metrics` (default true). */
  enableMetrics?: boolean;
  apiKey?: string;
  /** Pause before each streamed chunk. */
  chunkDelayMs?: number;
}

export interface SglangStandIn {
  url: string;
  served: string;
  loads: string[];
  unloads: string[];
  refusals(): number;
  peakLoaded(): number;
  completions: Record<string, unknown>[];
  loaded(): string[];
  kill(): Promise<void>;
  revive(): Promise<void>;
  close(): Promise<void>;
}

const CONTEXT_LEN = 4096;

function sendJson(res: ServerResponse, status: number, body: object): void {
  res.writeHead(status, { 'content-type': 'application/json' });
  res.end(JSON.stringify(body));
}

function sendError(res: ServerResponse, message: string, status = 400): void {
  sendJson(res, status, { object: 'error', message, type: status === 400 ? 'BadRequestError' : 'InternalServerError', param: null, code: status });
}

export async function startSglangStandIn(options: SglangStandInOptions = {}): Promise<SglangStandIn> {
  const served = options.servedModel ?? 'stand-in/base-model';
  const enableLora = options.enableLora ?? true;
  const chunkDelayMs = options.chunkDelayMs ?? 0;
  const registry = new Map<string, string>();
  const loads: string[] = [];
  const unloads: string[] = [];
  const completions: Record<string, unknown>[] = [];
  let refusals = 0;
  let peak = 0;
  let running = 0;
  let counter = 0;
  let crash = new AbortController();

  const keys = () => `dict_keys([${[...registry.keys()].map((k) => `'${k}'`).join(', ')}])`;
  const update = (res: ServerResponse, error?: string) =>
    sendJson(res, error === undefined ? 200 : 400, {
      rid: null,
      http_worker_ipc: null,
      success: error === undefined,
      error_message: error ?? '',
      loaded_adapters: Object.fromEntries(registry),
    });

  function load(res: ServerResponse, body: Record<string, unknown>): void {
    const name = String(body.lora_name ?? '');
    const path = String(body.lora_path ?? '');
    loads.push(name);
    if (!enableLora) return update(res, 'LoRA is not enabled. Please set `--enable-lora` to enable LoRA.');
    if (options.maxLoadedLoras !== undefined && registry.size >= options.maxLoadedLoras) {
      refusals++;
      return update(
        res,
        `Cannot load LoRA adapter ${name} at path ${path}. Maximum number of loaded LoRA adapters is ${options.maxLoadedLoras}. ` +
          'Please unload some LoRA adapters before loading new ones.',
      );
    }
    if (registry.has(name)) return update(res, `Failed to load LoRA adapter ${name} because it is already loaded`);
    const config = join(path, 'adapter_config.json');
    if (!existsSync(config)) return update(res, `Failed to load LoRA adapter ${name}: Can't find 'adapter_config.json' at '${path}'`);
    try {
      JSON.parse(readFileSync(config, 'utf8'));
    } catch (error) {
      return update(res, `Failed to load LoRA adapter ${name}: ${(error as Error).message}`);
    }
    registry.set(name, path);
    peak = Math.max(peak, registry.size);
    update(res);
  }

  function unload(res: ServerResponse, body: Record<string, unknown>): void {
    const name = String(body.lora_name ?? '');
    unloads.push(name);
    if (!enableLora) return update(res, 'LoRA is not enabled. Please set `--enable-lora` to enable LoRA.');
    if (!registry.has(name)) return update(res, `LoRA with name ${name} does not exist. Loaded LoRAs: ${keys()}`);
    registry.delete(name);
    update(res);
  }

  async function complete(res: ServerResponse, body: Record<string, unknown>): Promise<void> {
    completions.push(body);
    const requested = String(body.model ?? served);
    // `<base>:<adapter>` selects an adapter when LoRA is on; the base name itself is not checked.
    const colon = requested.indexOf(':');
    const adapter = enableLora && colon >= 0 ? requested.slice(colon + 1) : undefined;
    if (adapter !== undefined && !registry.has(adapter)) {
      return sendError(res, `The following requested LoRA adapters are not loaded: ${adapter}\nLoaded adapters: ${keys()}.`);
    }
    const prompt = String(body.prompt ?? '');
    const promptTokens = standInTokens(prompt).length;
    const maxTokens = typeof body.max_tokens === 'number' ? body.max_tokens : 16;
    const words = standInTokens(standInAnswer(adapter ?? served, prompt)).map((w, i) => (i === 0 ? w : ` ${w}`));
    const pieces = words.slice(0, maxTokens);
    const finish = pieces.length < words.length ? 'length' : 'stop';
    const id = `${++counter}`;
    const created = Math.floor(Date.now() / 1000);
    const usage = (n: number) => ({ prompt_tokens: promptTokens, total_tokens: promptTokens + n, completion_tokens: n, prompt_tokens_details: null });
    const crashed = crash.signal;
    running++;
    try {
      if (body.stream !== true) {
        if (chunkDelayMs > 0) await sleep(chunkDelayMs * pieces.length);
        if (res.destroyed) return;
        return sendJson(res, 200, {
          id,
          object: 'text_completion',
          created,
          model: requested,
          choices: [{ index: 0, text: pieces.join(''), logprobs: null, finish_reason: finish, matched_stop: finish === 'stop' ? 2 : null }],
          usage: usage(pieces.length),
        });
      }
      const options_ = body.stream_options as { include_usage?: boolean; continuous_usage_stats?: boolean } | undefined;
      res.writeHead(200, { 'content-type': 'text/event-stream' });
      for (const [i, piece] of pieces.entries()) {
        if (chunkDelayMs > 0) await sleep(chunkDelayMs);
        if (res.destroyed || crashed.aborted) return;
        const last = i === pieces.length - 1;
        const chunk = {
          id,
          object: 'text_completion',
          created,
          model: requested,
          choices: [{ index: 0, text: piece, logprobs: null, finish_reason: last ? finish : null, matched_stop: last && finish === 'stop' ? 2 : null }],
          usage: options_?.continuous_usage_stats ? usage(i + 1) : null,
        };
        res.write(`data: ${JSON.stringify(chunk)}\n\n`);
      }
      if (options_?.include_usage) res.write(`data: ${JSON.stringify({ id, object: 'text_completion', created, model: requested, choices: [], usage: usage(pieces.length) })}\n\n`);
      res.end('data: [DONE]\n\n');
    } finally {
      running--;
    }
  }

  const handle = (req: IncomingMessage, res: ServerResponse) => {
    void (async () => {
      const path = new URL(req.url ?? '/', 'http://stand-in').pathname;
      if (path === '/health') return void res.writeHead(200).end();
      if (options.apiKey !== undefined && req.headers.authorization !== `Bearer ${options.apiKey}`) return sendJson(res, 401, { error: 'Unauthorized' });
      if (req.method === 'GET' && path === '/v1/models') {
        const created = Math.floor(Date.now() / 1000);
        return sendJson(res, 200, {
          object: 'list',
          data: [
            { id: served, object: 'model', created, owned_by: 'sglang', root: served, max_model_len: CONTEXT_LEN },
            ...[...registry].map(([id, root]) => ({ id, object: 'model', created, owned_by: 'sglang', root, parent: served, max_model_len: null })),
          ],
        });
      }
      if (req.method === 'GET' && path === '/metrics' && options.enableMetrics !== false) {
        const labels = `model_name="${served}",engine_type="unified",tp_rank="0",pp_rank="0"`;
        res.writeHead(200, { 'content-type': 'text/plain; version=0.0.4; charset=utf-8' });
        return res.end(
          [
            '# HELP sglang:num_running_reqs The number of running requests.',
            '# TYPE sglang:num_running_reqs gauge',
            `sglang:num_running_reqs{${labels}} ${running}.0`,
            '# HELP sglang:num_queue_reqs The number of requests in the waiting queue.',
            '# TYPE sglang:num_queue_reqs gauge',
            `sglang:num_queue_reqs{${labels}} 0.0`,
            '',
          ].join('\n'),
        );
      }
      const posts: Record<string, (body: Record<string, unknown>) => void | Promise<void>> = {
        '/load_lora_adapter': (body) => load(res, body),
        '/unload_lora_adapter': (body) => unload(res, body),
        '/v1/completions': (body) => complete(res, body),
        '/v1/tokenize': (body) =>
          sendJson(res, 200, { tokens: standInTokens(String(body.prompt ?? '')).map((_, i) => i), count: standInTokens(String(body.prompt ?? '')).length, max_model_len: CONTEXT_LEN }),
      };
      const post = req.method === 'POST' ? posts[path] : undefined;
      if (!post) return sendJson(res, 404, { detail: 'Not Found' });
      let body: Record<string, unknown>;
      try {
        body = JSON.parse(await readBody(req)) as Record<string, unknown>;
      } catch (error) {
        return sendError(res, (error as Error).message);
      }
      return post(body);
    })();
  };

  let server = createServer(handle);
  const port = await listenOn(server, 0);
  return {
    url: `http://127.0.0.1:${port}`,
    served,
    loads,
    unloads,
    refusals: () => refusals,
    peakLoaded: () => peak,
    completions,
    loaded: () => [...registry.keys()],
    kill: async () => {
      crash.abort();
      await closeServer(server);
    },
    revive: async () => {
      registry.clear();
      crash = new AbortController();
      server = createServer(handle);
      await listenOn(server, port);
    },
    close: () => closeServer(server),
  };
}
