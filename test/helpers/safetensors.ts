/** Whole-file safetensors reading for tests; the service reads files as streams (readSafetensors). */
import { decodeTensor, SafetensorsStreamValidator, type SafetensorsHeader } from '../../src/formats/safetensors.js';

/** Validates a whole file held in memory. */
export function validateSafetensors(file: Uint8Array): SafetensorsHeader {
  const validator = new SafetensorsStreamValidator();
  validator.push(file);
  return validator.finish();
}

/** Decodes the tensor `name` of a validated file held in memory. */
export function decodeFileTensor(file: Uint8Array, header: SafetensorsHeader, name: string): Float32Array {
  const info = header.tensors.find((tensor) => tensor.name === name);
  if (info === undefined) throw new Error(`tensor ${name} not found`);
  const start = 8 + header.headerLength + info.begin;
  return decodeTensor(info, file.subarray(start, start + info.end - info.begin));
}
