import { DTYPE_BITS, formatShape } from '../formats/safetensors.js';

/**
 * Serializes like the reference writer: tensors sorted by descending dtype alignment then name, `__metadata__`
 * first, compact JSON padded with spaces to a multiple of 8 bytes.
 */
export function writeSafetensors(
  tensors: { name: string; dtype: string; shape: number[]; data: Uint8Array }[],
  metadata?: Record<string, string>,
): Buffer {
  const order = Object.keys(DTYPE_BITS);
  const sorted = [...tensors].sort(
    (a, b) => order.indexOf(b.dtype) - order.indexOf(a.dtype) || (a.name < b.name ? -1 : a.name > b.name ? 1 : 0),
  );
  // Built as text rather than an object so names like "__proto__" or "0" keep their place and meaning.
  const entries = metadata === undefined ? [] : [`"__metadata__":${JSON.stringify(metadata)}`];
  const names = new Set<string>();
  let offset = 0;
  for (const { name, dtype, shape, data } of sorted) {
    if (!Object.hasOwn(DTYPE_BITS, dtype)) throw new RangeError(`unknown dtype ${dtype}`);
    if (names.has(name) || name === '__metadata__') throw new RangeError(`duplicate or reserved tensor name ${name}`);
    names.add(name);
    const bytes = (shape.reduce((n, d) => n * d, 1) * DTYPE_BITS[dtype]) / 8;
    if (data.length !== bytes) {
      throw new RangeError(`${name}: ${dtype} ${formatShape(shape)} needs ${bytes} bytes, got ${data.length}`);
    }
    entries.push(`${JSON.stringify(name)}:${JSON.stringify({ dtype, shape, data_offsets: [offset, offset + bytes] })}`);
    offset += bytes;
  }
  const json = Buffer.from(`{${entries.join(',')}}`);
  const headerLength = Math.ceil(json.length / 8) * 8;
  const file = Buffer.alloc(8 + headerLength + offset, 0x20);
  file.writeBigUInt64LE(BigInt(headerLength), 0);
  json.copy(file, 8);
  let position = 8 + headerLength;
  for (const { data } of sorted) {
    file.set(data, position);
    position += data.length;
  }
  return file;
}

