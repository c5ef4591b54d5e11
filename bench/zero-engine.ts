/**
 * A zero-work InferenceEngine for benchmarks: answers at once with a fixed short text and usage (and hands that text
 * to `onText` once, for streaming), so what is measured around it is the service's own cost. Bench-only: src/ never
 * registers it; bench/run-overhead.ts plugs it into a running app's EngineRegistry.
 */
import type { GenerationRequest, GenerationResult, InferenceEngine } from '../src/inference/engine.js';

export const ZERO_TEXT = 'ok';

export class ZeroEngine implements InferenceEngine {
  /** generate() calls so far (the bench checks every request reached the engine). */
  calls = 0;

  generate(request: GenerationRequest, onText?: (piece: string) => void): Promise<GenerationResult> {
    this.calls += 1;
    if (request.signal.aborted) {
      return Promise.resolve({ text: '', usage: { prompt_tokens: 1, completion_tokens: 0, total_tokens: 1 }, finishReason: 'aborted' });
    }
    onText?.(ZERO_TEXT);
    return Promise.resolve({ text: ZERO_TEXT, usage: { prompt_tokens: 1, completion_tokens: 1, total_tokens: 2 }, finishReason: 'stop' });
  }

  countTokens(prompt: string): Promise<number> {
    return Promise.resolve(Math.ceil(prompt.length / 4));
  }

  close(): Promise<void> {
    return Promise.resolve();
  }
}
