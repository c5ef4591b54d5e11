import type { NestFastifyApplication } from '@nestjs/platform-fastify';
import { ApiProperty, ApiSchema, DocumentBuilder, getSchemaPath, SwaggerModule, type OpenAPIObject } from '@nestjs/swagger';
import { createReadStream, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { failure } from '../common/envelope.js';
import { errorTable } from '../common/error-table.js';
import { ERRORS } from '../common/errors.js';
import { ADMIN_TOKEN_AUTH, API_TOKEN_AUTH, ENVELOPE, ERROR_ENVELOPE } from './decorators.js';

/** Under the API prefix, so that whatever routes `/client/v4` to the service also serves its description. */
export const OPENAPI_JSON_PATH = 'openapi.json';
export const DOCS_PATH = 'docs';

/** Both src/docs and dist/docs sit two levels below the package root. */
const { version } = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string };

const DESCRIPTION = `Fine-tunes (PEFT LoRA adapters) and inference in the Cloudflare Workers AI REST dialect.

Every answer is Cloudflare's envelope, \`{"result": ..., "success": true|false, "errors": [{"code", "message"}], "messages": []}\`,
except a streamed run (\`"stream": true\`), which answers \`text/event-stream\`.

Authentication: \`Authorization: Bearer <token>\`, with an account's API token for \`/accounts/{account_id}/...\`
(the token must belong to that account) and the admin token for \`/admin/...\`.

Error codes:

${errorTable()}`;

@ApiSchema({ name: 'EnvelopeMessage' })
class EnvelopeMessageSchema {
  @ApiProperty({ type: 'integer', example: 3037 }) code!: number;
  @ApiProperty({ example: 'finetune "support-bot" not found' }) message!: string;
}

const messages = { type: 'array', items: { $ref: getSchemaPath(EnvelopeMessageSchema) } };

/** Cloudflare's envelope; operations narrow `result` with `allOf`. */
const ENVELOPE_SCHEMAS = {
  [ENVELOPE]: {
    type: 'object',
    required: ['result', 'success', 'errors', 'messages'],
    properties: {
      result: { description: 'the answer (any JSON value); null on failure' },
      success: { type: 'boolean' },
      errors: { ...messages, description: 'empty on success' },
      messages: { ...messages, description: 'notes that are not errors, e.g. a warning about an accepted adapter' },
    },
  },
  [ERROR_ENVELOPE]: {
    allOf: [
      { $ref: getSchemaPath(ENVELOPE) },
      {
        type: 'object',
        properties: {
          result: { type: 'object', nullable: true, enum: [null] },
          success: { type: 'boolean', enum: [false] },
          errors: { ...messages, minItems: 1 },
        },
      },
    ],
  },
};

/**
 * Nest names a wildcard route segment `{path}` and its parameter `*` (`@Param('*')`); OpenAPI wants one name for
 * both. The run route's wildcard is the model, named as in Cloudflare's own description of the route.
 */
const WILDCARD_NAMES: Record<string, string> = { '/accounts/{account_id}/ai/run/{path}': 'model_name' };

const SCHEMA_REF = getSchemaPath('');
type Schemas = NonNullable<NonNullable<OpenAPIObject['components']>['schemas']>;

/** Failures any operation can meet, whatever it does. */
const UNEXPECTED_RESPONSE = {
  description: [ERRORS.internal, ERRORS.databaseUnavailable].map((e) => `${e.status}/${e.code}: ${e.meaning}`).join('; '),
  content: { 'application/json': { schema: { $ref: getSchemaPath(ERROR_ENVELOPE) } } },
};

/**
 * The document of the routes under `prefix`, with paths relative to it (the server URL carries it). Routes outside
 * it (the probes and metrics, the OpenAI-compatible `/v1`) are another contract and left out.
 */
export function createOpenApiDocument(app: NestFastifyApplication, prefix: string): OpenAPIObject {
  const config = new DocumentBuilder()
    .setTitle('lora-hub')
    .setDescription(DESCRIPTION)
    .setVersion(version)
    .addServer(`/${prefix}`)
    .addBearerAuth({ type: 'http', scheme: 'bearer', description: "an account's API token" }, API_TOKEN_AUTH)
    .addBearerAuth({ type: 'http', scheme: 'bearer', description: 'the admin token (`ADMIN_TOKEN`)' }, ADMIN_TOKEN_AUTH)
    .addTag('models', 'the model catalog')
    .addTag('finetunes', 'finetunes and their adapter files')
    .addTag('inference', 'running a model, with or without a finetune')
    .addTag('usage', 'token and neuron totals')
    .addTag('admin', 'accounts, API tokens, limit overrides and usage of any account (admin token)')
    .build();
  config.components = { ...config.components, schemas: ENVELOPE_SCHEMAS };
  const document = SwaggerModule.createDocument(app, config, { extraModels: [EnvelopeMessageSchema] });

  const root = `/${prefix}`;
  const paths: OpenAPIObject['paths'] = {};
  for (const [path, item] of Object.entries(document.paths)) {
    if (!path.startsWith(`${root}/`)) continue;
    let relative = path.slice(root.length);
    const wildcardName = WILDCARD_NAMES[relative];
    for (const operation of [item.get, item.put, item.post, item.delete, item.patch]) {
      if (!operation) continue;
      operation.responses.default ??= UNEXPECTED_RESPONSE;
      for (const parameter of operation.parameters ?? []) {
        if (wildcardName && 'name' in parameter && parameter.name === '*') parameter.name = wildcardName;
      }
    }
    if (wildcardName) relative = relative.replace('{path}', `{${wildcardName}}`);
    paths[relative] = item;
  }
  const schemas = referencedSchemas(paths, document.components?.schemas ?? {});
  return { ...document, paths, components: { ...document.components, schemas } };
}

/** The schemas `paths` use, directly or through other schemas: DTOs of routes outside the prefix are left out. */
function referencedSchemas(paths: OpenAPIObject['paths'], schemas: Schemas): Schemas {
  const used = new Set<string>();
  const visit = (value: unknown): void => {
    if (Array.isArray(value)) return value.forEach(visit);
    if (typeof value !== 'object' || value === null) return;
    for (const [key, inner] of Object.entries(value)) {
      if (key === '$ref' && typeof inner === 'string' && inner.startsWith(SCHEMA_REF)) {
        const name = inner.slice(SCHEMA_REF.length);
        if (!used.has(name)) {
          used.add(name);
          visit(schemas[name]);
        }
      } else {
        visit(inner);
      }
    }
  };
  visit(paths);
  return Object.fromEntries(Object.entries(schemas).filter(([name]) => used.has(name)));
}

/** The Swagger UI files the page loads, and their content types; nothing else of the package is served. */
const UI_ASSETS: Record<string, string> = {
  'swagger-ui.css': 'text/css; charset=utf-8',
  'swagger-ui-bundle.js': 'application/javascript; charset=utf-8',
  'favicon-32x32.png': 'image/png',
};
const UI_DIR = dirname(createRequire(import.meta.url).resolve('swagger-ui-dist/package.json'));

// Relative URLs: the page is /client/v4/docs, so they stay right behind a proxy that rewrites the prefix.
const DOCS_PAGE = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>lora-hub API</title>
<link rel="stylesheet" href="${DOCS_PATH}/swagger-ui.css">
<link rel="icon" type="image/png" href="${DOCS_PATH}/favicon-32x32.png">
</head>
<body>
<div id="swagger-ui"></div>
<script src="${DOCS_PATH}/swagger-ui-bundle.js"></script>
<script>SwaggerUIBundle({ url: '${OPENAPI_JSON_PATH}', dom_id: '#swagger-ui' });</script>
</body>
</html>
`;

/**
 * Serves the document as JSON and a Swagger UI page over it under `prefix`, the UI's files from swagger-ui-dist
 * (nothing from a CDN). Plain Fastify routes, outside Nest's envelope and guards: the description is public.
 * Not SwaggerModule.setup: it serves the UI through @fastify/static, which requires an ES module with require(),
 * something jest's module loader cannot do on Node 20, so the tests could not start the app.
 */
export function setupOpenApi(app: NestFastifyApplication, prefix: string): void {
  const fastify = app.getHttpAdapter().getInstance();
  let document: OpenAPIObject | undefined;
  // Built on first request, so start-up does not pay for it.
  fastify.get(`/${prefix}/${OPENAPI_JSON_PATH}`, async () => (document ??= createOpenApiDocument(app, prefix)));
  fastify.get(`/${prefix}/${DOCS_PATH}`, async (_request, reply) => reply.type('text/html; charset=utf-8').send(DOCS_PAGE));
  fastify.get<{ Params: { file: string } }>(`/${prefix}/${DOCS_PATH}/:file`, async (request, reply) => {
    const type = Object.hasOwn(UI_ASSETS, request.params.file) ? UI_ASSETS[request.params.file] : undefined;
    if (type === undefined) return reply.status(404).send(failure([{ code: ERRORS.routeNotFound.code, message: ERRORS.routeNotFound.message }]));
    return reply.type(type).send(createReadStream(join(UI_DIR, request.params.file)));
  });
}
