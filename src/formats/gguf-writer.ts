/**
 * GGUF v3 (ggml `docs/gguf.md`) writer, for converted LoRA adapters and the tiny demo base models. The layout
 * constants are exported for readers that check files against the same rules.
 */
import { open, type FileHandle } from 'node:fs/promises';
import { encodeTensor, LITTLE_ENDIAN } from './float16.js';

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

export interface GgufTensorInfo {
  name: string;
  /** ggml order: innermost (contiguous) dimension first, i.e. the reverse of the PyTorch shape. */
  dims: number[];
  type: GgmlType;
}

export interface GgufTensorSpec extends GgufTensorInfo {
  /** Called once, when the tensor is encoded. */
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

function tensorByteLength(spec: GgufTensorInfo): number {
  return elementCount(spec.dims) * GGML_TYPE_SIZE.get(GGML_TYPE_CODE[spec.type])!;
}

/** Where everything goes in a GGUF file, known before any tensor data. */
interface GgufLayout {
  /** Header, metadata, tensor infos and the padding up to the data section. */
  header: Buffer;
  alignment: number;
  /** File position of each tensor's data, in the order given. */
  positions: number[];
  /** The whole file's size. */
  size: number;
}

function layoutGguf(metadata: GgufMetadata, tensors: GgufTensorInfo[]): GgufLayout {
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
  const offsets: number[] = [];
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
    offsets.push(offset);
    offset += alignUp(tensorByteLength(t), alignment);
  }
  w.bytes(new Uint8Array(alignUp(w.length, alignment) - w.length));
  const header = w.toBuffer();
  return { header, alignment, positions: offsets.map((o) => header.length + o), size: header.length + offset };
}

/** Tensor bytes and the zero padding that aligns the next tensor. */
function encodeTensorData(t: GgufTensorInfo, values: Float32Array, alignment: number): [Uint8Array, Uint8Array] {
  if (values.length !== elementCount(t.dims)) {
    throw new GgufError(`tensor ${t.name}: ${values.length} values for dims [${t.dims}]`);
  }
  const data = encodeTensor(values, t.type);
  return [data, new Uint8Array(alignUp(data.length, alignment) - data.length)];
}

/** In-memory GGUF, for files small enough to hold twice (tiny test models). */
export function encodeGguf(metadata: GgufMetadata, tensors: GgufTensorSpec[]): Buffer {
  const { header, alignment } = layoutGguf(metadata, tensors);
  return Buffer.concat([header, ...tensors.flatMap((t) => encodeTensorData(t, t.data(), alignment))]);
}

/** Bytes of tensor data being written at once: enough to keep the disk busy while the next tensors are produced. */
const MAX_BYTES_IN_FLIGHT = 16 * 1024 * 1024;

/**
 * Writes a GGUF file whose tensors are produced in any order (e.g. in the order a source file holds them): the
 * header fixes every tensor's position, so each is written in place as soon as it is ready. A tensor's values are
 * produced straight into one of the writer's buffers (for F32 tensors; others are encoded into it), which is reused
 * once written, or its bytes are written from where the caller has them (`writePieces`). Writes run while the next
 * tensors are produced, with at most MAX_BYTES_IN_FLIGHT (or two tensors) in buffers, and as many bytes (or one
 * tensor) of pieces being written.
 */
export class GgufFileWriter {
  private readonly pending = new Set<Promise<void>>();
  private readonly written = new Set<string>();
  private readonly buffers: Uint8Array[] = [];
  private buffersMade = 0;
  private readonly maxBuffers: number;
  private readonly bufferBytes: number;
  private readonly waitingForBuffer: (() => void)[] = [];
  private piecesInFlight = 0;
  private readonly waitingForPieces: (() => void)[] = [];
  private failure: { error: unknown } | undefined;

  private constructor(
    private readonly file: FileHandle,
    private readonly layout: GgufLayout,
    private readonly tensors: Map<string, { info: GgufTensorInfo; position: number }>,
  ) {
    this.bufferBytes = Math.max(0, ...[...tensors.values()].map(({ info }) => alignUp(tensorByteLength(info), layout.alignment)));
    this.maxBuffers = Math.max(2, Math.floor(MAX_BYTES_IN_FLIGHT / Math.max(1, this.bufferBytes)));
  }

  /** Creates (or truncates) `path` and writes the header. */
  static async create(path: string, metadata: GgufMetadata, tensors: GgufTensorInfo[]): Promise<GgufFileWriter> {
    const layout = layoutGguf(metadata, tensors);
    const byName = new Map(tensors.map((info, i) => [info.name, { info, position: layout.positions[i] }]));
    const writer = new GgufFileWriter(await open(path, 'w'), layout, byName);
    writer.start([layout.header], 0);
    return writer;
  }

  /**
   * Writes the tensor `name`: `fill` sets every value of the array it is given (synchronously; the array is not
   * cleared first). Resolves once the write is under way, after waiting for a free buffer while too much is being
   * written.
   */
  async write(name: string, fill: (values: Float32Array) => void): Promise<void> {
    const { info, position } = this.claim(name);
    const buffer = await this.freeBuffer();
    try {
      this.throwIfFailed();
      const count = elementCount(info.dims);
      const length = tensorByteLength(info);
      if (info.type === 'F32' && LITTLE_ENDIAN) {
        fill(new Float32Array(buffer.buffer, buffer.byteOffset, count));
      } else {
        const values = new Float32Array(count);
        fill(values);
        buffer.set(encodeTensor(values, info.type));
      }
      const padded = alignUp(length, this.layout.alignment);
      buffer.fill(0, length, padded);
      this.start([buffer.subarray(0, padded)], position, () => this.releaseBuffer(buffer));
    } catch (error) {
      this.written.delete(name);
      this.releaseBuffer(buffer);
      throw error;
    }
  }

  /**
   * Writes the tensor `name` from its bytes as stored (its ggml type, little-endian), given in pieces that follow
   * each other (e.g. the chunks they arrived in, which then need no copying) and that must stay unchanged until
   * written. Resolves once the write is under way, after waiting while too many bytes are being written so.
   */
  async writePieces(name: string, pieces: Uint8Array[]): Promise<void> {
    const { info, position } = this.claim(name);
    const length = tensorByteLength(info);
    try {
      const given = pieces.reduce((n, piece) => n + piece.length, 0);
      if (given !== length) throw new GgufError(`tensor ${name} has ${length} bytes, not ${given}`);
      while (this.piecesInFlight > 0 && this.piecesInFlight + length > MAX_BYTES_IN_FLIGHT) {
        await new Promise<void>((resolve) => this.waitingForPieces.push(resolve));
      }
      this.throwIfFailed();
    } catch (error) {
      this.written.delete(name);
      throw error;
    }
    this.piecesInFlight += length;
    const padding = alignUp(length, this.layout.alignment) - length;
    this.start(padding > 0 ? [...pieces, new Uint8Array(padding)] : pieces, position, () => {
      this.piecesInFlight -= length;
      this.waitingForPieces.shift()?.();
    });
  }

  /** Waits for every write and checks that every tensor was written; returns the file size. */
  async finish(): Promise<number> {
    await Promise.all(this.pending);
    this.throwIfFailed();
    const missing = [...this.tensors.keys()].filter((name) => !this.written.has(name));
    if (missing.length > 0) throw new GgufError(`tensors never written: ${missing.join(', ')}`);
    return this.layout.size;
  }

  /** Closes the file once no write is under way (also after a failure). */
  async close(): Promise<void> {
    await Promise.all(this.pending);
    await this.file.close();
  }

  /** The tensor `name`, now counted as written (the caller undoes that if it fails before its write starts). */
  private claim(name: string): { info: GgufTensorInfo; position: number } {
    const tensor = this.tensors.get(name);
    if (tensor === undefined) throw new GgufError(`tensor ${name} is not in the file's header`);
    if (this.written.has(name)) throw new GgufError(`tensor ${name} written twice`);
    this.written.add(name);
    return tensor;
  }

  private async freeBuffer(): Promise<Uint8Array> {
    while (this.buffers.length === 0 && this.buffersMade >= this.maxBuffers) {
      await new Promise<void>((resolve) => this.waitingForBuffer.push(resolve));
    }
    if (this.buffers.length > 0) return this.buffers.pop()!;
    this.buffersMade++;
    // Not zeroed (every byte is written before use) and not pooled, so that it starts aligned for a Float32Array.
    return Buffer.allocUnsafeSlow(this.bufferBytes);
  }

  private releaseBuffer(buffer: Uint8Array): void {
    this.buffers.push(buffer);
    this.waitingForBuffer.shift()?.();
  }

  /** Starts writing `pieces` one after the other from `position`; `done`, if given, runs when that is over. */
  private start(pieces: Uint8Array[], position: number, done?: () => void): void {
    const write: Promise<void> = writeFully(this.file, pieces, position)
      .catch((error: unknown) => {
        this.failure ??= { error };
      })
      .finally(() => {
        this.pending.delete(write);
        done?.();
      });
    this.pending.add(write);
  }

  private throwIfFailed(): void {
    if (this.failure) throw this.failure.error;
  }
}

/** A positional write can be short (e.g. on a full disk); the rest is written until done or an error. */
async function writeFully(file: FileHandle, pieces: Uint8Array[], position: number): Promise<void> {
  let rest = pieces;
  while (rest.length > 0) {
    const { bytesWritten } = await file.writev(rest, position);
    position += bytesWritten;
    let skipped = bytesWritten;
    let i = 0;
    while (i < rest.length && skipped >= rest[i].length) skipped -= rest[i++].length;
    rest = i < rest.length ? [rest[i].subarray(skipped), ...rest.slice(i + 1)] : [];
  }
}
