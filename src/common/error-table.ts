import { ERRORS, type ErrorDefinition } from './errors.js';

const ORIGIN: Record<NonNullable<ErrorDefinition['cloudflare']>, string> = {
  published: 'Cloudflare (error table)',
  observed: 'Cloudflare (error bodies)',
};

/** The catalog as a Markdown table: the README's "Error codes" section and the OpenAPI description. */
export function errorTable(): string {
  const rows = Object.values(ERRORS).map((e: ErrorDefinition) =>
    [e.status ?? '—', e.code, e.meaning, e.cloudflare ? ORIGIN[e.cloudflare] : 'lora-hub', e.replaces ?? ''].join(' | '),
  );
  return ['| HTTP | code | meaning | whose | old code |', '|---|---|---|---|---|', ...rows.map((row) => `| ${row} |`)].join('\n');
}
