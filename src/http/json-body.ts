import type { FastifyInstance, FastifyRequest } from 'fastify';
import { ApiError } from '../common/errors.js';

/** Deeper than any real request (message parts, JSON Schemas); far below where DTO transformation overflows the stack. */
export const MAX_JSON_DEPTH = 100;

/** Content types whose bodies are read as JSON; `*` also covers a body sent without one (fetch with a string body). */
export const JSON_BODY_TYPES = ['application/json', 'text/plain', '*'];

type Done = (error: Error | null, body?: unknown) => void;

/** True when `[`/`{` nest deeper than `limit` in JSON text (brackets inside strings do not count). */
export function nestsDeeperThan(text: string, limit: number): boolean {
  let depth = 0;
  let inString = false;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (inString) {
      if (c === 0x5c) i++; // a backslash escapes the next character
      else if (c === 0x22) inString = false;
    } else if (c === 0x22) inString = true;
    else if (c === 0x5b || c === 0x7b) {
      if (++depth > limit) return true;
    } else if (c === 0x5d || c === 0x7d) depth--;
  }
  return false;
}

/** The path of the first string (or key) holding a NUL character, which PostgreSQL text cannot store. */
export function pathOfNul(value: unknown, path = ''): string | undefined {
  if (typeof value === 'string') return value.includes('\0') ? path : undefined;
  if (Array.isArray(value)) {
    for (let i = 0; i < value.length; i++) {
      const found = pathOfNul(value[i], `${path}[${i}]`);
      if (found !== undefined) return found;
    }
  } else if (value !== null && typeof value === 'object') {
    for (const [key, item] of Object.entries(value)) {
      const name = path ? `${path}.${key}` : key;
      if (key.includes('\0')) return name;
      const found = pathOfNul(item, name);
      if (found !== undefined) return found;
    }
  }
  return undefined;
}

/**
 * Cloudflare's API reads a JSON body whatever its content type (wrangler sends `text/plain`), so this one parser serves
 * every type but multipart. It rejects nesting beyond MAX_JSON_DEPTH and NUL characters before anything walks the body.
 */
export function jsonBodyParser(fastify: FastifyInstance): (request: FastifyRequest, body: Buffer, done: Done) => void {
  const parse = fastify.getDefaultJsonParser('error', 'error');
  return (request, body, done) => {
    const text = body.toString('utf8');
    // An empty body is no body, as without a content type: the route's validation then names the missing fields.
    if (text.trim() === '') return done(null, undefined);
    if (nestsDeeperThan(text, MAX_JSON_DEPTH)) {
      return done(new ApiError('validation', `the request body nests JSON deeper than ${MAX_JSON_DEPTH} levels`));
    }
    parse(request, text, (error, value) => {
      // Fastify's own message speaks of application/json whatever the content type was.
      if ((error as { code?: string } | null)?.code === 'FST_ERR_CTP_INVALID_JSON_BODY') return done(new ApiError('validation', 'the request body is not valid JSON'));
      if (error) return done(error);
      // A NUL can only arrive escaped (a raw control character is not valid JSON): skip the walk when there is none.
      const nul = text.includes('\\u0000') ? pathOfNul(value) : undefined;
      if (nul !== undefined) return done(new ApiError('validation', `${nul.replaceAll('\0', '\\u0000') || 'the request body'} must not contain a NUL character (\\u0000)`));
      done(null, value);
    });
  };
}
