import { describe, expect, it } from '@jest/globals';
import {
  CHAT_TEMPLATE_FOR_FAMILY,
  CHAT_TEMPLATES,
  ChatTemplateError,
  gemmaTemplate,
  llama2Template,
  mistralInstructTemplate,
} from '../../../src/formats/chat-templates.js';

const multiTurn = [
  { role: 'user', content: 'Hi' },
  { role: 'assistant', content: 'Hello!' },
  { role: 'user', content: 'How are you?' },
];

describe('llama-2', () => {
  it('wraps a bare prompt as one user turn', () => {
    expect(llama2Template({ prompt: 'Tell me a joke' })).toEqual({
      text: '<s>[INST] Tell me a joke [/INST]',
      stop: ['</s>'],
    });
  });

  it('puts the system message in <<SYS>> inside the first instruction', () => {
    const { text } = llama2Template({
      messages: [
        { role: 'system', content: 'Be brief.' },
        { role: 'user', content: 'Hi' },
      ],
    });
    expect(text).toBe('<s>[INST] <<SYS>>\nBe brief.\n<</SYS>>\n\nHi [/INST]');
  });

  it('closes each answered turn with </s> and opens the next with <s>', () => {
    expect(llama2Template({ messages: [{ role: 'system', content: 'S' }, ...multiTurn] }).text).toBe(
      '<s>[INST] <<SYS>>\nS\n<</SYS>>\n\nHi [/INST] Hello! </s><s>[INST] How are you? [/INST]',
    );
    expect(llama2Template({ messages: multiTurn }).text).toBe(
      '<s>[INST] Hi [/INST] Hello! </s><s>[INST] How are you? [/INST]',
    );
  });

  it('keeps content verbatim', () => {
    expect(llama2Template({ prompt: '  two\nlines  ' }).text).toBe('<s>[INST]   two\nlines   [/INST]');
  });
});

describe('mistral-instruct', () => {
  it('formats a bare prompt', () => {
    expect(mistralInstructTemplate({ prompt: 'Hi' })).toEqual({ text: '<s>[INST] Hi [/INST]', stop: ['</s>'] });
  });

  it('formats multi-turn conversations without spaces around answers', () => {
    expect(mistralInstructTemplate({ messages: multiTurn }).text).toBe(
      '<s>[INST] Hi [/INST]Hello!</s>[INST] How are you? [/INST]',
    );
  });

  it('prepends the system message to the first user message', () => {
    expect(mistralInstructTemplate({ messages: [{ role: 'system', content: 'Be brief.' }, ...multiTurn] }).text).toBe(
      '<s>[INST] Be brief.\n\nHi [/INST]Hello!</s>[INST] How are you? [/INST]',
    );
  });
});

describe('gemma', () => {
  it('formats a bare prompt and ends with the model turn', () => {
    expect(gemmaTemplate({ prompt: 'Hi' })).toEqual({
      text: '<bos><start_of_turn>user\nHi<end_of_turn>\n<start_of_turn>model\n',
      stop: ['<end_of_turn>'],
    });
  });

  it('formats multi-turn conversations with the model role for the assistant', () => {
    expect(gemmaTemplate({ messages: multiTurn }).text).toBe(
      '<bos><start_of_turn>user\nHi<end_of_turn>\n<start_of_turn>model\nHello!<end_of_turn>\n' +
        '<start_of_turn>user\nHow are you?<end_of_turn>\n<start_of_turn>model\n',
    );
  });

  it('prepends the system message to the first user turn', () => {
    expect(gemmaTemplate({ messages: [{ role: 'system', content: 'S' }, { role: 'user', content: 'U' }] }).text).toBe(
      '<bos><start_of_turn>user\nS\n\nU<end_of_turn>\n<start_of_turn>model\n',
    );
  });
});

describe('validation', () => {
  const cases: [string, { role: string; content: string }[], string][] = [
    ['assistant first', [{ role: 'assistant', content: 'a' }], 'message 0 has role "assistant"'],
    ['system not first', [{ role: 'user', content: 'u' }, { role: 'system', content: 's' }], 'message 1 has role "system"'],
    ['two users in a row', [{ role: 'user', content: 'u' }, { role: 'user', content: 'u' }], 'message 1 has role "user"'],
    [
      'two assistants in a row',
      [{ role: 'user', content: 'u' }, { role: 'assistant', content: 'a' }, { role: 'assistant', content: 'a' }],
      'message 2 has role "assistant"',
    ],
    ['ending with assistant', [{ role: 'user', content: 'u' }, { role: 'assistant', content: 'a' }], 'message 1 has role "assistant"'],
    ['system only', [{ role: 'system', content: 's' }], 'message 0 has role "system"'],
    ['unknown role', [{ role: 'tool', content: 't' }], 'message 0 has role "tool"'],
    ['two system messages', [{ role: 'system', content: 's' }, { role: 'system', content: 's' }], 'message 1 has role "system"'],
  ];

  it.each(cases)('rejects %s in every template', (_name, messages, message) => {
    for (const template of Object.values(CHAT_TEMPLATES)) {
      expect(() => template({ messages })).toThrow(ChatTemplateError);
      expect(() => template({ messages })).toThrow(message);
    }
  });

  it('requires exactly one of messages and prompt', () => {
    expect(() => gemmaTemplate({})).toThrow(ChatTemplateError);
    expect(() => gemmaTemplate({ prompt: 'p', messages: [{ role: 'user', content: 'u' }] })).toThrow(ChatTemplateError);
    expect(() => gemmaTemplate({ messages: [] })).toThrow(ChatTemplateError);
  });
});

it('maps each model family to its template', () => {
  expect(CHAT_TEMPLATE_FOR_FAMILY).toEqual({ llama: 'llama-2', mistral: 'mistral-instruct', gemma: 'gemma' });
  expect(CHAT_TEMPLATES['llama-2']).toBe(llama2Template);
});
