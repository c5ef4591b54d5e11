import { ApiProperty, ApiPropertyOptional } from '@nestjs/swagger';
import { Transform, Type } from 'class-transformer';
import { IsBoolean, IsInt, IsOptional, IsString, Max, Min } from 'class-validator';
import { DEFAULT_MODELS_PER_PAGE } from './model-card.js';

const toBoolean = ({ value }: { value: unknown }) => (value === 'true' ? true : value === 'false' ? false : value);

export class SearchModelsQuery {
  @ApiPropertyOptional({ description: 'task name, case-insensitive', example: 'Text Generation' })
  @IsOptional() @IsString() task?: string;
  @ApiPropertyOptional({ description: 'case-insensitive substring of the name or the description' })
  @IsOptional() @IsString() search?: string;
  @ApiPropertyOptional({ description: 'the `<author>` in `@cf/<author>/<model>`, case-insensitive', example: 'meta-llama' })
  @IsOptional() @IsString() author?: string;
  @ApiPropertyOptional({ description: 'only models that take LoRA adapters (true) or only those that do not (false)' })
  @IsOptional() @Transform(toBoolean) @IsBoolean() lora?: boolean;
  @ApiPropertyOptional({ description: 'drop beta models' })
  @IsOptional() @Transform(toBoolean) @IsBoolean() hide_experimental?: boolean;
  @ApiPropertyOptional({ type: 'integer', description: "Cloudflare's catalog source; every model here is source 1" })
  @IsOptional() @Type(() => Number) @IsInt() source?: number;
  @ApiPropertyOptional({ type: 'integer', minimum: 1, default: 1 })
  @IsOptional() @Type(() => Number) @IsInt() @Min(1) page?: number;
  @ApiPropertyOptional({ type: 'integer', minimum: 1, maximum: 1000, default: DEFAULT_MODELS_PER_PAGE })
  @IsOptional() @Type(() => Number) @IsInt() @Min(1) @Max(1000) per_page?: number;
}

export class ModelSchemaQuery {
  @ApiProperty({ description: 'the model name', example: '@cf/meta-llama/llama-2-7b-chat-hf-lora' })
  @IsString() model!: string;
}
