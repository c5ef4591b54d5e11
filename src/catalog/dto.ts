import { ApiProperty, ApiPropertyOptional, ApiSchema } from '@nestjs/swagger';
import { Transform, Type } from 'class-transformer';
import { IsBoolean, IsInt, IsOptional, IsString, Max, Min } from 'class-validator';
import { DEFAULT_MODELS_PER_PAGE } from './model-card.js';
import type { ModelDefinition, ModelProperty, ModelTask } from './model-definition.js';

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

@ApiSchema({ name: 'ModelTask' })
export class ModelTaskDto implements ModelTask {
  @ApiProperty() id!: string;
  @ApiProperty({ example: 'Text Generation' }) name!: string;
  @ApiProperty() description!: string;
}

@ApiSchema({ name: 'ModelProperty', description: "A card property; every value is a string, as in Cloudflare's cards." })
export class ModelPropertyDto implements ModelProperty {
  @ApiProperty({ example: 'lora' }) property_id!: string;
  @ApiProperty({ example: 'true' }) value!: string;
}

/** The public shape of a model, as Cloudflare's model search returns it. */
@ApiSchema({ name: 'ModelCard' })
export class ModelCardResponseDto {
  @ApiProperty() id!: string;
  /** Cloudflare's source id; 1 is its own catalog, the only one here. */
  @ApiProperty({ enum: [1], type: 'integer' }) source!: 1;
  @ApiProperty({ example: '@cf/meta-llama/llama-2-7b-chat-hf-lora' }) name!: string;
  @ApiProperty() description!: string;
  @ApiProperty({ type: () => ModelTaskDto }) task!: ModelTaskDto;
  @ApiProperty({ type: [String] }) tags!: string[];
  @ApiProperty({ type: () => [ModelPropertyDto] }) properties!: ModelPropertyDto[];
}

/** Only the card fields: engine paths, limits and other internals stay server-side. */
export function toModelCard(def: ModelDefinition): ModelCardResponseDto {
  return {
    id: def.id,
    source: 1,
    name: def.name,
    description: def.description,
    task: { id: def.task.id, name: def.task.name, description: def.task.description },
    tags: [...def.tags],
    properties: def.properties.map((p) => ({ property_id: p.property_id, value: p.value })),
  };
}

@ApiSchema({ name: 'ModelSchema', description: "A model's input and output JSON Schemas." })
export class ModelSchemaResponseDto {
  @ApiProperty({ type: 'object', additionalProperties: true }) input!: Record<string, unknown>;
  @ApiProperty({ type: 'object', additionalProperties: true }) output!: Record<string, unknown>;
}
