import { API_BASE, OPENAI_BASE } from './api';

/** One run request as the Playground sends it: the model, and the body (with `lora` when a finetune is chosen). */
export interface RunRequest {
  account: string;
  model: string;
  body: Record<string, unknown>;
}

export type SnippetKind = 'curl' | 'cloudflare' | 'openai' | 'lora';
export const SNIPPET_KINDS: { kind: SnippetKind; label: string }[] = [
  { kind: 'curl', label: 'curl' },
  { kind: 'cloudflare', label: 'cloudflare SDK' },
  { kind: 'openai', label: 'openai SDK' },
  { kind: 'lora', label: 'lora CLI' },
];

/** Single-quoted for a POSIX shell. */
function shellQuote(text: string): string {
  return `'${text.replace(/'/g, `'\\''`)}'`;
}

const OPENAI_SAMPLING = ['temperature', 'top_p', 'top_k', 'seed', 'repetition_penalty', 'frequency_penalty', 'presence_penalty'];

/**
 * The same request for another client. The token is never written into a snippet: it reads `$TOKEN` from the
 * environment (the first-run banner's `export` line sets it).
 */
export function snippet(kind: SnippetKind, request: RunRequest): string {
  const { account, model, body } = request;
  switch (kind) {
    case 'curl':
      return [
        `curl ${body.stream ? '-N ' : ''}-X POST ${shellQuote(`${API_BASE}/accounts/${account}/ai/run/${model}`)} \\`,
        `  -H "Authorization: Bearer $TOKEN" -H 'content-type: application/json' \\`,
        `  -d ${shellQuote(JSON.stringify(body))}`,
      ].join('\n');
    case 'cloudflare': {
      const { stream, ...rest } = body;
      return [
        `import Cloudflare from 'cloudflare';`,
        ``,
        `const cf = new Cloudflare({ apiToken: process.env.TOKEN, baseURL: ${JSON.stringify(API_BASE)} });`,
        ...(stream ? [`// The SDK's ai.run returns the whole answer; stream with curl or the openai SDK.`] : []),
        `const result = await cf.ai.run(${JSON.stringify(model)}, ${JSON.stringify({ account_id: account, ...rest }, null, 2).replace(/\n/g, '\n')});`,
        `console.log(result);`,
      ].join('\n');
    }
    case 'openai': {
      const lora = typeof body.lora === 'string' ? `:${body.lora}` : '';
      const params: Record<string, unknown> = { model: `${model}${lora}` };
      // /v1/completions runs a prompt raw; a prompt through the chat template is one user message.
      const completion = typeof body.prompt === 'string' && body.raw === true;
      if (completion) params.prompt = body.prompt;
      else params.messages = body.messages ?? [{ role: 'user', content: body.prompt }];
      if (body.max_tokens !== undefined) params.max_tokens = body.max_tokens;
      for (const field of OPENAI_SAMPLING) if (body[field] !== undefined) params[field] = body[field];
      if (body.stream) params.stream = true;
      const call = completion ? 'openai.completions.create' : 'openai.chat.completions.create';
      const print = body.stream
        ? completion
          ? `for await (const chunk of answer) process.stdout.write(chunk.choices[0]?.text ?? '');`
          : `for await (const chunk of answer) process.stdout.write(chunk.choices[0]?.delta?.content ?? '');`
        : completion
          ? `console.log(answer.choices[0].text);`
          : `console.log(answer.choices[0].message.content);`;
      return [
        `import OpenAI from 'openai';`,
        ``,
        `const openai = new OpenAI({ apiKey: process.env.TOKEN, baseURL: ${JSON.stringify(OPENAI_BASE)} });`,
        `const answer = await ${call}(${JSON.stringify(params, null, 2)});`,
        print,
      ].join('\n');
    }
    case 'lora': {
      if (typeof body.prompt !== 'string') return `# The lora CLI runs a prompt; this request has messages: use curl or an SDK.`;
      const args = ['lora', 'run', model];
      if (typeof body.lora === 'string') args.push('--lora', shellQuote(body.lora));
      if (body.stream) args.push('--stream');
      if (body.max_tokens !== undefined) args.push('--max-tokens', String(body.max_tokens));
      if (body.temperature !== undefined) args.push('--temperature', String(body.temperature));
      if (body.raw === true) args.push('--raw');
      args.push('--', shellQuote(body.prompt));
      const missing = OPENAI_SAMPLING.filter((f) => f !== 'temperature' && body[f] !== undefined);
      return [
        `export LORA_URL=${shellQuote(API_BASE)} LORA_ACCOUNT_ID=${account} LORA_API_TOKEN="$TOKEN"`,
        args.join(' '),
        ...(missing.length ? [`# The CLI has no option for ${missing.join(', ')}: this run uses the model's defaults for them.`] : []),
      ].join('\n');
    }
  }
}
