import type { StreamFraming } from './streaming.js';

/** The contract's event stream: `data: {"response": piece}` events, one carrying usage, then `[DONE]`. */
export const RUN_FRAMING: StreamFraming = {
  opening: () => [],
  piece: (text) => ({ response: text }),
  finish: (result) => [{ response: '', usage: result.usage }],
  error: ({ code, message }) => ({ error: { code, message } }),
};
