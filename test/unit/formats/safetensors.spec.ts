import { describe, expect, it } from '@jest/globals';
import { AdapterFormatError } from '../../../src/formats/format-error.js';
import { writeSafetensors } from '../../../src/demo/safetensors-writer.js';
import { encodeTensor, floatToBfloat16, floatToHalf, halfToFloat } from '../../../src/formats/float16.js';
import {
  decodeTensor,
  parseSafetensorsHeader,
  readSafetensors,
  SafetensorsStreamValidator,
  tensorValues,
  type SafetensorsHeader,
} from '../../../src/formats/safetensors.js';
import { decodeFileTensor, validateSafetensors } from '../../helpers/safetensors.js';

/** bfloat16 bits to a number: the upper half of a float32. */
function bfloat16ToFloat(bits: number): number {
  return new Float32Array(new Uint32Array([bits << 16]).buffer)[0]!;
}

/** A file from a header given as text (N = its byte length) and `dataLength` zero bytes. */
function fileWith(header: string, dataLength = 0): Buffer {
  const json = Buffer.from(header);
  const length = Buffer.alloc(8);
  length.writeBigUInt64LE(BigInt(json.length));
  return Buffer.concat([length, json, Buffer.alloc(dataLength)]);
}

function errorOf(action: () => unknown): AdapterFormatError {
  try {
    action();
  } catch (error) {
    expect(error).toBeInstanceOf(AdapterFormatError);
    expect((error as AdapterFormatError).file).toBe('adapter_model.safetensors');
    return error as AdapterFormatError;
  }
  throw new Error('expected an AdapterFormatError');
}

const f32Bytes = (values: number[]) => Buffer.from(new Float32Array(values).buffer);

describe('writeSafetensors', () => {
  // Byte-for-byte expectations from the reference's own tests (safetensors/src/tensor.rs).
  it('matches the reference serializer', () => {
    const out = writeSafetensors([{ name: 'attn.0', dtype: 'F32', shape: [1, 2, 3], data: f32Bytes([0, 1, 2, 3, 4, 5]) }]);
    expect([...out]).toEqual([
      64, 0, 0, 0, 0, 0, 0, 0, 123, 34, 97, 116, 116, 110, 46, 48, 34, 58, 123, 34, 100, 116, 121, 112, 101, 34, 58, 34,
      70, 51, 50, 34, 44, 34, 115, 104, 97, 112, 101, 34, 58, 91, 49, 44, 50, 44, 51, 93, 44, 34, 100, 97, 116, 97, 95,
      111, 102, 102, 115, 101, 116, 115, 34, 58, 91, 48, 44, 50, 52, 93, 125, 125, 0, 0, 0, 0, 0, 0, 128, 63, 0, 0, 0,
      64, 0, 0, 64, 64, 0, 0, 128, 64, 0, 0, 160, 64,
    ]);
  });

  it('pads the header with spaces to a multiple of 8 like the reference', () => {
    expect([...writeSafetensors([])]).toEqual([8, 0, 0, 0, 0, 0, 0, 0, 123, 125, 32, 32, 32, 32, 32, 32]);
    const withMetadata = writeSafetensors([], { framework: 'pt' });
    expect(withMetadata.readBigUInt64LE(0)).toBe(40n);
    expect(withMetadata.subarray(8).toString()).toBe('{"__metadata__":{"framework":"pt"}}     ');
    const aligned = writeSafetensors([{ name: 'attn0', dtype: 'F32', shape: [1, 1, 2, 3], data: f32Bytes([0, 1, 2, 3, 4, 5]) }]);
    expect(aligned.readBigUInt64LE(0)).toBe(72n);
  });

  it('orders tensors by descending dtype alignment, then name', () => {
    const file = writeSafetensors([
      { name: 'b', dtype: 'U8', shape: [1], data: new Uint8Array(1) },
      { name: 'a', dtype: 'U8', shape: [1], data: new Uint8Array(1) },
      { name: 'c', dtype: 'F32', shape: [1], data: new Uint8Array(4) },
    ]);
    expect(validateSafetensors(file).tensors.map((t) => [t.name, t.begin])).toEqual([
      ['c', 0],
      ['a', 4],
      ['b', 5],
    ]);
  });

  it('keeps names such as "__proto__" and "0" as ordinary tensors', () => {
    const file = writeSafetensors([
      { name: '__proto__', dtype: 'U8', shape: [2], data: new Uint8Array(2) },
      { name: '0', dtype: 'U8', shape: [1], data: new Uint8Array(1) },
    ]);
    expect(validateSafetensors(file).tensors.map((t) => t.name)).toEqual(['0', '__proto__']);
  });

  it('refuses data whose size does not match the shape', () => {
    expect(() => writeSafetensors([{ name: 'x', dtype: 'F16', shape: [3], data: new Uint8Array(4) }])).toThrow(RangeError);
  });
});

describe('parseSafetensorsHeader / validateSafetensors', () => {
  it('reads the reference docstring example', () => {
    const header = validateSafetensors(fileWith('{"test":{"dtype":"I32","shape":[2,2],"data_offsets":[0,16]}}', 16));
    expect(header).toEqual({
      headerLength: 60,
      dataLength: 16,
      tensors: [{ name: 'test', dtype: 'I32', shape: [2, 2], begin: 0, end: 16 }],
      metadata: {},
    });
  });

  it('sorts tensors by offset and returns the metadata', () => {
    const header = validateSafetensors(
      fileWith(
        '{"b":{"dtype":"F16","shape":[2],"data_offsets":[0,4]},"__metadata__":{"format":"pt"},' +
          '"a":{"dtype":"U8","shape":[3],"data_offsets":[4,7]}}',
        7,
      ),
    );
    expect(header.tensors.map((t) => t.name)).toEqual(['b', 'a']);
    expect(header.metadata).toEqual({ format: 'pt' });
    expect(header.dataLength).toBe(7);
  });

  it('accepts what the reference accepts: empty header, null metadata, scalars, zero-size tensors, unknown fields', () => {
    expect(validateSafetensors(fileWith('{}')).tensors).toEqual([]);
    expect(validateSafetensors(fileWith('{"__metadata__":null}')).metadata).toEqual({});
    const header = validateSafetensors(
      fileWith(
        '{"s":{"dtype":"F64","shape":[],"data_offsets":[0,8]},"z":{"dtype":"F32","shape":[0,5],"data_offsets":[8,8]},' +
          '"y":{"dtype":"BOOL","shape":[2],"data_offsets":[8,10],"extra":{"x":1.5}}}  ',
        10,
      ),
    );
    expect(header.tensors.map((t) => t.name)).toEqual(['s', 'z', 'y']);
  });

  it('sizes sub-byte dtypes by bits and requires whole bytes', () => {
    expect(validateSafetensors(fileWith('{"x":{"dtype":"F4","shape":[4],"data_offsets":[0,2]}}', 2)).tensors).toHaveLength(1);
    expect(validateSafetensors(fileWith('{"x":{"dtype":"F6_E2M3","shape":[4],"data_offsets":[0,3]}}', 3)).tensors).toHaveLength(1);
    expect(errorOf(() => validateSafetensors(fileWith('{"x":{"dtype":"F4","shape":[3],"data_offsets":[0,2]}}', 2))).message).toMatch(
      /does not fill a whole number of bytes/,
    );
  });

  it.each([
    ['a BOM before the JSON', '\uFEFF{}', /not valid JSON/],
    ['a non-object entry', '{"x":[1]}', /entry of tensor x must be an object/],
    ['a missing dtype', '{"x":{"shape":[1],"data_offsets":[0,1]}}', /dtype must be a string/],
    ['an inherited property name as dtype', '{"x":{"dtype":"toString","shape":[1],"data_offsets":[0,1]}}', /unknown dtype "toString"/],
    ['a shape that is not an array', '{"x":{"dtype":"U8","shape":3,"data_offsets":[0,3]}}', /shape must be an array of/],
    ['an unsafe integer dimension', '{"x":{"dtype":"U8","shape":[9007199254740993],"data_offsets":[0,1]}}', /shape must be an array/],
    ['an exponent in a shape', '{"x":{"dtype":"U8","shape":[1e0],"data_offsets":[0,1]}}', /shape must hold non-negative integers, got 1e0/],
    ['three offsets', '{"x":{"dtype":"U8","shape":[1],"data_offsets":[0,1,2]}}', /data_offsets must be \[begin, end\]/],
    ['offsets ending before they begin', '{"x":{"dtype":"U8","shape":[0],"data_offsets":[1,0]}}', /end before they begin/],
    [
      'an element count overflowing u64',
      '{"x":{"dtype":"U8","shape":[4294967296,4294967296,0],"data_offsets":[0,0]}}',
      /element count .* overflows/,
    ],
    [
      'a byte size overflowing u64',
      '{"x":{"dtype":"U64","shape":[4294967296,1073741824],"data_offsets":[0,0]}}',
      /byte size .* overflows/,
    ],
    [
      'a duplicate key inside an entry',
      '{"x":{"dtype":"U8","dtype":"U8","shape":[1],"data_offsets":[0,1]}}',
      /duplicate key "dtype" in the entry of x/,
    ],
    [
      'duplicate keys spelled differently',
      '{"x":{"dtype":"U8","shape":[0],"data_offsets":[0,0]},"\\u0078":{"dtype":"U8","shape":[0],"data_offsets":[0,0]}}',
      /duplicate key "x"/,
    ],
    [
      'nesting deeper than serde allows',
      `{"x":{"dtype":"U8","shape":[0],"data_offsets":[0,0],"e":${'['.repeat(130)}${']'.repeat(130)}}}`,
      /nests deeper than 128/,
    ],
    ['__metadata__ that is not an object', '{"__metadata__":"pt"}', /__metadata__ must be an object of strings/],
  ])('rejects %s', (_, header, message) => {
    expect(errorOf(() => validateSafetensors(fileWith(header, 8))).message).toMatch(message);
  });

  it('names both tensors of an overlap and the bytes of a gap', () => {
    const overlap = '{"a":{"dtype":"U8","shape":[4],"data_offsets":[0,4]},"b":{"dtype":"U8","shape":[4],"data_offsets":[2,6]}}';
    expect(errorOf(() => validateSafetensors(fileWith(overlap, 6))).message).toBe(
      'adapter_model.safetensors: tensors a [0, 4) and b [2, 6) overlap',
    );
    const gap = '{"a":{"dtype":"U8","shape":[4],"data_offsets":[0,4]},"b":{"dtype":"U8","shape":[4],"data_offsets":[6,10]}}';
    expect(errorOf(() => validateSafetensors(fileWith(gap, 10))).message).toMatch(/bytes 4-6 between a and b belong to no tensor/);
  });

  it('parses the header bytes given directly', () => {
    const json = Buffer.from('{"x":{"dtype":"BF16","shape":[2],"data_offsets":[0,4]}}');
    expect(parseSafetensorsHeader(json, json.length).dataLength).toBe(4);
    expect(() => parseSafetensorsHeader(Buffer.from([0x7b, 0xc3, 0x7d]), 3)).toThrow(/not valid UTF-8/);
  });
});

describe('SafetensorsStreamValidator', () => {
  const valid = writeSafetensors([{ name: 'w', dtype: 'F32', shape: [4], data: f32Bytes([1, 2, 3, 4]) }]);
  const n = Number(valid.readBigUInt64LE(0));

  it('gives the same header for any chunking, including empty chunks', () => {
    const validator = new SafetensorsStreamValidator();
    for (let i = 0; i < valid.length; i += 3) {
      validator.push(new Uint8Array(0));
      validator.push(valid.subarray(i, i + 3));
    }
    expect(validator.finish()).toEqual(validateSafetensors(valid));
  });

  it('checks the header length as soon as the first 8 bytes arrive', () => {
    const tooLarge = Buffer.alloc(8);
    tooLarge.writeBigUInt64LE(100_000_001n);
    const validator = new SafetensorsStreamValidator();
    validator.push(tooLarge.subarray(0, 7));
    expect(errorOf(() => validator.push(tooLarge.subarray(7))).message).toMatch(/exceeds the limit of 100000000 bytes/);
    const tiny = Buffer.alloc(8);
    tiny.writeBigUInt64LE(1n);
    expect(errorOf(() => new SafetensorsStreamValidator().push(tiny)).message).toMatch(/header length 1 is too small/);
    const huge = Buffer.alloc(8, 0xff);
    expect(errorOf(() => new SafetensorsStreamValidator().push(huge)).message).toMatch(/header length 18446744073709551615 exceeds/);
  });

  it('parses the header exactly when its last byte arrives', () => {
    const broken = Buffer.from(valid);
    broken[8 + n - 1] = 0x7b; // the last padding space becomes "{"
    const validator = new SafetensorsStreamValidator();
    validator.push(broken.subarray(0, 8 + n - 1));
    expect(validator.header).toBeUndefined();
    expect(errorOf(() => validator.push(broken.subarray(8 + n - 1, 8 + n))).message).toMatch(/not valid JSON/);
  });

  it('exposes the header before the data arrives and fails on the first extra byte', () => {
    const validator = new SafetensorsStreamValidator();
    validator.push(valid.subarray(0, 8 + n));
    expect(validator.header?.dataLength).toBe(16);
    validator.push(valid.subarray(8 + n));
    expect(errorOf(() => validator.push(new Uint8Array(1))).message).toBe(
      `adapter_model.safetensors: file has trailing bytes: it is longer than the expected ${8 + n + 16} (8 + ${n} header + 16 data bytes)`,
    );
  });

  it('names expected and actual lengths when the data is short', () => {
    expect(errorOf(() => validateSafetensors(valid.subarray(0, valid.length - 1))).message).toBe(
      `adapter_model.safetensors: data is truncated: file is ${valid.length - 1} bytes, ` +
        `expected ${valid.length} (8 + ${n} header + 16 data bytes)`,
    );
    expect(errorOf(() => validateSafetensors(valid.subarray(0, 8 + 5))).message).toMatch(
      new RegExp(`header is truncated: it should be ${n} bytes, the file ends after 5`),
    );
    expect(errorOf(() => validateSafetensors(new Uint8Array(7))).message).toMatch(/file is 7 bytes, too short/);
  });

  it('stays failed: later calls rethrow the first error', () => {
    const validator = new SafetensorsStreamValidator();
    const first = errorOf(() => validator.push(Buffer.alloc(8)));
    expect(() => validator.push(valid)).toThrow(first);
    expect(() => validator.finish()).toThrow(first);
  });

  it('copies header bytes, so the caller may reuse its buffer', () => {
    const chunk = Buffer.from(valid.subarray(0, 20));
    const validator = new SafetensorsStreamValidator();
    validator.push(chunk);
    chunk.fill(0);
    validator.push(valid.subarray(20));
    expect(validator.finish().tensors[0].name).toBe('w');
  });
});

describe('half-precision conversions', () => {
  it('round-trips every non-NaN binary16 value', () => {
    const wrong: number[] = [];
    for (let bits = 0; bits < 0x10000; bits++) {
      if ((bits & 0x7c00) === 0x7c00 && (bits & 0x3ff) !== 0) continue;
      if (floatToHalf(halfToFloat(bits)) !== bits) wrong.push(bits);
    }
    expect(wrong).toEqual([]);
  });

  it('rounds to nearest, ties to even, at every binary16 step', () => {
    const f32 = new Float32Array(1);
    const u32 = new Uint32Array(f32.buffer);
    const nudge = (value: number, ulps: number) => {
      f32[0] = value;
      u32[0] += ulps;
      return f32[0];
    };
    const wrong: number[] = [];
    for (let bits = 0; bits < 0x7bff; bits++) {
      const mid = (halfToFloat(bits) + halfToFloat(bits + 1)) / 2;
      const even = bits % 2 === 0 ? bits : bits + 1;
      if (
        floatToHalf(mid) !== even ||
        floatToHalf(nudge(mid, -1)) !== bits ||
        floatToHalf(nudge(mid, 1)) !== bits + 1 ||
        floatToHalf(-mid) !== (even | 0x8000)
      ) {
        wrong.push(bits);
      }
    }
    expect(wrong).toEqual([]);
  });

  it('handles the edges of binary16', () => {
    expect(floatToHalf(65504)).toBe(0x7bff);
    expect(floatToHalf(65519.99)).toBe(0x7bff);
    expect(floatToHalf(65520)).toBe(0x7c00);
    expect(floatToHalf(-1e9)).toBe(0xfc00);
    expect(floatToHalf(2 ** -25)).toBe(0);
    expect(floatToHalf(2 ** -25 * 1.0001)).toBe(1);
    expect(floatToHalf(-0)).toBe(0x8000);
    expect(Number.isNaN(halfToFloat(floatToHalf(NaN)))).toBe(true);
    expect(halfToFloat(0x3c00)).toBe(1);
    expect(halfToFloat(0x0001)).toBe(2 ** -24);
    expect(Object.is(halfToFloat(0x8000), -0)).toBe(true);
  });

  it('rounds bfloat16 to nearest, ties to even', () => {
    expect(floatToBfloat16(1)).toBe(0x3f80);
    expect(floatToBfloat16(1 + 2 ** -8)).toBe(0x3f80); // tie, even stays
    expect(floatToBfloat16(1 + 3 * 2 ** -8)).toBe(0x3f82); // tie, odd rounds up
    expect(floatToBfloat16(1 + 2 ** -8 + 2 ** -20)).toBe(0x3f81);
    expect(floatToBfloat16(3.4e38)).toBe(0x7f80); // rounds past the largest bfloat16 to infinity
    expect(Number.isNaN(bfloat16ToFloat(floatToBfloat16(NaN)))).toBe(true);
    const wrong: number[] = [];
    for (let bits = 0; bits < 0x10000; bits++) {
      if ((bits & 0x7f80) === 0x7f80 && (bits & 0x7f) !== 0) continue;
      if (floatToBfloat16(bfloat16ToFloat(bits)) !== bits) wrong.push(bits);
    }
    expect(wrong).toEqual([]);
  });

  it('encodes and decodes tensors in a file', () => {
    const values = new Float32Array([0, 1, -2.5, 0.1, 65504, 1e-8]);
    const file = writeSafetensors(
      (['F32', 'F16', 'BF16'] as const).map((dtype) => ({ name: dtype, dtype, shape: [2, 3], data: encodeTensor(values, dtype) })),
    );
    const header = validateSafetensors(file);
    expect([...decodeFileTensor(file, header, 'F32')]).toEqual([...values]);
    expect([...decodeFileTensor(file, header, 'F16')]).toEqual([...values].map((v) => halfToFloat(floatToHalf(v))));
    expect([...decodeFileTensor(file, header, 'BF16')]).toEqual([...values].map((v) => bfloat16ToFloat(floatToBfloat16(v))));
    expect(encodeTensor(new Float32Array([1]), 'F16')).toEqual(new Uint8Array([0x00, 0x3c]));
    expect(encodeTensor(new Float32Array([1, -2]), 'F32')).toEqual(new Uint8Array([0, 0, 0x80, 0x3f, 0, 0, 0, 0xc0]));
    const f16 = header.tensors.find((t) => t.name === 'F16')!;
    expect(errorOf(() => decodeTensor(f16, new Uint8Array(11))).message).toMatch(/data of tensor F16 is 11 bytes, expected 12/);
  });

  it.each([['F32', 4], ['F16', 2], ['BF16', 2]] as const)('decodes %s from bytes at any alignment, into a given array or a view of aligned F32 bytes', (dtype, size) => {
    const values = new Float32Array([1.5, -0, 6e-8, -Infinity, 65504, -2.5]);
    const encoded = encodeTensor(values, dtype);
    const info = { name: 'x', dtype, shape: [2, 3], begin: 0, end: 6 * size };
    const expected = decodeTensor(info, encoded);
    for (let shift = 0; shift < 4; shift++) {
      const shifted = new Uint8Array(encoded.length + shift);
      shifted.set(encoded, shift);
      const bytes = shifted.subarray(shift);
      expect(decodeTensor(info, bytes)).toEqual(expected);
      const into = new Float32Array(8).subarray(1, 7);
      expect(decodeTensor(info, bytes, into)).toBe(into);
      expect(into).toEqual(expected);
      const scratch = new Float32Array(6);
      const read = tensorValues(info, bytes, scratch);
      expect(read).toEqual(expected);
      expect(read.buffer === shifted.buffer).toBe(dtype === 'F32' && shift === 0);
      expect(read === scratch).toBe(!(dtype === 'F32' && shift === 0));
    }
    expect(() => decodeTensor(info, encoded, new Float32Array(5))).toThrow('tensor x has 6 values, not 5');
  });

  it('refuses to decode other dtypes', () => {
    const file = writeSafetensors([{ name: 'i', dtype: 'I32', shape: [1], data: new Uint8Array(4) }]);
    expect(errorOf(() => decodeFileTensor(file, validateSafetensors(file), 'i')).message).toMatch(/dtype I32; only F32, F16 and BF16/);
  });
});

describe('readSafetensors', () => {
  const file = writeSafetensors([
    { name: 'big', dtype: 'F32', shape: [3, 4], data: f32Bytes([...Array(12).keys()]) },
    { name: 'empty', dtype: 'F16', shape: [0, 4], data: new Uint8Array(0) },
    { name: 'small', dtype: 'U8', shape: [3], data: new Uint8Array([7, 8, 9]) },
  ]);
  const header = validateSafetensors(file);

  /** The file in chunks of `size` bytes. */
  async function* chunks(bytes: Uint8Array, size: number) {
    for (let i = 0; i < bytes.length; i += size) yield bytes.slice(i, i + size);
  }

  async function read(source: AsyncIterable<Uint8Array>) {
    const events: string[] = [];
    const tensors: [string, number[]][] = [];
    const result = await readSafetensors(source, {
      header: (h: SafetensorsHeader) => {
        events.push(`header ${h.tensors.length}`);
      },
      tensor: (info, bytes) => {
        events.push(info.name);
        tensors.push([info.name, [...bytes]]);
      },
    });
    return { result, events, tensors };
  }

  it.each([1, 3, 7, 64, file.length])('hands over each tensor’s bytes once, in file order, in chunks of %i bytes', async (size) => {
    const { result, events, tensors } = await read(chunks(file, size));
    expect(result).toEqual(header);
    expect(events).toEqual(['header 3', ...header.tensors.map((t) => t.name)]);
    expect(tensors).toEqual(header.tensors.map((t) => [t.name, [...file.subarray(8 + header.headerLength + t.begin, 8 + header.headerLength + t.end)]]));
  });

  it.each([1, 3, 7, 64, file.length])('hands over the tensors asked for in pieces as views of the chunks of %i bytes, uncopied', async (size) => {
    const source: Uint8Array[] = [];
    for await (const chunk of chunks(file, size)) source.push(chunk);
    const events: string[] = [];
    const pieces: Uint8Array[] = [];
    await readSafetensors(source, {
      header: () => undefined,
      tensor: (info) => void events.push(info.name),
      inPieces: {
        wanted: (info) => info.name !== 'small',
        tensor: (info, bytes) => {
          events.push(`${info.name} in ${bytes.length} pieces`);
          if (info.name === 'big') pieces.push(...bytes);
        },
      },
    });
    const big = header.tensors.find((t) => t.name === 'big')!;
    const count = Math.ceil((8 + header.headerLength + big.end) / size) - Math.floor((8 + header.headerLength + big.begin) / size);
    expect(events).toEqual([`big in ${count} pieces`, 'empty in 0 pieces', 'small']);
    expect(pieces.every((piece) => source.some((chunk) => chunk.buffer === piece.buffer))).toBe(true);
    expect(Buffer.concat(pieces)).toEqual(Buffer.from(file.subarray(8 + header.headerLength + big.begin, 8 + header.headerLength + big.end)));
  });

  it('fails as the validator does, without handing over a tensor that is cut short', async () => {
    const names: string[] = [];
    const truncated = file.subarray(0, file.length - 1);
    await expect(readSafetensors(chunks(truncated, 5), { header: () => undefined, tensor: (info) => void names.push(info.name) })).rejects.toThrow(
      errorOf(() => validateSafetensors(truncated)).message,
    );
    expect(names).toEqual(['big', 'empty']);
    const longer = Buffer.concat([file, Buffer.alloc(1)]);
    await expect(read(chunks(longer, 5))).rejects.toThrow(errorOf(() => validateSafetensors(longer)).message);
  });

  it('stops reading when a handler throws', async () => {
    let pulled = 0;
    async function* counted() {
      for await (const chunk of chunks(file, 4)) {
        pulled++;
        yield chunk;
      }
    }
    const refusal = new Error('not this adapter');
    await expect(readSafetensors(counted(), { header: () => { throw refusal; }, tensor: () => undefined })).rejects.toBe(refusal);
    expect(pulled).toBe(Math.ceil((8 + header.headerLength) / 4));
  });
});
