import type { FastifyInstance } from 'fastify';
import { ApiError } from '../common/errors.js';

/** RFC 2046: a multipart boundary is 1 to 70 characters. */
const MAX_BOUNDARY = 70;

function nulIn(values: unknown, kind: string): ApiError | undefined {
  if (values === null || typeof values !== 'object') return undefined;
  for (const [name, value] of Object.entries(values)) {
    const texts = Array.isArray(value) ? value : [value];
    if (name.includes('\0') || texts.some((text) => typeof text === 'string' && text.includes('\0'))) {
      return new ApiError('validation', `${kind} "${name.replaceAll('\0', '\\u0000')}" must not contain a NUL character (\\u0000)`);
    }
  }
  return undefined;
}

function boundaryProblem(contentType: string | undefined): ApiError | undefined {
  if (!contentType || !/^\s*multipart\//i.test(contentType)) return undefined;
  const match = /;\s*boundary=(?:"([^"]*)"|([^;\s]*))/i.exec(contentType);
  const boundary = match ? (match[1] ?? match[2] ?? '') : undefined;
  if (boundary === undefined) return new ApiError('validation', 'content-type: the multipart boundary parameter is missing');
  if (boundary === '') return new ApiError('validation', 'content-type: the multipart boundary is empty');
  if (boundary.length > MAX_BOUNDARY) {
    return new ApiError('validation', `content-type: the multipart boundary is ${boundary.length} characters long; at most ${MAX_BOUNDARY} are allowed`);
  }
  return undefined;
}

/**
 * Input no route can use, rejected before any handler runs: NUL characters in path or query parameters (PostgreSQL
 * text cannot hold them; JSON bodies are checked by the body parser) and multipart bodies without a usable boundary.
 */
export function rejectMalformedInput(fastify: FastifyInstance): void {
  fastify.addHook('preValidation', (request, _reply, done) => {
    done(nulIn(request.params, 'path parameter') ?? nulIn(request.query, 'query parameter') ?? boundaryProblem(request.headers['content-type']));
  });
}

/** A path parameter decoded once more (e.g. the SDK's `%2F` in a model name); a malformed escape is the client's error. */
export function decodeParam(value: string, name: string): string {
  try {
    return decodeURIComponent(value);
  } catch {
    throw new ApiError('validation', `path parameter "${name}" is not valid percent-encoding: ${JSON.stringify(value)}`);
  }
}

/** Multipart parse failures (busboy's plain Errors): a body that ends before its closing boundary or is not multipart at all. */
export function malformedMultipart(error: unknown): ApiError | undefined {
  if (!(error instanceof Error) || !/unexpected end of multipart data|malformed part header/i.test(error.message)) return undefined;
  return new ApiError('validation', `the multipart body is malformed (${error.message}); it must end with the closing boundary`);
}
