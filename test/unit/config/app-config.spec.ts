import { describe, expect, it } from '@jest/globals';
import { ConfigError, loadConfig } from '../../../src/config/app-config.js';

const base = { DATABASE_URL: 'postgresql://u@127.0.0.1:5432/db', ADMIN_TOKEN: 'a-long-enough-admin-token' };

describe('loadConfig', () => {
  it('applies the documented defaults', () => {
    const config = loadConfig(base);
    expect(config).toMatchObject({
      port: 8787,
      host: '127.0.0.1',
      databaseUrl: base.DATABASE_URL,
      storage: { region: 'us-east-1', bucket: 'lora-adapters', forcePathStyle: false, createBucket: false, embedded: true },
      headersTimeoutMs: 15_000,
      idleTimeoutMs: 60_000,
    });
    expect(config.modelsFile).toBeUndefined();
    expect(config.demoModels).toBe(false);
    expect(config.storage.endpoint).toBeUndefined();
  });

  it('runs embedded with no variables at all: PGlite, generated admin token, demo models', () => {
    const config = loadConfig({});
    expect(config.databaseUrl).toBeUndefined();
    expect(config.adminToken).toBeUndefined();
    expect(config).toMatchObject({ demoModels: true, dataDir: '.data', storage: { embedded: true } });
  });

  it('switches each part to the real service on its own variable', () => {
    expect(loadConfig({ DATABASE_URL: base.DATABASE_URL })).toMatchObject({ databaseUrl: base.DATABASE_URL, demoModels: false });
    expect(loadConfig({ ADMIN_TOKEN: base.ADMIN_TOKEN })).toMatchObject({ adminToken: base.ADMIN_TOKEN, demoModels: true });
    // A MODELS_FILE of one's own replaces the demo models even with the embedded database.
    expect(loadConfig({ MODELS_FILE: '/etc/models.json' })).toMatchObject({ modelsFile: '/etc/models.json', demoModels: false });
  });

  it('reads every variable', () => {
    const config = loadConfig({
      ...base,
      PORT: '9000',
      HOST: '0.0.0.0',
      MODELS_FILE: '/etc/models.json',
      S3_ENDPOINT: 'http://127.0.0.1:4568',
      S3_REGION: 'auto',
      S3_BUCKET: 'adapters',
      S3_ACCESS_KEY_ID: 'id',
      S3_SECRET_ACCESS_KEY: 'secret',
      S3_FORCE_PATH_STYLE: 'true',
      S3_CREATE_BUCKET: '1',
      HTTP_HEADERS_TIMEOUT_MS: '5000',
      HTTP_IDLE_TIMEOUT_MS: '120000',
    });
    expect(config).toMatchObject({
      port: 9000,
      host: '0.0.0.0',
      modelsFile: '/etc/models.json',
      storage: {
        endpoint: 'http://127.0.0.1:4568',
        region: 'auto',
        bucket: 'adapters',
        accessKeyId: 'id',
        secretAccessKey: 'secret',
        forcePathStyle: true,
        createBucket: true,
        embedded: false,
      },
      headersTimeoutMs: 5000,
      idleTimeoutMs: 120_000,
    });
    expect(loadConfig({ ...base, S3_BUCKET: 'on-aws' }).storage.embedded).toBe(false);
  });

  it('serves from one process unless WORKERS says otherwise, which needs a database server', () => {
    expect(loadConfig(base).workers).toBe(1);
    expect(loadConfig({ ...base, WORKERS: '4' }).workers).toBe(4);
    expect(() => loadConfig({ WORKERS: '2' })).toThrow(/WORKERS=2 needs DATABASE_URL: the embedded database \(PGlite\) serves one process/);
    expect(loadConfig({ WORKERS: '1' }).workers).toBe(1);
    expect(() => loadConfig({ ...base, WORKERS: '0' })).toThrow(/WORKERS must be an integer from 1 to 256, got "0"/);
    expect(() => loadConfig({ ...base, WORKERS: 'all' })).toThrow(/WORKERS must be an integer/);
  });

  it.each([
    [{ DATABASE_URL: 'mysql://x' }, /DATABASE_URL must use postgresql:/],
    [{ DATABASE_URL: 'not a url' }, /DATABASE_URL must be a URL/],
    // Set but blank is a mistake (an unset variable in a deployment file), not a request for the embedded default.
    [{ DATABASE_URL: ' ' }, /DATABASE_URL is set but empty: unset it to use the embedded database/],
    [{ ADMIN_TOKEN: '' }, /ADMIN_TOKEN is set but empty: unset it to have one generated/],
    [{ ADMIN_TOKEN: 'short' }, /ADMIN_TOKEN must be at least 16/],
    [{ PORT: 'eighty' }, /PORT must be an integer/],
    [{ PORT: '70000' }, /PORT must be an integer from 0 to 65535/],
    [{ S3_ENDPOINT: 'ftp://x' }, /S3_ENDPOINT must use http: or https:/],
    [{ S3_BUCKET: 'Bad_Bucket' }, /S3_BUCKET must be a valid bucket name/],
    [{ S3_ACCESS_KEY_ID: 'id' }, /S3_SECRET_ACCESS_KEY is required/],
    [{ S3_SECRET_ACCESS_KEY: 'secret' }, /S3_ACCESS_KEY_ID is required/],
    [{ S3_FORCE_PATH_STYLE: 'maybe' }, /S3_FORCE_PATH_STYLE must be true or false/],
    [{ S3_CREATE_BUCKET: 'sometimes' }, /S3_CREATE_BUCKET must be true or false/],
    [{ LOG_LEVEL: 'loud' }, /LOG_LEVEL must be one of/],
    [{ SHUTDOWN_GRACE_MS: '-1' }, /SHUTDOWN_GRACE_MS must be an integer/],
    [{ HTTP_HEADERS_TIMEOUT_MS: '0' }, /HTTP_HEADERS_TIMEOUT_MS must be an integer from 100 to 600000/],
    [{ HTTP_IDLE_TIMEOUT_MS: '1m' }, /HTTP_IDLE_TIMEOUT_MS must be an integer/],
  ])('fails fast on %j naming the variable', (override, message) => {
    expect(() => loadConfig({ ...base, ...override })).toThrow(ConfigError);
    expect(() => loadConfig({ ...base, ...override })).toThrow(message);
  });
});
