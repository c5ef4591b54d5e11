import SwaggerParser from '@apidevtools/swagger-parser';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import type { OpenAPIObject } from '@nestjs/swagger';
import { Ajv } from 'ajv';
import { ADAPTER_FILES } from '../../../src/adapters/adapter-inspector.js';
import { ERRORS, type ErrorDefinition } from '../../../src/common/errors.js';
import { FINETUNE_NAME_PATTERN } from '../../../src/finetunes/dto.js';
import { ADMIN_TOKEN, call, createAccount, startTestApp, type TestAccount, type TestApp } from '../../helpers/app.js';
import { servedRoutes } from '../../helpers/routes.js';

type Operation = NonNullable<OpenAPIObject['paths'][string]['get']>;
type Schema = Record<string, any>;

const METHODS = ['get', 'put', 'post', 'delete', 'patch'] as const;

let t: TestApp;
let acme: TestAccount;
/** As served. */
let document: OpenAPIObject;
/** Validated, with every $ref replaced by what it points to. */
let resolved: OpenAPIObject;

beforeAll(async () => {
  t = await startTestApp();
  acme = await createAccount(t.baseUrl);
  const response = await fetch(`${t.baseUrl}/openapi.json`);
  expect(response.status).toBe(200);
  expect(response.headers.get('content-type')).toMatch(/^application\/json/);
  document = (await response.json()) as OpenAPIObject;
  // The validator dereferences in place: give it a copy.
  resolved = (await SwaggerParser.validate(structuredClone(document) as never)) as unknown as OpenAPIObject;
});
afterAll(() => t.close());

function operations(doc: OpenAPIObject): { method: string; path: string; operation: Operation }[] {
  return Object.entries(doc.paths).flatMap(([path, item]) =>
    METHODS.flatMap((method) => (item[method] ? [{ method: method.toUpperCase(), path, operation: item[method] }] : [])),
  );
}

function operation(doc: OpenAPIObject, method: (typeof METHODS)[number], path: string): Operation {
  const found = doc.paths[path]?.[method];
  if (!found) throw new Error(`no ${method} ${path} in the document`);
  return found;
}

/** Parameters of either style, and wildcards, become `{}`, so Fastify's and the document's paths compare. */
const normalise = (path: string) => path.replace(/:[A-Za-z_]+|\{[A-Za-z_]+\}|\*/g, '{}');

describe('the OpenAPI document', () => {
  it('is a valid OpenAPI 3 document, served at /client/v4/openapi.json without a token', () => {
    expect(document.openapi).toMatch(/^3\./);
    expect(document.info).toMatchObject({ title: 'lora-hub', version: expect.stringMatching(/^\d+\.\d+\.\d+/) });
    expect(document.servers).toEqual([{ url: '/client/v4' }]);
  });

  it('describes every route the service serves under /client/v4, and only those', () => {
    const prefix = '/client/v4';
    const served = servedRoutes(t.app)
      .filter((route) => route.split(' ')[1].startsWith(`${prefix}/`))
      .filter((route) => !route.startsWith('HEAD '))
      .map((route) => route.replace(` ${prefix}`, ' '))
      .filter((route) => !/^GET \/(openapi\.json|docs)/.test(route));
    expect(served.length).toBeGreaterThanOrEqual(15);
    const documented = operations(document).map(({ method, path }) => `${method} ${normalise(path)}`);
    expect(documented.sort()).toEqual(served.map((route) => normalise(route)).sort());
    expect(documented).toEqual(expect.arrayContaining(['POST /accounts/{}/ai/finetunes', 'POST /accounts/{}/ai/run/{}']));
  });

  it('describes the envelope once, and every success and error answer through it', () => {
    const schemas = document.components!.schemas as Record<string, Schema>;
    expect(schemas.Envelope).toMatchObject({
      type: 'object',
      required: ['result', 'success', 'errors', 'messages'],
      properties: {
        success: { type: 'boolean' },
        errors: { type: 'array', items: { $ref: '#/components/schemas/EnvelopeMessage' } },
        messages: { type: 'array', items: { $ref: '#/components/schemas/EnvelopeMessage' } },
      },
    });
    expect(schemas.EnvelopeMessage).toMatchObject({ required: ['code', 'message'], properties: { code: { type: 'integer' } } });
    for (const { method, path, operation: op } of operations(document)) {
      const ok = op.responses['200'] as Schema;
      const envelope = ok.content['application/json'].schema.allOf[0];
      expect([method, path, envelope]).toEqual([method, path, { $ref: '#/components/schemas/Envelope' }]);
      const failures = Object.entries(op.responses).filter(([status]) => status !== '200');
      expect(failures.map(([status]) => status)).toEqual(expect.arrayContaining(['401', 'default']));
      for (const [status, response] of failures) {
        const schema = (response as Schema).content['application/json'].schema;
        const envelope = schema.$ref ?? schema.allOf[0].$ref;
        expect([method, path, status, envelope]).toEqual([method, path, status, '#/components/schemas/ErrorEnvelope']);
        // Each error answer names its codes.
        expect((response as Schema).description).toMatch(/\d{4,5}: /);
      }
    }
  });

  it('names every error code, in the description table and on the operations that give it', () => {
    const described = operations(document).flatMap(({ operation: op }) =>
      Object.values(op.responses).map((response) => (response as Schema).description as string),
    );
    // Not an operation's answer: a URI no operation has, a client that left, a code only found in `messages`.
    const noOperation = new Set([ERRORS.routeNotFound, ERRORS.aborted, ERRORS.adapterWarning] as ErrorDefinition[]);
    for (const error of Object.values(ERRORS) as ErrorDefinition[]) {
      expect(document.info.description).toContain(`| ${error.status ?? '—'} | ${error.code} |`);
      if (noOperation.has(error)) continue;
      expect([error.code, described.some((d) => new RegExp(`\\b${error.code}\\b`).test(d))]).toEqual([error.code, true]);
    }
    const create = operation(document, 'post', '/accounts/{account_id}/ai/finetunes').responses as Record<string, Schema>;
    expect(create['409'].description).toContain('90002');
    expect(create['429'].description).toContain('90003');
    expect(create['400'].description).toMatch(/5006.*5007.*5005/);
  });

  it('requires the API token on account routes and the admin token on admin routes', () => {
    expect(document.components!.securitySchemes).toMatchObject({
      api_token: { type: 'http', scheme: 'bearer' },
      admin_token: { type: 'http', scheme: 'bearer' },
    });
    for (const { path, operation: op } of operations(document)) {
      expect([path, op.security]).toEqual([path, [{ [path.startsWith('/admin/') ? 'admin_token' : 'api_token']: [] }]]);
      if (path.startsWith('/accounts/')) expect([path, Object.keys(op.responses)]).toEqual([path, expect.arrayContaining(['401', '403'])]);
    }
  });

  it('describes path and query parameters from the DTOs', () => {
    const params = (op: Operation) => Object.fromEntries((op.parameters as Schema[]).map((p) => [`${p.in} ${p.name}`, p]));
    const publicList = params(operation(document, 'get', '/accounts/{account_id}/ai/finetunes/public'));
    expect(publicList['path account_id']).toMatchObject({ required: true, schema: { type: 'string', pattern: '^[0-9a-f]{32}$' } });
    expect(publicList['query limit']).toMatchObject({ required: false, schema: { type: 'integer', minimum: 1, maximum: 1000 } });
    expect(publicList['query orderBy'].schema.enum).toEqual(['created_at', 'modified_at', 'name', '-created_at', '-modified_at', '-name']);
    const one = params(operation(document, 'get', '/accounts/{account_id}/ai/finetunes/{id_or_name}'));
    expect(one['path id_or_name']).toMatchObject({ required: true, schema: { type: 'string', minLength: 1, maxLength: 64 } });
    const usage = params(operation(document, 'get', '/accounts/{account_id}/ai/usage'));
    expect(usage['query group_by'].schema.enum).toEqual(['model', 'finetune', 'day']);
    expect(Object.keys(params(operation(document, 'get', '/accounts/{account_id}/ai/models/search')))).toEqual(
      expect.arrayContaining(['query task', 'query search', 'query author', 'query lora', 'query hide_experimental', 'query per_page']),
    );
    expect(params(operation(document, 'get', '/accounts/{account_id}/ai/models/schema'))['query model']).toMatchObject({ required: true });
  });

  it('describes the finetune create body: model, name with the name pattern, description and public', () => {
    const body = operation(resolved, 'post', '/accounts/{account_id}/ai/finetunes').requestBody as Schema;
    const schema = body.content['application/json'].schema;
    expect(Object.keys(schema.properties).sort()).toEqual(['description', 'model', 'name', 'public']);
    expect(schema.required.sort()).toEqual(['model', 'name']);
    expect(schema.properties.name).toMatchObject({ type: 'string', pattern: FINETUNE_NAME_PATTERN.source });
    const name = new RegExp(schema.properties.name.pattern);
    expect(['support-bot', 'v1.2_final'].map((n) => name.test(n))).toEqual([true, true]);
    expect(['', 'a/b', 'x'.repeat(65)].map((n) => name.test(n))).toEqual([false, false, false]);
    expect(schema.properties.public).toMatchObject({ type: 'boolean' });
    expect(schema.properties.description).toMatchObject({ type: 'string', maxLength: 1024 });
  });

  it('describes the upload as multipart: file_name (one of the two adapter files) and a binary file', () => {
    const body = operation(resolved, 'post', '/accounts/{account_id}/ai/finetunes/{id_or_name}/finetune-assets').requestBody as Schema;
    expect(Object.keys(body.content)).toEqual(['multipart/form-data']);
    const schema = body.content['multipart/form-data'].schema;
    expect(schema.required).toEqual(['file_name', 'file']);
    expect(schema.properties.file_name.enum).toEqual([...ADAPTER_FILES]);
    expect(schema.properties.file).toEqual(expect.objectContaining({ type: 'string', format: 'binary' }));
  });

  it('describes the run: model in the path, the common input fields, a JSON answer or an event stream', () => {
    const run = operation(resolved, 'post', '/accounts/{account_id}/ai/run/{model_name}');
    expect((run.parameters as Schema[]).map((p) => `${p.in} ${p.name}`)).toEqual(['path account_id', 'path model_name']);
    const input = (run.requestBody as Schema).content['application/json'].schema;
    expect(Object.keys(input.properties)).toEqual(
      expect.arrayContaining(['prompt', 'messages', 'raw', 'stream', 'max_tokens', 'temperature', 'top_p', 'top_k', 'seed', 'lora']),
    );
    expect(input.properties.messages.items.properties).toMatchObject({ role: { type: 'string' }, content: { type: 'string' } });
    const ok = run.responses['200'] as Schema;
    expect(Object.keys(ok.content).sort()).toEqual(['application/json', 'text/event-stream']);
    expect(ok.content['application/json'].schema.allOf[1].properties.result.properties).toMatchObject({
      response: { type: 'string' },
      usage: { properties: { prompt_tokens: { type: 'integer' } } },
    });
    const tooMany = run.responses['429'] as Schema;
    expect(tooMany.description).toMatch(/3036.*3040/);
    expect(tooMany.headers['Retry-After'].schema).toEqual({ type: 'integer' });
    expect(run.responses['405'] as Schema).toMatchObject({ description: expect.stringContaining('5005') });
  });

  it('describes answers as the service gives them', async () => {
    // Formats and OpenAPI-only keywords (nullable, example) are not what is checked here: the shapes are.
    const ajv = new Ajv({ strict: false, validateFormats: false });
    const expectDescribed = (method: (typeof METHODS)[number], path: string, body: unknown, status = '200') => {
      const response = operation(resolved, method, path).responses[status] as Schema;
      const validate = ajv.compile(response.content['application/json'].schema);
      expect([method, path, validate(body), validate.errors ?? null]).toEqual([method, path, true, null]);
    };
    const account = await call(t.baseUrl, 'POST', '/admin/accounts', { token: ADMIN_TOKEN, body: { name: 'described' } });
    expectDescribed('post', '/admin/accounts', account.body);
    const created = await call(t.baseUrl, 'POST', `/accounts/${acme.id}/ai/finetunes`, {
      token: acme.token,
      body: { model: '@cf/meta-llama/llama-2-7b-chat-hf-lora', name: 'described' },
    });
    expectDescribed('post', '/accounts/{account_id}/ai/finetunes', created.body);
    const list = await call(t.baseUrl, 'GET', `/accounts/${acme.id}/ai/finetunes`, { token: acme.token });
    expectDescribed('get', '/accounts/{account_id}/ai/finetunes', list.body);
    const search = await call(t.baseUrl, 'GET', `/accounts/${acme.id}/ai/models/search`, { token: acme.token });
    expectDescribed('get', '/accounts/{account_id}/ai/models/search', search.body);
    const taken = await call(t.baseUrl, 'POST', `/accounts/${acme.id}/ai/finetunes`, {
      token: acme.token,
      body: { model: '@cf/meta-llama/llama-2-7b-chat-hf-lora', name: 'described' },
    });
    expect(taken.status).toBe(409);
    expectDescribed('post', '/accounts/{account_id}/ai/finetunes', taken.body, '409');
  });
});

describe('the docs page', () => {
  it('is HTML at /client/v4/docs whose scripts, styles and document all load from the service', async () => {
    const page = await fetch(`${t.baseUrl}/docs`);
    expect(page.status).toBe(200);
    expect(page.headers.get('content-type')).toMatch(/^text\/html/);
    const html = await page.text();
    const links = [...html.matchAll(/(?:src|href)="([^"]+)"/g)].map((m) => m[1]);
    expect(links).toEqual(expect.arrayContaining(['docs/swagger-ui-bundle.js', 'docs/swagger-ui.css']));
    for (const link of links) {
      const asset = await fetch(new URL(link, page.url));
      expect([link, asset.status]).toEqual([link, 200]);
      await asset.arrayBuffer();
    }
    expect(html).toContain("url: 'openapi.json'");
    expect((await fetch(new URL('openapi.json', page.url))).status).toBe(200);
  });

  it('serves only the UI files it uses', async () => {
    const other = await fetch(`${t.baseUrl}/docs/package.json`);
    expect(other.status).toBe(404);
    expect(await other.json()).toMatchObject({ success: false, errors: [{ code: 7000 }] });
  });
});
