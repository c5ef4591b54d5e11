import { ADAPTER_WARNING_CODE } from '../adapters/adapter-assets.service.js';

/** The error answers of the API, as the OpenAPI document describes them (mirrors the README's table). */
export interface ApiErrorCase {
  status: number;
  code: number;
  meaning: string;
  /** The answer carries `Retry-After`. */
  retryAfter?: boolean;
}

export const API_ERRORS = {
  unauthenticated: { status: 401, code: 10000, meaning: 'missing or invalid bearer token' },
  forbidden: { status: 403, code: 10000, meaning: 'token valid, but not for the account in the path' },
  validation: { status: 400, code: 5006, meaning: 'request body, query or form fails validation (the message names the field)' },
  unknownModel: { status: 400, code: 5007, meaning: 'unknown model' },
  loraUnsupported: { status: 400, code: 5005, meaning: 'finetune created for a model without LoRA support' },
  runLoraUnsupported: { status: 405, code: 5005, meaning: 'run with `lora` on a model without LoRA support' },
  finetuneNotFound: { status: 404, code: 3037, meaning: 'finetune not found, or not visible to this account' },
  finetuneNotReady: { status: 400, code: 3039, meaning: 'finetune not ready: a file is missing' },
  adapterRejected: {
    status: 400,
    code: 3040,
    meaning: 'adapter rejected: the message names the file, tensor or field, expected and actual',
  },
  fileTooLarge: { status: 413, code: 3041, meaning: "file too large (the model's `max_adapter_bytes`; 1 MiB for `adapter_config.json`)" },
  nameTaken: { status: 409, code: 3042, meaning: 'finetune name already used in this account' },
  finetuneQuota: { status: 429, code: 3043, meaning: 'per-account finetune quota of this model reached' },
  rateLimited: {
    status: 429,
    code: 3036,
    meaning: 'rate limit (requests per minute for this account and model) exceeded; `Retry-After` gives the seconds to wait',
    retryAfter: true,
  },
  atCapacity: { status: 429, code: 3044, meaning: 'model at capacity (concurrent requests) after a short queue', retryAfter: true },
  finetuneReady: { status: 409, code: 3045, meaning: 'finetune is ready: its files can no longer be replaced' },
  notFound: { status: 404, code: 7000, meaning: 'no route for that URI, or no such account' },
  storageUnavailable: { status: 503, code: 7001, meaning: 'storage unavailable' },
  databaseUnavailable: { status: 503, code: 7002, meaning: 'database unavailable' },
  engineUnavailable: { status: 503, code: 7003, meaning: 'inference engine unavailable or not configured' },
  internal: { status: 500, code: 1000, meaning: 'internal error (the message carries a request id; details are only logged)' },
} as const satisfies Record<string, ApiErrorCase>;

export type ApiErrorName = keyof typeof API_ERRORS;

/** Not an error: the code in `messages` of an upload accepted with a warning. */
export const ADAPTER_WARNING = {
  code: ADAPTER_WARNING_CODE,
  meaning: 'in `messages`: adapter accepted with a warning (e.g. `base_model_name_or_path` names another model of the same family)',
};

/** The whole table, in Markdown, for the document's description. */
export function errorCodesTable(): string {
  const rows = Object.values(API_ERRORS).map((e: ApiErrorCase) => `| ${e.status} | ${e.code} | ${e.meaning} |`);
  return ['| HTTP | code | meaning |', '|---|---|---|', ...rows, `| — | ${ADAPTER_WARNING.code} | ${ADAPTER_WARNING.meaning} |`].join('\n');
}
