import { describe, expect, it } from '@jest/globals';
import fc from 'fast-check';
import { AdapterFormatError } from '../../../src/formats/format-error.js';
import { writeSafetensors } from '../../../src/demo/safetensors-writer.js';
import { DTYPE_BITS, readSafetensors, SafetensorsStreamValidator, type SafetensorsHeader } from '../../../src/formats/safetensors.js';
import { validateSafetensors } from '../../helpers/safetensors.js';

type Outcome = { header: SafetensorsHeader } | { error: string };

/** Runs validation, letting only AdapterFormatError through as a result; anything else fails the property. */
function outcome(run: () => SafetensorsHeader): Outcome {
  try {
    return { header: run() };
  } catch (error) {
    if (error instanceof AdapterFormatError) return { error: error.message };
    throw error;
  }
}

function streamed(file: Uint8Array, cuts: number[]): SafetensorsHeader {
  const validator = new SafetensorsStreamValidator();
  const points = [...new Set(cuts.map((c) => c % (file.length + 1)))].sort((a, b) => a - b);
  let start = 0;
  for (const point of [...points, file.length]) {
    validator.push(file.subarray(start, point));
    start = point;
  }
  return validator.finish();
}

/**
 * readSafetensors over the file cut at `cuts`: the header or error, and the tensors it handed over (those with names
 * of odd length in pieces, joined here).
 */
async function read(file: Uint8Array, cuts: number[]): Promise<{ outcome: Outcome; tensors: [string, Buffer][] }> {
  const points = [...new Set(cuts.map((c) => c % (file.length + 1)))].sort((a, b) => a - b);
  async function* chunks() {
    let start = 0;
    for (const point of [...points, file.length]) {
      yield file.slice(start, point);
      start = point;
    }
  }
  const tensors: [string, Buffer][] = [];
  const handlers = {
    header: () => undefined,
    tensor: (info: { name: string }, bytes: Uint8Array) => void tensors.push([info.name, Buffer.from(bytes)]),
    inPieces: {
      wanted: (info: { name: string }) => info.name.length % 2 === 1,
      tensor: (info: { name: string }, pieces: Uint8Array[]) => void tensors.push([info.name, Buffer.concat(pieces)]),
    },
  };
  try {
    return { outcome: { header: await readSafetensors(chunks(), handlers) }, tensors };
  } catch (error) {
    if (error instanceof AdapterFormatError) return { outcome: { error: error.message }, tensors };
    throw error;
  }
}

function fileWith(header: Uint8Array | string, data: Uint8Array): Buffer {
  const json = typeof header === 'string' ? Buffer.from(header) : Buffer.from(header);
  const length = Buffer.alloc(8);
  length.writeBigUInt64LE(BigInt(json.length));
  return Buffer.concat([length, json, data]);
}

// Whole-byte dtypes of every size, plus the sub-byte ones with even element counts (so they fill whole bytes).
const tensorArb = fc
  .record({
    name: fc.string({ minLength: 1, maxLength: 12 }),
    dtype: fc.constantFrom(...Object.keys(DTYPE_BITS)),
    shape: fc.array(fc.integer({ min: 0, max: 5 }), { maxLength: 3 }),
  })
  .map(({ name, dtype, shape }) => {
    const evenShape = DTYPE_BITS[dtype] % 8 === 0 ? shape : [...shape, 8];
    const bytes = (evenShape.reduce((n, d) => n * d, 1) * DTYPE_BITS[dtype]) / 8;
    return { name, dtype, shape: evenShape, data: Uint8Array.from({ length: bytes }, (_, i) => (i * 31 + name.length) & 0xff) };
  });

const validFileArb = fc
  .tuple(
    fc.uniqueArray(tensorArb, { selector: (t) => t.name, maxLength: 6 }).map((ts) => ts.filter((t) => t.name !== '__metadata__')),
    fc.option(fc.dictionary(fc.string({ maxLength: 6 }), fc.string({ maxLength: 6 }), { maxKeys: 3 }), { nil: undefined }),
  )
  .map(([tensors, metadata]) => ({ tensors, metadata, file: writeSafetensors(tensors, metadata) }));

const cutsArb = fc.array(fc.nat(), { maxLength: 12 });

describe('safetensors validation under fuzzing', () => {
  it('accepts every file the writer produces, with the same tensors', () => {
    fc.assert(
      fc.property(validFileArb, cutsArb, ({ tensors, metadata, file }, cuts) => {
        const header = validateSafetensors(file);
        expect(header.tensors.map((t) => t.name).sort()).toEqual(tensors.map((t) => t.name).sort());
        expect(header.metadata).toEqual(metadata ?? {});
        for (const t of header.tensors) {
          const original = tensors.find((x) => x.name === t.name)!;
          expect([t.dtype, t.shape]).toEqual([original.dtype, original.shape]);
          expect(file.subarray(8 + header.headerLength + t.begin, 8 + header.headerLength + t.end)).toEqual(Buffer.from(original.data));
        }
        expect(streamed(file, cuts)).toEqual(header);
      }),
      { numRuns: 200 },
    );
  });

  it('only ever throws AdapterFormatError on random bytes, whatever the chunking', () => {
    const bytesArb = fc.oneof(
      fc.uint8Array({ maxLength: 64 }),
      // A plausible length prefix followed by random bytes reaches the JSON parser.
      fc.uint8Array({ minLength: 2, maxLength: 64 }).map((body) => fileWith(body, new Uint8Array(0))),
    );
    fc.assert(
      fc.property(bytesArb, cutsArb, (bytes, cuts) => {
        expect(outcome(() => streamed(bytes, cuts))).toEqual(outcome(() => validateSafetensors(bytes)));
      }),
      { numRuns: 500 },
    );
  });

  it('only ever throws AdapterFormatError on random JSON headers', () => {
    const entryArb = fc.oneof(
      fc.record(
        {
          dtype: fc.oneof(fc.constantFrom(...Object.keys(DTYPE_BITS), 'F17', 'toString'), fc.jsonValue()),
          shape: fc.oneof(fc.array(fc.integer({ min: -2, max: 6 }), { maxLength: 3 }), fc.jsonValue()),
          data_offsets: fc.oneof(fc.array(fc.integer({ min: -4, max: 40 }), { maxLength: 3 }), fc.jsonValue()),
        },
        { requiredKeys: [] },
      ),
      fc.jsonValue(),
    );
    const headerArb = fc.oneof(
      fc.dictionary(fc.oneof(fc.string({ maxLength: 4 }), fc.constant('__metadata__')), entryArb, { maxKeys: 5 }),
      fc.jsonValue(),
    );
    fc.assert(
      fc.property(headerArb, fc.nat({ max: 64 }), cutsArb, (header, dataLength, cuts) => {
        const file = fileWith(JSON.stringify(header) ?? 'null', new Uint8Array(dataLength));
        expect(outcome(() => streamed(file, cuts))).toEqual(outcome(() => validateSafetensors(file)));
      }),
      { numRuns: 500 },
    );
  });

  it('only ever throws AdapterFormatError on mutated valid files, and chunking never changes the result', () => {
    const mutationArb = fc.oneof(
      fc.record({ kind: fc.constant('set' as const), at: fc.nat(), value: fc.integer({ min: 0, max: 255 }) }),
      fc.record({ kind: fc.constant('cut' as const), at: fc.nat() }),
      // JSON punctuation and number characters, to bend the header's structure.
      fc.record({ kind: fc.constant('insert' as const), at: fc.nat(), value: fc.constantFrom(...Buffer.from('",{}[]0-.')) }),
    );
    fc.assert(
      fc.property(validFileArb, fc.array(mutationArb, { minLength: 1, maxLength: 4 }), cutsArb, ({ file }, mutations, cuts) => {
        let bytes = Buffer.from(file);
        for (const m of mutations) {
          const at = m.at % (bytes.length + 1);
          if (m.kind === 'set' && at < bytes.length) bytes[at] = m.value;
          if (m.kind === 'cut') bytes = bytes.subarray(0, at);
          if (m.kind === 'insert') bytes = Buffer.concat([bytes.subarray(0, at), Buffer.from([m.value]), bytes.subarray(at)]);
        }
        expect(outcome(() => streamed(bytes, cuts))).toEqual(outcome(() => validateSafetensors(bytes)));
      }),
      { numRuns: 500 },
    );
  });

  it('reads valid and mutated files as the validator does, handing over exactly the bytes of each tensor, in order', async () => {
    const mutatedArb = fc.tuple(validFileArb, fc.nat(), fc.integer({ min: 0, max: 255 }), fc.boolean()).map(([{ file }, at, value, mutate]) => {
      const bytes = Buffer.from(file);
      if (mutate) bytes[at % bytes.length] = value;
      return mutate && at % 3 === 0 ? bytes.subarray(0, at % (bytes.length + 1)) : bytes;
    });
    await fc.assert(
      fc.asyncProperty(mutatedArb, cutsArb, async (file, cuts) => {
        const expected = outcome(() => validateSafetensors(file));
        const { outcome: got, tensors } = await read(file, cuts);
        expect(got).toEqual(expected);
        if ('header' in expected) {
          const { headerLength, tensors: infos } = expected.header;
          const slice = (t: { begin: number; end: number }) => Buffer.from(file.subarray(8 + headerLength + t.begin, 8 + headerLength + t.end));
          expect(tensors).toEqual(infos.map((t) => [t.name, slice(t)]));
        }
      }),
      { numRuns: 300 },
    );
  });

  it('never accepts a file whose tensors do not tile the data exactly', () => {
    fc.assert(
      fc.property(validFileArb, fc.integer({ min: 1, max: 16 }), ({ file }, extra) => {
        const longer = Buffer.concat([file, Buffer.alloc(extra)]);
        expect(outcome(() => validateSafetensors(longer))).toEqual({ error: expect.stringMatching(/trailing bytes/) });
        if (validateSafetensors(file).dataLength > 0) {
          const shorter = file.subarray(0, file.length - 1);
          expect(outcome(() => validateSafetensors(shorter))).toEqual({ error: expect.stringMatching(/truncated/) });
        }
      }),
      { numRuns: 100 },
    );
  });
});
