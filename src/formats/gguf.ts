/**
 * GGUF v3 (ggml `docs/gguf.md`): a writer for tiny base models and LoRA adapters and a reader for validation.
 * The reader enforces the same layout rules as ggml's `gguf_init_from_file` (contiguous, aligned tensor data),
 * so a file it accepts is laid out the way llama.cpp expects.
 */
import { open } from 'node:fs/promises';
import { encodeTensor, halfToFloat } from './safetensors.js';

const GGUF_VERSION = 3;
const GGUF_DEFAULT_ALIGNMENT = 32;
const GGUF_MAGIC = 'GGUF';
/** ggml's GGML_MAX_NAME is 64 bytes including the terminating NUL. */
const MAX_TENSOR_NAME_LENGTH = 63;
const MAX_DIMS = 4;

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

const VALUE_TYPE_CODE: Record<GgufScalarType | 'array', number> = {
  u8: 0, i8: 1, u16: 2, i16: 3, u32: 4, i32: 5, f32: 6, bool: 7, string: 8, array: 9, u64: 10, i64: 11, f64: 12,
};
const VALUE_TYPE_BY_CODE = new Map<number, GgufScalarType | 'array'>(
  Object.entries(VALUE_TYPE_CODE).map(([name, code]) => [code, name as GgufScalarType | 'array']),
);
const NUMBER_SIZE: Record<GgufNumberType | GgufBigIntType | 'bool', number> = {
  u8: 1, i8: 1, bool: 1, u16: 2, i16: 2, u32: 4, i32: 4, f32: 4, f64: 8, u64: 8, i64: 8,
};

/** Tensor element types this module can write and decode. */
export type GgmlType = 'F32' | 'F16';
const GGML_TYPE_CODE: Record<GgmlType, number> = { F32: 0, F16: 1 };
/** Bytes per element of the non-quantized ggml types, by type code (BF16 = 30 is only measured, not decoded). */
const GGML_TYPE_SIZE = new Map<number, number>([[0, 4], [1, 2], [30, 2]]);

export interface GgufTensorSpec {
  name: string;
  /** ggml order: innermost (contiguous) dimension first, i.e. the reverse of the PyTorch shape. */
  dims: number[];
  type: GgmlType;
  /** Called once, when the tensor is written, so that only one tensor's data has to be in memory at a time. */
  data: () => Float32Array;
}

export interface GgufTensorInfo {
  name: string;
  dims: number[];
  /** ggml type code (0 F32, 1 F16, 30 BF16, others quantized). */
  type: number;
  /** Byte offset relative to the start of the data section. */
  offset: number;
  /** Data size in bytes, or null for types whose size this reader does not know (quantized). */
  byteLength: number | null;
}

export interface GgufFile {
  version: number;
  alignment: number;
  metadata: GgufMetadata;
  tensors: GgufTensorInfo[];
  /** Absolute byte offset of the data section. */
  dataOffset: number;
}

export class GgufError extends Error {
  override name = 'GgufError';
}

const alignUp = (n: number, alignment: number) => Math.ceil(n / alignment) * alignment;
const elementCount = (dims: number[]) => dims.reduce((a, b) => a * b, 1);

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

function resolveAlignment(metadata: GgufMetadata): number {
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

const UTF8 = new TextDecoder('utf-8', { fatal: true });

/** Bounds-checked little-endian reader over the file bytes. */
class ByteReader {
  private readonly view: DataView;
  pos = 0;

  constructor(private readonly bytes: Uint8Array) {
    this.view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  }

  private take(n: number): number {
    if (n < 0 || this.pos + n > this.bytes.length) throw new GgufError(`unexpected end of file at byte ${this.pos}`);
    const at = this.pos;
    this.pos += n;
    return at;
  }

  number(type: GgufNumberType | 'bool'): number | boolean {
    const at = this.take(NUMBER_SIZE[type]);
    switch (type) {
      case 'u8': return this.view.getUint8(at);
      case 'i8': return this.view.getInt8(at);
      case 'bool': return this.view.getUint8(at) !== 0;
      case 'u16': return this.view.getUint16(at, true);
      case 'i16': return this.view.getInt16(at, true);
      case 'u32': return this.view.getUint32(at, true);
      case 'i32': return this.view.getInt32(at, true);
      case 'f32': return this.view.getFloat32(at, true);
      case 'f64': return this.view.getFloat64(at, true);
    }
  }

  bigint(type: GgufBigIntType): bigint {
    const at = this.take(8);
    return type === 'u64' ? this.view.getBigUint64(at, true) : this.view.getBigInt64(at, true);
  }

  u32(): number {
    return this.number('u32') as number;
  }

  /** A u64 count, size or offset; larger than any file this reader can hold means a corrupt file. */
  size(): number {
    const v = this.bigint('u64');
    if (v > BigInt(Number.MAX_SAFE_INTEGER)) throw new GgufError(`value ${v} at byte ${this.pos - 8} is too large`);
    return Number(v);
  }

  string(): string {
    const n = this.size();
    const at = this.take(n);
    try {
      return UTF8.decode(this.bytes.subarray(at, at + n));
    } catch {
      throw new GgufError(`invalid UTF-8 string at byte ${at}`);
    }
  }

  scalar(type: GgufScalarType): number | bigint | boolean | string {
    if (type === 'string') return this.string();
    if (type === 'u64' || type === 'i64') return this.bigint(type);
    return this.number(type);
  }
}

function valueType(code: number): GgufScalarType | 'array' {
  const type = VALUE_TYPE_BY_CODE.get(code);
  if (type === undefined) throw new GgufError(`unknown metadata value type ${code}`);
  return type;
}

/** Parses the header, metadata and tensor infos and checks the tensor data layout against the file size. */
export function readGguf(bytes: Uint8Array): GgufFile {
  const r = new ByteReader(bytes);
  if (bytes.length < 4 || Buffer.from(bytes.subarray(0, 4)).toString('latin1') !== GGUF_MAGIC) {
    throw new GgufError('not a GGUF file (bad magic)');
  }
  r.pos = 4;
  const version = r.u32();
  if (version !== GGUF_VERSION) throw new GgufError(`unsupported GGUF version ${version}`);
  const tensorCount = r.size();
  const kvCount = r.size();

  const entries = new Map<string, GgufValue>();
  for (let i = 0; i < kvCount; i++) {
    const key = r.string();
    if (entries.has(key)) throw new GgufError(`duplicate metadata key ${key}`);
    const type = valueType(r.u32());
    if (type === 'array') {
      const itemType = valueType(r.u32());
      if (itemType === 'array') throw new GgufError(`metadata key ${key}: nested arrays are not supported`);
      const n = r.size();
      const value: unknown[] = [];
      for (let j = 0; j < n; j++) value.push(r.scalar(itemType));
      entries.set(key, { type, itemType, value } as GgufArray);
    } else {
      entries.set(key, { type, value: r.scalar(type) } as GgufScalar);
    }
  }
  // fromEntries defines own properties, so a "__proto__" key stays an ordinary key.
  const metadata: GgufMetadata = Object.fromEntries(entries);
  const alignment = resolveAlignment(metadata);

  const tensors: GgufTensorInfo[] = [];
  const names = new Set<string>();
  for (let i = 0; i < tensorCount; i++) {
    const name = r.string();
    if (names.has(name)) throw new GgufError(`duplicate tensor name ${name}`);
    names.add(name);
    const nDims = r.u32();
    if (nDims > MAX_DIMS) throw new GgufError(`tensor ${name} has ${nDims} dims`);
    const dims: number[] = [];
    for (let j = 0; j < nDims; j++) dims.push(r.size());
    const type = r.u32();
    const offset = r.size();
    const typeSize = GGML_TYPE_SIZE.get(type);
    tensors.push({ name, dims, type, offset, byteLength: typeSize === undefined ? null : elementCount(dims) * typeSize });
  }
  const dataOffset = tensorCount > 0 ? alignUp(r.pos, alignment) : r.pos;

  // ggml requires each tensor to start where the previous one's padded data ends.
  let expected = 0;
  for (const t of tensors) {
    if (t.byteLength === null) break;
    if (t.offset !== expected) throw new GgufError(`tensor ${t.name} has offset ${t.offset}, expected ${expected}`);
    if (dataOffset + t.offset + t.byteLength > bytes.length) throw new GgufError(`tensor ${t.name} data is past end of file`);
    expected += alignUp(t.byteLength, alignment);
  }
  return { version, alignment, metadata, tensors, dataOffset };
}

/** Decodes an F32 or F16 tensor of a parsed GGUF file. */
export function readGgufTensor(bytes: Uint8Array, file: GgufFile, name: string): Float32Array {
  const info = file.tensors.find((t) => t.name === name);
  if (!info) throw new GgufError(`no tensor ${name}`);
  const n = elementCount(info.dims);
  const view = new DataView(bytes.buffer, bytes.byteOffset + file.dataOffset + info.offset);
  const out = new Float32Array(n);
  if (info.type === GGML_TYPE_CODE.F32) {
    for (let i = 0; i < n; i++) out[i] = view.getFloat32(i * 4, true);
  } else if (info.type === GGML_TYPE_CODE.F16) {
    for (let i = 0; i < n; i++) out[i] = halfToFloat(view.getUint16(i * 2, true));
  } else {
    throw new GgufError(`tensor ${name} has ggml type ${info.type}; only F32 and F16 are decoded`);
  }
  return out;
}
