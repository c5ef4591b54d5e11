import { Global, Module } from '@nestjs/common';
import { CatalogService } from './catalog.service.js';
import { ModelsController } from './models.controller.js';

@Global()
@Module({
  controllers: [ModelsController],
  providers: [CatalogService],
  exports: [CatalogService],
})
export class CatalogModule {}
