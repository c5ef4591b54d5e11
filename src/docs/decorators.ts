import { applyDecorators, type Type } from '@nestjs/common';
import { ApiExtraModels, ApiResponse, getSchemaPath } from '@nestjs/swagger';
import { ERRORS, type ErrorAnswerName, type ErrorDefinition } from '../common/errors.js';

/** Security scheme names: an account's API token, and the admin token. */
export const API_TOKEN_AUTH = 'api_token';
export const ADMIN_TOKEN_AUTH = 'admin_token';

/** Component names of the envelope schemas, defined in openapi.ts. */
export const ENVELOPE = 'Envelope';
export const ERROR_ENVELOPE = 'ErrorEnvelope';

const RETRY_AFTER = { description: 'seconds to wait before retrying', schema: { type: 'integer' } };

/** The envelope of a success, with `result` described by `model` (an array of it with `isArray`). */
export function envelopeOf(model: Type, isArray = false) {
  const item = { $ref: getSchemaPath(model) };
  const result = isArray ? { type: 'array', items: item } : item;
  return { allOf: [{ $ref: getSchemaPath(ENVELOPE) }, { type: 'object', properties: { result } }] };
}

export function ApiResult(model: Type, options: { description: string; isArray?: boolean }) {
  return applyDecorators(
    ApiExtraModels(model),
    ApiResponse({ status: 200, description: options.description, schema: envelopeOf(model, options.isArray) }),
  );
}

/** The error answers an operation can give: one response per HTTP status, naming each code it carries. */
export function ApiErrors(...names: ErrorAnswerName[]) {
  const byStatus = new Map<number, ErrorDefinition[]>();
  for (const name of names) {
    const error: ErrorDefinition = ERRORS[name];
    byStatus.set(error.status!, [...(byStatus.get(error.status!) ?? []), error]);
  }
  return applyDecorators(
    ...[...byStatus].map(([status, errors]) =>
      ApiResponse({
        status,
        description: errors.map((e) => `${e.code}: ${e.meaning}`).join('; '),
        schema: {
          allOf: [{ $ref: getSchemaPath(ERROR_ENVELOPE) }],
          example: { result: null, success: false, errors: [{ code: errors[0].code, message: errors[0].meaning }], messages: [] },
        },
        ...(errors.some((e) => e.retryAfter) && { headers: { 'Retry-After': RETRY_AFTER } }),
      }),
    ),
  );
}
