import type { StreamFraming } from '../inference/streaming.js';
import type { CompletionFormat } from './formats.js';
import { toOpenAiError } from './openai-errors.js';

/** OpenAI's event stream: `data: {chunk}` events (opening, pieces, closing, usage when asked for), then `data: [DONE]`. */
export function completionFraming(format: CompletionFormat, includeUsage: boolean): StreamFraming {
  return {
    opening: () => {
      const opening = format.opening();
      return opening ? [opening] : [];
    },
    piece: (text) => format.piece(text),
    // Aborted: the client is gone, nobody reads on.
    finish: (result) =>
      result.finishReason === 'aborted'
        ? undefined
        : [format.closing(result.finishReason), ...(includeUsage ? [format.usage(result.usage)] : [])],
    // The SDKs raise an `error` event read from the stream.
    error: (mapped) => toOpenAiError(mapped),
  };
}
