import type { Logger } from '@nestjs/common';
import cluster, { type Worker } from 'node:cluster';
import type { LoadedConfig } from '../config/app-config.js';

/** Set in the environment of every worker after the first: they start silently (the first one printed the banner). */
export const QUIET_WORKER_ENV = 'LORA_HUB_QUIET_START';

/** Where workers' storage comes from when the primary hosts the embedded S3 server. */
export function storageEnv(storage: LoadedConfig['storage']): Record<string, string> {
  return {
    S3_ENDPOINT: storage.endpoint ?? '',
    S3_REGION: storage.region,
    S3_BUCKET: storage.bucket,
    S3_ACCESS_KEY_ID: storage.accessKeyId ?? '',
    S3_SECRET_ACCESS_KEY: storage.secretAccessKey ?? '',
    S3_FORCE_PATH_STYLE: String(storage.forcePathStyle),
    S3_CREATE_BUCKET: String(storage.createBucket),
  };
}

/**
 * The primary of `WORKERS=N`: forks N workers that each run the whole service and listen on the same port
 * (node:cluster hands connections out in turn). The first worker starts alone, so migrations, the managed admin
 * token and the first account are made once, and it prints the banner; the others follow once it listens. A worker
 * that dies while serving is replaced; one that fails to start stops the whole service. SIGTERM or SIGINT reach every
 * worker, which shut down gracefully (SHUTDOWN_GRACE_MS), and the primary exits when all have.
 */
export async function runPrimary(config: LoadedConfig, env: Record<string, string>, logger: Logger): Promise<void> {
  let stopping = false;
  const live = new Set<Worker>();

  const fork = (quiet: boolean): Promise<Worker> =>
    new Promise((resolve, reject) => {
      const worker = cluster.fork({ ...env, ...(quiet && { [QUIET_WORKER_ENV]: '1' }) });
      live.add(worker);
      let listening = false;
      worker.once('listening', () => {
        listening = true;
        resolve(worker);
      });
      worker.once('exit', (code, signal) => {
        live.delete(worker);
        if (stopping) {
          if (live.size === 0) process.exit(0);
          return;
        }
        if (!listening) return reject(new Error(`worker ${worker.process.pid} exited (${signal ?? code}) before it listened`));
        logger.error(`worker ${worker.process.pid} exited (${signal ?? code}) while serving; starting another`);
        fork(true).catch((error: unknown) => {
          logger.error(`${String(error)}; stopping`);
          stop();
        });
      });
    });

  const stop = () => {
    if (stopping) return;
    stopping = true;
    if (live.size === 0) process.exit(0);
    for (const worker of live) worker.process.kill('SIGTERM');
  };
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);

  try {
    await fork(false);
    await Promise.all(Array.from({ length: config.workers - 1 }, () => fork(true)));
  } catch (error) {
    stop();
    throw error;
  }
  logger.log(`${config.workers} workers serve on port ${config.port}`);
}
