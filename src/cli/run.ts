import type { Usage } from '../inference/engine.js';
import type { CliIo, Command } from './command.js';
import { ApiError, CliError, UsageError } from './errors.js';
import { connect, parseCommand } from './options.js';
import { SseParser } from './sse.js';

interface RunResult {
  response: string;
  usage: Usage;
}

/** One event of the run stream: a piece of the response, the final usage, or a failure after the stream began. */
interface RunEvent {
  response?: string;
  usage?: Usage;
  error?: { code: number; message: string };
}

function number(flag: string, value: string | undefined): number | undefined {
  if (value === undefined) return undefined;
  const parsed = Number(value);
  if (value.trim() === '' || !Number.isFinite(parsed)) throw new UsageError(`--${flag} must be a number, got "${value}"`);
  return parsed;
}

const printUsage = (io: CliIo, usage: Usage) =>
  io.stderr.write(`tokens: ${usage.prompt_tokens} prompt + ${usage.completion_tokens} completion = ${usage.total_tokens}\n`);

/** Writes the response pieces as their events arrive; returns the usage of the last event. */
async function printStream(body: ReadableStream<Uint8Array>, io: CliIo): Promise<Usage | undefined> {
  const parser = new SseParser();
  const decoder = new TextDecoder();
  let usage: Usage | undefined;
  for await (const chunk of body) {
    for (const data of parser.push(decoder.decode(chunk, { stream: true }))) {
      if (data === '[DONE]') return usage;
      const event = JSON.parse(data) as RunEvent;
      if (event.error) throw new ApiError(event.error.code, event.error.message);
      if (event.response) io.stdout.write(event.response);
      usage = event.usage ?? usage;
    }
  }
  throw new CliError('the response stream ended before it was complete');
}

export const run: Command = {
  usage: 'run <model> [--lora name] [--stream] [--max-tokens n] [--temperature t] [--raw] [--verbose] <prompt...>',
  summary: 'run a text generation model, optionally with a finetune',
  options: [
    '--lora name          a finetune id or name (own first, then public)',
    '--stream             print the response as it is generated',
    '--max-tokens n       limit the response length',
    '--temperature t      sampling temperature (0 for greedy, reproducible output)',
    '--raw                send the prompt as is, without the model\'s chat template',
    '--verbose            print token usage on stderr',
    'The prompt is the remaining arguments joined with spaces.',
  ],
  async run(args, io) {
    const { values, positionals: rest } = parseCommand(args, {
      lora: { type: 'string' },
      stream: { type: 'boolean' },
      'max-tokens': { type: 'string' },
      temperature: { type: 'string' },
      raw: { type: 'boolean' },
      verbose: { type: 'boolean' },
    });
    const [model, ...words] = rest;
    if (model === undefined || words.length === 0) {
      throw new UsageError(`missing ${model === undefined ? '<model> <prompt>' : '<prompt>'} (usage: ${this.usage})`);
    }
    const body = {
      prompt: words.join(' '),
      lora: values.lora,
      stream: values.stream,
      raw: values.raw,
      max_tokens: number('max-tokens', values['max-tokens']),
      temperature: number('temperature', values.temperature),
    };
    const client = connect(values, io.env);
    // Model names hold slashes, which the route takes as path segments.
    const path = `/run/${model.split('/').map(encodeURIComponent).join('/')}`;
    let usage: Usage | undefined;
    if (values.stream) {
      usage = await printStream(await client.stream(path, body), io);
      io.stdout.write('\n');
    } else {
      const { result } = await client.call<RunResult>('POST', path, body);
      io.stdout.write(`${result.response}\n`);
      usage = result.usage;
    }
    if (values.verbose && usage) printUsage(io, usage);
  },
};
