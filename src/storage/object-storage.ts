import { createWriteStream } from 'node:fs';
import { rename, rm } from 'node:fs/promises';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { Logger } from '@nestjs/common';
import {
  AbortMultipartUploadCommand,
  CreateBucketCommand,
  DeleteObjectCommand,
  DeleteObjectsCommand,
  GetObjectCommand,
  HeadBucketCommand,
  ListMultipartUploadsCommand,
  S3Client,
  type BucketLocationConstraint,
  type CreateBucketCommandInput,
} from '@aws-sdk/client-s3';
import { ApiError } from '../common/errors.js';
import type { ObjectStorageOptions } from '../config/app-config.js';
import { PartUpload } from './part-upload.js';

export interface UploadOptions {
  contentType?: string;
  signal?: AbortSignal;
  metadata?: Record<string, string>;
}

// 5 MiB parts (S3's minimum), at most 2 in flight: an upload holds 2 part buffers (10 MiB) whatever the body size;
// 10,000 parts of 5 MiB cover objects up to ~48 GiB, far above any adapter limit.
const PART_SIZE = 5 * 1024 * 1024;
const QUEUE_SIZE = 2;
const DELETE_BATCH = 1000;

// Fail fast on an unreachable endpoint: ~3 s to connect, 3 attempts in all.
const CONNECTION_TIMEOUT_MS = 3_000;
const MAX_ATTEMPTS = 3;
// Idle (not total) socket timeout, so long streamed transfers survive while a hung server does not.
const SOCKET_IDLE_TIMEOUT_MS = 60_000;

// Errors a response body stream fails with when the connection breaks mid-transfer.
const STREAM_NETWORK_ERROR_CODES = new Set(['ECONNRESET', 'ECONNABORTED', 'ETIMEDOUT', 'EPIPE']);

/**
 * Where one upload of an asset is stored: unique per upload and known before its first byte, so the file goes
 * straight to its final key (no staging copy). Its row, written only once the file is complete and valid, is
 * what makes it visible; the row also keeps its sha256.
 */
export function assetKey(parts: { accountId: string; finetuneId: string; uploadId: string }): string {
  return `accounts/${parts.accountId}/finetunes/${parts.finetuneId}/${parts.uploadId}`;
}

export class ObjectStorage {
  private readonly logger = new Logger(ObjectStorage.name);
  private readonly client: S3Client;
  private readonly bucket: string;
  private readonly region: string;
  private readonly location: string;

  constructor(options: ObjectStorageOptions) {
    this.bucket = options.bucket;
    this.region = options.region;
    this.location = describeEndpoint(options.endpoint, options.region);
    this.client = new S3Client({
      endpoint: options.endpoint,
      region: options.region,
      forcePathStyle: options.forcePathStyle,
      // Without explicit keys the SDK's default chain (env, profile, instance role) applies.
      credentials:
        options.accessKeyId !== undefined && options.secretAccessKey !== undefined
          ? { accessKeyId: options.accessKeyId, secretAccessKey: options.secretAccessKey }
          : undefined,
      maxAttempts: MAX_ATTEMPTS,
      requestHandler: { connectionTimeout: CONNECTION_TIMEOUT_MS, socketTimeout: SOCKET_IDLE_TIMEOUT_MS },
    });
  }

  async ensureBucket(): Promise<void> {
    if (await this.bucketExists('ensureBucket')) return;
    const input: CreateBucketCommandInput = { Bucket: this.bucket };
    // AWS rejects CreateBucket without a location outside us-east-1; R2 uses the pseudo-region "auto".
    if (this.region !== 'us-east-1' && this.region !== 'auto') {
      input.CreateBucketConfiguration = { LocationConstraint: this.region as BucketLocationConstraint };
    }
    try {
      await this.client.send(new CreateBucketCommand(input));
    } catch (error) {
      if (errorName(error) === 'BucketAlreadyOwnedByYou') return;
      // A concurrent creator won the race (s3rver and some S3 implementations answer BucketAlreadyExists
      // even to the owner): accept it when the bucket is now reachable for us.
      if (errorName(error) === 'BucketAlreadyExists' && (await this.bucketExists('ensureBucket'))) return;
      throw this.failure('ensureBucket', error);
    }
  }

  async ping(): Promise<void> {
    try {
      await this.client.send(new HeadBucketCommand({ Bucket: this.bucket }));
    } catch (error) {
      // A readiness check: a missing bucket or denied access make storage just as unusable as a network failure.
      throw this.unavailable('ping', error);
    }
  }

  async upload(key: string, body: Readable, opts: UploadOptions = {}): Promise<{ key: string; bytes: number }> {
    const { signal } = opts;
    // The caller's own failure (body error or abort reason) is what upload() must rethrow, unchanged: taken from
    // the stream's 'error' event, not from how reading it ended.
    let callerFailure: { error: unknown } | undefined;
    const onBodyError = (error: unknown): void => {
      callerFailure ??= { error };
    };
    body.once('error', onBodyError);

    // Aborting ends the body with the abort reason: the upload then fails once its parts in flight are over, so
    // the multipart upload is aborted after them.
    const onAbort = (): void => {
      if (!body.destroyed && !body.readableEnded) body.destroy(signal?.reason);
    };
    if (signal?.aborted) onAbort();
    else signal?.addEventListener('abort', onAbort, { once: true });

    const upload = new PartUpload(
      this.client,
      { Bucket: this.bucket, Key: key, ContentType: opts.contentType, Metadata: opts.metadata },
      PART_SIZE,
      QUEUE_SIZE,
    );

    try {
      await upload.send(body);
    } catch (error) {
      // Reading stops on failure; release the caller's stream (e.g. a request body).
      body.destroy();
      if (upload.uploadId !== undefined) await this.abortMultipart(key, upload.uploadId);
      if (callerFailure !== undefined) throw callerFailure.error;
      if (signal?.aborted) throw signal.reason;
      throw this.failure('upload', error, key);
    } finally {
      signal?.removeEventListener('abort', onAbort);
      body.off('error', onBodyError);
    }

    // The abort came after the whole body was read, while the final request was in flight.
    if (signal?.aborted) {
      await this.delete(key);
      throw signal.reason;
    }
    return { key, bytes: upload.bytes };
  }

  /**
   * Aborts the multipart uploads under `prefix` initiated before `initiatedBefore` (left by killed processes or
   * refused aborts). Returns how many, or undefined when the server cannot list multipart uploads.
   */
  async abortIncompleteUploads(prefix: string, initiatedBefore: Date): Promise<number | undefined> {
    let aborted = 0;
    let markers: { KeyMarker?: string; UploadIdMarker?: string } = {};
    for (;;) {
      let page;
      try {
        page = await this.client.send(new ListMultipartUploadsCommand({ Bucket: this.bucket, Prefix: prefix, ...markers }));
      } catch (error) {
        if (httpStatus(error) === 501 || errorName(error) === 'NotImplemented') return undefined;
        throw this.failure('abortIncompleteUploads', error, prefix);
      }
      for (const { Key, UploadId, Initiated } of page.Uploads ?? []) {
        if (Key === undefined || UploadId === undefined || Initiated === undefined || Initiated >= initiatedBefore) continue;
        if (await this.abortMultipart(Key, UploadId)) aborted++;
      }
      if (!page.IsTruncated || page.NextKeyMarker === undefined) return aborted;
      markers = { KeyMarker: page.NextKeyMarker, UploadIdMarker: page.NextUploadIdMarker };
    }
  }

  async delete(key: string): Promise<void> {
    // DeleteObject on a missing key succeeds, so this is idempotent as is.
    await this.call('delete', key, () => this.client.send(new DeleteObjectCommand({ Bucket: this.bucket, Key: key })));
  }

  async deleteMany(keys: string[]): Promise<void> {
    const failed: string[] = [];
    for (let start = 0; start < keys.length; start += DELETE_BATCH) {
      const batch = keys.slice(start, start + DELETE_BATCH);
      const result = await this.call('deleteMany', undefined, () =>
        this.client.send(
          new DeleteObjectsCommand({
            Bucket: this.bucket,
            Delete: { Objects: batch.map((Key) => ({ Key })), Quiet: true },
          }),
        ),
      );
      for (const error of result.Errors ?? []) failed.push(`${error.Key ?? '?'} (${error.Code ?? 'unknown'})`);
    }
    if (failed.length > 0) {
      throw new Error(`${this.describe('deleteMany')} failed for ${failed.length} key(s): ${failed.slice(0, 10).join(', ')}`);
    }
  }

  private async read(key: string): Promise<Readable> {
    const result = await this.call('read', key, () => this.client.send(new GetObjectCommand({ Bucket: this.bucket, Key: key })));
    // In Node the SDK's body is an http.IncomingMessage, i.e. a Readable.
    return result.Body as Readable;
  }

  async readToFile(key: string, path: string): Promise<void> {
    const body = await this.read(key);
    const temporary = `${path}.tmp`;
    try {
      await pipeline(body, createWriteStream(temporary));
      await rename(temporary, path);
    } catch (error) {
      await rm(temporary, { force: true });
      // Local file errors (ENOSPC, EACCES, ...) are not storage outages.
      throw isStreamNetworkError(error) ? this.unavailable('readToFile', error, key) : error;
    }
  }

  /** The object's bytes as they arrive; a connection lost on the way fails the stream as a storage outage. */
  async readStream(key: string): Promise<Readable> {
    const body = await this.read(key);
    const unavailable = (error: unknown) => (isStreamNetworkError(error) ? this.unavailable('readStream', error, key) : error);
    const stream = Readable.from(
      (async function* () {
        try {
          yield* body;
        } catch (error) {
          throw unavailable(error);
        }
      })(),
      { objectMode: false },
    );
    // Destroyed before its first read, the generator never runs: the response must still be released.
    stream.once('close', () => body.destroy());
    return stream;
  }

  destroy(): void {
    this.client.destroy();
  }

  /** Best effort: a refused or failed abort is logged and left to the sweep (and the bucket's lifecycle rule). */
  private async abortMultipart(key: string, uploadId: string): Promise<boolean> {
    try {
      await this.client.send(new AbortMultipartUploadCommand({ Bucket: this.bucket, Key: key, UploadId: uploadId }));
      return true;
    } catch (error) {
      // Already gone (completed or aborted elsewhere): nothing is left.
      if (httpStatus(error) === 404) return true;
      this.logger.warn(`${this.describe('abortMultipartUpload', key)} failed, its parts stay until swept: ${reason(error)}`);
      return false;
    }
  }

  private async bucketExists(operation: string): Promise<boolean> {
    try {
      await this.client.send(new HeadBucketCommand({ Bucket: this.bucket }));
      return true;
    } catch (error) {
      if (httpStatus(error) === 404) return false;
      throw this.failure(operation, error);
    }
  }

  private async call<T>(operation: string, key: string | undefined, run: () => Promise<T>): Promise<T> {
    try {
      return await run();
    } catch (error) {
      throw this.failure(operation, error, key);
    }
  }

  /** A failed SDK call becomes a storageUnavailable error when storage gave no usable answer; 4xx errors pass through. */
  private failure(operation: string, error: unknown, key?: string): unknown {
    const status = httpStatus(error);
    // No HTTP status means no response at all: connection refused, DNS failure, timeout (or no credentials).
    // Checking the status rather than Node's error codes also holds when the SDK's retry layer rewraps an
    // error from another realm (as under jest's VM sandbox) into a plain Error without its `code`.
    return status === undefined || status >= 500 ? this.unavailable(operation, error, key) : error;
  }

  private unavailable(operation: string, error: unknown, key?: string): ApiError {
    return new ApiError('storageUnavailable', `${this.describe(operation, key)} failed: ${reason(error)}`);
  }

  private describe(operation: string, key?: string): string {
    const target = key === undefined ? `bucket "${this.bucket}"` : `"${key}" in bucket "${this.bucket}"`;
    return `Object storage ${operation} of ${target} at ${this.location}`;
  }
}

function describeEndpoint(endpoint: string | undefined, region: string): string {
  if (endpoint === undefined) return `AWS S3 (${region})`;
  try {
    // origin drops any user:password@ part of the URL.
    return new URL(endpoint).origin;
  } catch {
    return 'an invalid endpoint URL';
  }
}

// Duck-typed rather than `instanceof Error`: errors raised by Node's own modules can come from another realm
// (e.g. under a VM-sandboxed test runner), where that check fails.
interface ErrorLike {
  name?: unknown;
  code?: unknown;
  message?: unknown;
  $metadata?: { httpStatusCode?: number };
}

function asErrorLike(error: unknown): ErrorLike {
  return typeof error === 'object' && error !== null ? (error as ErrorLike) : {};
}

function isStreamNetworkError(error: unknown): boolean {
  const { name, code } = asErrorLike(error);
  return name === 'TimeoutError' || (typeof code === 'string' && STREAM_NETWORK_ERROR_CODES.has(code));
}

function httpStatus(error: unknown): number | undefined {
  return asErrorLike(error).$metadata?.httpStatusCode;
}

function errorName(error: unknown): string | undefined {
  const { name } = asErrorLike(error);
  return typeof name === 'string' ? name : undefined;
}

function reason(error: unknown): string {
  if (typeof error !== 'object' || error === null) return String(error);
  const { name, code, message } = error as ErrorLike;
  const label = String(code ?? name ?? 'Error');
  return typeof message === 'string' && message !== '' && message !== label ? `${label}: ${message}` : label;
}
