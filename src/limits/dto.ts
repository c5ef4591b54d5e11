import { ApiProperty } from '@nestjs/swagger';
import { IsInt, IsString, Length, Max, Min, ValidateIf } from 'class-validator';

export class SetLimitDto {
  @ApiProperty({ minLength: 1, maxLength: 255, description: 'any model name, also one without a catalog limit' })
  @IsString()
  @Length(1, 255)
  model!: string;

  /** null removes the override (the catalog's limits apply again). */
  @ApiProperty({ type: 'integer', minimum: 1, maximum: 1_000_000, nullable: true, description: 'requests/min; null removes the override' })
  @ValidateIf((dto: SetLimitDto) => dto.max_requests_per_min !== null)
  @IsInt()
  @Min(1)
  @Max(1_000_000)
  max_requests_per_min!: number | null;
}
