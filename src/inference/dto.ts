import { applyDecorators } from '@nestjs/common';
import { ApiBody, ApiExtraModels, ApiOperation, ApiParam, ApiProperty, ApiPropertyOptional, ApiResponse, ApiSchema } from '@nestjs/swagger';
import { ApiErrors, envelopeOf } from '../docs/decorators.js';
import { ACCOUNT_ID_PROPERTY } from '../docs/properties.js';
import type { RunAnswer } from '../limits/response-cache.js';
import type { Usage } from '../usage/token-usage.js';

// The run's request and answer as the OpenAPI document describes them. The handler returns plain objects typed by
// the interfaces; each class `implements` its interface so that a field added or retyped there fails to compile here.

@ApiSchema({ name: 'TokenUsage' })
export class TokenUsageDto implements Usage {
  @ApiProperty({ type: 'integer' }) prompt_tokens!: number;
  @ApiProperty({ type: 'integer' }) completion_tokens!: number;
  @ApiProperty({ type: 'integer' }) total_tokens!: number;
}

@ApiSchema({ name: 'RunAnswer' })
export class RunAnswerDto implements RunAnswer {
  @ApiProperty({ description: 'the generated text' }) response!: string;
  @ApiProperty({ type: () => TokenUsageDto }) usage!: TokenUsageDto;
}

@ApiSchema({ name: 'ChatMessage' })
export class ChatMessageDto {
  @ApiProperty({ example: 'user', description: 'e.g. system, user, assistant' }) role!: string;
  @ApiProperty() content!: string;
}

/** Cloudflare's run options: not model input, so no model schema sees them; keys other than these are ignored. */
@ApiSchema({ name: 'RunOptions' })
export class RunOptionsDto {
  @ApiPropertyOptional({ description: 'refuse with 429 at once, rather than queue, when the model has no free generation slot', default: false })
  rejectIfBusy?: boolean;
}

/**
 * The fields every text-generation model shares. A model's own input schema (`GET .../ai/models/schema?model=`)
 * is what the body is validated against: it decides the bounds and may accept more fields.
 */
@ApiSchema({ name: 'RunRequest', description: 'Exactly one of `prompt` or `messages`; other fields depend on the model.' })
export class RunRequestDto {
  @ApiPropertyOptional() prompt?: string;
  @ApiPropertyOptional({ type: () => [ChatMessageDto] }) messages?: ChatMessageDto[];
  @ApiPropertyOptional({ description: 'send `prompt` as is, without the chat template', default: false }) raw?: boolean;
  @ApiPropertyOptional({ description: 'answer as `text/event-stream`', default: false }) stream?: boolean;
  @ApiPropertyOptional({ type: 'integer', minimum: 1, default: 256 }) max_tokens?: number;
  @ApiPropertyOptional({ type: 'number' }) temperature?: number;
  @ApiPropertyOptional({ type: 'number' }) top_p?: number;
  @ApiPropertyOptional({ type: 'integer' }) top_k?: number;
  @ApiPropertyOptional({ type: 'integer', description: 'fixed sampling; a model with the response cache may answer it from the cache' })
  seed?: number;
  @ApiPropertyOptional({ type: 'number' }) repetition_penalty?: number;
  @ApiPropertyOptional({ type: 'number' }) frequency_penalty?: number;
  @ApiPropertyOptional({ type: 'number' }) presence_penalty?: number;
  @ApiPropertyOptional({
    minLength: 1,
    maxLength: 64,
    description: 'a finetune id (own or public), else the caller\'s finetune of that name, else a public one of that name',
  })
  lora?: string;
  @ApiPropertyOptional({ type: () => RunOptionsDto }) options?: RunOptionsDto;
}

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
    ApiParam({ name: 'account_id', schema: { type: 'string', pattern: ACCOUNT_ID_PROPERTY.pattern }, description: 'the account id: 32 lowercase hexadecimal characters' }),
    ApiParam({
      name: '*',
      description:
        'the model name, e.g. `@cf/meta-llama/llama-2-7b-chat-hf-lora`: as path segments, or as one segment with `/` encoded as `%2F`',
    }),
    ApiBody({ type: RunRequestDto }),
    ApiExtraModels(RunAnswerDto),
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
        'application/json': { schema: envelopeOf(RunAnswerDto) },
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
      'timeout',
      'engineUnavailable',
    ),
  );
