import { PassThrough } from 'node:stream';
import type { GenerationResult } from '../inference/engine.js';
import type { CompletionFormat } from './formats.js';
import type { OpenAiErrorBody } from './openai-errors.js';

/** OpenAI's event stream: `data: {chunk}` events (opening, pieces, closing, usage when asked for), then `data: [DONE]`. */
export class CompletionEventStream extends PassThrough {
  constructor(
    private readonly format: CompletionFormat,
    private readonly includeUsage: boolean,
  ) {
    super();
    const opening = format.opening();
    if (opening) this.send(opening);
  }

  piece(text: string): void {
    if (text) this.send(this.format.piece(text));
  }

  finish(result: GenerationResult): void {
    // Aborted: the client is gone, nobody reads on.
    if (result.finishReason === 'aborted') {
      this.end();
      return;
    }
    this.send(this.format.closing(result.finishReason));
    if (this.includeUsage) this.send(this.format.usage(result.usage));
    this.end('data: [DONE]\n\n');
  }

  /** The status line is long gone, so a failure mid-stream is reported in-band (the SDKs raise it) before closing. */
  fail(error: OpenAiErrorBody): void {
    this.end(`data: ${JSON.stringify(error)}\n\n`);
  }

  private send(chunk: object): void {
    this.write(`data: ${JSON.stringify(chunk)}\n\n`);
  }
}
