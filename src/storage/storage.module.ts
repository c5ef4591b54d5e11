import { Global, Module } from '@nestjs/common';
import { APP_CONFIG, type AppConfig } from '../config/app-config.js';
import { ObjectStorage } from './object-storage.js';
import { OrphanObjectsService } from './orphan-objects.service.js';
import { StorageSweeper } from './storage-sweeper.service.js';

@Global()
@Module({
  providers: [
    {
      provide: ObjectStorage,
      inject: [APP_CONFIG],
      useFactory: async (config: AppConfig) => {
        const storage = new ObjectStorage(config.storage);
        if (config.storage.createBucket) await storage.ensureBucket();
        return storage;
      },
    },
    OrphanObjectsService,
    StorageSweeper,
  ],
  exports: [ObjectStorage, OrphanObjectsService],
})
export class StorageModule {}
