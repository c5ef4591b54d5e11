import { Transform, Type } from 'class-transformer';
import { IsBoolean, IsInt, IsOptional, IsString, Max, Min } from 'class-validator';

const toBoolean = ({ value }: { value: unknown }) => (value === 'true' ? true : value === 'false' ? false : value);

export class SearchModelsQuery {
  @IsOptional() @IsString() task?: string;
  @IsOptional() @IsString() search?: string;
  @IsOptional() @IsString() author?: string;
  @IsOptional() @Transform(toBoolean) @IsBoolean() lora?: boolean;
  @IsOptional() @Transform(toBoolean) @IsBoolean() hide_experimental?: boolean;
  @IsOptional() @Type(() => Number) @IsInt() source?: number;
  @IsOptional() @Type(() => Number) @IsInt() @Min(1) page?: number;
  @IsOptional() @Type(() => Number) @IsInt() @Min(1) @Max(1000) per_page?: number;
}

export class ModelSchemaQuery {
  @IsString() model!: string;
}
