import { describe, expect, it } from '@jest/globals';
import { nestsDeeperThan, pathOfNul } from '../../../src/http/json-body.js';

describe('nestsDeeperThan', () => {
  it('counts arrays and objects alike, up to and past the limit', () => {
    expect(nestsDeeperThan('[{"a":[1]}]', 3)).toBe(false);
    expect(nestsDeeperThan('[{"a":[[1]]}]', 3)).toBe(true);
    expect(nestsDeeperThan(`${'['.repeat(100)}${']'.repeat(100)}`, 100)).toBe(false);
    expect(nestsDeeperThan(`${'['.repeat(101)}${']'.repeat(101)}`, 100)).toBe(true);
  });

  it('ignores brackets inside strings, escaped quotes included', () => {
    expect(nestsDeeperThan(JSON.stringify({ a: '[[[[{{{{' }), 1)).toBe(false);
    expect(nestsDeeperThan(JSON.stringify({ a: '\\"[[[[', b: '"{{{' }), 1)).toBe(false);
    expect(nestsDeeperThan(JSON.stringify({ a: '\\', b: [[1]] }), 2)).toBe(true);
  });

  it('measures depth, not the number of brackets', () => {
    expect(nestsDeeperThan(JSON.stringify(Array.from({ length: 1000 }, () => [{}])), 3)).toBe(false);
  });
});

describe('pathOfNul', () => {
  it('names the first string or key holding a NUL by its path', () => {
    expect(pathOfNul({ a: 'ok', b: [{ c: 'x' }, { c: 'y\0' }] })).toBe('b[1].c');
    expect(pathOfNul({ 'k\0': 1 })).toBe('k\0');
    expect(pathOfNul('\0')).toBe('');
    expect(pathOfNul({ a: ['fine', 1, null, true], b: { c: 'also fine' } })).toBeUndefined();
  });
});
