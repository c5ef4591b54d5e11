import { Inject, Injectable, Logger, OnApplicationBootstrap, OnApplicationShutdown } from '@nestjs/common';
import { APP_CONFIG, type AppConfig } from '../config/app-config.js';
import { embeddedS3Directory, removeStaleEmbeddedUploads } from './embedded-s3.js';
import { ObjectStorage } from './object-storage.js';
import { OrphanObjectsService } from './orphan-objects.service.js';
import { PeriodicTask } from './periodic-task.js';

const ORPHAN_SWEEP_INTERVAL_MS = 5 * 60_000;
const UPLOAD_SWEEP_INTERVAL_MS = 60 * 60_000;
/** Every object the service writes lives under this prefix (see assetKey). */
const ASSET_PREFIX = 'accounts/';

/**
 * Frees what failed or killed uploads and deletes leave in storage: recorded orphan objects every 5 minutes, and
 * multipart uploads older than INCOMPLETE_UPLOAD_MAX_AGE_MS every hour; both also right after start.
 */
@Injectable()
export class StorageSweeper implements OnApplicationBootstrap, OnApplicationShutdown {
  private readonly logger = new Logger(StorageSweeper.name);
  private readonly tasks: PeriodicTask[];
  private listingUnsupportedReported = false;

  constructor(
    @Inject(APP_CONFIG) private readonly config: AppConfig,
    private readonly storage: ObjectStorage,
    private readonly orphans: OrphanObjectsService,
  ) {
    const onError = (what: string) => (error: unknown) =>
      this.logger.warn(`${what}: ${error instanceof Error ? error.message : String(error)}`);
    this.tasks = [
      new PeriodicTask(() => this.orphans.sweep(), ORPHAN_SWEEP_INTERVAL_MS, onError('orphan sweep')),
      new PeriodicTask(() => this.sweepIncompleteUploads(), UPLOAD_SWEEP_INTERVAL_MS, onError('incomplete upload sweep')),
    ];
  }

  onApplicationBootstrap(): void {
    for (const task of this.tasks) task.start();
  }

  async onApplicationShutdown(): Promise<void> {
    await Promise.all(this.tasks.map((task) => task.stop()));
    this.storage.destroy();
  }

  /** Aborts (or, for the embedded server, deletes the parts of) multipart uploads older than the configured bound. */
  async sweepIncompleteUploads(): Promise<void> {
    const cutoff = new Date(Date.now() - this.config.incompleteUploadMaxAgeMs);
    const { storage } = this.config;
    const swept = storage.embedded
      ? await removeStaleEmbeddedUploads(embeddedS3Directory(this.config.dataDir), storage.bucket, cutoff)
      : await this.storage.abortIncompleteUploads(ASSET_PREFIX, cutoff);
    if (swept === undefined) {
      if (!this.listingUnsupportedReported) {
        this.listingUnsupportedReported = true;
        this.logger.log(
          'the storage server cannot list multipart uploads: give the bucket an AbortIncompleteMultipartUpload lifecycle rule',
        );
      }
    } else if (swept > 0) {
      this.logger.log(`swept ${swept} incomplete multipart upload(s) older than ${cutoff.toISOString()}`);
    }
  }
}
