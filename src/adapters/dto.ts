import { ApiProperty, ApiSchema } from '@nestjs/swagger';
import { DATE_TIME_PROPERTY } from '../docs/properties.js';
import type { FinetuneAsset } from '../generated/prisma/client.js';
import { ADAPTER_FILES } from './adapter-inspector.js';

@ApiSchema({ name: 'FinetuneAsset' })
export class FinetuneAssetResponseDto {
  @ApiProperty({ format: 'uuid' }) id!: string;
  @ApiProperty({ format: 'uuid' }) finetune_id!: string;
  @ApiProperty({ enum: [...ADAPTER_FILES] }) file_name!: string;
  @ApiProperty({ type: 'integer' }) bytes!: number;
  @ApiProperty({ pattern: '^[0-9a-f]{64}$' }) sha256!: string;
  @ApiProperty(DATE_TIME_PROPERTY) created_at!: string;
}

export function mapAsset(asset: FinetuneAsset): FinetuneAssetResponseDto {
  return {
    id: asset.id,
    finetune_id: asset.finetuneId,
    file_name: asset.fileName,
    bytes: Number(asset.bytes),
    sha256: asset.sha256,
    created_at: asset.createdAt.toISOString(),
  };
}
