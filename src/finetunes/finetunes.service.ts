import { Injectable } from '@nestjs/common';
import type { Finetune } from '../generated/prisma/client.js';
import { Prisma } from '../generated/prisma/client.js';
import { ApiError } from '../common/errors.js';
import { CatalogService } from '../catalog/catalog.service.js';
import { OrphanObjectsService } from '../storage/orphan-objects.service.js';
import { mapFinetune, type CreateFinetuneDto, type FinetuneResponseDto, type ListPublicQuery } from './dto.js';
import { FinetuneEvents } from './finetune-events.js';
import { FinetunesRepository, type PublicOrder } from './finetunes.repository.js';

const ORDER_COLUMNS: Record<string, PublicOrder['column']> = {
  created_at: 'createdAt',
  modified_at: 'modifiedAt',
  name: 'name',
};

export function finetuneNotFound(idOrName: string): ApiError {
  return new ApiError('finetuneNotFound', `finetune "${idOrName}" not found`);
}

@Injectable()
export class FinetunesService {
  constructor(
    private readonly finetunes: FinetunesRepository,
    private readonly catalog: CatalogService,
    private readonly orphans: OrphanObjectsService,
    private readonly events: FinetuneEvents,
  ) {}

  async create(accountId: string, input: CreateFinetuneDto): Promise<FinetuneResponseDto> {
    const model = this.catalog.getLoraBase(input.model);
    const max = model.limits.max_finetunes_per_account;
    let created: Finetune | null;
    try {
      created = await this.finetunes.createWithinQuota(
        { accountId, name: input.name, model: model.name, description: input.description ?? '', public: input.public ?? false },
        max,
      );
    } catch (error) {
      if (error instanceof Prisma.PrismaClientKnownRequestError && error.code === 'P2002') {
        throw new ApiError('nameTaken', `name: a finetune named "${input.name}" already exists in this account`);
      }
      throw error;
    }
    if (!created) {
      throw new ApiError('finetuneQuota', `this account already has ${max} finetunes for ${model.name}, the most allowed`);
    }
    return mapFinetune(created);
  }

  async listOwn(accountId: string): Promise<FinetuneResponseDto[]> {
    return (await this.finetunes.listOwn(accountId)).map(mapFinetune);
  }

  async listPublic(query: ListPublicQuery): Promise<FinetuneResponseDto[]> {
    const orderBy = query.orderBy ?? '-created_at';
    const descending = orderBy.startsWith('-');
    const order: PublicOrder = { column: ORDER_COLUMNS[descending ? orderBy.slice(1) : orderBy]!, direction: descending ? 'desc' : 'asc' };
    return (await this.finetunes.listPublic(query.limit ?? 100, query.offset ?? 0, order)).map(mapFinetune);
  }

  /** Own (by id or name) or public (by id, then by name); anything else is 404 so existence is not confirmed. */
  async getVisible(accountId: string, idOrName: string): Promise<Finetune> {
    const finetune = await this.finetunes.findVisible(accountId, idOrName);
    if (!finetune) throw finetuneNotFound(idOrName);
    return finetune;
  }

  async getOwn(accountId: string, idOrName: string): Promise<Finetune> {
    const finetune = await this.finetunes.findOwn(accountId, idOrName);
    if (!finetune) throw finetuneNotFound(idOrName);
    return finetune;
  }

  async delete(accountId: string, idOrName: string): Promise<FinetuneResponseDto> {
    const finetune = await this.getOwn(accountId, idOrName);
    const keys = await this.finetunes.deleteRecordingOrphans(finetune.id);
    this.events.deleted(finetune.id);
    // A storage failure here is not the caller's: the keys stay recorded and the sweep retries them.
    await this.orphans.remove(keys);
    return mapFinetune(finetune);
  }
}
