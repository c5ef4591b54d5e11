-- CreateEnum
CREATE TYPE "finetune_status" AS ENUM ('pending', 'ready');

-- CreateTable
CREATE TABLE "accounts" (
    "id" CHAR(32) NOT NULL,
    "name" VARCHAR(128) NOT NULL,
    "created_at" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,

    CONSTRAINT "accounts_pkey" PRIMARY KEY ("id")
);

-- CreateTable
CREATE TABLE "api_tokens" (
    "id" UUID NOT NULL,
    "account_id" CHAR(32) NOT NULL,
    "name" VARCHAR(128) NOT NULL,
    "token_hash" CHAR(64) NOT NULL,
    "created_at" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,

    CONSTRAINT "api_tokens_pkey" PRIMARY KEY ("id")
);

-- CreateTable
CREATE TABLE "finetunes" (
    "id" UUID NOT NULL,
    "account_id" CHAR(32) NOT NULL,
    "name" VARCHAR(64) NOT NULL,
    "model" VARCHAR(255) NOT NULL,
    "description" VARCHAR(1024) NOT NULL DEFAULT '',
    "public" BOOLEAN NOT NULL DEFAULT false,
    "status" "finetune_status" NOT NULL DEFAULT 'pending',
    "created_at" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "modified_at" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,

    CONSTRAINT "finetunes_pkey" PRIMARY KEY ("id")
);

-- CreateTable
CREATE TABLE "finetune_assets" (
    "id" UUID NOT NULL,
    "finetune_id" UUID NOT NULL,
    "file_name" VARCHAR(64) NOT NULL,
    "bytes" BIGINT NOT NULL,
    "sha256" CHAR(64) NOT NULL,
    "storage_key" VARCHAR(512) NOT NULL,
    "summary" JSONB NOT NULL,
    "created_at" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,

    CONSTRAINT "finetune_assets_pkey" PRIMARY KEY ("id")
);

-- CreateTable
CREATE TABLE "orphan_objects" (
    "key" VARCHAR(512) NOT NULL,
    "attempts" INTEGER NOT NULL DEFAULT 0,
    "last_error" TEXT,
    "created_at" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,

    CONSTRAINT "orphan_objects_pkey" PRIMARY KEY ("key")
);

-- CreateIndex
CREATE UNIQUE INDEX "api_tokens_token_hash_key" ON "api_tokens"("token_hash");

-- CreateIndex
CREATE INDEX "api_tokens_account_id_idx" ON "api_tokens"("account_id");

-- CreateIndex
CREATE INDEX "finetunes_public_created_at_idx" ON "finetunes"("public", "created_at");

-- CreateIndex
CREATE UNIQUE INDEX "finetunes_account_id_name_key" ON "finetunes"("account_id", "name");

-- CreateIndex
CREATE UNIQUE INDEX "finetune_assets_finetune_id_file_name_key" ON "finetune_assets"("finetune_id", "file_name");

-- AddForeignKey
ALTER TABLE "api_tokens" ADD CONSTRAINT "api_tokens_account_id_fkey" FOREIGN KEY ("account_id") REFERENCES "accounts"("id") ON DELETE CASCADE ON UPDATE CASCADE;

-- AddForeignKey
ALTER TABLE "finetunes" ADD CONSTRAINT "finetunes_account_id_fkey" FOREIGN KEY ("account_id") REFERENCES "accounts"("id") ON DELETE CASCADE ON UPDATE CASCADE;

-- AddForeignKey
ALTER TABLE "finetune_assets" ADD CONSTRAINT "finetune_assets_finetune_id_fkey" FOREIGN KEY ("finetune_id") REFERENCES "finetunes"("id") ON DELETE CASCADE ON UPDATE CASCADE;
