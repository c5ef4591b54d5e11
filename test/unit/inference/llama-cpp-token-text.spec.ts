/**
 * TokenText against the tiny llama's real llama.cpp detokenizer: byte-fallback tokens make up characters of 2, 3
 * and 4 bytes, invalid sequences and mixes, and the streamed pieces must concatenate to llama.cpp's own
 * decoding of all the tokens at once, with no piece splitting a character.
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { getLlama, LlamaLogLevel, type LlamaModel, type Token } from 'node-llama-cpp';
import { buildTinyModel, TINY_MODELS } from '../../../src/demo/tiny-model.js';
import { TokenText } from '../../../src/inference/engines/token-text.js';

let dir: string;
let model: LlamaModel;
let vocab: string[];

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'token-text-'));
  const tiny = buildTinyModel(TINY_MODELS[0].spec);
  vocab = tiny.tokens;
  const path = join(dir, 'tiny-llama.gguf');
  await writeFile(path, tiny.gguf);
  const llama = await getLlama({ gpu: false, build: 'never', logLevel: LlamaLogLevel.error });
  model = await llama.loadModel({ modelPath: path, vocabOnly: true });
});

afterAll(async () => {
  await model?.dispose();
  if (dir) await rm(dir, { recursive: true, force: true });
});

const byte = (b: number) => vocab.indexOf(`<0x${b.toString(16).toUpperCase().padStart(2, '0')}>`) as Token;
const bytes = (...values: number[]) => values.map(byte);
const piece = (text: string) => vocab.indexOf(text) as Token;

/** Streams the tokens after `before` and returns the pieces. */
function stream(before: Token, tokens: Token[]): string[] {
  const text = new TokenText((t) => model.detokenize(t, false), before);
  const pieces = tokens.map((t) => text.push(t));
  pieces.push(text.flush());
  return pieces;
}

/** llama.cpp's decoding of all the tokens at once, with the leading token's text removed. */
const whole = (before: Token, tokens: Token[]) =>
  model.detokenize([before, ...tokens], false).slice(model.detokenize([before], false).length);

describe('TokenText', () => {
  const cases: [string, () => Token[]][] = [
    ['a 2-byte character (é) split over byte tokens', () => [piece('\u2581the'), ...bytes(0xc3, 0xa9), piece('\u2581world')]],
    ['a 3-byte character (€)', () => [...bytes(0xe2, 0x82, 0xac), piece('is')]],
    ['a 4-byte character (😀)', () => [piece('\u2581a'), ...bytes(0xf0, 0x9f, 0x98, 0x80)]],
    // The case that used to break: an incomplete 3-byte start, then a valid 4-byte character.
    ['an incomplete character followed by a 4-byte one', () => [...bytes(0xe2, 0x82, 0xf0, 0x9f, 0x98, 0x80), piece('he')]],
    ['lone continuation bytes, then a 2-byte character', () => bytes(0x80, 0xbf, 0xc3, 0xa9)],
    ['characters back to back', () => bytes(0xc3, 0xa9, 0xe2, 0x82, 0xac, 0xf0, 0x9f, 0x98, 0x80, 0xc3, 0xa9)],
    ['an incomplete character at the end', () => [piece('\u2581hello'), ...bytes(0xf0, 0x9f, 0x98)]],
  ];

  it.each(cases)('%s: pieces concatenate to the whole decoding, no piece splits a character', (_, tokens) => {
    const before = piece('\u2581hello');
    const pieces = stream(before, tokens());
    expect(pieces.join('')).toBe(whole(before, tokens()));
    // A piece with a split character would hold U+FFFD where the whole text has a real character.
    const expected = whole(before, tokens());
    let at = 0;
    for (const p of pieces) {
      expect(expected.slice(at, at + p.length)).toBe(p);
      at += p.length;
    }
    expect(pieces.join('').replace(/\uFFFD/g, '').length).toBeGreaterThan(0);
  });

  it('keeps the leading space of the first generated token (llama.cpp drops it only for the first decoded token)', () => {
    const pieces = stream(piece('\u2581hello'), [piece('\u2581world')]);
    expect(pieces.join('')).toBe(' world');
  });

  it('holds an incomplete character until its last byte, and releases text before it at once', () => {
    const pieces = stream(piece('he'), [piece('\u2581a'), ...bytes(0xf0, 0x9f, 0x98, 0x80)]);
    expect(pieces).toEqual([' a', '', '', '', '😀', '']);
  });
});
