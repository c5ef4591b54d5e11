import { All, Body, Controller, Get, HttpCode, Post, Req, Res } from '@nestjs/common';
import type { FastifyReply, FastifyRequest } from 'fastify';
import { Authenticated, Caller } from '../accounts/auth.decorators.js';
import { ApiError } from '../common/errors.js';
import { RunService, type PreparedRun } from '../inference/run.service.js';
import { abortOnDisconnect, connectionSignal, openEventStream } from '../inference/streaming.js';
import { parseChatRequest, parseCompletionRequest, type CompletionFieldsDto } from './dto.js';
import { chatFormat, textFormat, type CompletionFormat } from './formats.js';
import { OpenAiService } from './openai.service.js';
import { completionFraming } from './sse.js';

/** Where OpenAI's clients expect the API: at the root, outside the `client/v4` prefix (setGlobalPrefix's `exclude`). */
export const OPENAI_PATHS = ['v1/{*path}'];

/** OpenAI's API for clients of vLLM and LoRAX; answers are OpenAI's JSON, not the envelope, so handlers send them. */
@Controller('v1')
@Authenticated('token')
export class OpenAiController {
  constructor(
    private readonly openai: OpenAiService,
    private readonly runs: RunService,
  ) {}

  @Get('models')
  async models(@Caller('accountId') accountId: string, @Res() reply: FastifyReply): Promise<void> {
    void reply.send(await this.openai.listModels(accountId));
  }

  @Post('chat/completions')
  @HttpCode(200)
  async chat(
    @Caller('accountId') accountId: string,
    @Body() raw: unknown,
    @Req() request: FastifyRequest,
    @Res() reply: FastifyReply,
  ): Promise<void> {
    // Checked here by one precompiled schema, not by the global DTO pipe (`unknown` bodies pass it untouched).
    const body = parseChatRequest(raw);
    const prepared = await this.openai.prepareChat(accountId, body);
    await this.respond(prepared, chatFormat(body.model), body, request, reply);
  }

  @Post('completions')
  @HttpCode(200)
  async completions(
    @Caller('accountId') accountId: string,
    @Body() raw: unknown,
    @Req() request: FastifyRequest,
    @Res() reply: FastifyReply,
  ): Promise<void> {
    const body = parseCompletionRequest(raw);
    const prepared = await this.openai.prepareCompletion(accountId, body);
    await this.respond(prepared, textFormat(body.model), body, request, reply);
  }

  /** Anything else under /v1 (embeddings, images, ...) gets OpenAI's error shape too. */
  @All('*')
  notOffered(): never {
    throw new ApiError('routeNotFound', 'Not offered: this service implements GET /v1/models, POST /v1/chat/completions and POST /v1/completions');
  }

  private async respond(
    prepared: PreparedRun,
    format: CompletionFormat,
    body: CompletionFieldsDto,
    request: FastifyRequest,
    reply: FastifyReply,
  ): Promise<void> {
    if (!prepared.input.stream) {
      void reply.send(await this.openai.answer(prepared, format, connectionSignal(request)));
      return;
    }
    const aborter = abortOnDisconnect(reply);
    const framing = completionFraming(format, body.stream_options?.include_usage === true);
    const events = await openEventStream(request, reply, aborter, (signal, onText) => this.runs.generate(prepared, signal, onText), framing);
    void reply.send(events);
  }
}
