import { Ajv, type ErrorObject, type ValidateFunction } from 'ajv';
import { ApiError } from '../common/errors.js';
import type { JsonSchema, ModelDefinition } from '../catalog/model-definition.js';
import type { ChatMessage } from '../formats/chat-templates.js';
import type { SamplingOptions } from './engine.js';

/** A run request after validation against the model's own input schema. */
export interface RunInput {
  prompt?: string;
  messages?: ChatMessage[];
  raw: boolean;
  stream: boolean;
  maxTokens: number;
  sampling: SamplingOptions;
  lora?: string;
  /** Cloudflare's `options.rejectIfBusy`: refuse at once (429) rather than queue for a generation slot. */
  rejectIfBusy: boolean;
}

const ajv = new Ajv({ allErrors: true, strict: false, useDefaults: true });
/** Compiled once per model input schema and branch: compiling costs milliseconds and ajv keeps every schema. */
const validators = new WeakMap<JsonSchema, Map<'prompt' | 'messages', ValidateFunction>>();

function validatorFor(input: JsonSchema, key: 'prompt' | 'messages'): ValidateFunction {
  let byBranch = validators.get(input);
  if (!byBranch) validators.set(input, (byBranch = new Map()));
  let validate = byBranch.get(key);
  if (!validate) {
    // Properties the schema does not name are rejected, so a typo never passes silently.
    validate = ajv.compile({ ...branchFor(input, key), additionalProperties: false });
    byBranch.set(key, validate);
  }
  return validate;
}

function describe(error: ErrorObject): string {
  const field = error.instancePath.replace(/^\//, '').replace(/\//g, '.');
  if (error.keyword === 'additionalProperties') {
    const extra = (error.params as { additionalProperty: string }).additionalProperty;
    return `${field ? `${field}.` : ''}${extra}: is not accepted by this model`;
  }
  return `${field || 'body'}: ${error.message}`;
}

/** The schema branch (of the cards' `oneOf`) for a prompt or for messages. */
function branchFor(input: JsonSchema, key: 'prompt' | 'messages'): JsonSchema {
  const branches = (input.oneOf as JsonSchema[] | undefined) ?? [input];
  const branch = branches.find((b) => (b.required as string[] | undefined)?.includes(key));
  if (!branch) throw new ApiError('validation', `${key}: this model does not accept ${key}`);
  return { type: 'object', ...branch };
}

export function parseRunInput(body: unknown, model: ModelDefinition): RunInput {
  if (typeof body !== 'object' || body === null || Array.isArray(body)) {
    throw new ApiError('validation', 'body: must be a JSON object with prompt or messages');
  }
  // `lora` and `options` are the service's, not the model's: they never meet its input schema.
  const { lora, options, ...input } = body as Record<string, unknown>;
  if (lora !== undefined && (typeof lora !== 'string' || lora.length === 0 || lora.length > 64)) {
    throw new ApiError('validation', 'lora: must be a finetune id or name (1-64 characters)');
  }
  const rejectIfBusy = parseRunOptions(options);
  const hasPrompt = 'prompt' in input;
  if (hasPrompt === 'messages' in input) throw new ApiError('validation', 'body: exactly one of prompt or messages is required');
  // The public docs' curl example sends raw as a string.
  if (input.raw === 'true' || input.raw === 'false') input.raw = input.raw === 'true';

  const validate = validatorFor(model.schema.input, hasPrompt ? 'prompt' : 'messages');
  if (!validate(input)) throw new ApiError('validation', validate.errors!.map(describe).join('; '));

  const maxTokens = (input.max_tokens as number | undefined) ?? 256;
  if (maxTokens < 1) throw new ApiError('validation', `max_tokens: must be at least 1, got ${maxTokens}`);
  return {
    prompt: input.prompt as string | undefined,
    messages: input.messages as ChatMessage[] | undefined,
    raw: input.raw === true,
    stream: input.stream === true,
    maxTokens,
    sampling: {
      temperature: input.temperature as number | undefined,
      topP: input.top_p as number | undefined,
      topK: input.top_k as number | undefined,
      seed: input.seed as number | undefined,
      repetitionPenalty: input.repetition_penalty as number | undefined,
      frequencyPenalty: input.frequency_penalty as number | undefined,
      presencePenalty: input.presence_penalty as number | undefined,
    },
    lora: lora as string | undefined,
    rejectIfBusy,
  };
}

/**
 * Cloudflare's run options (the binding's third argument, `options` in a REST body). Only `rejectIfBusy` means
 * something here; other keys (gateway, returnRawResponse, ...) are options of Cloudflare's platform and are ignored,
 * as its REST API does with options it does not know, so a client written for Cloudflare keeps working.
 */
function parseRunOptions(options: unknown): boolean {
  if (options === undefined) return false;
  if (typeof options !== 'object' || options === null || Array.isArray(options)) {
    throw new ApiError('validation', 'options: must be an object, e.g. {"rejectIfBusy": true}');
  }
  const { rejectIfBusy } = options as Record<string, unknown>;
  if (rejectIfBusy !== undefined && typeof rejectIfBusy !== 'boolean') {
    throw new ApiError('validation', `options.rejectIfBusy: must be a boolean, got ${JSON.stringify(rejectIfBusy)}`);
  }
  return rejectIfBusy === true;
}
