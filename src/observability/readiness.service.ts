import { Injectable } from '@nestjs/common';
import { access, constants } from 'node:fs/promises';
import { CatalogService } from '../catalog/catalog.service.js';
import { engineReplicas, type ModelDefinition } from '../catalog/model-definition.js';
import { PrismaService } from '../database/prisma.service.js';
import { ObjectStorage } from '../storage/object-storage.js';
import { EngineReadiness } from './engine-readiness.js';

/** Each check answers within this, so a hung dependency makes the probe fail rather than time out. */
const CHECK_TIMEOUT_MS = 2_000;
/** The answer is unauthenticated: enough of the error to act on, not a dump. */
const MAX_DETAIL = 200;

/** 'ok', or what is wrong. */
type CheckResult = string;

export interface Readiness {
  status: 'ready' | 'not ready';
  checks: {
    database: CheckResult;
    storage: CheckResult;
    /** Per model: 'ok' when it can serve (llama.cpp's file is readable; at least one replica answers). */
    engines: Record<string, CheckResult>;
    /** Per model with remote replicas (vLLM, SGLang): each replica's own result. */
    replicas: Record<string, Record<string, CheckResult>>;
  };
}

function reasonOf(error: unknown): string {
  // Duck-typed: under the test runner fetch's errors come from another realm, where `instanceof Error` fails.
  const { message, cause } = (error ?? {}) as { message?: unknown; cause?: { code?: string; message?: string } };
  const text = typeof message === 'string' ? message : String(error);
  // Prisma puts the call site first and the cause last.
  const last = text.split('\n').map((line) => line.trim()).filter(Boolean).at(-1) ?? 'failed';
  const detail = cause?.code ?? cause?.message;
  return (detail && !last.includes(detail) ? `${last} (${detail})` : last).slice(0, MAX_DETAIL);
}

async function bounded(check: (signal: AbortSignal) => Promise<unknown>): Promise<CheckResult> {
  const signal = AbortSignal.timeout(CHECK_TIMEOUT_MS);
  const timedOut = new Promise<never>((_, reject) =>
    signal.addEventListener('abort', () => reject(new Error(`no answer within ${CHECK_TIMEOUT_MS} ms`)), { once: true }),
  );
  try {
    await Promise.race([check(signal), timedOut]);
    return 'ok';
  } catch (error) {
    return reasonOf(error);
  }
}

/** llama.cpp: the model file can be read and the model is loaded. */
async function checkLocalModel(model: ModelDefinition, modelPath: string, engines: EngineReadiness): Promise<void> {
  await access(modelPath, constants.R_OK).catch(() => {
    throw new Error(`model file ${modelPath} is missing or unreadable`);
  });
  // Within the check's own bound, so that a long load reads as such rather than as a timeout.
  await engines.ready(model, CHECK_TIMEOUT_MS / 2);
}

/** A vLLM or SGLang replica answers GET /health with 200 (they do once their engine runs). */
async function checkReplica(baseUrl: string, signal: AbortSignal): Promise<void> {
  const url = `${baseUrl}/health`;
  const response = await fetch(url, { signal }).catch((error: unknown) => {
    throw new Error(`cannot reach ${url}: ${reasonOf(error)}`);
  });
  await response.body?.cancel();
  if (!response.ok) throw new Error(`answered ${response.status} on ${url}`);
}

/** A model's engine result, and its replicas' when it has some: ready while one replica answers. */
async function checkEngine(
  model: ModelDefinition,
  engines: EngineReadiness,
): Promise<{ result: CheckResult; replicas?: Record<string, CheckResult> }> {
  const engine = model.engine!;
  if (engine.type === 'llama-cpp') return { result: await bounded(() => checkLocalModel(model, engine.model_path, engines)) };
  const urls = engineReplicas(engine);
  const results = await Promise.all(urls.map((url) => bounded((signal) => checkReplica(url, signal))));
  const replicas = Object.fromEntries(urls.map((url, i) => [url, results[i]!]));
  return { result: results.includes('ok') ? 'ok' : results.join('; ').slice(0, MAX_DETAIL), replicas };
}

/** What /readyz reports: the database, the object storage and every configured engine, checked concurrently. */
@Injectable()
export class ReadinessService {
  constructor(
    private readonly prisma: PrismaService,
    private readonly storage: ObjectStorage,
    private readonly catalog: CatalogService,
    private readonly engines: EngineReadiness,
  ) {}

  async check(): Promise<Readiness> {
    const models = this.catalog.all().filter((m) => m.engine !== null);
    const [database, storage, engines] = await Promise.all([
      bounded(() => this.prisma.$queryRaw`SELECT 1`),
      bounded(() => this.storage.ping()),
      Promise.all(models.map(async (m) => [m.name, await checkEngine(m, this.engines)] as const)),
    ]);
    const checks = {
      database,
      storage,
      engines: Object.fromEntries(engines.map(([name, { result }]) => [name, result])),
      replicas: Object.fromEntries(engines.flatMap(([name, { replicas }]) => (replicas ? [[name, replicas]] : []))),
    };
    const ready = [database, storage, ...engines.map(([, { result }]) => result)].every((result) => result === 'ok');
    return { status: ready ? 'ready' : 'not ready', checks };
  }
}
