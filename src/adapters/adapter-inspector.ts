import { createHash } from 'node:crypto';
import { Transform, type TransformCallback } from 'node:stream';
import { ApiError } from '../common/errors.js';
import type { AdapterFile } from '../formats/format-error.js';
import { MAX_CONFIG_BYTES } from '../formats/peft-config.js';
import type { ValidationTurns } from './validation-turns.js';
import { MAX_HEADER_LENGTH, SafetensorsStreamValidator, type SafetensorsHeader, type SafetensorsLimits } from '../formats/safetensors.js';

export const ADAPTER_FILES: readonly AdapterFile[] = ['adapter_config.json', 'adapter_model.safetensors'];

/** Enough bytes to tell a safetensors file (u64 header length, then '{') from a JSON document. */
const SNIFF_BYTES = 9;

/**
 * Which file a byte stream is, for uploads whose `file` part precedes `file_name`:
 * safetensors starts with a plausible u64 header length followed by '{'.
 */
export function sniffAdapterFile(head: Uint8Array): AdapterFile {
  if (head.length >= SNIFF_BYTES && head[8] === 0x7b) {
    const length = Buffer.from(head.buffer, head.byteOffset, 8).readBigUInt64LE(0);
    if (length >= 2n && length <= BigInt(MAX_HEADER_LENGTH)) return 'adapter_model.safetensors';
  }
  return 'adapter_config.json';
}

export interface InspectorChecks {
  /** Runs as soon as a safetensors header is complete, before the tensor data arrives. */
  header?: (header: SafetensorsHeader) => void;
  /** Refuse an oversized safetensors header before it is buffered or parsed. */
  headerLimits?: SafetensorsLimits;
  /**
   * Runs on the whole adapter_config.json before the stream ends, so a rejected config fails the body and storage
   * never receives it (bodies this small are sent in one request at their end).
   */
  config?: (content: Buffer) => void;
  /** Where the parsing steps (safetensors header bytes, the config) take their turn; inline without. */
  turns?: ValidationTurns;
}

export interface InspectedFile {
  file: AdapterFile;
  bytes: number;
  sha256: string;
  /** adapter_config.json: the whole (small) file. */
  content?: Buffer;
  /** adapter_model.safetensors: the validated header. */
  header?: SafetensorsHeader;
}

/**
 * Passes an upload through unchanged while measuring, hashing and validating it, so a bad file
 * fails as soon as its bytes show it (the safetensors header is checked as it streams by, and the
 * size limit while counting), and memory stays bounded by the header size, never the file size.
 */
export class AdapterInspector extends Transform {
  private readonly hash = createHash('sha256');
  private bytes = 0;
  private fileKind: AdapterFile | undefined;
  private pending: Buffer[] = [];
  private validator?: SafetensorsStreamValidator;
  private configChunks: Buffer[] = [];

  private headerChecked = false;

  constructor(
    file: AdapterFile | undefined,
    private readonly maxBytes: number,
    private readonly modelName: string,
    private readonly checks: InspectorChecks = {},
  ) {
    super();
    this.fileKind = file;
  }

  /** Known once the first bytes have been seen (or from the start, when declared). */
  get file(): AdapterFile | undefined {
    return this.fileKind;
  }

  override _transform(chunk: Buffer, _encoding: BufferEncoding, callback: TransformCallback): void {
    try {
      this.bytes += chunk.length;
      if (this.fileKind === 'adapter_config.json' && this.bytes > MAX_CONFIG_BYTES) {
        throw new ApiError('tooLarge', `adapter_config.json: is larger than the 1 MiB limit`);
      }
      if (this.bytes > this.maxBytes) {
        throw new ApiError('tooLarge', `${this.fileKind ?? 'file'}: is larger than the ${this.maxBytes} byte limit of ${this.modelName}`);
      }
      this.hash.update(chunk);
      if (this.fileKind === undefined) {
        this.pending.push(chunk);
        const head = Buffer.concat(this.pending);
        if (head.length < SNIFF_BYTES) return callback();
        this.pending = [];
        this.fileKind = sniffAdapterFile(head);
        return this.inspectInTurn(head, callback);
      }
      this.inspectInTurn(chunk, callback);
    } catch (error) {
      callback(error as Error);
    }
  }

  /** Until the header is checked, safetensors bytes are parsed in a turn; config bytes and tensor data just pass. */
  private inspectInTurn(chunk: Buffer, callback: TransformCallback): void {
    const { turns } = this.checks;
    if (turns === undefined || this.fileKind === 'adapter_config.json' || this.headerChecked) {
      this.inspect(chunk);
      return callback(null, chunk);
    }
    turns.run(() => this.inspect(chunk)).then(() => callback(null, chunk), callback);
  }

  override _flush(callback: TransformCallback): void {
    try {
      if (this.fileKind === undefined) {
        const head = Buffer.concat(this.pending);
        this.fileKind = sniffAdapterFile(head);
        this.inspect(head);
        this.push(head);
      }
      const { config, turns } = this.checks;
      if (this.fileKind !== 'adapter_config.json' || config === undefined) return callback();
      const content = Buffer.concat(this.configChunks);
      if (turns === undefined) config(content);
      else return void turns.run(() => config(content)).then(() => callback(), callback);
      callback();
    } catch (error) {
      callback(error as Error);
    }
  }

  private inspect(chunk: Buffer): void {
    if (this.fileKind === 'adapter_config.json') {
      this.configChunks.push(chunk);
      return;
    }
    this.validator ??= new SafetensorsStreamValidator(this.checks.headerLimits);
    this.validator.push(chunk);
    if (!this.headerChecked && this.validator.header) {
      this.headerChecked = true;
      this.checks.header?.(this.validator.header);
    }
  }

  /** The outcome, once the stream has ended; throws the file's validation error if it is incomplete. */
  result(): InspectedFile {
    const file = this.fileKind ?? 'adapter_config.json';
    const base = { file, bytes: this.bytes, sha256: this.hash.digest('hex') };
    if (file === 'adapter_config.json') return { ...base, content: Buffer.concat(this.configChunks) };
    return { ...base, header: (this.validator ?? new SafetensorsStreamValidator()).finish() };
  }
}
