-- An upload's object is recorded before its first byte (`pending`), and the commit of its row drops the record: if
-- the process dies in between, the sweep deletes the object once the upload could no longer be running.
ALTER TABLE "orphan_objects" ADD COLUMN "pending" BOOLEAN NOT NULL DEFAULT false;
