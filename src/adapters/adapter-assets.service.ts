import { Injectable } from '@nestjs/common';
import type { Multipart } from '@fastify/multipart';
import { randomUUID } from 'node:crypto';
import { pipeline } from 'node:stream';
import type { Finetune, FinetuneAsset, Prisma } from '../generated/prisma/client.js';
import { ApiError, ERRORS } from '../common/errors.js';
import { WithMessages } from '../common/envelope.js';
import { CatalogService } from '../catalog/catalog.service.js';
import type { ModelDefinition } from '../catalog/model-definition.js';
import { finetuneNotFound, FinetunesService } from '../finetunes/finetunes.service.js';
import { adapterHeaderLimits, validateAdapterPair, validateAdapterTensors } from '../formats/adapter-validation.js';
import type { AdapterFile } from '../formats/format-error.js';
import { parsePeftConfig, type PeftLoraConfig } from '../formats/peft-config.js';
import { MetricsService } from '../observability/metrics.service.js';
import type { SafetensorsHeader } from '../formats/safetensors.js';
import { assetKey, ObjectStorage } from '../storage/object-storage.js';
import { OrphanObjectsService } from '../storage/orphan-objects.service.js';
import { ADAPTER_FILES, AdapterInspector, type InspectedFile } from './adapter-inspector.js';
import { AdapterAssetsRepository } from './adapter-assets.repository.js';
import { mapAsset, type FinetuneAssetResponseDto } from './dto.js';
import { ValidationTurns } from './validation-turns.js';

/** What validation kept of a file, stored with its row so the counterpart can be checked without a download. */
type AssetSummary = { config_json: string } | { header: SafetensorsHeader };

interface StoredFile extends InspectedFile {
  key: string;
  /** adapter_config.json: what parsing it warned about. */
  warnings: string[];
}

function parseConfig(text: string | Buffer, model: ModelDefinition): { config: PeftLoraConfig; warnings: string[] } {
  return parsePeftConfig(typeof text === 'string' ? text : new Uint8Array(text), {
    architecture: model.architecture!,
    maxLoraRank: model.limits.max_lora_rank,
    baseModelName: model.base_model ?? undefined,
  });
}

function declaredFile(value: unknown): AdapterFile {
  if (typeof value !== 'string' || !(ADAPTER_FILES as readonly string[]).includes(value)) {
    throw new ApiError('validation', `file_name must be one of ${ADAPTER_FILES.join(', ')}, got ${JSON.stringify(value)}`);
  }
  return value as AdapterFile;
}

function immutable(finetune: Finetune): ApiError {
  return new ApiError('finetuneReady', `finetune "${finetune.name}" is ready: its assets can no longer be replaced`);
}

@Injectable()
export class AdapterAssetsService {
  private readonly turns = new ValidationTurns();

  constructor(
    private readonly finetunes: FinetunesService,
    private readonly catalog: CatalogService,
    private readonly storage: ObjectStorage,
    private readonly orphans: OrphanObjectsService,
    private readonly assets: AdapterAssetsRepository,
    private readonly metrics: MetricsService,
  ) {}

  /**
   * Streams one asset of a multipart form to storage while validating it, then records it; the
   * finetune becomes ready once both files are present and agree with each other and the base model.
   */
  async upload(accountId: string, idOrName: string, parts: AsyncIterableIterator<Multipart>): Promise<WithMessages<FinetuneAssetResponseDto>> {
    const finetune = await this.finetunes.getOwn(accountId, idOrName);
    if (finetune.status === 'ready') throw immutable(finetune);
    const model = this.catalog.getLoraBase(finetune.model);
    const counterpart = await this.assets.assetsOfFinetune(finetune.id);

    let declared: AdapterFile | undefined;
    let stored: StoredFile | undefined;
    let committed = false;
    try {
      for await (const part of parts) {
        if (part.type === 'field') {
          if (part.fieldname !== 'file_name') throw new ApiError('validation', `unexpected form field "${part.fieldname}": expected file_name and file`);
          declared = declaredFile(part.value);
        } else {
          if (part.fieldname !== 'file' || stored) {
            part.file.resume();
            throw new ApiError('validation', `unexpected file field "${part.fieldname}": send exactly one file, in the field "file"`);
          }
          stored = await this.store(accountId, finetune.id, part, declared, model, counterpart);
        }
      }
      if (!stored) throw new ApiError('validation', 'file: the form has no file; send the adapter file in the field "file"');
      if (!declared) throw new ApiError('validation', `file_name: missing; it must be one of ${ADAPTER_FILES.join(', ')}`);
      if (declared !== stored.file) {
        throw new ApiError('validation', `file_name is ${declared} but the uploaded file is ${stored.file === 'adapter_model.safetensors' ? 'a safetensors file' : 'not a safetensors file'}`);
      }
      const asset = await this.commit(finetune, model, stored);
      committed = true;
      this.metrics.countUpload(stored.file, stored.bytes);
      return new WithMessages(mapAsset(asset), stored.warnings.map((message) => ({ code: ERRORS.adapterWarning.code, message })));
    } finally {
      // A stored file that no row took (rejected form, failed validation or commit) must not stay behind.
      if (stored && !committed && !(await this.assets.isReferenced(stored.key).catch(() => true))) await this.orphans.discard(stored.key);
    }
  }

  assetsOf(finetuneId: string): Promise<FinetuneAsset[]> {
    return this.assets.assetsOfFinetune(finetuneId);
  }

  /**
   * Streams the file straight to its final, per-upload key (nothing refers to it until commit() writes its row);
   * rejects it as soon as its bytes show it is bad.
   */
  private async store(
    accountId: string,
    finetuneId: string,
    part: Extract<Multipart, { type: 'file' }>,
    declared: AdapterFile | undefined,
    model: ModelDefinition,
    counterpart: FinetuneAsset[],
  ): Promise<StoredFile> {
    const fromFilename = ADAPTER_FILES.find((name) => name === part.filename);
    const storedConfig = counterpart.find((a) => a.fileName === 'adapter_config.json');
    let warnings: string[] = [];
    const inspector = new AdapterInspector(declared ?? fromFilename, model.limits.max_adapter_bytes, model.name, {
      header: (header) => {
        validateAdapterTensors(header, model.architecture!);
        // An early look against the config already stored; the final check runs under the row lock.
        if (storedConfig) validateAdapterPair(header, this.configOf(storedConfig, model), model.architecture!);
      },
      headerLimits: adapterHeaderLimits(model.architecture!),
      config: (content) => {
        warnings = parseConfig(content, model).warnings;
      },
      turns: this.turns,
    });
    const key = assetKey({ accountId, finetuneId, uploadId: randomUUID() });
    // Recorded first, so that an object whose row a killed process never committed is still swept.
    await this.orphans.expect(key);
    const body = pipeline(part.file, inspector, () => undefined);
    try {
      // A failed or aborted upload leaves no object (ObjectStorage aborts the multipart upload); its record goes too.
      await this.storage.upload(key, body, { contentType: 'application/octet-stream' });
    } catch (error) {
      await this.orphans.discard(key);
      throw error;
    }
    try {
      return { ...inspector.result(), key, warnings };
    } catch (error) {
      await this.orphans.discard(key);
      throw error;
    }
  }

  private async commit(finetune: Finetune, model: ModelDefinition, stored: StoredFile): Promise<FinetuneAsset> {
    const { key } = stored;
    const summary: AssetSummary =
      stored.file === 'adapter_config.json' ? { config_json: stored.content!.toString('utf8') } : { header: stored.header! };
    const { asset, replaced } = await this.assets.withLockedFinetune(finetune.id, async (tx, status) => {
      if (status === null) throw finetuneNotFound(finetune.name);
      if (status === 'ready') throw immutable(finetune);
      const existing = await this.assets.assetsOf(tx, finetune.id);
      const previous = existing.find((a) => a.fileName === stored.file);
      const other = existing.find((a) => a.fileName !== stored.file);
      if (other) {
        // Checked under the row lock, against whatever counterpart is current now.
        const [config, weights] = stored.file === 'adapter_config.json' ? [stored, other] : [other, stored];
        validateAdapterPair(this.headerOf(weights), this.configOf(config, model), model.architecture!);
      }
      const asset = await this.assets.replaceAsset(
        tx,
        { finetuneId: finetune.id, fileName: stored.file, bytes: stored.bytes, sha256: stored.sha256, storageKey: key, summary: summary as unknown as Prisma.InputJsonValue },
        previous,
      );
      if (other) await this.assets.markReady(tx, finetune.id);
      return { asset, replaced: previous?.storageKey };
    });
    if (replaced) await this.orphans.remove([replaced]);
    return asset;
  }

  private headerOf(source: StoredFile | FinetuneAsset): SafetensorsHeader {
    return 'key' in source ? source.header! : (source.summary as unknown as { header: SafetensorsHeader }).header;
  }

  private configOf(source: StoredFile | FinetuneAsset, model: ModelDefinition): PeftLoraConfig {
    const text = 'key' in source ? source.content!.toString('utf8') : (source.summary as unknown as { config_json: string }).config_json;
    return parseConfig(text, model).config;
  }
}
