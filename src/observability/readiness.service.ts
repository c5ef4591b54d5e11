import { Injectable } from '@nestjs/common';
import { access, constants } from 'node:fs/promises';
import { CatalogService } from '../catalog/catalog.service.js';
import type { ModelDefinition } from '../catalog/model-definition.js';
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
  checks: { database: CheckResult; storage: CheckResult; engines: Record<string, CheckResult> };
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

/** llama.cpp: the model file can be read and is loaded; vLLM: its server answers GET /health with 200 (it does once the engine runs). */
async function checkEngine(model: ModelDefinition, engines: EngineReadiness, signal: AbortSignal): Promise<void> {
  const engine = model.engine!;
  if (engine.type === 'llama-cpp') {
    await access(engine.model_path, constants.R_OK).catch(() => {
      throw new Error(`model file ${engine.model_path} is missing or unreadable`);
    });
    // Within the check's own bound, so that a long load reads as such rather than as a timeout.
    await engines.ready(model, CHECK_TIMEOUT_MS / 2);
    return;
  }
  const url = `${engine.base_url.replace(/\/+$/, '')}/health`;
  const response = await fetch(url, { signal }).catch((error: unknown) => {
    throw new Error(`cannot reach ${url}: ${reasonOf(error)}`);
  });
  await response.body?.cancel();
  if (!response.ok) throw new Error(`vLLM answered ${response.status} on ${url}`);
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
      Promise.all(models.map(async (m) => [m.name, await bounded((signal) => checkEngine(m, this.engines, signal))] as const)),
    ]);
    const checks = { database, storage, engines: Object.fromEntries(engines) };
    const ready = [database, storage, ...engines.map(([, result]) => result)].every((result) => result === 'ok');
    return { status: ready ? 'ready' : 'not ready', checks };
  }
}
