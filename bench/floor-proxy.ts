/**
 * The floor of lora-hub's stack, for bench/gateway.ts: Fastify (lora-hub's HTTP framework) forwarding a run's
 * messages to the upstream's `/v1/completions` through an undici Pool (lora-hub's engine client) and answering with
 * the envelope, with nothing else: no Nest, logging, metrics, authentication, validation, limits or usage. What
 * lora-hub adds above it is the cost of those.
 *
 *   npx tsx bench/floor-proxy.ts <upstream port>     prints `listening <port>` once it accepts connections
 */
import Fastify from 'fastify';
import type { AddressInfo } from 'node:net';
import { Pool } from 'undici';

interface RunBody {
  messages: { content: string }[];
  max_tokens?: number;
}

interface Completion {
  choices: { text: string }[];
  usage: object;
}

const pool = new Pool(`http://127.0.0.1:${Number(process.argv[2])}`, { keepAliveTimeout: 2_000 });
const HEADERS = { 'content-type': 'application/json' };

const app = Fastify();
app.post('/run', async (request) => {
  const { messages, max_tokens } = request.body as RunBody;
  const prompt = messages.map((m) => m.content).join('\n');
  const answer = await pool.request({ path: '/v1/completions', method: 'POST', headers: HEADERS, body: JSON.stringify({ model: 'zero', prompt, max_tokens }) });
  const completion = (await answer.body.json()) as Completion;
  return { result: { response: completion.choices[0]!.text, usage: completion.usage }, success: true, errors: [], messages: [] };
});
await app.listen({ port: 0, host: '127.0.0.1' });
process.stdout.write(`listening ${(app.server.address() as AddressInfo).port}\n`);
