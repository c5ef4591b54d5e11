-- The last four characters of a token's secret, so that a listing can tell tokens apart without the secret.
-- Tokens created before this migration have none.
ALTER TABLE "api_tokens" ADD COLUMN "last_four" CHAR(4);
