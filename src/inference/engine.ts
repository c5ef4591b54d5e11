import type { Readable } from 'node:stream';
import type { ModelDefinition } from '../catalog/model-definition.js';
import type { Usage } from '../usage/token-usage.js';

/** One stored adapter, as an engine needs it: where its two files are and what identifies this exact version. */
export interface AdapterRef {
  finetuneId: string;
  /** Changes whenever either file changes (derived from both sha256s); engines key their caches on it. */
  version: string;
  configKey: string;
  weightsKey: string;
}

/** A type, not an interface, so that it fits the response cache's plain record of sampling fields. */
export type SamplingOptions = {
  temperature?: number;
  topP?: number;
  topK?: number;
  seed?: number;
  repetitionPenalty?: number;
  frequencyPenalty?: number;
  presencePenalty?: number;
};

export interface GenerationRequest {
  /** The final prompt text: already templated, or raw as the caller sent it. */
  prompt: string;
  /** Strings that end generation (the template's end-of-turn); EOS always does. */
  stop: string[];
  maxTokens: number;
  sampling: SamplingOptions;
  /** Absent: the base model alone. */
  adapter?: AdapterRef;
  /** Aborted when the client goes away: generation must stop and free what it holds. */
  signal: AbortSignal;
}

export type { Usage };

export interface GenerationResult {
  text: string;
  usage: Usage;
  finishReason: 'stop' | 'length' | 'aborted';
}

/** Adapter uses served by an already converted adapter (hits), or that converted it first (misses). */
export interface AdapterCacheCounts {
  hits: number;
  misses: number;
}

export interface InferenceEngine {
  /** Generates; `onText` receives each piece of text as it is produced (for streaming). */
  generate(request: GenerationRequest, onText?: (piece: string) => void): Promise<GenerationResult>;
  /** Counts the prompt's tokens (context limits). */
  countTokens(prompt: string): Promise<number>;
  close(): Promise<void>;
  /** Engines that convert adapters into a local cache count its use here (read by /metrics). */
  readonly adapterCache?: AdapterCacheCounts;
}

/** Reads stored objects (implemented by ObjectStorage). */
export interface AdapterFileSource {
  /** Reads an object into a local file. */
  readToFile(key: string, path: string): Promise<void>;
  /** An object's bytes as they arrive; the caller reads the stream to its end or destroys it. */
  readStream(key: string): Promise<Readable>;
}

export interface EngineContext {
  model: ModelDefinition;
  files: AdapterFileSource;
  /** Local directory for engine caches (downloaded and converted adapters). */
  cacheDir: string;
}
