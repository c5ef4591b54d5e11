import { randomUUID } from 'node:crypto';
import type { Usage } from '../usage/token-usage.js';

export type FinishReason = 'stop' | 'length';

/** One request's answer in one of OpenAI's two completion shapes, whole or as stream chunks. */
export interface CompletionFormat {
  /** The non-streaming response. */
  response(text: string, finish: FinishReason, usage: Usage): object;
  /** The chunk that opens a stream, if the shape has one. */
  opening(): object | undefined;
  piece(text: string): object;
  /** The chunk that carries the finish reason. */
  closing(finish: FinishReason): object;
  /** The last chunk when the caller asked for usage (`stream_options.include_usage`): no choices, only usage. */
  usage(usage: Usage): object;
}

const nowSeconds = () => Math.floor(Date.now() / 1000);
/** 32 random hex digits: randomUUID draws from a pooled entropy buffer, randomBytes makes a system call each time. */
const newId = (prefix: string) => `${prefix}-${randomUUID().replaceAll('-', '')}`;

/** `chat.completion`, streamed as `chat.completion.chunk`s whose first delta carries the role. */
export function chatFormat(model: string): CompletionFormat {
  const id = newId('chatcmpl');
  const created = nowSeconds();
  const chunk = (choices: object[]) => ({ id, object: 'chat.completion.chunk', created, model, choices });
  const delta = (delta: object, finish: FinishReason | null) => chunk([{ index: 0, delta, logprobs: null, finish_reason: finish }]);
  return {
    response: (content, finish, usage) => ({
      id,
      object: 'chat.completion',
      created,
      model,
      choices: [{ index: 0, message: { role: 'assistant', content }, logprobs: null, finish_reason: finish }],
      usage,
    }),
    opening: () => delta({ role: 'assistant', content: '' }, null),
    piece: (content) => delta({ content }, null),
    closing: (finish) => delta({}, finish),
    usage: (usage) => ({ ...chunk([]), usage }),
  };
}

/** `text_completion`, whole and streamed alike. */
export function textFormat(model: string): CompletionFormat {
  const id = newId('cmpl');
  const created = nowSeconds();
  const body = (choices: object[]) => ({ id, object: 'text_completion', created, model, choices });
  const choice = (text: string, finish: FinishReason | null) => body([{ index: 0, text, logprobs: null, finish_reason: finish }]);
  return {
    response: (text, finish, usage) => ({ ...choice(text, finish), usage }),
    opening: () => undefined,
    piece: (text) => choice(text, null),
    closing: (finish) => choice('', finish),
    usage: (usage) => ({ ...body([]), usage }),
  };
}
