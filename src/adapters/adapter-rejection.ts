import { ApiError } from '../common/errors.js';
import { AdapterFormatError } from '../formats/format-error.js';

/** For the exception filter: a rejection by the adapter parsers and validators (src/formats) is adapterRejected. */
export function adapterRejection(error: unknown): ApiError | undefined {
  return error instanceof AdapterFormatError ? new ApiError('adapterRejected', error.message, { cause: error }) : undefined;
}
