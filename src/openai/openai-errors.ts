import type { MappedError } from '../common/api-exception.filter.js';

export interface OpenAiErrorBody {
  error: { message: string; type: string; param: string | null; code: string };
}

/** OpenAI's error types by status; its SDKs pick their error class from the status alone. */
function errorType(status: number): string {
  if (status === 401) return 'authentication_error';
  if (status === 403) return 'permission_error';
  if (status === 429) return 'rate_limit_error';
  return status >= 500 ? 'server_error' : 'invalid_request_error';
}

/** The same status and message as the Cloudflare routes; `code` is the service's numeric code (README, Error codes). */
export function toOpenAiError(mapped: MappedError): OpenAiErrorBody {
  return { error: { message: mapped.message, type: errorType(mapped.status), param: null, code: String(mapped.code) } };
}
