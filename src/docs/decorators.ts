import { applyDecorators, type Type } from '@nestjs/common';
import { ApiBearerAuth, ApiBody, ApiExtraModels, ApiOperation, ApiParam, ApiResponse, getSchemaPath } from '@nestjs/swagger';
import { API_ERRORS, type ApiErrorCase, type ApiErrorName } from './error-codes.js';
import { RunAnswerSchema, RunRequestSchema } from './schemas.js';

/** Security scheme names: an account's API token, and the admin token. */
export const API_TOKEN_AUTH = 'api_token';
export const ADMIN_TOKEN_AUTH = 'admin_token';

/** Component names of the envelope schemas, defined in openapi.ts. */
export const ENVELOPE = 'Envelope';
export const ERROR_ENVELOPE = 'ErrorEnvelope';

const RETRY_AFTER = { description: 'seconds to wait before retrying', schema: { type: 'integer' } };
const ACCOUNT_ID_PARAM = { type: 'string', pattern: '^[0-9a-f]{32}$' };

/** The envelope of a success, with `result` described by `model` (an array of it with `isArray`). */
function envelopeOf(model: Type, isArray = false) {
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
export function ApiErrors(...names: ApiErrorName[]) {
  const byStatus = new Map<number, ApiErrorCase[]>();
  for (const name of names) {
    const error: ApiErrorCase = API_ERRORS[name];
    byStatus.set(error.status, [...(byStatus.get(error.status) ?? []), error]);
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

/** Routes behind an account's API token: the token must belong to the `account_id` in the path. */
export const ApiAccountAuth = () => applyDecorators(ApiBearerAuth(API_TOKEN_AUTH), ApiErrors('unauthenticated', 'forbidden'));

/** Routes behind the admin token. */
export const ApiAdminAuth = () => applyDecorators(ApiBearerAuth(ADMIN_TOKEN_AUTH), ApiErrors('unauthenticated'));

const STREAM_EXAMPLE = [
  'data: {"response":"Once"}',
  'data: {"response":" upon"}',
  'data: {"response":"","usage":{"prompt_tokens":5,"completion_tokens":2,"total_tokens":7}}',
  'data: [DONE]',
].join('\n\n');

/**
 * The run route. Its body is validated against the model's own input schema, so the document gives the fields the
 * text-generation models share; its model is Nest's wildcard (`@Param('*')`), named in the document by openapi.ts.
 */
export const ApiRun = () =>
  applyDecorators(
    ApiOperation({
      summary: 'Run a model, optionally with a finetune (`lora`)',
      description:
        "The body is checked against the model's input schema (`GET /accounts/{account_id}/ai/models/schema?model=`), " +
        'which sets the bounds and may accept more fields than these.',
    }),
    ApiParam({ name: 'account_id', schema: ACCOUNT_ID_PARAM, description: 'the account id: 32 lowercase hexadecimal characters' }),
    ApiParam({
      name: '*',
      description:
        'the model name, e.g. `@cf/meta-llama/llama-2-7b-chat-hf-lora`: as path segments, or as one segment with `/` encoded as `%2F`',
    }),
    ApiBody({ type: RunRequestSchema }),
    ApiExtraModels(RunAnswerSchema),
    ApiResponse({
      status: 200,
      description:
        'The generated text and token usage. With `"stream": true`, an event stream instead: `data: {"response": piece}` events, ' +
        'then one with `usage`, then `data: [DONE]`; a failure after the first event arrives as `data: {"error": {"code", "message"}}`.',
      headers: {
        'cf-aig-cache-status': {
          description: 'HIT (answered from the response cache) or MISS; only on requests the response cache applies to',
          schema: { type: 'string', enum: ['HIT', 'MISS'] },
        },
      },
      content: {
        'application/json': { schema: envelopeOf(RunAnswerSchema) },
        'text/event-stream': { schema: { type: 'string' }, example: `${STREAM_EXAMPLE}\n\n` },
      },
    }),
    ApiErrors(
      'validation',
      'unknownModel',
      'finetuneNotReady',
      'finetuneNotFound',
      'runLoraUnsupported',
      'rateLimited',
      'atCapacity',
      'engineUnavailable',
    ),
  );
