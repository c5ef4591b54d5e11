import { ApiProperty, ApiPropertyOptional, ApiSchema } from '@nestjs/swagger';
import type { AccountsService, AccountView } from '../accounts/accounts.service.js';
import type { AssetView } from '../adapters/adapter-assets.service.js';
import { ADAPTER_FILES } from '../adapters/adapter-inspector.js';
import type { ModelCard } from '../catalog/model-card.js';
import type { ModelProperty, ModelTask } from '../catalog/model-definition.js';
import type { FinetuneView } from '../finetunes/finetunes.service.js';
import type { Usage } from '../inference/engine.js';
import type { LimitOverrideView } from '../limits/rate-limiter.service.js';
import type { RunAnswer } from '../limits/response-cache.js';
import type { UsageTotals } from '../usage/usage.service.js';

// The handlers return plain objects typed by interfaces; these classes describe them to the OpenAPI document.
// Each `implements` its interface so that a field added or retyped there fails to compile until described here.

const ACCOUNT_ID = { pattern: '^[0-9a-f]{32}$', example: '3f0c9d7e6b1a4c7e9d2f3a5b6c7d8e9f' };
const DATE_TIME = { format: 'date-time', example: '2026-01-01T12:00:00.000Z' };

@ApiSchema({ name: 'EnvelopeMessage' })
export class EnvelopeMessageSchema {
  @ApiProperty({ type: 'integer', example: 3037 }) code!: number;
  @ApiProperty({ example: 'finetune "support-bot" not found' }) message!: string;
}

@ApiSchema({ name: 'Account' })
export class AccountSchema implements AccountView {
  @ApiProperty(ACCOUNT_ID) id!: string;
  @ApiProperty({ example: 'acme' }) name!: string;
  @ApiProperty(DATE_TIME) created_at!: string;
}

type TokenView = Awaited<ReturnType<AccountsService['createToken']>>;

@ApiSchema({ name: 'ApiToken', description: 'An API token; `value` is returned only when the token is created.' })
export class ApiTokenSchema implements TokenView {
  @ApiProperty({ format: 'uuid' }) id!: string;
  @ApiProperty({ example: 'laptop' }) name!: string;
  @ApiProperty(ACCOUNT_ID) account_id!: string;
  @ApiProperty({ description: 'the bearer secret; only its hash is stored' }) value!: string;
  @ApiProperty(DATE_TIME) created_at!: string;
}

@ApiSchema({ name: 'Finetune' })
export class FinetuneSchema implements FinetuneView {
  @ApiProperty({ format: 'uuid' }) id!: string;
  @ApiProperty({ example: 'support-bot' }) name!: string;
  @ApiProperty({ example: '@cf/meta-llama/llama-2-7b-chat-hf-lora' }) model!: string;
  @ApiProperty() description!: string;
  @ApiProperty() public!: boolean;
  @ApiProperty({ enum: ['pending', 'ready'], description: '`ready` once both files are uploaded and agree with each other and the model' })
  status!: 'pending' | 'ready';
  @ApiProperty(DATE_TIME) created_at!: string;
  @ApiProperty(DATE_TIME) modified_at!: string;
}

@ApiSchema({ name: 'FinetuneAsset' })
export class FinetuneAssetSchema implements AssetView {
  @ApiProperty({ format: 'uuid' }) id!: string;
  @ApiProperty({ format: 'uuid' }) finetune_id!: string;
  @ApiProperty({ enum: [...ADAPTER_FILES] }) file_name!: string;
  @ApiProperty({ type: 'integer' }) bytes!: number;
  @ApiProperty({ pattern: '^[0-9a-f]{64}$' }) sha256!: string;
  @ApiProperty(DATE_TIME) created_at!: string;
}

@ApiSchema({ name: 'ModelTask' })
export class ModelTaskSchema implements ModelTask {
  @ApiProperty() id!: string;
  @ApiProperty({ example: 'Text Generation' }) name!: string;
  @ApiProperty() description!: string;
}

@ApiSchema({ name: 'ModelProperty', description: "A card property; every value is a string, as in Cloudflare's cards." })
export class ModelPropertySchema implements ModelProperty {
  @ApiProperty({ example: 'lora' }) property_id!: string;
  @ApiProperty({ example: 'true' }) value!: string;
}

@ApiSchema({ name: 'ModelCard' })
export class ModelCardSchema implements ModelCard {
  @ApiProperty() id!: string;
  @ApiProperty({ enum: [1], type: 'integer' }) source!: 1;
  @ApiProperty({ example: '@cf/meta-llama/llama-2-7b-chat-hf-lora' }) name!: string;
  @ApiProperty() description!: string;
  @ApiProperty({ type: () => ModelTaskSchema }) task!: ModelTaskSchema;
  @ApiProperty({ type: [String] }) tags!: string[];
  @ApiProperty({ type: () => [ModelPropertySchema] }) properties!: ModelPropertySchema[];
}

@ApiSchema({ name: 'ModelSchema', description: "A model's input and output JSON Schemas." })
export class ModelSchemaSchema {
  @ApiProperty({ type: 'object', additionalProperties: true }) input!: Record<string, unknown>;
  @ApiProperty({ type: 'object', additionalProperties: true }) output!: Record<string, unknown>;
}

@ApiSchema({ name: 'LimitOverride' })
export class LimitOverrideSchema implements LimitOverrideView {
  @ApiProperty(ACCOUNT_ID) account_id!: string;
  @ApiProperty() model!: string;
  @ApiProperty({ type: 'integer', nullable: true, description: "the admin's override; null when there is none" })
  max_requests_per_min!: number | null;
  @ApiProperty({
    type: 'integer',
    nullable: true,
    description: "what applies now: the override, else the catalog's per-account value, else the model's; null for no limit",
  })
  effective_max_requests_per_min!: number | null;
}

@ApiSchema({ name: 'UsageTotals' })
export class UsageTotalsSchema implements UsageTotals {
  @ApiProperty({
    type: 'string',
    nullable: true,
    description: 'the model name, the finetune id (null for the base model) or the UTC day `YYYY-MM-DD`; null without `group_by`',
  })
  key!: string | null;
  @ApiProperty({ type: 'integer' }) requests!: number;
  @ApiProperty({ type: 'integer' }) cache_hits!: number;
  @ApiProperty({ type: 'integer' }) prompt_tokens!: number;
  @ApiProperty({ type: 'integer' }) completion_tokens!: number;
  @ApiProperty({ type: 'integer' }) total_tokens!: number;
  @ApiProperty({ type: 'number' }) neurons!: number;
}

@ApiSchema({ name: 'TokenUsage' })
export class TokenUsageSchema implements Usage {
  @ApiProperty({ type: 'integer' }) prompt_tokens!: number;
  @ApiProperty({ type: 'integer' }) completion_tokens!: number;
  @ApiProperty({ type: 'integer' }) total_tokens!: number;
}

@ApiSchema({ name: 'RunAnswer' })
export class RunAnswerSchema implements RunAnswer {
  @ApiProperty({ description: 'the generated text' }) response!: string;
  @ApiProperty({ type: () => TokenUsageSchema }) usage!: TokenUsageSchema;
}

@ApiSchema({ name: 'ChatMessage' })
export class ChatMessageSchema {
  @ApiProperty({ example: 'user', description: 'e.g. system, user, assistant' }) role!: string;
  @ApiProperty() content!: string;
}

/** Cloudflare's run options: not model input, so no model schema sees them; keys other than these are ignored. */
@ApiSchema({ name: 'RunOptions' })
export class RunOptionsSchema {
  @ApiPropertyOptional({ description: 'refuse with 429 at once, rather than queue, when the model has no free generation slot', default: false })
  rejectIfBusy?: boolean;
}

/**
 * The fields every text-generation model shares. A model's own input schema (`GET .../ai/models/schema?model=`)
 * is what the body is validated against: it decides the bounds and may accept more fields.
 */
@ApiSchema({ name: 'RunRequest', description: 'Exactly one of `prompt` or `messages`; other fields depend on the model.' })
export class RunRequestSchema {
  @ApiPropertyOptional() prompt?: string;
  @ApiPropertyOptional({ type: () => [ChatMessageSchema] }) messages?: ChatMessageSchema[];
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
  @ApiPropertyOptional({ type: () => RunOptionsSchema }) options?: RunOptionsSchema;
}
