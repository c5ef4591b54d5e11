import { ApiProperty, ApiPropertyOptional, ApiSchema } from '@nestjs/swagger';
import { IsIn, IsISO8601, IsOptional } from 'class-validator';
import type { UsageGrouping, UsageTotalsRow } from './usage.repository.js';

export const USAGE_GROUPINGS: readonly UsageGrouping[] = ['model', 'finetune', 'day'];

export class UsageQuery {
  /** Inclusive; an ISO 8601 date or date-time (a date alone is midnight UTC). */
  @ApiPropertyOptional({
    description: 'inclusive; an ISO 8601 date or date-time (a date alone is midnight UTC); default: 30 days before `to`',
    example: '2026-01-01',
  })
  @IsOptional()
  @IsISO8601({ strict: true }, { message: 'from must be an ISO 8601 date or date-time' })
  from?: string;

  /** Exclusive. */
  @ApiPropertyOptional({ description: 'exclusive; an ISO 8601 date or date-time; default: now', example: '2026-02-01T00:00:00Z' })
  @IsOptional()
  @IsISO8601({ strict: true }, { message: 'to must be an ISO 8601 date or date-time' })
  to?: string;

  @ApiPropertyOptional({
    enum: USAGE_GROUPINGS,
    description: 'key of each total: the model, the finetune id (null for the base model) or the UTC day; without it, one total',
  })
  @IsOptional()
  @IsIn(USAGE_GROUPINGS, { message: `group_by must be one of ${USAGE_GROUPINGS.join(', ')}` })
  group_by?: UsageGrouping;
}

@ApiSchema({ name: 'UsageTotals' })
export class UsageTotalsResponseDto {
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

export function mapUsageTotals(row: UsageTotalsRow): UsageTotalsResponseDto {
  return { ...row, total_tokens: row.prompt_tokens + row.completion_tokens };
}
