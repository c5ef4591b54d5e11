import { Ajv, type ErrorObject, type ValidateFunction } from 'ajv';
import { ApiError } from '../common/errors.js';

/** OpenAI's `{"type": "text", "text": ...}` content part. */
export interface TextPart {
  type: 'text';
  text: string;
}

/**
 * The fields both completion requests share. Ranges are the model's own (its input schema, as on the run route);
 * fields OpenAI defines but this service cannot honour are rejected by name rather than ignored. OpenAI clients
 * send null for "unset": every optional field may be null.
 */
export interface CompletionFieldsDto {
  /** `<base model>` or `<base model>:<finetune name or id>`. */
  model: string;
  max_tokens?: number | null;
  temperature?: number | null;
  top_p?: number | null;
  seed?: number | null;
  frequency_penalty?: number | null;
  presence_penalty?: number | null;
  /** vLLM's extra sampling fields, which the run body also has. */
  top_k?: number | null;
  repetition_penalty?: number | null;
  /** Generation ends only at the model's end of turn or max_tokens: a stop sequence would be silently ignored. */
  stop?: [] | null;
  n?: 1 | null;
  stream?: boolean | null;
  stream_options?: { include_usage?: boolean | null } | null;
  /** Cloudflare's option on its OpenAI-compatible routes: refuse at once (429) rather than queue for a generation slot. */
  rejectIfBusy?: boolean | null;
  /** OpenAI's end-user tag for abuse monitoring; accepted so clients that always send it work, and not used. */
  user?: string | null;
}

export interface ChatMessageDto {
  role: string;
  /** A string, or text parts; other parts (images, audio) have no model here to read them. */
  content: string | TextPart[];
  /** A participant name; the chat templates have no place for it. */
  name?: string | null;
}

export interface ChatCompletionRequestDto extends CompletionFieldsDto {
  messages: ChatMessageDto[];
  /** OpenAI's newer name for max_tokens; wins when both are given. */
  max_completion_tokens?: number | null;
}

export interface CompletionRequestDto extends CompletionFieldsDto {
  prompt: string;
}

const optional = (type: string, extra: object = {}) => ({ type: [type, 'null'], ...extra });

const COMPLETION_FIELDS = {
  model: { type: 'string', minLength: 1, maxLength: 512 },
  max_tokens: optional('integer', { minimum: 1 }),
  temperature: optional('number'),
  top_p: optional('number'),
  seed: optional('integer'),
  frequency_penalty: optional('number'),
  presence_penalty: optional('number'),
  top_k: optional('integer'),
  repetition_penalty: optional('number'),
  stop: optional('array', { maxItems: 0 }),
  n: { enum: [1, null] },
  stream: optional('boolean'),
  stream_options: optional('object', { properties: { include_usage: optional('boolean') }, additionalProperties: false }),
  rejectIfBusy: optional('boolean'),
  user: optional('string'),
};

const TEXT_PART = { type: 'object', required: ['type', 'text'], properties: { type: { const: 'text' }, text: { type: 'string' } } };

const CHAT_SCHEMA = {
  type: 'object',
  required: ['model', 'messages'],
  properties: {
    ...COMPLETION_FIELDS,
    messages: {
      type: 'array',
      minItems: 1,
      items: {
        type: 'object',
        required: ['role', 'content'],
        properties: {
          role: { type: 'string' },
          content: { anyOf: [{ type: 'string' }, { type: 'array', items: TEXT_PART }] },
          name: optional('string'),
        },
        additionalProperties: false,
      },
    },
    max_completion_tokens: optional('integer', { minimum: 1 }),
  },
  additionalProperties: false,
};

const COMPLETION_SCHEMA = {
  type: 'object',
  required: ['model', 'prompt'],
  properties: { ...COMPLETION_FIELDS, prompt: { type: 'string' } },
  additionalProperties: false,
};

/** Compiled once, at start-up: validating a request is then one generated function call. */
const ajv = new Ajv({ allErrors: true, strict: false });
const validateChat = ajv.compile<ChatCompletionRequestDto>(CHAT_SCHEMA);
const validateCompletion = ajv.compile<CompletionRequestDto>(COMPLETION_SCHEMA);

/** Fields whose every failure has one message, saying what is accepted. */
const FIELD_MESSAGES: Record<string, string> = {
  stop: "stop is not supported: generation ends at the model's end of turn or at max_tokens; remove stop",
  n: 'n must be 1: one choice per request',
  prompt: 'prompt must be a string (one prompt per request)',
};
const CONTENT = /^messages\.\d+\.content(?=\.|$)/;
const CONTENT_MESSAGE = 'must be a string or an array of text parts ({"type": "text", "text": "..."})';

const TYPE_MESSAGES: Record<string, string> = {
  string: 'must be a string',
  integer: 'must be an integer number',
  number: 'must be a number conforming to the specified constraints',
  boolean: 'must be a boolean value',
  array: 'must be an array',
  object: 'must be an object',
};

/** The type of each required field, for its "missing" message. */
const REQUIRED_TYPES: Record<string, string> = { model: 'string', messages: 'array', role: 'string' };

/** One failure as `<field path> <what is wrong>`, worded as the DTO validation before it was (clients match on them). */
function describe(error: ErrorObject): { path: string; message: string } {
  const parent = error.instancePath.slice(1).replace(/\//g, '.');
  const field = (name: string) => (parent ? `${parent}.${name}` : name);
  let path = parent;
  if (error.keyword === 'additionalProperties') {
    const extra = (error.params as { additionalProperty: string }).additionalProperty;
    return { path: field(extra), message: `${parent ? `${parent}.` : ''}property ${extra} should not exist` };
  }
  if (error.keyword === 'required') path = field((error.params as { missingProperty: string }).missingProperty);
  const content = CONTENT.exec(path);
  if (content) return { path: content[0], message: `${content[0]} ${CONTENT_MESSAGE}` };
  const top = path.split('.')[0]!;
  if (FIELD_MESSAGES[top]) return { path: top, message: FIELD_MESSAGES[top] };
  const params = error.params as { limit?: number; type?: string };
  switch (error.keyword) {
    case 'required':
      return { path, message: `${path} ${TYPE_MESSAGES[REQUIRED_TYPES[path.split('.').at(-1)!] ?? 'object']}` };
    case 'type':
      return { path, message: `${path || 'body'} ${TYPE_MESSAGES[String(params.type).split(',')[0]!] ?? `must be ${params.type}`}` };
    case 'minimum':
      return { path, message: `${path} must not be less than ${params.limit}` };
    case 'minLength':
      return { path, message: `${path} must be longer than or equal to ${params.limit} characters` };
    case 'maxLength':
      return { path, message: `${path} must be shorter than or equal to ${params.limit} characters` };
    case 'minItems':
      return { path, message: `${path} must contain at least ${params.limit} elements` };
    default:
      return { path, message: `${path} ${error.message}` };
  }
}

/** Every offending field, once each, unknown fields first; as 400/5006. */
function failure(errors: ErrorObject[]): ApiError {
  const ordered = [...errors.filter((e) => e.keyword === 'additionalProperties'), ...errors.filter((e) => e.keyword !== 'additionalProperties')];
  const byPath = new Map<string, string>();
  for (const error of ordered) {
    const { path, message } = describe(error);
    if (!byPath.has(path)) byPath.set(path, message);
  }
  return new ApiError('validation', [...byPath.values()].join('; '));
}

function check<T>(validate: ValidateFunction<T>, body: unknown): T {
  if (validate(body)) return body;
  throw failure(validate.errors ?? []);
}

/** A `/v1/chat/completions` body, checked against OpenAI's request shape as this service accepts it. */
export function parseChatRequest(body: unknown): ChatCompletionRequestDto {
  return check(validateChat, body);
}

/** A `/v1/completions` body, likewise. */
export function parseCompletionRequest(body: unknown): CompletionRequestDto {
  return check(validateCompletion, body);
}
