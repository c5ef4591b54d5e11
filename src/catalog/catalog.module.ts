import { Global, Module } from '@nestjs/common';
import { AccountsModule } from '../accounts/accounts.module.js';
import { CatalogService } from './catalog.service.js';
import { ModelsController } from './models.controller.js';

@Global()
@Module({
  imports: [AccountsModule],
  controllers: [ModelsController],
  providers: [CatalogService],
  exports: [CatalogService],
})
export class CatalogModule {}
