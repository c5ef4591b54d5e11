import { Injectable, Logger } from '@nestjs/common';
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

interface StagedFile extends InspectedFile {
  stagingKey: string;
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
  private readonly logger = new Logger(AdapterAssetsService.name);
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
    let staged: StagedFile | undefined;
    try {
      for await (const part of parts) {
        if (part.type === 'field') {
          if (part.fieldname !== 'file_name') throw new ApiError('validation', `unexpected form field "${part.fieldname}": expected file_name and file`);
          declared = declaredFile(part.value);
        } else {
          if (part.fieldname !== 'file' || staged) {
            part.file.resume();
            throw new ApiError('validation', `unexpected file field "${part.fieldname}": send exactly one file, in the field "file"`);
          }
          staged = await this.stage(accountId, part, declared, model, counterpart);
        }
      }
      if (!staged) throw new ApiError('validation', 'file: the form has no file; send the adapter file in the field "file"');
      if (!declared) throw new ApiError('validation', `file_name: missing; it must be one of ${ADAPTER_FILES.join(', ')}`);
      if (declared !== staged.file) {
        throw new ApiError('validation', `file_name is ${declared} but the uploaded file is ${staged.file === 'adapter_model.safetensors' ? 'a safetensors file' : 'not a safetensors file'}`);
      }
      const asset = await this.commit(accountId, finetune, model, staged);
      this.metrics.countUpload(staged.file, staged.bytes);
      return new WithMessages(mapAsset(asset), staged.warnings.map((message) => ({ code: ERRORS.adapterWarning.code, message })));
    } finally {
      if (staged) await this.storage.delete(staged.stagingKey).catch((error) => this.logger.warn(`staging cleanup: ${error}`));
    }
  }

  assetsOf(finetuneId: string): Promise<FinetuneAsset[]> {
    return this.assets.assetsOfFinetune(finetuneId);
  }

  /** Streams the file to a staging object; rejects it as soon as its bytes show it is bad. */
  private async stage(
    accountId: string,
    part: Extract<Multipart, { type: 'file' }>,
    declared: AdapterFile | undefined,
    model: ModelDefinition,
    counterpart: FinetuneAsset[],
  ): Promise<StagedFile> {
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
    const stagingKey = `accounts/${accountId}/uploads/${randomUUID()}`;
    const body = pipeline(part.file, inspector, () => undefined);
    await this.storage.upload(stagingKey, body, { contentType: 'application/octet-stream' });
    try {
      return { ...inspector.result(), stagingKey, warnings };
    } catch (error) {
      await this.storage.delete(stagingKey).catch(() => undefined);
      throw error;
    }
  }

  private async commit(accountId: string, finetune: Finetune, model: ModelDefinition, staged: StagedFile): Promise<FinetuneAsset> {
    const key = assetKey({ accountId, finetuneId: finetune.id, sha256: staged.sha256, fileName: staged.file });
    await this.storage.copy(staged.stagingKey, key);
    const summary: AssetSummary =
      staged.file === 'adapter_config.json' ? { config_json: staged.content!.toString('utf8') } : { header: staged.header! };
    try {
      const { asset, replaced } = await this.assets.withLockedFinetune(finetune.id, async (tx, status) => {
        if (status === null) throw finetuneNotFound(finetune.name);
        if (status === 'ready') throw immutable(finetune);
        const existing = await this.assets.assetsOf(tx, finetune.id);
        const previous = existing.find((a) => a.fileName === staged.file);
        const other = existing.find((a) => a.fileName !== staged.file);
        if (other) {
          // Checked under the row lock, against whatever counterpart is current now.
          const [config, weights] = staged.file === 'adapter_config.json' ? [staged, other] : [other, staged];
          validateAdapterPair(this.headerOf(weights), this.configOf(config, model), model.architecture!);
        }
        const asset = await this.assets.replaceAsset(
          tx,
          { finetuneId: finetune.id, fileName: staged.file, bytes: staged.bytes, sha256: staged.sha256, storageKey: key, summary: summary as unknown as Prisma.InputJsonValue },
          previous,
        );
        if (other) await this.assets.markReady(tx, finetune.id);
        return { asset, replaced: previous && previous.storageKey !== key ? previous.storageKey : undefined };
      });
      if (replaced) await this.orphans.remove([replaced]);
      return asset;
    } catch (error) {
      if (!(await this.assets.isReferenced(key))) await this.storage.delete(key).catch(() => undefined);
      throw error;
    }
  }

  private headerOf(source: StagedFile | FinetuneAsset): SafetensorsHeader {
    return 'stagingKey' in source ? source.header! : (source.summary as unknown as { header: SafetensorsHeader }).header;
  }

  private configOf(source: StagedFile | FinetuneAsset, model: ModelDefinition): PeftLoraConfig {
    const text = 'stagingKey' in source ? source.content!.toString('utf8') : (source.summary as unknown as { config_json: string }).config_json;
    return parseConfig(text, model).config;
  }
}
