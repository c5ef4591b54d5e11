import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { readGgufFileInfo } from 'node-llama-cpp';
import { encodeGguf, gguf, GgufError, GgufFileWriter, type GgufMetadata, type GgufTensorSpec } from '../../../src/formats/gguf-writer.js';
import { readGguf, readGgufTensor } from '../../helpers/gguf-reader.js';

/** One value of every GGUF type, including arrays of each element type. */
const allTypes: GgufMetadata = {
  'general.architecture': gguf.str('llama'),
  'test.u8': { type: 'u8', value: 255 },
  'test.i8': { type: 'i8', value: -128 },
  'test.u16': { type: 'u16', value: 65535 },
  'test.i16': { type: 'i16', value: -32768 },
  'test.u32': gguf.u32(4294967295),
  'test.i32': gguf.i32(-2147483648),
  'test.f32': gguf.f32(0.5),
  'test.bool.true': gguf.bool(true),
  'test.bool.false': gguf.bool(false),
  'test.string': gguf.str('héllo ▁wörld 🙂'),
  'test.empty_string': gguf.str(''),
  'test.u64': gguf.u64(2n ** 64n - 1n),
  'test.i64': { type: 'i64', value: -(2n ** 63n) },
  'test.f64': { type: 'f64', value: Math.PI },
  'test.strings': gguf.strings(['<unk>', '', '▁the']),
  'test.f32s': gguf.f32s([0, -1.5, 3.25]),
  'test.i32s': gguf.i32s([1, -2, 3]),
  'test.u8s': { type: 'array', itemType: 'u8', value: [0, 1, 255] },
  'test.u64s': { type: 'array', itemType: 'u64', value: [0n, 2n ** 40n] },
  'test.bools': { type: 'array', itemType: 'bool', value: [true, false] },
  'test.empty_array': { type: 'array', itemType: 'i32', value: [] },
};

const values = (n: number, seed: number) => Float32Array.from({ length: n }, (_, i) => Math.sin(seed + i) * 3);

const tensors = (): GgufTensorSpec[] => [
  // 3 x 5 floats = 60 bytes: not a multiple of the alignment, so the next tensor needs padding.
  { name: 'a.weight', dims: [5, 3], type: 'F32', data: () => values(15, 1) },
  { name: 'b.weight', dims: [7], type: 'F16', data: () => Float32Array.from([0, 1, -2, 0.5, 65504, 1e-7, -0.25]) },
  { name: 'c.weight', dims: [2, 2, 2], type: 'F32', data: () => values(8, 2) },
];

describe('GGUF writer and reader', () => {
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'gguf-spec-'));
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('round-trips every metadata type and tensor infos', () => {
    const file = encodeGguf(allTypes, tensors());
    const parsed = readGguf(file);
    expect(parsed.version).toBe(3);
    expect(parsed.alignment).toBe(32);
    expect(parsed.metadata).toEqual(allTypes);
    expect(Object.keys(parsed.metadata)).toEqual(Object.keys(allTypes));
    expect(parsed.tensors).toEqual([
      { name: 'a.weight', dims: [5, 3], type: 0, offset: 0, byteLength: 60 },
      { name: 'b.weight', dims: [7], type: 1, offset: 64, byteLength: 14 },
      { name: 'c.weight', dims: [2, 2, 2], type: 0, offset: 96, byteLength: 32 },
    ]);
    expect(parsed.dataOffset % 32).toBe(0);
    expect(file.length).toBe(parsed.dataOffset + 128);
  });

  it('writes the fixed header fields little-endian', () => {
    const file = encodeGguf({ 'general.architecture': gguf.str('llama') }, tensors());
    expect(file.subarray(0, 4).toString('latin1')).toBe('GGUF');
    expect(file.readUInt32LE(4)).toBe(3);
    expect(file.readBigUInt64LE(8)).toBe(3n);
    expect(file.readBigUInt64LE(16)).toBe(1n);
    // first key: u64 length, bytes, u32 type 8 (string)
    expect(file.readBigUInt64LE(24)).toBe(20n);
    expect(file.subarray(32, 52).toString()).toBe('general.architecture');
    expect(file.readUInt32LE(52)).toBe(8);
  });

  it('round-trips F32 exactly and F16 with half rounding', () => {
    const file = encodeGguf(allTypes, tensors());
    const parsed = readGguf(file);
    expect(readGgufTensor(file, parsed, 'a.weight')).toEqual(values(15, 1));
    expect(readGgufTensor(file, parsed, 'c.weight')).toEqual(values(8, 2));
    const half = readGgufTensor(file, parsed, 'b.weight');
    expect(Array.from(half.subarray(0, 5))).toEqual([0, 1, -2, 0.5, 65504]);
    expect(half[5]).toBe(2 * 2 ** -24); // nearest subnormal half
    expect(half[6]).toBe(-0.25);
  });

  it('pads tensor data with zeros to general.alignment', () => {
    const metadata = { 'general.alignment': gguf.u32(64), 'general.architecture': gguf.str('llama') };
    const file = encodeGguf(metadata, tensors());
    const parsed = readGguf(file);
    expect(parsed.alignment).toBe(64);
    expect(parsed.dataOffset % 64).toBe(0);
    expect(parsed.tensors.map((t) => t.offset)).toEqual([0, 64, 128]);
    expect(file.length).toBe(parsed.dataOffset + 192);
    const padding = file.subarray(parsed.dataOffset + 60, parsed.dataOffset + 64);
    expect([...padding]).toEqual([0, 0, 0, 0]);
    expect(readGgufTensor(file, parsed, 'c.weight')).toEqual(values(8, 2));
  });

  /** Writes `specs` with GgufFileWriter, producing the tensors in `order` (indexes into specs). */
  async function writeInOrder(path: string, metadata: GgufMetadata, specs: GgufTensorSpec[], order = specs.map((_, i) => i)) {
    const writer = await GgufFileWriter.create(path, metadata, specs);
    try {
      for (const i of order) await writer.write(specs[i].name, (values) => values.set(specs[i].data()));
      return await writer.finish();
    } finally {
      await writer.close();
    }
  }

  it.each([[[0, 1, 2]], [[2, 0, 1]], [[1, 2, 0]]])('writes tensors produced in the order %j to a file byte-identical to the in-memory encoding', async (order) => {
    const path = join(dir, `streamed-${order.join('')}.gguf`);
    const size = await writeInOrder(path, allTypes, tensors(), order);
    const written = await readFile(path);
    expect(size).toBe(written.length);
    expect(written.equals(encodeGguf(allTypes, tensors()))).toBe(true);
  });

  it('writes tensors given as their stored bytes in pieces, among tensors given as values, byte-identically', async () => {
    const path = join(dir, 'pieces.gguf');
    const specs = tensors();
    const reference = encodeGguf(allTypes, specs);
    const parsed = readGguf(reference);
    /** The tensor's bytes as the reference file stores them, cut into pieces of `size` bytes (the last one shorter). */
    const piecesOf = (name: string, size: number) => {
      const { offset, byteLength } = parsed.tensors.find((t) => t.name === name)!;
      const bytes = reference.subarray(parsed.dataOffset + offset, parsed.dataOffset + offset + byteLength!);
      return Array.from({ length: Math.ceil(bytes.length / size) }, (_, i) => Buffer.from(bytes.subarray(i * size, (i + 1) * size)));
    };
    const writer = await GgufFileWriter.create(path, allTypes, specs);
    try {
      // a.weight is 60 bytes, so its write is padded.
      await writer.writePieces('c.weight', piecesOf('c.weight', 32));
      await writer.writePieces('a.weight', piecesOf('a.weight', 7));
      await expect(writer.writePieces('b.weight', piecesOf('b.weight', 4).slice(1))).rejects.toThrow('tensor b.weight has 14 bytes, not 10');
      await expect(writer.writePieces('a.weight', piecesOf('a.weight', 60))).rejects.toThrow('tensor a.weight written twice');
      await expect(writer.write('c.weight', (out) => out.set(specs[2].data()))).rejects.toThrow('tensor c.weight written twice');
      await writer.write('b.weight', (out) => out.set(specs[1].data()));
      expect(await writer.finish()).toBe(reference.length);
    } finally {
      await writer.close();
    }
    expect((await readFile(path)).equals(reference)).toBe(true);
  });

  it('refuses a tensor not in the header or written twice, and fails to finish while one is missing', async () => {
    const writer = await GgufFileWriter.create(join(dir, 'partial.gguf'), allTypes, tensors());
    try {
      const [a] = tensors();
      const fill = (values: Float32Array) => values.set(a.data());
      await writer.write(a.name, fill);
      await expect(writer.write(a.name, fill)).rejects.toThrow('tensor a.weight written twice');
      await expect(writer.write('z.weight', fill)).rejects.toThrow('tensor z.weight is not in the file');
      // A fill that fails writes nothing: the tensor can still be written.
      await expect(writer.write('c.weight', fill)).rejects.toThrow(RangeError);
      await expect(writer.finish()).rejects.toThrow('tensors never written: b.weight, c.weight');
    } finally {
      await writer.close();
    }
  });

  it('reuses a bounded number of buffers, handing each tensor an array of exactly its size', async () => {
    // 16 tensors of 2 MiB: the writer may hold 8 of them (16 MiB) at once.
    const big = Array.from({ length: 16 }, (_, i): GgufTensorSpec => ({ name: `t${i}`, dims: [512 * 1024], type: 'F32', data: () => values(512 * 1024, i) }));
    const path = join(dir, 'many.gguf');
    const writer = await GgufFileWriter.create(path, {}, big);
    const arrays = new Set<ArrayBufferLike>();
    try {
      for (const t of big) {
        await writer.write(t.name, (out) => {
          expect(out.length).toBe(512 * 1024);
          arrays.add(out.buffer);
          out.set(t.data());
        });
      }
      await writer.finish();
    } finally {
      await writer.close();
    }
    expect(arrays.size).toBeLessThanOrEqual(8);
    expect((await readFile(path)).equals(encodeGguf({}, big))).toBe(true);
  });

  it('is read identically by node-llama-cpp’s own GGUF parser', async () => {
    const path = join(dir, 'cross.gguf');
    await writeInOrder(path, allTypes, tensors());
    const info = await readGgufFileInfo(path, { logWarnings: false });
    expect(info.version).toBe(3);
    expect(Number(info.tensorCount)).toBe(3);
    const test = (info.metadata as unknown as { test: Record<string, unknown> }).test;
    expect(test.u32).toBe(4294967295);
    expect(test.i8).toBe(-128);
    expect(test.string).toBe('héllo ▁wörld 🙂');
    expect(test.u64).toBe(2n ** 64n - 1n);
    expect(test.f64).toBe(Math.PI);
    expect(test.strings).toEqual(['<unk>', '', '▁the']);
    expect(test.i32s).toEqual([1, -2, 3]);
    expect(info.tensorInfo?.map((t) => [t.name, t.dimensions.map(Number), t.ggmlType, Number(t.offset)])).toEqual([
      ['a.weight', [5, 3], 0, 0],
      ['b.weight', [7], 1, 64],
      ['c.weight', [2, 2, 2], 0, 96],
    ]);
  });

  describe('writer rejects', () => {
    it('a non-u32 or non-power-of-two alignment', () => {
      expect(() => encodeGguf({ 'general.alignment': gguf.i32(32) }, [])).toThrow('u32');
      expect(() => encodeGguf({ 'general.alignment': gguf.u32(48) }, [])).toThrow('power of two');
    });

    it('duplicate tensor names, bad dims and data of the wrong length', () => {
      const t = tensors()[0];
      expect(() => encodeGguf({}, [t, t])).toThrow('duplicate tensor name');
      expect(() => encodeGguf({}, [{ ...t, dims: [] }])).toThrow('1-4 dims');
      expect(() => encodeGguf({}, [{ ...t, name: 'x'.repeat(64) }])).toThrow('too long');
      expect(() => encodeGguf({}, [{ ...t, dims: [4, 4] }])).toThrow(GgufError);
    });
  });

  describe('reader rejects', () => {
    const good = () => encodeGguf(allTypes, tensors());

    it('a bad magic or version', () => {
      const badMagic = good();
      badMagic.write('GGML', 0, 'latin1');
      expect(() => readGguf(badMagic)).toThrow('bad magic');
      const v2 = good();
      v2.writeUInt32LE(2, 4);
      expect(() => readGguf(v2)).toThrow('version 2');
    });

    it('a truncated header or tensor data', () => {
      const file = good();
      expect(() => readGguf(file.subarray(0, 40))).toThrow('unexpected end of file');
      expect(() => readGguf(file.subarray(0, file.length - 1))).toThrow('past end of file');
    });

    it('an unknown value type and nested arrays', () => {
      const file = encodeGguf({ k: gguf.u32(1) }, []);
      // key "k": 8-byte length + 1 byte, then the u32 type at offset 24 + 9
      const unknown = Buffer.from(file);
      unknown.writeUInt32LE(13, 33);
      expect(() => readGguf(unknown)).toThrow('unknown metadata value type 13');
      const nested = encodeGguf({ k: gguf.i32s([]) }, []);
      nested.writeUInt32LE(9, 37);
      expect(() => readGguf(nested)).toThrow('nested arrays');
    });

    it('tensor offsets that do not follow each other', () => {
      const file = good();
      const parsed = readGguf(file);
      // the last 8 bytes before the padding of the infos are c.weight's offset
      const infosEnd = file.indexOf(Buffer.from('c.weight')) + 'c.weight'.length + 4 + 3 * 8 + 4;
      file.writeBigUInt64LE(BigInt(parsed.tensors[2].offset + 32), infosEnd);
      expect(() => readGguf(file)).toThrow('expected 96');
    });
  });
});
