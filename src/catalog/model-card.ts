import type { ModelDefinition } from './model-definition.js';

/**
 * Query of `GET /accounts/{account_id}/ai/models/search`, as in Cloudflare's API reference
 * (author, hide_experimental, page, per_page, search, source, task), plus `lora`.
 */
export interface ModelSearchQuery {
  /** Task name, case-insensitive ("text generation"). */
  task?: string;
  /** Case-insensitive substring of the name or the description. */
  search?: string;
  lora?: boolean;
  /** The `<author>` in `@cf/<author>/<model>`, case-insensitive. */
  author?: string;
  /** Drops beta models. */
  hide_experimental?: boolean;
  /** Every model here is source 1 (Cloudflare's own catalog). */
  source?: number;
  /** 1-based. */
  page?: number;
  per_page?: number;
}

/**
 * Cloudflare documents page/per_page without defaults; 100 returns the whole catalog in one page for any
 * realistic deployment. Pages past the end are empty, which is what ends the SDKs' auto-pagination.
 */
export const DEFAULT_MODELS_PER_PAGE = 100;

function isBeta(def: ModelDefinition): boolean {
  return def.properties.some((p) => p.property_id === 'beta' && p.value === 'true');
}

export function searchModels(defs: readonly ModelDefinition[], query: ModelSearchQuery): ModelDefinition[] {
  const task = query.task?.toLowerCase();
  const search = query.search?.toLowerCase();
  const author = query.author?.toLowerCase();
  const matches = defs.filter(
    (def) =>
      (task === undefined || def.task.name.toLowerCase() === task) &&
      (search === undefined ||
        def.name.toLowerCase().includes(search) ||
        def.description.toLowerCase().includes(search)) &&
      (query.lora === undefined || def.lora === query.lora) &&
      (author === undefined || def.name.split('/')[1]?.toLowerCase() === author) &&
      (!query.hide_experimental || !isBeta(def)) &&
      (query.source === undefined || query.source === 1),
  );
  const perPage = query.per_page ?? DEFAULT_MODELS_PER_PAGE;
  const start = ((query.page ?? 1) - 1) * perPage;
  return matches.slice(start, start + perPage);
}
