/**
 * The error catalog: every code the service answers with, its HTTP status and its meaning, defined here once.
 * Throw sites name an entry (`new ApiError('finetuneNotFound', ...)`); the exception filter, the OpenAPI document
 * and the README's "Error codes" table (scripts/error-table.ts) all read this table.
 *
 * Codes of Cloudflare's keep Cloudflare's meaning. `cloudflare` says where the code comes from: its published
 * Workers AI error table, or its error bodies (Workers AI's answers and the v4 API's generic routing and
 * authentication errors) when the table omits it. The service's own codes are 900xx, a range Cloudflare's
 * tables and answers do not use; `replaces` is the code the same answer had before (CHANGELOG.md).
 */
export interface ErrorDefinition {
  /** HTTP status; null for a code that only appears in an envelope's `messages`. */
  status: number | null;
  code: number;
  meaning: string;
  cloudflare?: 'published' | 'observed';
  replaces?: number;
  /** The message when the throw site gives none (errors whose text never varies). */
  message?: string;
  /** Answers carry `Retry-After`. */
  retryAfter?: boolean;
}

export const ERRORS = {
  unauthenticated: {
    status: 401,
    code: 10000,
    cloudflare: 'observed',
    meaning: 'missing or invalid bearer token',
    message: 'Authentication error: a valid bearer token is required',
  },
  forbidden: {
    status: 403,
    code: 10000,
    cloudflare: 'observed',
    meaning: 'token valid, but not for the account in the path',
    message: 'Authentication error: this token is not valid for the requested account',
  },
  validation: {
    status: 400,
    code: 5006,
    cloudflare: 'observed',
    meaning: 'request body, query or form fails validation (the message names the field)',
  },
  unknownModel: { status: 400, code: 5007, cloudflare: 'published', meaning: 'no such model' },
  finetuneLoraUnsupported: {
    status: 400,
    code: 5005,
    cloudflare: 'published',
    meaning: 'finetune created for a model without LoRA support (Cloudflare answers 5005 with 405 on runs)',
  },
  runLoraUnsupported: { status: 405, code: 5005, cloudflare: 'published', meaning: 'run with `lora` on a model without LoRA support' },
  finetuneNotFound: { status: 404, code: 3037, cloudflare: 'observed', meaning: 'finetune not found, or not visible to this account' },
  finetuneNotReady: { status: 400, code: 3039, cloudflare: 'published', meaning: 'finetune not ready: a file is missing' },
  tooLarge: {
    status: 413,
    code: 3006,
    cloudflare: 'published',
    replaces: 3041,
    meaning: "request or file too large (the model's `max_adapter_bytes`; 1 MiB for `adapter_config.json`; 2 MiB for a JSON body)",
  },
  aborted: {
    status: 408,
    code: 3008,
    cloudflare: 'published',
    replaces: 1000,
    meaning: 'the client went away before its request was read (recorded in the logs; nobody receives it)',
  },
  timeout: { status: 408, code: 3007, cloudflare: 'published', replaces: 7003, meaning: 'the inference engine did not answer within its `timeout_ms`' },
  rateLimited: {
    status: 429,
    code: 3036,
    cloudflare: 'published',
    meaning: 'rate limit (requests per minute for this account and model) exceeded; `Retry-After` gives the seconds to wait',
    retryAfter: true,
  },
  atCapacity: {
    status: 429,
    code: 3040,
    cloudflare: 'published',
    replaces: 3044,
    meaning: 'model out of capacity (concurrent requests) after a short queue',
    retryAfter: true,
  },
  routeNotFound: { status: 404, code: 7000, cloudflare: 'observed', meaning: 'no route for that URI', message: 'No route for that URI' },
  objectNotFound: {
    status: 404,
    code: 7003,
    cloudflare: 'observed',
    replaces: 7000,
    meaning: 'no such account, or no such API token of it (an object identifier in the path is invalid)',
  },
  internal: {
    status: 500,
    code: 3043,
    cloudflare: 'observed',
    replaces: 1000,
    meaning: 'internal error (the message carries a request id; details are only logged)',
  },
  adapterRejected: {
    status: 400,
    code: 90001,
    replaces: 3040,
    meaning: 'adapter rejected: the message names the file, tensor or field, expected and actual',
  },
  nameTaken: { status: 409, code: 90002, replaces: 3042, meaning: 'finetune name already used in this account' },
  finetuneQuota: { status: 429, code: 90003, replaces: 3043, meaning: 'per-account finetune quota of this model reached' },
  finetuneReady: { status: 409, code: 90004, replaces: 3045, meaning: 'finetune is ready: its files can no longer be replaced' },
  adapterWarning: {
    status: null,
    code: 90005,
    replaces: 3046,
    meaning: 'in `messages`: adapter accepted with a warning (e.g. `base_model_name_or_path` names another model of the same family)',
  },
  storageUnavailable: { status: 503, code: 90501, replaces: 7001, meaning: 'storage unavailable' },
  databaseUnavailable: {
    status: 503,
    code: 90502,
    replaces: 7002,
    meaning: 'database unavailable (unreachable, shutting down, out of connections, or its pool exhausted)',
    message: 'The database is unavailable; try again shortly',
  },
  engineUnavailable: { status: 503, code: 90503, replaces: 7003, meaning: 'inference engine unavailable or not configured' },
} as const satisfies Record<string, ErrorDefinition>;

export type ErrorName = keyof typeof ERRORS;

/** Entries that are answers (the warning code is not). */
export type ErrorAnswerName = { [K in ErrorName]: (typeof ERRORS)[K]['status'] extends number ? K : never }[ErrorName];

/** Entries with a fixed message: their throw sites may omit it. */
type WithMessage = { [K in ErrorName]: (typeof ERRORS)[K] extends { message: string } ? K : never }[ErrorName];

export interface ApiErrorOptions {
  /** Seconds for `Retry-After` (entries with `retryAfter`). */
  retryAfter?: number;
  cause?: unknown;
}

/** An error as the contract reports it; the global filter renders it. */
export class ApiError extends Error {
  readonly status: number;
  readonly code: number;
  readonly headers: Record<string, string>;

  constructor(name: WithMessage, message?: string, options?: ApiErrorOptions);
  constructor(name: ErrorAnswerName, message: string, options?: ApiErrorOptions);
  constructor(
    readonly error: ErrorAnswerName,
    message?: string,
    options: ApiErrorOptions = {},
  ) {
    const definition: ErrorDefinition = ERRORS[error];
    super(message ?? definition.message!, { cause: options.cause });
    this.name = 'ApiError';
    this.status = definition.status!;
    this.code = definition.code;
    this.headers = options.retryAfter === undefined ? {} : { 'retry-after': String(options.retryAfter) };
  }
}
