/**
 * GGUF reader for tests: enforces the same layout rules as ggml's `gguf_init_from_file` (contiguous, aligned
 * tensor data), so a file it accepts is laid out the way llama.cpp expects.
 */
import { halfToFloat } from '../../src/formats/float16.js';
import {
  alignUp,
  elementCount,
  GGML_TYPE_CODE,
  GGML_TYPE_SIZE,
  GGUF_MAGIC,
  GGUF_VERSION,
  GgufError,
  MAX_DIMS,
  NUMBER_SIZE,
  resolveAlignment,
  VALUE_TYPE_CODE,
  type GgufArray,
  type GgufBigIntType,
  type GgufMetadata,
  type GgufNumberType,
  type GgufScalar,
  type GgufScalarType,
  type GgufValue,
} from '../../src/formats/gguf-writer.js';

const VALUE_TYPE_BY_CODE = new Map<number, GgufScalarType | 'array'>(
  Object.entries(VALUE_TYPE_CODE).map(([name, code]) => [code, name as GgufScalarType | 'array']),
);

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
