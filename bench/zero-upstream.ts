/**
 * A zero-work vLLM-compatible upstream for benchmarks and the soak test: answers `/v1/completions` and
 * `/v1/chat/completions` at once with a fixed short text (streamed as one chunk when asked), `/tokenize` with a
 * word count, `/v1/load_lora_adapter` with vLLM's plain-text success and `/health` with 200, so that what is
 * measured in front of it is the gateway's own cost. Bodies are read in full and not parsed, except `stream`.
 *
 * Run as its own process (the load generator and the gateways must not share its event loop):
 *   npx tsx bench/zero-upstream.ts [port]     prints `listening <port>` once it accepts connections
 */
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';

export const UPSTREAM_TEXT = 'ok';

const usage = { prompt_tokens: 1, completion_tokens: 1, total_tokens: 2 };
const completion = Buffer.from(
  JSON.stringify({
    id: 'cmpl-0',
    object: 'text_completion',
    created: 0,
    model: 'zero',
    choices: [{ index: 0, text: UPSTREAM_TEXT, logprobs: null, finish_reason: 'stop', stop_reason: null }],
    usage,
  }),
);
const chat = Buffer.from(
  JSON.stringify({
    id: 'chatcmpl-0',
    object: 'chat.completion',
    created: 0,
    model: 'zero',
    choices: [{ index: 0, message: { role: 'assistant', content: UPSTREAM_TEXT }, logprobs: null, finish_reason: 'stop' }],
    usage,
  }),
);
const completionStream = Buffer.from(
  `data: ${JSON.stringify({ id: 'cmpl-0', object: 'text_completion', created: 0, model: 'zero', choices: [{ index: 0, text: UPSTREAM_TEXT, finish_reason: 'stop' }], usage })}\n\n` +
    'data: [DONE]\n\n',
);
const JSON_HEADERS = { 'content-type': 'application/json' };

function answer(res: ServerResponse, status: number, body: Buffer | string, headers: Record<string, string> = JSON_HEADERS): void {
  res.writeHead(status, { ...headers, 'content-length': Buffer.byteLength(body) });
  res.end(body);
}

function handle(req: IncomingMessage, res: ServerResponse, body: string): void {
  if (req.method === 'GET' && req.url === '/health') return answer(res, 200, '', {});
  if (req.method !== 'POST') return answer(res, 404, '{"detail":"Not Found"}');
  switch (req.url) {
    case '/v1/completions':
      // The only field looked at: the engine asks for a stream on streaming runs.
      if (body.includes('"stream":true')) return answer(res, 200, completionStream, { 'content-type': 'text/event-stream' });
      return answer(res, 200, completion);
    case '/v1/chat/completions':
      return answer(res, 200, chat);
    case '/tokenize':
      return answer(res, 200, `{"count":${Math.max(1, body.split(/\s+/).length)}}`);
    case '/v1/load_lora_adapter':
      return answer(res, 200, 'Success: LoRA adapter loaded.', {});
    default:
      return answer(res, 404, '{"detail":"Not Found"}');
  }
}

export function startZeroUpstream(port = 0): Promise<{ port: number; close(): Promise<void> }> {
  const server = createServer((req, res) => {
    let body = '';
    req.setEncoding('utf8');
    req.on('data', (chunk: string) => (body += chunk));
    req.on('end', () => handle(req, res, body));
  });
  server.keepAliveTimeout = 60_000;
  return new Promise((resolve) => {
    server.listen(port, '127.0.0.1', () => {
      resolve({
        port: (server.address() as { port: number }).port,
        close: () =>
          new Promise<void>((done) => {
            server.closeAllConnections();
            server.close(() => done());
          }),
      });
    });
  });
}

if (process.argv[1] && import.meta.url.endsWith(process.argv[1].split('/').pop()!)) {
  const { port } = await startZeroUpstream(Number(process.argv[2] ?? 0));
  process.stdout.write(`listening ${port}\n`);
}
