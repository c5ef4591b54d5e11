-- CreateEnum
CREATE TYPE "usage_status" AS ENUM ('ok', 'aborted', 'error');

-- CreateTable
CREATE TABLE "account_limits" (
    "account_id" CHAR(32) NOT NULL,
    "model" VARCHAR(255) NOT NULL,
    "max_requests_per_min" INTEGER NOT NULL,
    "updated_at" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,

    CONSTRAINT "account_limits_pkey" PRIMARY KEY ("account_id","model")
);

-- CreateTable
CREATE TABLE "rate_limit_windows" (
    "account_id" CHAR(32) NOT NULL,
    "model" VARCHAR(255) NOT NULL,
    "window_start" TIMESTAMPTZ(3) NOT NULL,
    "count" INTEGER NOT NULL,

    CONSTRAINT "rate_limit_windows_pkey" PRIMARY KEY ("account_id","model","window_start")
);

-- CreateTable
CREATE TABLE "usage_records" (
    "id" BIGSERIAL NOT NULL,
    "account_id" CHAR(32) NOT NULL,
    "model" VARCHAR(255) NOT NULL,
    "finetune_id" UUID,
    "prompt_tokens" INTEGER NOT NULL,
    "completion_tokens" INTEGER NOT NULL,
    "neurons" DOUBLE PRECISION NOT NULL,
    "status" "usage_status" NOT NULL,
    "cached" BOOLEAN NOT NULL DEFAULT false,
    "latency_ms" INTEGER NOT NULL,
    "created_at" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,

    CONSTRAINT "usage_records_pkey" PRIMARY KEY ("id")
);

-- CreateIndex
CREATE INDEX "rate_limit_windows_window_start_idx" ON "rate_limit_windows"("window_start");

-- CreateIndex
CREATE INDEX "usage_records_account_id_created_at_idx" ON "usage_records"("account_id", "created_at");

-- AddForeignKey
ALTER TABLE "account_limits" ADD CONSTRAINT "account_limits_account_id_fkey" FOREIGN KEY ("account_id") REFERENCES "accounts"("id") ON DELETE CASCADE ON UPDATE CASCADE;

-- AddForeignKey
ALTER TABLE "usage_records" ADD CONSTRAINT "usage_records_account_id_fkey" FOREIGN KEY ("account_id") REFERENCES "accounts"("id") ON DELETE CASCADE ON UPDATE CASCADE;
