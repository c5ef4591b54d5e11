import { finished, type Readable } from 'node:stream';
import {
  ChecksumAlgorithm,
  CompleteMultipartUploadCommand,
  CreateMultipartUploadCommand,
  PutObjectCommand,
  UploadPartCommand,
  type CompletedPart,
  type S3Client,
} from '@aws-sdk/client-s3';

export interface PartUploadTarget {
  Bucket: string;
  Key: string;
  ContentType?: string;
  Metadata?: Record<string, string>;
}

/**
 * Streams a body to one object as @aws-sdk/lib-storage's Upload does (one PutObject when the body fits in a part,
 * otherwise a multipart upload with up to `queueSize` parts in flight, reading only while fewer are), but through
 * `queueSize` part buffers allocated once and reused: chunks are copied into them, so the memory an upload holds is
 * those buffers whatever the body's size and chunking, where lib-storage concatenates a new buffer for every part.
 *
 * send() settles only once no request is in flight, so when it fails the caller can abort the multipart upload
 * (`uploadId`) knowing no part arrives after the abort; on failure the body is left paused for the caller to release.
 */
export class PartUpload {
  /** Set once the multipart upload exists. */
  uploadId: string | undefined;
  /** Bytes read from the body. */
  bytes = 0;

  private readonly free: Buffer[] = [];
  private allocated = 0;
  private filling: Buffer | undefined;
  private filled = 0;
  private partNumber = 0;
  private readonly parts: CompletedPart[] = [];
  private readonly inFlight = new Set<Promise<void>>();
  private failure: { error: unknown } | undefined;
  /** Ends reading the body early, with the failure of a part sent meanwhile. */
  private stopReading: ((error: unknown) => void) | undefined;

  constructor(
    private readonly client: S3Client,
    private readonly target: PartUploadTarget,
    private readonly partSize: number,
    private readonly queueSize: number,
  ) {}

  async send(body: Readable): Promise<void> {
    try {
      await this.read(body);
      await this.finish();
    } finally {
      // A failed part or body leaves the other parts running: they must be over before the caller aborts.
      while (this.inFlight.size > 0) await Promise.race(this.inFlight);
    }
  }

  /** Resolves once the whole body is in part buffers or sent; a failure stops reading at once. */
  private read(body: Readable): Promise<void> {
    return new Promise((resolve, reject) => {
      let stopped = false;
      // The chunk being placed while the body is paused, waiting for a free buffer: 'end' waits for it too.
      let placing: Promise<void> = Promise.resolve();
      const stop = (error?: unknown): void => {
        if (stopped) return;
        stopped = true;
        if (error !== undefined) this.failure ??= { error };
        this.stopReading = undefined;
        body.off('data', onData);
        body.pause();
        cleanup();
        // Settled only once the chunk being placed is, so no part starts after this and uploadId is final.
        const settle = (): void => (error === undefined ? resolve() : reject(error));
        placing.then(settle, settle);
      };
      const onData = (chunk: Buffer): void => {
        this.bytes += chunk.length;
        const copied = this.copy(chunk, 0);
        if (copied === chunk.length) return;
        // A full buffer and more data: pause (no 'data' nor 'end' until resumed) while the buffer is sent.
        body.pause();
        placing = this.place(chunk, copied).then(() => {
          if (!stopped) body.resume();
        }, stop);
      };
      const cleanup = finished(body, { writable: false }, (error) => {
        if (error) stop(error);
        else placing.then(() => stop(), stop);
      });
      this.stopReading = stop;
      body.on('data', onData);
    });
  }

  /** Copies what fits of `chunk` from `offset` into the filling buffer; returns the offset reached. */
  private copy(chunk: Buffer, offset: number): number {
    this.filling ??= this.takeBuffer();
    const copied = chunk.copy(this.filling, this.filled, offset);
    this.filled += copied;
    return offset + copied;
  }

  private async place(chunk: Buffer, offset: number): Promise<void> {
    while (offset < chunk.length) {
      await this.dispatch();
      await this.bufferFree();
      offset = this.copy(chunk, offset);
    }
  }

  private takeBuffer(): Buffer {
    const reused = this.free.pop();
    if (reused) return reused;
    // At most queueSize: bufferFree() waits for a part to be sent before another buffer is needed.
    this.allocated++;
    // Uninitialised: every byte sent is copied in first.
    return Buffer.allocUnsafeSlow(this.partSize);
  }

  private async bufferFree(): Promise<void> {
    while (this.free.length === 0 && this.allocated >= this.queueSize && !this.failure) await Promise.race(this.inFlight);
    if (this.failure) throw this.failure.error;
  }

  /** Sends the filling buffer as the next part. */
  private async dispatch(): Promise<void> {
    const buffer = this.filling!;
    const length = this.filled;
    this.filling = undefined;
    this.filled = 0;
    this.uploadId ??= await this.create();
    // Reading stopped meanwhile (a failed part or body): nothing more is sent.
    if (this.failure) throw this.failure.error;
    const partNumber = ++this.partNumber;
    const sent: Promise<void> = this.client
      .send(new UploadPartCommand({ Bucket: this.target.Bucket, Key: this.target.Key, UploadId: this.uploadId, PartNumber: partNumber, Body: buffer.subarray(0, length) }))
      .then(
        ({ ETag, ChecksumCRC32, ChecksumCRC32C, ChecksumSHA1, ChecksumSHA256 }) => {
          this.parts.push({ PartNumber: partNumber, ETag, ChecksumCRC32, ChecksumCRC32C, ChecksumSHA1, ChecksumSHA256 });
          // Its request was answered, so its body was sent whole: the buffer can be refilled.
          this.free.push(buffer);
        },
        (error: unknown) => {
          // The buffer is not reused: the request may still be writing it.
          this.failure ??= { error };
          this.stopReading?.(error);
        },
      )
      .finally(() => this.inFlight.delete(sent));
    this.inFlight.add(sent);
  }

  private async create(): Promise<string> {
    // As lib-storage: parts carry the checksums the client computes by default, so the upload declares their algorithm.
    const checksums = await this.client.config.requestChecksumCalculation();
    const { UploadId } = await this.client.send(
      new CreateMultipartUploadCommand({
        ...this.target,
        ChecksumAlgorithm: checksums === 'WHEN_SUPPORTED' ? ChecksumAlgorithm.CRC32 : undefined,
      }),
    );
    if (UploadId === undefined) throw new Error(`CreateMultipartUpload of "${this.target.Key}" returned no upload id`);
    return UploadId;
  }

  private async finish(): Promise<void> {
    if (this.partNumber === 0) {
      // The whole body fits in one part: a single request.
      await this.client.send(new PutObjectCommand({ ...this.target, Body: (this.filling ?? Buffer.alloc(0)).subarray(0, this.filled) }));
      return;
    }
    await this.dispatch();
    while (this.inFlight.size > 0) await Promise.race(this.inFlight);
    if (this.failure) throw this.failure.error;
    this.parts.sort((a, b) => a.PartNumber! - b.PartNumber!);
    await this.client.send(
      new CompleteMultipartUploadCommand({ Bucket: this.target.Bucket, Key: this.target.Key, UploadId: this.uploadId, MultipartUpload: { Parts: this.parts } }),
    );
  }
}
