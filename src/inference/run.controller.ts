import { Body, Controller, HttpCode, Param, Post, Req, Res } from '@nestjs/common';
import { ApiTags } from '@nestjs/swagger';
import type { FastifyReply, FastifyRequest } from 'fastify';
import { Authenticated } from '../accounts/auth.decorators.js';
import { decodeParam } from '../http/edge-checks.js';
import { ApiRun } from './dto.js';
import { RunService } from './run.service.js';
import { RUN_FRAMING } from './sse.js';
import { abortOnDisconnect, connectionSignal, openEventStream } from './streaming.js';

/** The header Cloudflare's AI Gateway uses to tell a cached answer (HIT) from a fresh one (MISS). */
const CACHE_STATUS_HEADER = 'cf-aig-cache-status';

@Controller('accounts/:account_id/ai/run')
@Authenticated('account')
@ApiTags('inference')
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
    @Req() request: FastifyRequest,
    @Res({ passthrough: true }) reply: FastifyReply,
  ) {
    const name = decodeParam(model, 'model');
    const prepared = await this.runs.prepare(accountId, name, body);
    if (!prepared.input.stream) {
      const { answer, cache } = await this.runs.answer(prepared, connectionSignal(request));
      if (cache) void reply.header(CACHE_STATUS_HEADER, cache);
      return answer;
    }
    const aborter = abortOnDisconnect(reply);
    return openEventStream(request, reply, aborter, (signal, onText) => this.runs.generate(prepared, signal, onText), RUN_FRAMING);
  }
}
