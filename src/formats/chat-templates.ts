/**
 * Prompt formats of the supported model families (Llama 2 chat, Mistral Instruct, Gemma instruct).
 *
 * BOS: the text starts with the family's BOS marker (`<s>` or `<bos>`), and multi-turn llama-2 text contains
 * further `<s>`/`</s>` markers. The engine must tokenize the text with special tokens enabled
 * (node-llama-cpp `model.tokenize(text, true)`) so these markers become the BOS/EOS/control tokens, and must not
 * add a second BOS: a generator that prepends BOS itself (LlamaCompletion does when the model's
 * `shouldPrependBosToken` is set) has to be given the tokens without the leading BOS token.
 *
 * Message content is inserted verbatim (no trimming), so what the caller sends is what the model sees.
 */
import type { ModelFamily } from './architecture.js';

export type ChatTemplateName = 'llama-2' | 'mistral-instruct' | 'gemma';

export const CHAT_TEMPLATE_FOR_FAMILY: Record<ModelFamily, ChatTemplateName> = {
  llama: 'llama-2',
  mistral: 'mistral-instruct',
  gemma: 'gemma',
};

export type ChatRole = 'system' | 'user' | 'assistant';

export interface ChatMessage {
  role: string;
  content: string;
}

export interface ChatTemplateInput {
  messages?: ChatMessage[];
  prompt?: string;
}

export interface ChatTemplateOutput {
  text: string;
  /** Strings that end the generation when they appear in the output. */
  stop: string[];
}

export class ChatTemplateError extends Error {
  override name = 'ChatTemplateError';
}

interface Conversation {
  system: string | null;
  /** Alternating user/assistant turns; starts and ends with a user turn. */
  turns: { user: string; assistant: string | null }[];
}

/**
 * Accepts an optional leading system message, then strictly alternating user/assistant messages ending with a
 * user message (the model answers it). A bare prompt is one user turn.
 */
function toConversation(input: ChatTemplateInput): Conversation {
  if ((input.messages === undefined) === (input.prompt === undefined)) {
    throw new ChatTemplateError('exactly one of messages or prompt is required');
  }
  if (input.prompt !== undefined) return { system: null, turns: [{ user: input.prompt, assistant: null }] };

  const messages = input.messages!;
  if (messages.length === 0) throw new ChatTemplateError('messages must not be empty');
  const next: Record<string, ChatRole[]> = { start: ['system', 'user'], system: ['user'], user: ['assistant'], assistant: ['user'] };
  let system: string | null = null;
  const turns: Conversation['turns'] = [];
  messages.forEach((m, i) => {
    const expected = next[i === 0 ? 'start' : messages[i - 1].role];
    if (!(expected as string[]).includes(m.role)) {
      throw new ChatTemplateError(
        `message ${i} has role "${m.role}" but expected ${expected.map((r) => `"${r}"`).join(' or ')}`,
      );
    }
    if (m.role === 'system') system = m.content;
    else if (m.role === 'user') turns.push({ user: m.content, assistant: null });
    else turns[turns.length - 1].assistant = m.content;
  });
  const last = messages.length - 1;
  if (messages[last].role !== 'user') {
    throw new ChatTemplateError(`message ${last} has role "${messages[last].role}" but the last message must be "user"`);
  }
  return { system, turns };
}

/** Families without a system role get it prepended to the first user message. */
function foldSystem({ system, turns }: Conversation): Conversation['turns'] {
  if (system === null) return turns;
  return [{ ...turns[0], user: `${system}\n\n${turns[0].user}` }, ...turns.slice(1)];
}

/** Where each template's assistant turn ends; also ends generation for raw prompts to that family. */
export const CHAT_TEMPLATE_STOPS: Record<ChatTemplateName, readonly string[]> = {
  'llama-2': ['</s>'],
  'mistral-instruct': ['</s>'],
  gemma: ['<end_of_turn>'],
};

/** `<s>[INST] <<SYS>>\n{system}\n<</SYS>>\n\n{user} [/INST] {assistant} </s><s>[INST] {user2} [/INST]` */
export function llama2Template(input: ChatTemplateInput): ChatTemplateOutput {
  const { system, turns } = toConversation(input);
  const text = turns
    .map(({ user, assistant }, i) => {
      const sys = i === 0 && system !== null ? `<<SYS>>\n${system}\n<</SYS>>\n\n` : '';
      const answer = assistant === null ? '' : ` ${assistant} </s>`;
      return `<s>[INST] ${sys}${user} [/INST]${answer}`;
    })
    .join('');
  return { text, stop: [...CHAT_TEMPLATE_STOPS['llama-2']] };
}

/** `<s>[INST] {user} [/INST]{assistant}</s>[INST] {user2} [/INST]` */
export function mistralInstructTemplate(input: ChatTemplateInput): ChatTemplateOutput {
  const turns = foldSystem(toConversation(input));
  const text =
    '<s>' +
    turns.map(({ user, assistant }) => `[INST] ${user} [/INST]${assistant === null ? '' : `${assistant}</s>`}`).join('');
  return { text, stop: [...CHAT_TEMPLATE_STOPS['mistral-instruct']] };
}

/** `<bos><start_of_turn>user\n{user}<end_of_turn>\n<start_of_turn>model\n{assistant}<end_of_turn>\n…<start_of_turn>model\n` */
export function gemmaTemplate(input: ChatTemplateInput): ChatTemplateOutput {
  const turns = foldSystem(toConversation(input));
  const text =
    '<bos>' +
    turns
      .map(
        ({ user, assistant }) =>
          `<start_of_turn>user\n${user}<end_of_turn>\n<start_of_turn>model\n` +
          (assistant === null ? '' : `${assistant}<end_of_turn>\n`),
      )
      .join('');
  return { text, stop: [...CHAT_TEMPLATE_STOPS.gemma] };
}

export const CHAT_TEMPLATES: Record<ChatTemplateName, (input: ChatTemplateInput) => ChatTemplateOutput> = {
  'llama-2': llama2Template,
  'mistral-instruct': mistralInstructTemplate,
  gemma: gemmaTemplate,
};
