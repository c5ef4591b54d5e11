import { migrateDatabase } from './migrate.js';

// `npm run db:migrate`: only DATABASE_URL matters here, so the rest of the configuration is not required.
const url = process.env.DATABASE_URL;
if (!url) {
  console.error('configuration error: DATABASE_URL is required (without it, `npm start` migrates its embedded database itself)');
  process.exit(1);
}
migrateDatabase(url).then(
  (applied) => console.log(applied.length ? `applied: ${applied.join(', ')}` : 'database is up to date'),
  (error: unknown) => {
    console.error(error instanceof Error ? error.message : error);
    process.exit(1);
  },
);
