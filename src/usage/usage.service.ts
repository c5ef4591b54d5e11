import { Injectable } from '@nestjs/common';
import { ApiError } from '../common/errors.js';
import { mapUsageTotals, type UsageQuery, type UsageTotalsResponseDto } from './dto.js';
import { UsageRecorder } from './usage-recorder.service.js';
import { UsageRepository } from './usage.repository.js';

const DEFAULT_RANGE_MS = 30 * 24 * 60 * 60 * 1000;

@Injectable()
export class UsageService {
  constructor(
    private readonly usage: UsageRepository,
    private readonly recorder: UsageRecorder,
  ) {}

  /** An account's totals over [from, to) (default: the last 30 days), grouped as asked. */
  async totals(accountId: string, query: UsageQuery): Promise<UsageTotalsResponseDto[]> {
    const to = query.to === undefined ? new Date() : new Date(query.to);
    const from = query.from === undefined ? new Date(to.getTime() - DEFAULT_RANGE_MS) : new Date(query.from);
    if (from >= to) throw new ApiError('validation', `from (${from.toISOString()}) must be before to (${to.toISOString()})`);
    // This replica's runs of the last second are then included too.
    await this.recorder.flush();
    const rows = await this.usage.totals(accountId, from, to, query.group_by);
    return rows.map(mapUsageTotals);
  }
}
