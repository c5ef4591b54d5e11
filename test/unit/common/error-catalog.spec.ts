import { describe, expect, it } from '@jest/globals';
import { readFileSync } from 'node:fs';
import { ERRORS, type ErrorDefinition } from '../../../src/common/errors.js';
import { README, withErrorTable } from '../../../scripts/error-table.js';

/**
 * Cloudflare's codes as it publishes them (developers.cloudflare.com/workers-ai/platform/errors, checked 2026-11-29),
 * and those its API answers with that the table omits: Workers AI's 5006 (bad input), 3037 (finetune not found),
 * 3030 (input rejected by the model), 3043 (internal error), 8002 (invalid input); the v4 API's 1000 (invalid
 * token), 7000 (no route), 7001 (method not available), 7003 (invalid object identifier), 9103/9106/9109
 * (credentials) and 10000 (authentication).
 */
const CLOUDFLARE_PUBLISHED: Record<number, number[]> = {
  5007: [400], 5004: [400], 3039: [400], 3003: [400], 5018: [403], 5016: [403], 3023: [403], 3041: [403], 5019: [405],
  5005: [405], 3042: [404], 3006: [413], 3007: [408], 3008: [408], 3036: [429], 3040: [429],
};
const CLOUDFLARE_OBSERVED = [5006, 3037, 3030, 3043, 8002, 1000, 7000, 7001, 7003, 9103, 9106, 9109, 10000];

const entries = Object.entries(ERRORS) as [string, ErrorDefinition][];

describe('the error catalog', () => {
  it('is the README\'s "Error codes" table (regenerate with `npx tsx scripts/error-table.ts`)', () => {
    const readme = readFileSync(README, 'utf8');
    expect(readme).toBe(withErrorTable(readme));
  });

  it('answers each status and code pair from one entry', () => {
    const pairs = entries.map(([, e]) => `${e.status}/${e.code}`);
    expect(pairs.filter((pair, i) => pairs.indexOf(pair) !== i)).toEqual([]);
  });

  it("uses Cloudflare's codes only where it says so, and its own codes only outside Cloudflare's", () => {
    for (const [name, e] of entries) {
      const whose = [name, e.cloudflare ?? 'lora-hub'];
      if (e.cloudflare === 'published') expect([...whose, e.code in CLOUDFLARE_PUBLISHED]).toEqual([...whose, true]);
      if (e.cloudflare === 'observed') expect([...whose, CLOUDFLARE_OBSERVED.includes(e.code)]).toEqual([...whose, true]);
      if (!e.cloudflare) expect([...whose, e.code >= 90000 && e.code < 91000]).toEqual([...whose, true]);
    }
  });

  it("gives Cloudflare's published codes Cloudflare's status, but for a finetune created on a model without LoRA", () => {
    const differing = entries.filter(([, e]) => e.cloudflare === 'published' && !CLOUDFLARE_PUBLISHED[e.code]!.includes(e.status!));
    expect(differing.map(([name]) => name)).toEqual(['finetuneLoraUnsupported']);
  });
});
