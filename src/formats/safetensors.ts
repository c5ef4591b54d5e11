/**
 * safetensors (huggingface/safetensors `tensor.rs`): u64 little-endian header length N, N bytes of UTF-8 JSON,
 * then the data buffer. The reader applies every check the reference reader makes, so a file accepted here loads
 * in the reference implementations, and it only ever needs the first 8 + N bytes plus the file length.
 */
import { AdapterFormatError } from './format-error.js';
import { halfToFloat, LITTLE_ENDIAN } from './float16.js';

/** The reference reader's limit on the header length N. */
export const MAX_HEADER_LENGTH = 100_000_000;
/** serde_json's default recursion limit, which bounds how deeply the reference reader lets a header nest. */
const MAX_JSON_DEPTH = 128;
const U64_MAX = 2n ** 64n - 1n;

/**
 * Bits per element, in the order of the reference `Dtype` enum (increasing alignment), which the writer sorts by.
 * Sub-byte types follow the reference rule: a tensor's total bit count must be a whole number of bytes.
 */
export const DTYPE_BITS: Record<string, number> = {
  BOOL: 8,
  F4: 4,
  F6_E2M3: 6,
  F6_E3M2: 6,
  U8: 8,
  I8: 8,
  F8_E5M2: 8,
  F8_E4M3: 8,
  F8_E8M0: 8,
  I16: 16,
  U16: 16,
  F16: 16,
  BF16: 16,
  I32: 32,
  U32: 32,
  F32: 32,
  C64: 64,
  F64: 64,
  I64: 64,
  U64: 64,
};

export interface TensorInfo {
  name: string;
  dtype: string;
  shape: number[];
  /** Offsets into the data buffer (which starts at byte 8 + headerLength); `end` is exclusive. */
  begin: number;
  end: number;
}

export interface SafetensorsHeader {
  /** N, the JSON header's length in bytes. */
  headerLength: number;
  /** Bytes of tensor data, i.e. the last tensor's end. */
  dataLength: number;
  /** Sorted by begin. */
  tensors: TensorInfo[];
  metadata: Record<string, string>;
}

function fail(detail: string): never {
  throw new AdapterFormatError('adapter_model.safetensors', detail);
}

// ignoreBOM keeps a leading U+FEFF in the text, so JSON.parse rejects it as the reference reader does.
const UTF8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function isSize(value: unknown): value is number {
  return Number.isSafeInteger(value) && (value as number) >= 0;
}

export const formatShape = (shape: readonly number[]): string => `[${shape.join(', ')}]`;

/** Parses and validates the N header bytes that follow the 8-byte length. */
export function parseSafetensorsHeader(json: Uint8Array, headerLength: number): SafetensorsHeader {
  let text: string;
  try {
    text = UTF8.decode(json);
  } catch {
    fail('header is not valid UTF-8');
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (error) {
    fail(`header is not valid JSON (${(error as Error).message})`);
  }
  if (!isObject(parsed)) fail('header must be a JSON object');
  scanHeaderJson(text);

  let metadata: Record<string, string> = {};
  const tensors: TensorInfo[] = [];
  for (const [name, entry] of Object.entries(parsed)) {
    if (name === '__metadata__') metadata = parseMetadata(entry);
    else tensors.push(parseTensorEntry(name, entry));
  }
  tensors.sort((a, b) => a.begin - b.begin || a.end - b.end || (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));

  // Same order as the reference: per tensor (by begin), first the offsets must continue the tiling, then the size.
  let position = 0;
  tensors.forEach((tensor, i) => {
    if (tensor.begin !== position) {
      const previous = tensors[i - 1];
      if (previous === undefined) {
        fail(`data of the first tensor, ${tensor.name}, begins at byte ${tensor.begin} instead of 0`);
      }
      if (tensor.begin > position) {
        const between = `between ${previous.name} and ${tensor.name}`;
        fail(`gap in the data buffer: bytes ${position}-${tensor.begin} ${between} belong to no tensor`);
      }
      const span = (t: TensorInfo) => `${t.name} [${t.begin}, ${t.end})`;
      fail(`tensors ${span(previous)} and ${span(tensor)} overlap`);
    }
    position = tensor.end;
    checkTensorSize(tensor);
  });
  return { headerLength, dataLength: position, tensors, metadata };
}

function parseMetadata(value: unknown): Record<string, string> {
  // The reference reads `__metadata__` as Option<HashMap<String, String>>, so null means none.
  if (value === null) return {};
  if (!isObject(value)) fail('__metadata__ must be an object of strings');
  for (const [key, item] of Object.entries(value)) {
    if (typeof item !== 'string') fail(`__metadata__ value of ${JSON.stringify(key)} must be a string`);
  }
  return value as Record<string, string>;
}

function parseTensorEntry(name: string, entry: unknown): TensorInfo {
  if (!isObject(entry)) fail(`entry of tensor ${name} must be an object with dtype, shape and data_offsets`);
  const { dtype, shape, data_offsets: offsets } = entry;
  if (typeof dtype !== 'string') fail(`tensor ${name}: dtype must be a string`);
  if (!Object.hasOwn(DTYPE_BITS, dtype)) fail(`tensor ${name} has unknown dtype ${JSON.stringify(dtype)}`);
  if (!Array.isArray(shape) || !shape.every(isSize)) {
    fail(`tensor ${name}: shape must be an array of non-negative integers`);
  }
  if (!Array.isArray(offsets) || offsets.length !== 2 || !offsets.every(isSize)) {
    fail(`tensor ${name}: data_offsets must be [begin, end] of non-negative integers`);
  }
  const [begin, end] = offsets as [number, number];
  if (end < begin) fail(`tensor ${name}: data_offsets [${begin}, ${end}] end before they begin`);
  return { name, dtype, shape: shape as number[], begin, end };
}

/** end - begin must equal product(shape) * bits / 8, computed with the reference's u64 overflow checks. */
function checkTensorSize({ name, dtype, shape, begin, end }: TensorInfo): void {
  let elements = 1n;
  for (const dim of shape) {
    elements *= BigInt(dim);
    if (elements > U64_MAX) fail(`tensor ${name}: element count of shape ${formatShape(shape)} overflows`);
  }
  const bits = elements * BigInt(DTYPE_BITS[dtype]);
  if (bits > U64_MAX) fail(`tensor ${name}: byte size of ${dtype} ${formatShape(shape)} overflows`);
  if (bits % 8n !== 0n) fail(`tensor ${name}: ${dtype} ${formatShape(shape)} does not fill a whole number of bytes`);
  if (BigInt(end - begin) !== bits / 8n) {
    const held = `data_offsets [${begin}, ${end}] hold ${end - begin}`;
    fail(`tensor ${name}: ${dtype} ${formatShape(shape)} needs ${bits / 8n} bytes, but ${held}`);
  }
}

/**
 * JSON.parse silently keeps the last of duplicate keys and reads `4.0` or `1e1` as integers; the reference (serde)
 * rejects both, and nesting deeper than its recursion limit. One pass over the already-valid header text finds them.
 */
function scanHeaderJson(text: string): void {
  const frames: { keys: Set<string> | null /* null for arrays */; key: string | undefined }[] = [];
  let expectKey = false;
  for (let i = 0; i < text.length; ) {
    const c = text.charCodeAt(i);
    if (c === 0x22 /* " */) {
      const start = i;
      for (i++; text.charCodeAt(i) !== 0x22; i++) if (text.charCodeAt(i) === 0x5c /* \ */) i++;
      i++;
      if (expectKey) {
        const frame = frames[frames.length - 1];
        const key = JSON.parse(text.slice(start, i)) as string;
        if (frame.keys!.has(key)) {
          fail(`duplicate key ${JSON.stringify(key)}${frames.length > 1 ? ` in the entry of ${frames[0].key}` : ''}`);
        }
        frame.keys!.add(key);
        frame.key = key;
        expectKey = false;
      }
    } else if (c === 0x7b /* { */ || c === 0x5b /* [ */) {
      if (frames.length === MAX_JSON_DEPTH) fail(`header nests deeper than ${MAX_JSON_DEPTH} levels`);
      expectKey = c === 0x7b;
      frames.push({ keys: expectKey ? new Set() : null, key: undefined });
      i++;
    } else if (c === 0x7d /* } */ || c === 0x5d /* ] */) {
      frames.pop();
      expectKey = false;
      i++;
    } else if (c === 0x2c /* , */) {
      expectKey = frames[frames.length - 1].keys !== null;
      i++;
    } else if (c === 0x2d /* - */ || (c >= 0x30 && c <= 0x39)) {
      const start = i;
      while (i < text.length && /[-+.eE0-9]/.test(text[i])) i++;
      const literal = text.slice(start, i);
      const [top, entry, array] = frames;
      const inSizeArray =
        frames.length === 3 &&
        top.key !== '__metadata__' &&
        entry.keys !== null &&
        (entry.key === 'shape' || entry.key === 'data_offsets') &&
        array.keys === null;
      if (inSizeArray && !/^[0-9]+$/.test(literal)) {
        fail(`tensor ${top.key}: ${entry.key} must hold non-negative integers, got ${literal}`);
      }
    } else {
      i++;
    }
  }
}

/**
 * Tighter bounds than the reference reader's, for a use that knows how many tensors a valid file can have. Both are
 * checked before the header is parsed: the length as soon as the first 8 bytes arrive, the tensor count as each
 * chunk of header bytes arrives, so a hostile header is refused without being buffered or parsed whole.
 */
export interface SafetensorsLimits {
  maxHeaderLength: number;
  maxTensors: number;
  /** Where the limits come from, appended to the rejection (e.g. "for an adapter of this base model (...)"). */
  basis: string;
}

/**
 * Validates a safetensors file as its bytes stream by, failing as soon as the bytes seen so far are invalid.
 * Only the header bytes are kept; data bytes are just counted.
 */
export class SafetensorsStreamValidator {
  readonly #limits: SafetensorsLimits | undefined;
  #received = 0;
  readonly #lengthBytes = new Uint8Array(8);
  #headerLength: number | undefined;
  #headerChunks: Uint8Array[] = [];
  #header: SafetensorsHeader | undefined;
  #error: unknown;
  // Top-level keys seen so far (tensors and __metadata__), counted by a scan that follows strings and nesting.
  #keys = 0;
  #depth = 0;
  #inString = false;
  #escaped = false;
  #expectKey = false;

  constructor(limits?: SafetensorsLimits) {
    this.#limits = limits;
  }

  /** The parsed header, once all 8 + N header bytes have arrived. */
  get header(): SafetensorsHeader | undefined {
    return this.#header;
  }

  push(chunk: Uint8Array): void {
    this.#run(() => this.#consume(chunk));
  }

  /** Call at end of input: checks the file is exactly 8 + N + dataLength bytes. */
  finish(): SafetensorsHeader {
    return this.#run(() => {
      if (this.#headerLength === undefined) {
        fail(`file is ${this.#received} bytes, too short for the 8-byte header length`);
      }
      if (this.#header === undefined) {
        const got = this.#received - 8;
        fail(`header is truncated: it should be ${this.#headerLength} bytes, the file ends after ${got}`);
      }
      const expected = this.#expectedLength(this.#header);
      if (this.#received !== expected) {
        fail(`data is truncated: file is ${this.#received} bytes, expected ${expected} ${this.#layout(this.#header)}`);
      }
      return this.#header;
    });
  }

  // Once invalid, stays invalid: later calls rethrow the first error.
  #run<T>(step: () => T): T {
    if (this.#error !== undefined) throw this.#error;
    try {
      return step();
    } catch (error) {
      this.#error = error;
      throw error;
    }
  }

  #consume(chunk: Uint8Array): void {
    let rest = chunk;
    if (this.#headerLength === undefined) {
      const take = Math.min(8 - this.#received, rest.length);
      this.#lengthBytes.set(rest.subarray(0, take), this.#received);
      this.#received += take;
      rest = rest.subarray(take);
      if (this.#received < 8) return;
      const n = new DataView(this.#lengthBytes.buffer).getBigUint64(0, true);
      if (this.#limits && n > BigInt(this.#limits.maxHeaderLength)) {
        fail(`header length ${n} exceeds the limit of ${this.#limits.maxHeaderLength} bytes ${this.#limits.basis}`);
      }
      if (n > BigInt(MAX_HEADER_LENGTH)) fail(`header length ${n} exceeds the limit of ${MAX_HEADER_LENGTH} bytes`);
      if (n < 2n) fail(`header length ${n} is too small to hold a JSON object`);
      this.#headerLength = Number(n);
    }
    if (this.#header === undefined) {
      const take = Math.min(8 + this.#headerLength - this.#received, rest.length);
      if (this.#limits) this.#countKeys(rest.subarray(0, take), this.#limits);
      // Copied: the caller may reuse its buffer, and holding a view would also pin any data bytes in it.
      if (take > 0) this.#headerChunks.push(new Uint8Array(rest.subarray(0, take)));
      this.#received += take;
      rest = rest.subarray(take);
      if (this.#received < 8 + this.#headerLength) return;
      this.#header = parseSafetensorsHeader(Buffer.concat(this.#headerChunks), this.#headerLength);
      this.#headerChunks = [];
    }
    this.#received += rest.length;
    const expected = this.#expectedLength(this.#header);
    // The message does not depend on how the bytes were chunked.
    if (this.#received > expected) {
      fail(`file has trailing bytes: it is longer than the expected ${expected} ${this.#layout(this.#header)}`);
    }
  }

  /**
   * Counts the header's top-level keys as its bytes arrive. Structural characters are ASCII and never part of a
   * multi-byte UTF-8 sequence, so bytes can be scanned without decoding; on malformed JSON the count is only
   * approximate, and JSON.parse rejects the header later anyway.
   */
  #countKeys(bytes: Uint8Array, limits: SafetensorsLimits): void {
    for (let i = 0; i < bytes.length; i++) {
      const byte = bytes[i];
      if (this.#inString) {
        if (this.#escaped) this.#escaped = false;
        else if (byte === 0x5c /* \ */) this.#escaped = true;
        else if (byte === 0x22 /* " */) this.#inString = false;
      } else if (byte === 0x22) {
        this.#inString = true;
        if (this.#depth === 1 && this.#expectKey) {
          this.#expectKey = false;
          // One more than the tensors, for __metadata__.
          if (++this.#keys > limits.maxTensors + 1) fail(`header has more than ${limits.maxTensors} tensors ${limits.basis}`);
        }
      } else if (byte === 0x7b /* { */ || byte === 0x5b /* [ */) {
        this.#depth++;
        this.#expectKey = this.#depth === 1 && byte === 0x7b;
      } else if (byte === 0x7d /* } */ || byte === 0x5d /* ] */) {
        this.#depth--;
      } else if (byte === 0x2c /* , */ && this.#depth === 1) {
        this.#expectKey = true;
      }
    }
  }

  #expectedLength(header: SafetensorsHeader): number {
    return 8 + header.headerLength + header.dataLength;
  }

  #layout(header: SafetensorsHeader): string {
    return `(8 + ${header.headerLength} header + ${header.dataLength} data bytes)`;
  }
}

/** What readSafetensors hands over as a file's bytes arrive. */
export interface SafetensorsHandlers {
  /** Called once the header has arrived, before any tensor; throwing rejects the file. */
  header(header: SafetensorsHeader): void | Promise<void>;
  /**
   * Each tensor's bytes, in file order, once they have all arrived: a view of the source's chunk or of a buffer
   * reused for the next tensor, so only valid until the returned promise settles.
   */
  tensor(info: TensorInfo, bytes: Uint8Array): void | Promise<void>;
  /** For a consumer that can use some tensors' bytes as they came, which saves copying those that span chunks. */
  inPieces?: {
    /** Whether to hand this tensor over here instead of to `tensor`, asked as its bytes begin to arrive. */
    wanted(info: TensorInfo): boolean;
    /**
     * The tensor's bytes, once they have all arrived: views of the source's chunks, in order, never copied or
     * changed, so valid for as long as the source leaves the chunks it yielded alone (streams and arrays do).
     */
    tensor(info: TensorInfo, pieces: Uint8Array[]): void | Promise<void>;
  };
}

/**
 * Reads a safetensors file from its bytes in order (a download or a file), validating them as
 * SafetensorsStreamValidator does. Holds the header and one buffer for a tensor whose bytes span chunks (unless
 * handed over in pieces), reused from tensor to tensor. Returns the header once the whole file has been read and
 * found valid.
 */
export async function readSafetensors(
  source: AsyncIterable<Uint8Array> | Iterable<Uint8Array>,
  handlers: SafetensorsHandlers,
): Promise<SafetensorsHeader> {
  const validator = new SafetensorsStreamValidator();
  let received = 0;
  let header: SafetensorsHeader | undefined;
  // The next tensor to hand over; once its bytes begin, where they are gathered and how many have arrived.
  let next = 0;
  let started = false;
  let pieces: Uint8Array[] | undefined;
  let spanning = new Uint8Array(0);
  let filled = 0;
  for await (const chunk of source) {
    validator.push(chunk);
    const chunkStart = received;
    received += chunk.length;
    if (header === undefined) {
      header = validator.header;
      if (header === undefined) continue;
      await handlers.header(header);
    }
    // The validator refuses bytes past the data, so `rest` never holds more than the tensors still to come.
    let rest = chunk.subarray(Math.max(0, 8 + header.headerLength - chunkStart));
    while (next < header.tensors.length) {
      const info = header.tensors[next];
      const size = info.end - info.begin;
      if (!started) {
        if (rest.length === 0 && size > 0) break;
        started = true;
        pieces = handlers.inPieces?.wanted(info) ? [] : undefined;
        if (pieces === undefined && rest.length >= size) {
          // All in this chunk: handed over without a copy.
          started = false;
          next++;
          await handlers.tensor(info, rest.subarray(0, size));
          rest = rest.subarray(size);
          continue;
        }
        // Not zeroed (the chunks fill it) and not pooled, so that it starts aligned.
        if (pieces === undefined && spanning.length < size) spanning = Buffer.allocUnsafeSlow(size);
      }
      const take = Math.min(size - filled, rest.length);
      if (pieces === undefined) spanning.set(rest.subarray(0, take), filled);
      else if (take > 0) pieces.push(rest.subarray(0, take));
      filled += take;
      rest = rest.subarray(take);
      if (filled < size) break;
      started = false;
      filled = 0;
      next++;
      if (pieces === undefined) await handlers.tensor(info, spanning.subarray(0, size));
      else await handlers.inPieces!.tensor(info, pieces);
    }
  }
  return validator.finish();
}

let halfTable: Float32Array | undefined;

const elementCountOf = (info: TensorInfo) => info.shape.reduce((n, d) => n * d, 1);

/**
 * Decodes the bytes of an F32, F16 or BF16 tensor (little-endian) into `into`, which must have exactly the tensor's
 * element count, or into a new array.
 */
export function decodeTensor(info: TensorInfo, bytes: Uint8Array, into?: Float32Array): Float32Array {
  const { name } = info;
  if (bytes.length !== info.end - info.begin) fail(`data of tensor ${name} is ${bytes.length} bytes, expected ${info.end - info.begin}`);
  const count = elementCountOf(info);
  if (into !== undefined && into.length !== count) throw new RangeError(`tensor ${name} has ${count} values, not ${into.length}`);
  const out = into ?? new Float32Array(count);
  switch (info.dtype) {
    case 'F32': {
      // Bits as they are (a signalling NaN stays one), where reading through a float64 would quieten it.
      if (LITTLE_ENDIAN) {
        new Uint8Array(out.buffer, out.byteOffset, out.byteLength).set(bytes);
        break;
      }
      const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
      for (let i = 0; i < count; i++) out[i] = view.getFloat32(i * 4, true);
      break;
    }
    case 'F16': {
      const table = (halfTable ??= Float32Array.from({ length: 0x10000 }, (_, bits) => halfToFloat(bits)));
      if (LITTLE_ENDIAN && bytes.byteOffset % 2 === 0) {
        const halves = new Uint16Array(bytes.buffer, bytes.byteOffset, count);
        for (let i = 0; i < count; i++) out[i] = table[halves[i]];
        break;
      }
      for (let i = 0; i < count; i++) out[i] = table[bytes[2 * i] | (bytes[2 * i + 1] << 8)];
      break;
    }
    case 'BF16': {
      // Same-endianness views: integer bits written through one read back as the float through the other.
      const bits = new Uint32Array(out.buffer, out.byteOffset, count);
      for (let i = 0; i < count; i++) bits[i] = (bytes[2 * i] | (bytes[2 * i + 1] << 8)) << 16;
      break;
    }
    default:
      fail(`tensor ${name} has dtype ${info.dtype}; only F32, F16 and BF16 can be decoded`);
  }
  return out;
}

/**
 * A tensor's values to read: a view of `bytes` when they already are the values in this host's layout (aligned
 * F32), else decoded into `scratch`, which must have exactly the tensor's element count.
 */
export function tensorValues(info: TensorInfo, bytes: Uint8Array, scratch: Float32Array): Float32Array {
  if (info.dtype === 'F32' && LITTLE_ENDIAN && bytes.byteOffset % 4 === 0 && bytes.length === info.end - info.begin) {
    return new Float32Array(bytes.buffer, bytes.byteOffset, elementCountOf(info));
  }
  return decodeTensor(info, bytes, scratch);
}
