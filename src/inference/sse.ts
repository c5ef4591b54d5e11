import { PassThrough } from 'node:stream';
import type { GenerationResult } from './engine.js';

/** The contract's event stream: `data: {"response": piece}` events, one carrying usage, then `[DONE]`. */
export class RunEventStream extends PassThrough {
  piece(text: string): void {
    if (text) this.write(`data: ${JSON.stringify({ response: text })}\n\n`);
  }

  finish(result: GenerationResult): void {
    this.write(`data: ${JSON.stringify({ response: '', usage: result.usage })}\n\n`);
    this.end('data: [DONE]\n\n');
  }

  /** The status line is long gone, so a failure mid-stream is reported in-band before closing. */
  fail(error: { code: number; message: string }): void {
    this.end(`data: ${JSON.stringify({ error })}\n\n`);
  }
}
