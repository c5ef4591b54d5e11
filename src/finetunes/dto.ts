import { Transform, Type } from 'class-transformer';
import { IsBoolean, IsIn, IsInt, IsOptional, IsString, Length, Matches, Max, Min, NotContains } from 'class-validator';

export const FINETUNE_NAME_PATTERN = /^[A-Za-z0-9._-]{1,64}$/;

export class CreateFinetuneDto {
  @IsString()
  @Length(1, 255)
  model!: string;

  @IsString()
  @Matches(FINETUNE_NAME_PATTERN, { message: 'name must be 1-64 characters of letters, digits, "-", "_" and "."' })
  @Matches(/^(?![0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$)/i, {
    message: 'name must not be a UUID (UUIDs identify finetunes by id)',
  })
  @Matches(/^(?!cf-public-)/, { message: 'name must not start with the reserved prefix "cf-public-"' })
  name!: string;

  @IsOptional()
  @IsString()
  @Length(0, 1024)
  description?: string;

  @IsOptional()
  @IsBoolean()
  public?: boolean;
}

export class FinetuneParams {
  @Matches(/^[0-9a-f]{32}$/, { message: 'account_id must be 32 lowercase hexadecimal characters' })
  account_id!: string;

  @IsString()
  @Length(1, 64)
  @NotContains('/')
  id_or_name!: string;
}

export const PUBLIC_ORDER_COLUMNS = ['created_at', 'modified_at', 'name'] as const;

export class ListPublicQuery {
  @IsOptional() @Type(() => Number) @IsInt() @Min(1) @Max(1000) limit?: number;
  @IsOptional() @Type(() => Number) @IsInt() @Min(0) offset?: number;

  /** A column, optionally prefixed with "-" for descending order. */
  @IsOptional()
  @Transform(({ value }: { value: unknown }) => (typeof value === 'string' ? value.trim() : value))
  @IsIn([...PUBLIC_ORDER_COLUMNS, ...PUBLIC_ORDER_COLUMNS.map((c) => `-${c}`)], {
    message: `orderBy must be one of ${PUBLIC_ORDER_COLUMNS.join(', ')}, optionally prefixed with "-" for descending order`,
  })
  orderBy?: string;
}
