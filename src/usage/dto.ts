import { IsIn, IsISO8601, IsOptional } from 'class-validator';
import type { UsageGrouping } from './usage.repository.js';

export const USAGE_GROUPINGS: readonly UsageGrouping[] = ['model', 'finetune', 'day'];

export class UsageQuery {
  /** Inclusive; an ISO 8601 date or date-time (a date alone is midnight UTC). */
  @IsOptional()
  @IsISO8601({ strict: true }, { message: 'from must be an ISO 8601 date or date-time' })
  from?: string;

  /** Exclusive. */
  @IsOptional()
  @IsISO8601({ strict: true }, { message: 'to must be an ISO 8601 date or date-time' })
  to?: string;

  @IsOptional()
  @IsIn(USAGE_GROUPINGS, { message: `group_by must be one of ${USAGE_GROUPINGS.join(', ')}` })
  group_by?: UsageGrouping;
}
