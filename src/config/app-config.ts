/** Environment, validated once at start-up: a bad variable stops the process with its name in the message. */
export class ConfigError extends Error {}

/** How to reach the S3-compatible bucket (what ObjectStorage is constructed with). */
export interface ObjectStorageOptions {
  endpoint?: string;
  region: string;
  bucket: string;
  accessKeyId?: string;
  secretAccessKey?: string;
  forcePathStyle: boolean;
}

export interface StorageConfig extends ObjectStorageOptions {
  createBucket: boolean;
  /** Neither S3_ENDPOINT nor S3_BUCKET given: run an embedded S3-compatible server instead. */
  embedded: boolean;
}

export interface AppConfig {
  port: number;
  host: string;
  /** Unset: an embedded PostgreSQL (PGlite) under `${dataDir}/pglite`. */
  databaseUrl?: string;
  adminToken: string;
  modelsFile?: string;
  /** The catalog gets the tiny demo models written under `${dataDir}/models` (no MODELS_FILE, embedded database). */
  demoModels: boolean;
  storage: StorageConfig;
  /** Where converted adapters and other engine caches live on local disk. */
  cacheDir: string;
  /** Where embedded services (database, storage) and first-run defaults keep their data. */
  dataDir: string;
  logLevel: 'error' | 'warn' | 'log' | 'debug' | 'verbose';
  /** On shutdown, how long requests in flight may take before their connections are closed. */
  shutdownGraceMs: number;
  /** How long a request's headers may take to arrive. */
  headersTimeoutMs: number;
  /** How long a connection may stall while sending its request (no total cap: slow uploads that progress go on). */
  idleTimeoutMs: number;
  /** Server processes sharing the port (node:cluster); 1: this process serves alone. */
  workers: number;
  /** Multipart uploads idle (or begun) longer than this are presumed abandoned and swept from storage. */
  incompleteUploadMaxAgeMs: number;
}

/**
 * The environment's view before first-run defaults: without ADMIN_TOKEN the service manages its own admin token
 * (src/bootstrap/first-run.ts). With ADMIN_TOKEN given, `loadConfig` already returns a complete AppConfig.
 */
export type LoadedConfig = Omit<AppConfig, 'adminToken'> & { adminToken?: string };

export const APP_CONFIG = Symbol('APP_CONFIG');

type Env = Record<string, string | undefined>;

function optional(env: Env, name: string): string | undefined {
  const value = env[name]?.trim();
  return value === '' ? undefined : value;
}

/**
 * For variables whose absence switches to an embedded default: set but blank (often an unset shell variable in a
 * deployment file) is an error rather than a silent switch to the embedded database or a generated secret.
 */
function notBlank(env: Env, name: string, hint: string): string | undefined {
  const value = optional(env, name);
  if (value === undefined && env[name] !== undefined) throw new ConfigError(`${name} is set but empty: ${hint}`);
  return value;
}

function integer(env: Env, name: string, fallback: number, min: number, max: number): number {
  const raw = optional(env, name);
  if (raw === undefined) return fallback;
  const value = Number(raw);
  if (!/^\d+$/.test(raw) || value < min || value > max) {
    throw new ConfigError(`${name} must be an integer from ${min} to ${max}, got "${raw}"`);
  }
  return value;
}

function boolean(env: Env, name: string, fallback: boolean): boolean {
  const raw = optional(env, name)?.toLowerCase();
  if (raw === undefined) return fallback;
  if (['true', '1', 'yes'].includes(raw)) return true;
  if (['false', '0', 'no'].includes(raw)) return false;
  throw new ConfigError(`${name} must be true or false, got "${env[name]}"`);
}

function url(env: Env, name: string, protocols: string[]): string | undefined {
  const raw = optional(env, name);
  if (raw === undefined) return undefined;
  let parsed: URL;
  try {
    parsed = new URL(raw);
  } catch {
    throw new ConfigError(`${name} must be a URL, got "${raw}"`);
  }
  if (!protocols.includes(parsed.protocol)) {
    throw new ConfigError(`${name} must use ${protocols.join(' or ')}, got "${parsed.protocol}"`);
  }
  return raw;
}

/** With ADMIN_TOKEN in the environment the result is complete; without it, see LoadedConfig. */
export function loadConfig(env: Env & { ADMIN_TOKEN: string }): AppConfig;
export function loadConfig(env?: Env): LoadedConfig;
export function loadConfig(env: Env = process.env): LoadedConfig {
  notBlank(env, 'DATABASE_URL', 'unset it to use the embedded database, or give a URL such as postgresql://user@127.0.0.1:5432/db');
  const databaseUrl = url(env, 'DATABASE_URL', ['postgresql:', 'postgres:']);
  const adminToken = notBlank(env, 'ADMIN_TOKEN', 'unset it to have one generated, or give a secret of at least 16 characters');
  if (adminToken !== undefined && adminToken.length < 16) {
    throw new ConfigError('ADMIN_TOKEN must be at least 16 characters long');
  }
  const modelsFile = optional(env, 'MODELS_FILE');

  const accessKeyId = optional(env, 'S3_ACCESS_KEY_ID');
  const secretAccessKey = optional(env, 'S3_SECRET_ACCESS_KEY');
  if ((accessKeyId === undefined) !== (secretAccessKey === undefined)) {
    throw new ConfigError(
      `${accessKeyId === undefined ? 'S3_ACCESS_KEY_ID' : 'S3_SECRET_ACCESS_KEY'} is required when the other S3 key variable is set`,
    );
  }
  const configuredBucket = optional(env, 'S3_BUCKET');
  const bucket = configuredBucket ?? 'lora-adapters';
  if (!/^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/.test(bucket)) {
    throw new ConfigError(`S3_BUCKET must be a valid bucket name (3-63 of a-z, 0-9, '.', '-'), got "${bucket}"`);
  }
  const logLevel = optional(env, 'LOG_LEVEL') ?? 'log';
  if (!['error', 'warn', 'log', 'debug', 'verbose'].includes(logLevel)) {
    throw new ConfigError(`LOG_LEVEL must be one of error, warn, log, debug, verbose, got "${logLevel}"`);
  }

  const workers = integer(env, 'WORKERS', 1, 1, 256);
  if (workers > 1 && databaseUrl === undefined) {
    throw new ConfigError(
      `WORKERS=${workers} needs DATABASE_URL: the embedded database (PGlite) serves one process; set DATABASE_URL to a PostgreSQL server, or unset WORKERS`,
    );
  }

  const endpoint = url(env, 'S3_ENDPOINT', ['http:', 'https:']);
  return {
    port: integer(env, 'PORT', 8787, 0, 65535),
    host: optional(env, 'HOST') ?? '127.0.0.1',
    databaseUrl,
    adminToken,
    modelsFile,
    demoModels: modelsFile === undefined && databaseUrl === undefined,
    storage: {
      endpoint,
      region: optional(env, 'S3_REGION') ?? 'us-east-1',
      bucket,
      accessKeyId,
      secretAccessKey,
      forcePathStyle: boolean(env, 'S3_FORCE_PATH_STYLE', false),
      createBucket: boolean(env, 'S3_CREATE_BUCKET', false),
      embedded: endpoint === undefined && configuredBucket === undefined,
    },
    cacheDir: optional(env, 'CACHE_DIR') ?? '.cache',
    dataDir: optional(env, 'DATA_DIR') ?? '.data',
    logLevel: logLevel as AppConfig['logLevel'],
    shutdownGraceMs: integer(env, 'SHUTDOWN_GRACE_MS', 10_000, 0, 600_000),
    headersTimeoutMs: integer(env, 'HTTP_HEADERS_TIMEOUT_MS', 15_000, 100, 600_000),
    idleTimeoutMs: integer(env, 'HTTP_IDLE_TIMEOUT_MS', 60_000, 100, 3_600_000),
    workers,
    incompleteUploadMaxAgeMs: integer(env, 'INCOMPLETE_UPLOAD_MAX_AGE_MS', 86_400_000, 1_000, 30 * 86_400_000),
  };
}
