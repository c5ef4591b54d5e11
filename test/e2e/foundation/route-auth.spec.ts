import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { Controller, Get, Module } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import { FastifyAdapter } from '@nestjs/platform-fastify';
import { request } from 'node:http';
import { Authenticated } from '../../../src/accounts/auth.decorators.js';
import { AppModule } from '../../../src/app.module.js';
import { loadConfig } from '../../../src/config/app-config.js';
import { ADMIN_TOKEN, createAccount, startTestApp, type TestAccount, type TestApp } from '../../helpers/app.js';
import { servedRoutes } from '../../helpers/routes.js';

let t: TestApp;
let acme: TestAccount;
let origin: string;

beforeAll(async () => {
  t = await startTestApp();
  acme = await createAccount(t.baseUrl);
  origin = new URL(t.baseUrl).origin;
});
afterAll(() => t.close());

/** The routes that take no token, each declared so (`@Public()`, or served by Fastify outside Nest's guard). */
const PUBLIC = ['GET /healthz', 'GET /readyz', 'GET /metrics', 'GET /client/v4/openapi.json', 'GET /client/v4/docs', 'GET /client/v4/docs/:file'];
/**
 * The web console's static files (src/console), public too; what each answers here (a redirect, the page, a missing
 * asset, or 503 before the console is built) is test/e2e/console's to check, so only "no 401" counts here.
 */
const CONSOLE = ['GET /console', 'GET /console/', 'GET /console/assets/:file'];
const isConsole = (route: string) => CONSOLE.includes(route.replace(/^HEAD /, 'GET '));

/** A concrete URL for a route pattern: valid-looking values, so validation cannot answer before authentication. */
const concrete = (path: string, accountId: string) =>
  path
    .replace(':account_id', accountId)
    .replace(':file', 'swagger-ui.css')
    .replace(/:[A-Za-z_]+/g, 'x')
    .replace(/\*$/, 'x');

/** Every route, HEAD included: Fastify adds one per GET, and the guard must hold there too. */
const routes = () => servedRoutes(t.app);

/**
 * The status of `method url`; node:http, since fetch refuses methods such as TRACE that `@All()` routes take.
 * Methods that may carry a body get an empty JSON one: Fastify refuses a QUERY without a content type (and Node a TRACE with a body).
 */
function statusOf(method: string, url: string, token?: string): Promise<number> {
  const body = ['GET', 'HEAD', 'TRACE'].includes(method) ? undefined : '{}';
  return new Promise((resolve, reject) => {
    const headers = {
      ...(token !== undefined && { authorization: `Bearer ${token}` }),
      ...(body !== undefined && { 'content-type': 'application/json', 'content-length': String(body.length) }),
    };
    request(url, { method, headers }, (response) => {
      response.resume().on('end', () => resolve(response.statusCode!));
    })
      .on('error', (error) => reject(new Error(`${method} ${url}: ${error.message}`)))
      .end(body);
  });
}

describe("every route in Fastify's route table", () => {
  it('is public, or refuses a request without a token with 401', async () => {
    const served = routes();
    expect(served.length).toBeGreaterThanOrEqual(20);
    expect(served).toEqual(expect.arrayContaining(PUBLIC));
    const answers: string[] = [];
    for (const route of served) {
      const [method, path] = route.split(' ');
      const status = await statusOf(method!, `${origin}${concrete(path!, acme.id)}`);
      const open = PUBLIC.includes(route) || PUBLIC.includes(route.replace(/^HEAD /, 'GET '));
      if (isConsole(route)) answers.push(`${route} ${status === 401 ? status : 'open'}`);
      else answers.push(`${route} ${open ? (status === 200 ? 'open' : status) : status}`);
    }
    const publicRoute = (route: string) => PUBLIC.includes(route.replace(/^HEAD /, 'GET ')) || isConsole(route);
    expect(answers).toEqual(served.map((route) => `${route} ${publicRoute(route) ? 'open' : 401}`));
  });

  it('takes only the token it declares: the admin token nowhere else, an API token never on /admin', async () => {
    const answers: string[] = [];
    for (const route of routes().filter((r) => !PUBLIC.includes(r.replace(/^HEAD /, 'GET ')) && !isConsole(r))) {
      const [method, path] = route.split(' ');
      const token = path!.startsWith('/client/v4/admin/') ? acme.token : ADMIN_TOKEN;
      answers.push(`${route} ${await statusOf(method!, `${origin}${concrete(path!, acme.id)}`, token)}`);
    }
    expect(answers.length).toBeGreaterThanOrEqual(15);
    expect(answers).toEqual(answers.map((answer) => answer.replace(/\d+$/, '401')));
  });
});

@Controller('undeclared')
class UndeclaredController {
  @Get()
  open(): string {
    return 'anyone';
  }

  @Get('declared')
  @Authenticated('admin')
  declared(): string {
    return 'admin';
  }
}

describe('a route that declares neither @Authenticated() nor @Public()', () => {
  it('stops the application at start-up, naming the route', async () => {
    const config = loadConfig({
      DATABASE_URL: t.db.url,
      ADMIN_TOKEN,
      S3_ENDPOINT: process.env.TEST_S3_ENDPOINT,
      S3_BUCKET: t.bucket,
      S3_ACCESS_KEY_ID: 'S3RVER',
      S3_SECRET_ACCESS_KEY: 'S3RVER',
      S3_FORCE_PATH_STYLE: 'true',
      LOG_LEVEL: 'error',
    });
    @Module({ imports: [AppModule.forRoot(config)], controllers: [UndeclaredController] })
    class WithUndeclaredRoute {}
    const app = await NestFactory.create(WithUndeclaredRoute, new FastifyAdapter(), { logger: false, abortOnError: false });
    try {
      await expect(app.init()).rejects.toThrow(/routes without @Authenticated\(\) or @Public\(\): UndeclaredController\.open;/);
    } finally {
      await app.close();
    }
  });
});
