import { ApiProperty, ApiSchema } from '@nestjs/swagger';
import { IsInt, IsString, Length, Max, Min, ValidateIf } from 'class-validator';
import { ACCOUNT_ID_PROPERTY } from '../docs/properties.js';
import type { LimitOverrideView } from './rate-limiter.service.js';

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

@ApiSchema({ name: 'LimitOverride' })
export class LimitOverrideResponseDto implements LimitOverrideView {
  @ApiProperty(ACCOUNT_ID_PROPERTY) account_id!: string;
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
