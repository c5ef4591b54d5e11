import { open, readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { AdapterFormatError, type AdapterFile } from '../formats/format-error.js';
import { MAX_CONFIG_BYTES } from '../formats/peft-config.js';
import { SafetensorsStreamValidator } from '../formats/safetensors.js';
import { CliError } from './errors.js';

export interface LocalFile {
  name: AdapterFile;
  path: string;
  size: number;
}

export interface AdapterFolder {
  config: LocalFile;
  weights: LocalFile;
}

/** Header reads go in pieces this large, so a huge header length costs memory only if the file really has one. */
const READ_BYTES = 64 * 1024;

/**
 * What can be checked without the server: both files exist, the config is a JSON object, and the safetensors
 * container is sound (header as the service checks it, file length matching it). Checking the config against the
 * base model needs the model's architecture, which only the service knows; it does that on upload.
 */
export async function checkAdapterFolder(folder: string): Promise<AdapterFolder> {
  const info = await stat(folder).catch(() => undefined);
  if (!info) throw new CliError(`${folder}: no such folder`);
  if (!info.isDirectory()) throw new CliError(`${folder} is not a folder`);
  const config = await localFile(folder, 'adapter_config.json');
  const weights = await localFile(folder, 'adapter_model.safetensors');
  await checkConfig(config);
  await checkSafetensors(weights);
  return { config, weights };
}

async function localFile(folder: string, name: AdapterFile): Promise<LocalFile> {
  const path = join(folder, name);
  const info = await stat(path).catch(() => undefined);
  if (!info?.isFile()) throw new CliError(`${folder} has no ${name}`);
  return { name, path, size: info.size };
}

// ignoreBOM keeps a leading U+FEFF, so JSON.parse rejects it as the service does.
async function checkConfig(file: LocalFile): Promise<void> {
  const fail = (detail: string): never => {
    throw new AdapterFormatError('adapter_config.json', detail);
  };
  if (file.size > MAX_CONFIG_BYTES) fail(`is ${file.size} bytes, larger than the 1 MiB limit`);
  let parsed: unknown;
  try {
    parsed = JSON.parse(new TextDecoder('utf-8', { fatal: true, ignoreBOM: true }).decode(await readFile(file.path)));
  } catch (error) {
    fail(error instanceof SyntaxError ? `is not valid JSON (${error.message})` : 'is not valid UTF-8');
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) fail('must be a JSON object');
}

/** Reads only the header (never the tensor data) and compares the length it implies with the file's. */
async function checkSafetensors(file: LocalFile): Promise<void> {
  const validator = new SafetensorsStreamValidator();
  const handle = await open(file.path);
  try {
    const buffer = Buffer.alloc(READ_BYTES);
    let position = 0;
    while (validator.header === undefined && position < file.size) {
      const { bytesRead } = await handle.read(buffer, 0, READ_BYTES, position);
      if (bytesRead === 0) break;
      validator.push(buffer.subarray(0, bytesRead));
      position += bytesRead;
    }
    // The whole file was read without completing the header: let the validator name what is missing.
    if (validator.header === undefined) validator.finish();
    const { headerLength, dataLength } = validator.header!;
    const expected = 8 + headerLength + dataLength;
    if (file.size !== expected) {
      const layout = `(8 + ${headerLength} header + ${dataLength} data bytes)`;
      const detail = file.size < expected ? 'data is truncated' : 'file has trailing bytes';
      throw new AdapterFormatError('adapter_model.safetensors', `${detail}: file is ${file.size} bytes, expected ${expected} ${layout}`);
    }
  } finally {
    await handle.close();
  }
}
