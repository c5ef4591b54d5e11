import { ApiProperty, ApiPropertyOptional, ApiSchema } from '@nestjs/swagger';
import { Transform, Type } from 'class-transformer';
import { IsBoolean, IsIn, IsInt, IsOptional, IsString, Length, Matches, Max, Min, NotContains } from 'class-validator';
import { DATE_TIME_PROPERTY } from '../docs/properties.js';
import type { Finetune } from '../generated/prisma/client.js';

export const FINETUNE_NAME_PATTERN = /^[A-Za-z0-9._-]{1,64}$/;

export class CreateFinetuneDto {
  @ApiProperty({ minLength: 1, maxLength: 255, description: 'a LoRA base model', example: '@cf/meta-llama/llama-2-7b-chat-hf-lora' })
  @IsString()
  @Length(1, 255)
  model!: string;

  @ApiProperty({
    pattern: FINETUNE_NAME_PATTERN.source,
    description: 'unique in the account; not a UUID, and not starting with the reserved prefix `cf-public-`',
    example: 'support-bot',
  })
  @IsString()
  @Matches(FINETUNE_NAME_PATTERN, { message: 'name must be 1-64 characters of letters, digits, "-", "_" and "."' })
  @Matches(/^(?![0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$)/i, {
    message: 'name must not be a UUID (UUIDs identify finetunes by id)',
  })
  @Matches(/^(?!cf-public-)/, { message: 'name must not start with the reserved prefix "cf-public-"' })
  name!: string;

  @ApiPropertyOptional({ maxLength: 1024, default: '' })
  @IsOptional()
  @IsString()
  @Length(0, 1024)
  description?: string;

  @ApiPropertyOptional({ description: 'visible to, and usable by, every account', default: false })
  @IsOptional()
  @IsBoolean()
  public?: boolean;
}

export class FinetuneParams {
  @ApiProperty({ pattern: '^[0-9a-f]{32}$', description: 'the account id: 32 lowercase hexadecimal characters' })
  @Matches(/^[0-9a-f]{32}$/, { message: 'account_id must be 32 lowercase hexadecimal characters' })
  account_id!: string;

  @ApiProperty({ minLength: 1, maxLength: 64, pattern: '^[^/]+$', description: 'a finetune id, or the name of one' })
  @IsString()
  @Length(1, 64)
  @NotContains('/')
  id_or_name!: string;
}

export const PUBLIC_ORDER_COLUMNS = ['created_at', 'modified_at', 'name'] as const;

const PUBLIC_ORDERS = [...PUBLIC_ORDER_COLUMNS, ...PUBLIC_ORDER_COLUMNS.map((c) => `-${c}`)];

export class ListPublicQuery {
  @ApiPropertyOptional({ type: 'integer', minimum: 1, maximum: 1000, default: 100 })
  @IsOptional() @Type(() => Number) @IsInt() @Min(1) @Max(1000) limit?: number;
  @ApiPropertyOptional({ type: 'integer', minimum: 0, maximum: Number.MAX_SAFE_INTEGER, default: 0 })
  @IsOptional() @Type(() => Number) @IsInt() @Min(0) @Max(Number.MAX_SAFE_INTEGER) offset?: number;

  /** A column, optionally prefixed with "-" for descending order. */
  @ApiPropertyOptional({ enum: PUBLIC_ORDERS, default: '-created_at', description: 'a column; a `-` prefix sorts descending' })
  @IsOptional()
  @Transform(({ value }: { value: unknown }) => (typeof value === 'string' ? value.trim() : value))
  @IsIn(PUBLIC_ORDERS, {
    message: `orderBy must be one of ${PUBLIC_ORDER_COLUMNS.join(', ')}, optionally prefixed with "-" for descending order`,
  })
  orderBy?: string;
}

@ApiSchema({ name: 'Finetune' })
export class FinetuneResponseDto {
  @ApiProperty({ format: 'uuid' }) id!: string;
  @ApiProperty({ example: 'support-bot' }) name!: string;
  @ApiProperty({ example: '@cf/meta-llama/llama-2-7b-chat-hf-lora' }) model!: string;
  @ApiProperty() description!: string;
  @ApiProperty() public!: boolean;
  @ApiProperty({ enum: ['pending', 'ready'], description: '`ready` once both files are uploaded and agree with each other and the model' })
  status!: 'pending' | 'ready';
  @ApiProperty(DATE_TIME_PROPERTY) created_at!: string;
  @ApiProperty(DATE_TIME_PROPERTY) modified_at!: string;
}

export function mapFinetune(finetune: Finetune): FinetuneResponseDto {
  return {
    id: finetune.id,
    name: finetune.name,
    model: finetune.model,
    description: finetune.description,
    public: finetune.public,
    status: finetune.status,
    created_at: finetune.createdAt.toISOString(),
    modified_at: finetune.modifiedAt.toISOString(),
  };
}
