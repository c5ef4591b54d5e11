import { Type } from 'class-transformer';
import {
  ArrayMaxSize,
  ArrayMinSize,
  IsArray,
  IsBoolean,
  IsIn,
  IsInt,
  IsNumber,
  IsObject,
  IsOptional,
  IsString,
  Length,
  Min,
  ValidateBy,
  ValidateNested,
} from 'class-validator';

/** OpenAI's `{"type": "text", "text": ...}` content part. */
export interface TextPart {
  type: 'text';
  text: string;
}

function isTextPart(value: unknown): value is TextPart {
  const part = value as Partial<TextPart> | null;
  return typeof part === 'object' && part !== null && part.type === 'text' && typeof part.text === 'string';
}

/** A string, or an array of text parts; other parts (images, audio) have no model here to read them. */
function IsTextContent(): PropertyDecorator {
  return ValidateBy({
    name: 'isTextContent',
    validator: {
      validate: (value: unknown) => typeof value === 'string' || (Array.isArray(value) && value.every(isTextPart)),
      defaultMessage: () => 'content must be a string or an array of text parts ({"type": "text", "text": "..."})',
    },
  });
}

export class StreamOptionsDto {
  @IsOptional()
  @IsBoolean()
  include_usage?: boolean;
}

/**
 * The fields both completion requests share. Ranges are the model's own (its input schema, as on the run route);
 * fields OpenAI defines but this service cannot honour are rejected by name rather than ignored.
 */
export class CompletionFieldsDto {
  /** `<base model>` or `<base model>:<finetune name or id>`. */
  @IsString()
  @Length(1, 512)
  model!: string;

  @IsOptional() @IsInt() @Min(1) max_tokens?: number | null;
  @IsOptional() @IsNumber() temperature?: number | null;
  @IsOptional() @IsNumber() top_p?: number | null;
  @IsOptional() @IsInt() seed?: number | null;
  @IsOptional() @IsNumber() frequency_penalty?: number | null;
  @IsOptional() @IsNumber() presence_penalty?: number | null;
  /** vLLM's extra sampling fields, which the run body also has. */
  @IsOptional() @IsInt() top_k?: number | null;
  @IsOptional() @IsNumber() repetition_penalty?: number | null;

  /** Generation ends only at the model's end of turn or max_tokens: a stop sequence would be silently ignored. */
  @IsOptional()
  @ArrayMaxSize(0, { message: 'stop is not supported: generation ends at the model\'s end of turn or at max_tokens; remove stop' })
  stop?: string | string[] | null;

  @IsOptional()
  @IsIn([1], { message: 'n must be 1: one choice per request' })
  n?: number | null;

  @IsOptional() @IsBoolean() stream?: boolean | null;

  @IsOptional()
  @IsObject()
  @ValidateNested()
  @Type(() => StreamOptionsDto)
  stream_options?: StreamOptionsDto | null;

  /** Cloudflare's option on its OpenAI-compatible routes: refuse at once (429) rather than queue for a generation slot. */
  @IsOptional() @IsBoolean() rejectIfBusy?: boolean | null;
  /** OpenAI's end-user tag for abuse monitoring; accepted so clients that always send it work, and not used. */
  @IsOptional() @IsString() user?: string;
}

export class ChatMessageDto {
  @IsString()
  role!: string;

  @IsTextContent()
  content!: string | TextPart[];

  /** A participant name; the chat templates have no place for it. */
  @IsOptional() @IsString() name?: string;
}

export class ChatCompletionRequestDto extends CompletionFieldsDto {
  @IsArray()
  @ArrayMinSize(1)
  @ValidateNested({ each: true })
  @Type(() => ChatMessageDto)
  messages!: ChatMessageDto[];

  /** OpenAI's newer name for max_tokens; wins when both are given. */
  @IsOptional() @IsInt() @Min(1) max_completion_tokens?: number | null;
}

export class CompletionRequestDto extends CompletionFieldsDto {
  @IsString({ message: 'prompt must be a string (one prompt per request)' })
  prompt!: string;
}
