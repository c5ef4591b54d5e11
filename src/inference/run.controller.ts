import { Body, Controller, HttpCode, Param, Post, Res, UseGuards } from '@nestjs/common';
import { ApiTags } from '@nestjs/swagger';
import type { FastifyReply } from 'fastify';
import { AccountAuthGuard } from '../accounts/account-auth.guard.js';
import { ApiError } from '../common/api-error.js';
import { ApiAccountAuth, ApiRun } from '../docs/decorators.js';
import { RunService } from './run.service.js';
import { RunEventStream } from './sse.js';

/** The header Cloudflare's AI Gateway uses to tell a cached answer (HIT) from a fresh one (MISS). */
const CACHE_STATUS_HEADER = 'cf-aig-cache-status';

@Controller('accounts/:account_id/ai/run')
@UseGuards(AccountAuthGuard)
@ApiTags('inference')
@ApiAccountAuth()
export class RunController {
  constructor(private readonly runs: RunService) {}

  /** `{model}` arrives either as path segments (`@cf/meta/x`) or as one encoded segment (`@cf%2Fmeta%2Fx`, the SDK). */
  @Post('*')
  @HttpCode(200)
  @ApiRun()
  async run(
    @Param('account_id') accountId: string,
    @Param('*') model: string,
    @Body() body: unknown,
    @Res({ passthrough: true }) reply: FastifyReply,
  ) {
    const name = decodeURIComponent(model);
    const prepared = await this.runs.prepare(accountId, name, body);
    const aborter = new AbortController();
    // The response closing before it finished means the client went away: stop generating.
    reply.raw.on('close', () => {
      if (!reply.raw.writableFinished) aborter.abort();
    });

    if (!prepared.input.stream) {
      const { answer, cache } = await this.runs.answer(prepared, aborter.signal);
      if (cache) void reply.header(CACHE_STATUS_HEADER, cache);
      return answer;
    }

    const events = new RunEventStream();
    events.on('close', () => aborter.abort());
    // Answer only once the first piece (or the end) is there, so a failure before any output still gets its status.
    let started!: () => void;
    const firstOutput = new Promise<void>((resolve) => (started = resolve));
    const generation = this.runs.generate(prepared, aborter.signal, (piece) => {
      events.piece(piece);
      started();
    });
    generation.then(
      (result) => events.finish(result),
      (error: unknown) =>
        events.fail(error instanceof ApiError ? { code: error.code, message: error.message } : { code: 1000, message: 'generation failed' }),
    );
    await Promise.race([firstOutput, generation]);
    void reply.header('content-type', 'text/event-stream').header('cache-control', 'no-cache');
    return events;
  }
}
