import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { get_dmmf } from '@prisma/prisma-schema-wasm';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import pg from 'pg';
import { createTestDatabase, type TestDatabase } from '../../helpers/database.js';

/**
 * The migrations are hand-written SQL, so this proves they build exactly the database schema.prisma
 * describes: every table, column (type, length, precision, nullability, default), enum, primary key,
 * index, unique constraint and foreign key, and nothing more.
 */

interface DmmfField {
  name: string;
  dbName?: string | null;
  kind: 'scalar' | 'enum' | 'object';
  type: string;
  isRequired: boolean;
  hasDefaultValue: boolean;
  default?: unknown;
  nativeType?: [string, string[]] | null;
  relationFromFields?: string[];
  relationToFields?: string[];
  relationOnDelete?: string;
}
interface DmmfModel {
  name: string;
  dbName: string | null;
  fields: DmmfField[];
}
interface DmmfIndex {
  model: string;
  type: 'id' | 'unique' | 'normal';
  fields: { name: string }[];
}
interface Dmmf {
  datamodel: { models: DmmfModel[]; enums: { name: string; dbName: string | null; values: { name: string }[] }[]; indexes: DmmfIndex[] };
}

const dmmf: Dmmf = JSON.parse(
  get_dmmf(JSON.stringify({ prismaSchema: readFileSync(join(import.meta.dirname, '../../../prisma/schema.prisma'), 'utf8') })),
);
const models = dmmf.datamodel.models;
const tableOf = (model: DmmfModel) => model.dbName ?? model.name;
const columnOf = (field: DmmfField) => field.dbName ?? field.name;
const modelByName = new Map(models.map((m) => [m.name, m]));
const enumDbName = new Map(dmmf.datamodel.enums.map((e) => [e.name, e.dbName ?? e.name]));

/** What information_schema reports for a Prisma field. */
function expectedColumn(field: DmmfField) {
  const [native, args] = field.nativeType ?? [undefined, []];
  const type = (() => {
    if (field.kind === 'enum') return { data_type: 'USER-DEFINED', udt_name: enumDbName.get(field.type) };
    switch (native) {
      case 'Char':
        return { data_type: 'character', character_maximum_length: Number(args[0]) };
      case 'VarChar':
        return { data_type: 'character varying', character_maximum_length: Number(args[0]) };
      case 'Uuid':
        return { data_type: 'uuid' };
      case 'Timestamptz':
        return { data_type: 'timestamp with time zone', datetime_precision: Number(args[0] ?? 6) };
      case undefined:
        break;
      default:
        throw new Error(`extend this test for native type ${native}`);
    }
    const plain: Record<string, object> = {
      String: { data_type: 'text' },
      Int: { data_type: 'integer' },
      BigInt: { data_type: 'bigint' },
      Boolean: { data_type: 'boolean' },
      Json: { data_type: 'jsonb' },
      Float: { data_type: 'double precision' },
      DateTime: { data_type: 'timestamp without time zone', datetime_precision: 3 },
    };
    const mapped = plain[field.type];
    if (!mapped) throw new Error(`extend this test for type ${field.type}`);
    return mapped;
  })();
  // uuid() and @updatedAt are filled in by the client; now() and literals are database defaults.
  const def = field.default as { name?: string } | string | number | boolean | undefined;
  const dbDefault = field.hasDefaultValue && !(typeof def === 'object' && def?.name === 'uuid');
  return { ...type, is_nullable: field.isRequired ? 'NO' : 'YES', has_default: dbDefault };
}

let db: TestDatabase;
let client: pg.Client;

beforeAll(async () => {
  db = await createTestDatabase();
  client = new pg.Client({ connectionString: db.url });
  await client.connect();
});
afterAll(async () => {
  await client.end();
  await db.drop();
});

describe('migrated database matches schema.prisma', () => {
  it('has exactly the tables of the schema (plus _prisma_migrations)', async () => {
    const { rows } = await client.query(
      "SELECT table_name FROM information_schema.tables WHERE table_schema = 'public' AND table_type = 'BASE TABLE'",
    );
    expect(rows.map((r) => r.table_name).sort()).toEqual([...models.map(tableOf), '_prisma_migrations'].sort());
  });

  it('has exactly the enums of the schema, with their values in order', async () => {
    const { rows } = await client.query(
      `SELECT t.typname, array_agg(e.enumlabel ORDER BY e.enumsortorder)::text[] AS labels
       FROM pg_type t JOIN pg_enum e ON e.enumtypid = t.oid GROUP BY t.typname`,
    );
    const expected = dmmf.datamodel.enums.map((e) => ({ typname: e.dbName ?? e.name, labels: e.values.map((v) => v.name) }));
    expect(rows.sort((a, b) => a.typname.localeCompare(b.typname))).toEqual(expected.sort((a, b) => a.typname.localeCompare(b.typname)));
  });

  it.each(models.map((m) => [m.name, m] as const))('%s: every column with its type, nullability and default, and no others', async (_n, model) => {
    const { rows } = await client.query(
      `SELECT column_name, data_type, udt_name, character_maximum_length, datetime_precision, is_nullable, column_default
       FROM information_schema.columns WHERE table_schema = 'public' AND table_name = $1`,
      [tableOf(model)],
    );
    const actual = Object.fromEntries(rows.map((r) => [r.column_name, r]));
    const scalar = model.fields.filter((f) => f.kind !== 'object');
    expect(Object.keys(actual).sort()).toEqual(scalar.map(columnOf).sort());
    for (const field of scalar) {
      const row = actual[columnOf(field)];
      const { has_default, ...expected } = expectedColumn(field);
      expect({ column: columnOf(field), ...row, has_default: row.column_default !== null }).toMatchObject({
        column: columnOf(field),
        ...expected,
        has_default,
      });
    }
  });

  it.each(models.map((m) => [m.name, m] as const))('%s: primary key, unique and plain indexes with Prisma\'s names', async (_n, model) => {
    const table = tableOf(model);
    const columnsOf = (fields: { name: string }[]) =>
      fields.map((f) => columnOf(model.fields.find((mf) => mf.name === f.name)!));
    const expected = dmmf.datamodel.indexes
      .filter((i) => i.model === model.name)
      .map((i) => {
        const cols = columnsOf(i.fields);
        const name = i.type === 'id' ? `${table}_pkey` : `${table}_${cols.join('_')}_${i.type === 'unique' ? 'key' : 'idx'}`;
        return { name, columns: cols, unique: i.type !== 'normal', primary: i.type === 'id' };
      });
    const { rows } = await client.query(
      `SELECT c.relname AS name, ix.indisunique AS unique, ix.indisprimary AS primary,
              array(SELECT a.attname FROM unnest(ix.indkey) WITH ORDINALITY k(attnum, ord)
                    JOIN pg_attribute a ON a.attrelid = ix.indrelid AND a.attnum = k.attnum ORDER BY k.ord)::text[] AS columns
       FROM pg_index ix JOIN pg_class c ON c.oid = ix.indexrelid JOIN pg_class t ON t.oid = ix.indrelid
       WHERE t.relname = $1`,
      [table],
    );
    const byName = (a: { name: string }, b: { name: string }) => a.name.localeCompare(b.name);
    expect(rows.sort(byName)).toEqual(expected.sort(byName));
  });

  it.each(models.map((m) => [m.name, m] as const))('%s: foreign keys with their referential actions', async (_n, model) => {
    const expected = model.fields
      .filter((f) => f.kind === 'object' && f.relationFromFields?.length)
      .map((f) => {
        const target = modelByName.get(f.type)!;
        return {
          columns: f.relationFromFields!.map((n) => columnOf(model.fields.find((mf) => mf.name === n)!)),
          target: tableOf(target),
          target_columns: f.relationToFields!.map((n) => columnOf(target.fields.find((tf) => tf.name === n)!)),
          on_delete: (f.relationOnDelete ?? 'Restrict').toUpperCase(),
        };
      });
    const { rows } = await client.query(
      `SELECT array(SELECT a.attname FROM unnest(con.conkey) WITH ORDINALITY k(n, o) JOIN pg_attribute a ON a.attrelid = con.conrelid AND a.attnum = k.n ORDER BY k.o)::text[] AS columns,
              ft.relname AS target,
              array(SELECT a.attname FROM unnest(con.confkey) WITH ORDINALITY k(n, o) JOIN pg_attribute a ON a.attrelid = con.confrelid AND a.attnum = k.n ORDER BY k.o)::text[] AS target_columns,
              CASE con.confdeltype WHEN 'c' THEN 'CASCADE' WHEN 'r' THEN 'RESTRICT' WHEN 'n' THEN 'SETNULL' WHEN 'd' THEN 'SETDEFAULT' ELSE 'NOACTION' END AS on_delete
       FROM pg_constraint con JOIN pg_class t ON t.oid = con.conrelid JOIN pg_class ft ON ft.oid = con.confrelid
       WHERE con.contype = 'f' AND t.relname = $1`,
      [tableOf(model)],
    );
    expect(rows).toEqual(expected);
  });
});
