import type { FastifyInstance, FastifyReply } from 'fastify';
import { createReadStream, existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { extname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

export const CONSOLE_PATH = '/console';

/** Both src/console and dist/console sit two levels below the package root, where the build writes the files. */
export const CONSOLE_BUILD_DIR = fileURLToPath(new URL('../../dist/console-ui/', import.meta.url));

/**
 * Everything the pages load comes from this origin; no inline script or style, no framing, no form posts
 * elsewhere. API calls are same-origin fetches with a bearer token (no cookies, so nothing to forge).
 */
export const CONSOLE_CSP = [
  "default-src 'none'",
  "script-src 'self'",
  "style-src 'self'",
  "img-src 'self' data:",
  "connect-src 'self'",
  "base-uri 'none'",
  "form-action 'none'",
  "frame-ancestors 'none'",
].join('; ');

const TYPES: Record<string, string> = {
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
  '.woff2': 'font/woff2',
};

/** Vite's hashed output names: letters, digits, `-`, `_` and dots, no path. */
const ASSET_NAME = /^[A-Za-z0-9_-][A-Za-z0-9._-]*$/;

function secure(reply: FastifyReply): FastifyReply {
  return reply
    .header('content-security-policy', CONSOLE_CSP)
    .header('x-content-type-options', 'nosniff')
    .header('referrer-policy', 'no-referrer')
    .header('cross-origin-opener-policy', 'same-origin');
}

/**
 * Plain Fastify routes (outside the API prefix, the envelope and the guards), like the docs page: the files are
 * public, the data they show comes from the API with the user's token. Nothing is read at start-up; the page is
 * read once on first request.
 */
export function serveConsole(fastify: FastifyInstance, dir: string): void {
  let page: Promise<string> | undefined;
  fastify.get(CONSOLE_PATH, async (_request, reply) => reply.redirect(`${CONSOLE_PATH}/`, 301));
  fastify.get(`${CONSOLE_PATH}/`, async (_request, reply) => {
    const html = await (page ??= readFile(join(dir, 'index.html'), 'utf8')).catch(() => {
      page = undefined;
      return undefined;
    });
    if (html === undefined) {
      return secure(reply).status(503).type('text/plain; charset=utf-8').send('The console is not built: run `npm run build`.\n');
    }
    // The page names the current hashed assets: revalidate it on every visit.
    return secure(reply).type('text/html; charset=utf-8').header('cache-control', 'no-cache').send(html);
  });
  fastify.get<{ Params: { file: string } }>(`${CONSOLE_PATH}/assets/:file`, async (request, reply) => {
    const { file } = request.params;
    const type = TYPES[extname(file)];
    const path = join(dir, 'assets', file);
    if (type === undefined || !ASSET_NAME.test(file) || !existsSync(path)) return reply.callNotFound();
    // Names carry a content hash, so a given URL never changes.
    return secure(reply).type(type).header('cache-control', 'public, max-age=31536000, immutable').send(createReadStream(path));
  });
}
