/**
 * GGUF v3 (ggml `docs/gguf.md`) writer, for converted LoRA adapters and the tiny demo base models. The layout
 * constants are exported for readers that check files against the same rules.
 */
import { open } from 'node:fs/promises';
import { encodeTensor } from './float16.js';

export const GGUF_VERSION = 3;
const GGUF_DEFAULT_ALIGNMENT = 32;
export const GGUF_MAGIC = 'GGUF';
/** ggml's GGML_MAX_NAME is 64 bytes including the terminating NUL. */
const MAX_TENSOR_NAME_LENGTH = 63;
export const MAX_DIMS = 4;

export type GgufNumberType = 'u8' | 'i8' | 'u16' | 'i16' | 'u32' | 'i32' | 'f32' | 'f64';
export type GgufBigIntType = 'u64' | 'i64';
export type GgufScalarType = GgufNumberType | GgufBigIntType | 'bool' | 'string';

export type GgufScalar =
  | { type: GgufNumberType; value: number }
  | { type: GgufBigIntType; value: bigint }
  | { type: 'bool'; value: boolean }
  | { type: 'string'; value: string };

/** Arrays of arrays are valid GGUF but llama.cpp rejects them, so they are not modelled. */
export type GgufArray =
  | { type: 'array'; itemType: GgufNumberType; value: number[] }
  | { type: 'array'; itemType: GgufBigIntType; value: bigint[] }
  | { type: 'array'; itemType: 'bool'; value: boolean[] }
  | { type: 'array'; itemType: 'string'; value: string[] };

export type GgufValue = GgufScalar | GgufArray;
/** Keys are written in insertion order. */
export type GgufMetadata = Record<string, GgufValue>;

/** Constructors for the metadata values the project writes. */
export const gguf = {
  u32: (value: number): GgufValue => ({ type: 'u32', value }),
  i32: (value: number): GgufValue => ({ type: 'i32', value }),
  f32: (value: number): GgufValue => ({ type: 'f32', value }),
  u64: (value: bigint): GgufValue => ({ type: 'u64', value }),
  bool: (value: boolean): GgufValue => ({ type: 'bool', value }),
  str: (value: string): GgufValue => ({ type: 'string', value }),
  strings: (value: string[]): GgufValue => ({ type: 'array', itemType: 'string', value }),
  f32s: (value: number[]): GgufValue => ({ type: 'array', itemType: 'f32', value }),
  i32s: (value: number[]): GgufValue => ({ type: 'array', itemType: 'i32', value }),
};

export const VALUE_TYPE_CODE: Record<GgufScalarType | 'array', number> = {
  u8: 0, i8: 1, u16: 2, i16: 3, u32: 4, i32: 5, f32: 6, bool: 7, string: 8, array: 9, u64: 10, i64: 11, f64: 12,
};
export const NUMBER_SIZE: Record<GgufNumberType | GgufBigIntType | 'bool', number> = {
  u8: 1, i8: 1, bool: 1, u16: 2, i16: 2, u32: 4, i32: 4, f32: 4, f64: 8, u64: 8, i64: 8,
};

/** Tensor element types this module can write and decode. */
export type GgmlType = 'F32' | 'F16';
export const GGML_TYPE_CODE: Record<GgmlType, number> = { F32: 0, F16: 1 };
/** Bytes per element of the non-quantized ggml types, by type code (BF16 = 30 is only measured, not decoded). */
export const GGML_TYPE_SIZE = new Map<number, number>([[0, 4], [1, 2], [30, 2]]);

export interface GgufTensorSpec {
  name: string;
  /** ggml order: innermost (contiguous) dimension first, i.e. the reverse of the PyTorch shape. */
  dims: number[];
  type: GgmlType;
  /** Called once, when the tensor is written, so that only one tensor's data has to be in memory at a time. */
  data: () => Float32Array;
}

export class GgufError extends Error {
  override name = 'GgufError';
}

export const alignUp = (n: number, alignment: number) => Math.ceil(n / alignment) * alignment;
export const elementCount = (dims: number[]) => dims.reduce((a, b) => a * b, 1);

/** Little-endian byte sink for the header. */
class ByteWriter {
  private readonly chunks: Buffer[] = [];
  length = 0;

  private push(chunk: Buffer) {
    this.chunks.push(chunk);
    this.length += chunk.length;
  }

  bytes(b: Uint8Array) {
    this.push(Buffer.from(b));
  }

  number(type: GgufNumberType | GgufBigIntType | 'bool', value: number | bigint | boolean) {
    const b = Buffer.alloc(NUMBER_SIZE[type]);
    switch (type) {
      case 'u8': b.writeUInt8(value as number); break;
      case 'i8': b.writeInt8(value as number); break;
      case 'bool': b.writeUInt8(value ? 1 : 0); break;
      case 'u16': b.writeUInt16LE(value as number); break;
      case 'i16': b.writeInt16LE(value as number); break;
      case 'u32': b.writeUInt32LE(value as number); break;
      case 'i32': b.writeInt32LE(value as number); break;
      case 'f32': b.writeFloatLE(value as number); break;
      case 'f64': b.writeDoubleLE(value as number); break;
      case 'u64': b.writeBigUInt64LE(value as bigint); break;
      case 'i64': b.writeBigInt64LE(value as bigint); break;
    }
    this.push(b);
  }

  u32(value: number) {
    this.number('u32', value);
  }

  u64(value: number) {
    this.number('u64', BigInt(value));
  }

  string(value: string) {
    const utf8 = Buffer.from(value, 'utf8');
    this.u64(utf8.length);
    this.push(utf8);
  }

  scalar(type: GgufScalarType, value: number | bigint | boolean | string) {
    if (type === 'string') this.string(value as string);
    else this.number(type, value as number | bigint | boolean);
  }

  toBuffer(): Buffer {
    return Buffer.concat(this.chunks, this.length);
  }
}

export function resolveAlignment(metadata: GgufMetadata): number {
  const entry = metadata['general.alignment'];
  if (entry === undefined) return GGUF_DEFAULT_ALIGNMENT;
  if (entry.type !== 'u32') throw new GgufError('general.alignment must be a u32');
  const a = entry.value;
  if (a <= 0 || (a & (a - 1)) !== 0) throw new GgufError(`general.alignment ${a} is not a power of two`);
  return a;
}

function tensorByteLength(spec: Pick<GgufTensorSpec, 'dims' | 'type'>): number {
  return elementCount(spec.dims) * GGML_TYPE_SIZE.get(GGML_TYPE_CODE[spec.type])!;
}

/** Header, metadata, tensor infos and the padding up to the data section. */
function encodeHeader(metadata: GgufMetadata, tensors: GgufTensorSpec[]): { header: Buffer; alignment: number } {
  const alignment = resolveAlignment(metadata);
  const w = new ByteWriter();
  w.bytes(Buffer.from(GGUF_MAGIC, 'ascii'));
  w.u32(GGUF_VERSION);
  w.u64(tensors.length);
  w.u64(Object.keys(metadata).length);
  for (const [key, entry] of Object.entries(metadata)) {
    w.string(key);
    w.u32(VALUE_TYPE_CODE[entry.type]);
    if (entry.type === 'array') {
      w.u32(VALUE_TYPE_CODE[entry.itemType]);
      w.u64(entry.value.length);
      for (const item of entry.value) w.scalar(entry.itemType, item);
    } else {
      w.scalar(entry.type, entry.value);
    }
  }
  const names = new Set<string>();
  let offset = 0;
  for (const t of tensors) {
    if (names.has(t.name)) throw new GgufError(`duplicate tensor name ${t.name}`);
    if (Buffer.byteLength(t.name) > MAX_TENSOR_NAME_LENGTH) throw new GgufError(`tensor name too long: ${t.name}`);
    if (t.dims.length === 0 || t.dims.length > MAX_DIMS) throw new GgufError(`tensor ${t.name} must have 1-4 dims`);
    names.add(t.name);
    w.string(t.name);
    w.u32(t.dims.length);
    for (const d of t.dims) w.u64(d);
    w.u32(GGML_TYPE_CODE[t.type]);
    w.u64(offset);
    offset += alignUp(tensorByteLength(t), alignment);
  }
  w.bytes(new Uint8Array(alignUp(w.length, alignment) - w.length));
  return { header: w.toBuffer(), alignment };
}

/** Tensor bytes and the zero padding that aligns the next tensor. */
function encodeTensorData(t: GgufTensorSpec, alignment: number): [Uint8Array, Uint8Array] {
  const values = t.data();
  if (values.length !== elementCount(t.dims)) {
    throw new GgufError(`tensor ${t.name}: ${values.length} values for dims [${t.dims}]`);
  }
  const data = encodeTensor(values, t.type);
  return [data, new Uint8Array(alignUp(data.length, alignment) - data.length)];
}

/** In-memory GGUF, for files small enough to hold twice (tiny test models). */
export function encodeGguf(metadata: GgufMetadata, tensors: GgufTensorSpec[]): Buffer {
  const { header, alignment } = encodeHeader(metadata, tensors);
  return Buffer.concat([header, ...tensors.flatMap((t) => encodeTensorData(t, alignment))]);
}

/**
 * Streams a GGUF file to `path`, producing and writing one tensor at a time (peak memory ≈ the largest tensor).
 * Returns the file size.
 */
export async function writeGgufFile(path: string, metadata: GgufMetadata, tensors: GgufTensorSpec[]): Promise<number> {
  const { header, alignment } = encodeHeader(metadata, tensors);
  const file = await open(path, 'w');
  try {
    let size = header.length;
    await file.write(header);
    for (const t of tensors) {
      for (const chunk of encodeTensorData(t, alignment)) {
        await file.write(chunk);
        size += chunk.length;
      }
    }
    return size;
  } finally {
    await file.close();
  }
}
