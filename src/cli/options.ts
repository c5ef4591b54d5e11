import { parseArgs, type ParseArgsConfig } from 'node:util';
import { ApiClient } from './client.js';
import { UsageError } from './errors.js';

type Options = NonNullable<ParseArgsConfig['options']>;

export const DEFAULT_URL = 'http://127.0.0.1:8787/client/v4';

/** Accepted by every command, after the command's name. */
const CONNECTION_OPTIONS = {
  url: { type: 'string' },
  account: { type: 'string' },
  token: { type: 'string' },
} as const satisfies Options;

/** The command's own options plus the connection ones; parse failures are usage errors. */
export function parseCommand<T extends Options>(args: string[], options: T) {
  try {
    return parseArgs({ args, options: { ...CONNECTION_OPTIONS, ...options }, allowPositionals: true, strict: true });
  } catch (error) {
    // Node's message goes on to explain "--" at length; its first sentence names the problem.
    const [sentence] = (error as Error).message.split('. ');
    throw new UsageError(`${sentence.charAt(0).toLowerCase()}${sentence.slice(1)}`);
  }
}

/** Exactly these positional arguments, by name; the usage line goes into the error so it stays one line. */
export function positionals(values: string[], names: string[], usage: string): string[] {
  if (values.length < names.length) throw new UsageError(`missing ${names.slice(values.length).join(' ')} (usage: ${usage})`);
  if (values.length > names.length) throw new UsageError(`unexpected argument "${values[names.length]}" (usage: ${usage})`);
  return values;
}

type Env = Record<string, string | undefined>;

/** The first non-empty value: a flag, then the environment variables in order. */
function pick(flag: string | undefined, env: Env, names: string[]): string | undefined {
  return [flag, ...names.map((name) => env[name])].find((value) => value !== undefined && value !== '');
}

/** The service URL and the account id, from flags or the environment. */
function target(values: { url?: string; account?: string }, env: Env): { url: string; account: string } {
  const url = pick(values.url, env, ['LORA_URL']) ?? DEFAULT_URL;
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    throw new UsageError(`--url ${url} is not a URL`);
  }
  if (parsed.protocol !== 'http:' && parsed.protocol !== 'https:') throw new UsageError(`--url ${url} must be http:// or https://`);
  const account = pick(values.account, env, ['LORA_ACCOUNT_ID', 'CLOUDFLARE_ACCOUNT_ID']);
  if (!account) throw new UsageError('no account id: pass --account or set LORA_ACCOUNT_ID (or CLOUDFLARE_ACCOUNT_ID)');
  return { url: url.replace(/\/+$/, ''), account };
}

/** Flags win over LORA_* variables, which win over the CLOUDFLARE_* ones wrangler users already have set. */
export function connect(values: { url?: string; account?: string; token?: string }, env: Env): ApiClient {
  const { url, account } = target(values, env);
  const token = pick(values.token, env, ['LORA_API_TOKEN', 'CLOUDFLARE_API_TOKEN']);
  if (!token) throw new UsageError('no API token: pass --token or set LORA_API_TOKEN (or CLOUDFLARE_API_TOKEN)');
  return new ApiClient({ url, scope: `/accounts/${encodeURIComponent(account)}/ai`, token });
}

/** The `--admin-token` option of the commands that manage an account on the admin surface. */
export const ADMIN_OPTION = { 'admin-token': { type: 'string' } } as const satisfies Options;

/** The admin routes of one account, with the admin token (`--admin-token`, or LORA_ADMIN_TOKEN). */
export function connectAdmin(values: { url?: string; account?: string; 'admin-token'?: string }, env: Env): ApiClient {
  const { url, account } = target(values, env);
  const token = pick(values['admin-token'], env, ['LORA_ADMIN_TOKEN']);
  if (!token) throw new UsageError('no admin token: pass --admin-token or set LORA_ADMIN_TOKEN');
  return new ApiClient({ url, scope: `/admin/accounts/${encodeURIComponent(account)}`, token });
}
