import { Injectable } from '@nestjs/common';
import { CatalogService } from '../catalog/catalog.service.js';
import { ApiError } from '../common/errors.js';
import { FinetunesService } from '../finetunes/finetunes.service.js';
import type { ChatMessage } from '../formats/chat-templates.js';
import { RunService, type PreparedRun } from '../inference/run.service.js';
import type { ChatCompletionRequestDto, ChatMessageDto, CompletionFieldsDto, CompletionRequestDto } from './dto.js';
import type { CompletionFormat, FinishReason } from './formats.js';

export interface ModelList {
  object: 'list';
  data: { id: string; object: 'model'; created: number; owned_by: string }[];
}

/** The request fields that the run body takes under the same name. */
const RUN_FIELDS = ['stream', 'temperature', 'top_p', 'top_k', 'seed', 'repetition_penalty', 'frequency_penalty', 'presence_penalty'] as const;

/** OpenAI's newer name for the system role. */
const ROLE_ALIASES: Record<string, string> = { developer: 'system' };

function toRunMessage(message: ChatMessageDto): ChatMessage {
  const content = typeof message.content === 'string' ? message.content : message.content.map((part) => part.text).join('');
  return { role: ROLE_ALIASES[message.role] ?? message.role, content };
}

/** `<base>` or `<base>:<finetune>`: catalog names, finetune names and finetune ids never contain ':'. */
function splitModel(model: string): { base: string; lora?: string } {
  const colon = model.indexOf(':');
  if (colon === -1) return { base: model };
  const lora = model.slice(colon + 1);
  if (!lora) throw new ApiError('validation', `model: "${model}" names no finetune after ":"; use "<base>" or "<base>:<finetune name or id>"`);
  return { base: model.slice(0, colon), lora };
}

/**
 * Maps OpenAI's completion requests onto the run route's body and RunService, so that validation against the
 * model's schema, finetune resolution, rate and concurrency limits, context limits, the response cache and usage
 * records are exactly the run route's.
 */
@Injectable()
export class OpenAiService {
  /** Base models have no creation date of their own: they count from this process's start. */
  private readonly started = Math.floor(Date.now() / 1000);

  constructor(
    private readonly catalog: CatalogService,
    private readonly finetunes: FinetunesService,
    private readonly runs: RunService,
  ) {}

  /** Models with an engine (the only ones that can answer), then the caller's ready finetunes of those as `<base>:<name>`. */
  async listModels(accountId: string): Promise<ModelList> {
    const servable = this.catalog.all().filter((model) => model.engine !== null);
    const bases = new Set(servable.map((model) => model.name));
    const finetunes = (await this.finetunes.listOwn(accountId)).filter((f) => f.status === 'ready' && bases.has(f.model));
    return {
      object: 'list',
      data: [
        ...servable.map((model) => ({ id: model.name, object: 'model' as const, created: this.started, owned_by: 'system' })),
        ...finetunes.map((f) => ({
          id: `${f.model}:${f.name}`,
          object: 'model' as const,
          created: Math.floor(Date.parse(f.created_at) / 1000),
          owned_by: accountId,
        })),
      ],
    };
  }

  prepareChat(accountId: string, request: ChatCompletionRequestDto): Promise<PreparedRun> {
    const maxTokens = request.max_completion_tokens ?? request.max_tokens;
    return this.prepare(accountId, request, { messages: request.messages.map(toRunMessage), max_tokens: maxTokens });
  }

  /** OpenAI's completions take the prompt as the model should see it: a raw run, no chat template. */
  prepareCompletion(accountId: string, request: CompletionRequestDto): Promise<PreparedRun> {
    return this.prepare(accountId, request, { prompt: request.prompt, raw: true, max_tokens: request.max_tokens });
  }

  /** A non-streaming answer (from the response cache when the run route's would be) in the request's format. */
  async answer(prepared: PreparedRun, format: CompletionFormat, signal: AbortSignal): Promise<object> {
    const { answer, finishReason } = await this.runs.answer(prepared, signal);
    // A cache hit does not know how its generation ended; it came from the same input, so all of max_tokens used means length.
    const finish: FinishReason =
      finishReason === 'length' || (finishReason === undefined && answer.usage.completion_tokens >= prepared.input.maxTokens) ? 'length' : 'stop';
    return format.response(answer.response, finish, answer.usage);
  }

  private prepare(accountId: string, request: CompletionFieldsDto, input: Record<string, unknown>): Promise<PreparedRun> {
    const { base, lora } = splitModel(request.model);
    const body: Record<string, unknown> = {};
    // OpenAI clients send null for "unset"; the run body knows only absent fields.
    for (const field in input) if (input[field] !== undefined && input[field] !== null) body[field] = input[field];
    for (const field of RUN_FIELDS) {
      const value = request[field];
      if (value !== undefined && value !== null) body[field] = value;
    }
    if (lora !== undefined) body.lora = lora;
    // Cloudflare takes it at the top level here and in `options` on the run route.
    if (request.rejectIfBusy) body.options = { rejectIfBusy: true };
    return this.runs.prepare(accountId, base, body);
  }
}
