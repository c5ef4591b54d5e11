import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { isAbsolute, join, relative } from 'node:path';
import type { AccountsService } from '../accounts/accounts.service.js';
import { generateTokenSecret } from '../accounts/secrets.js';
import { ConfigError, type AppConfig, type LoadedConfig } from '../config/app-config.js';
import { CONSOLE_PATH } from '../console/console-routes.js';
import { TINY_SAMPLE_ADAPTERS } from '../demo/tiny-model.js';
import { writeTinyModels } from '../demo/tiny-model-files.js';

/**
 * Defaults that let `npm start` work with no configuration at all: an admin token kept under DATA_DIR, a first
 * account with an API token, and tiny demo models that run on llama.cpp. Each applies only while the matching
 * variable (ADMIN_TOKEN, MODELS_FILE / DATABASE_URL) is unset.
 */

export interface FirstRun {
  config: AppConfig;
  /** Where the managed admin token is kept; unset when ADMIN_TOKEN came from the environment. */
  adminTokenFile?: string;
  /** True when this start generated the admin token (so it is printed, once). */
  adminTokenGenerated: boolean;
  /** The demo model to try and a sample adapter folder for it, when the demo models are in the catalog. */
  demo?: { model: string; adapterDir: string };
}

export const ADMIN_TOKEN_FILE = 'admin-token';
const DEMO_ADAPTER = TINY_SAMPLE_ADAPTERS[0]!;

export async function applyFirstRunDefaults(loaded: LoadedConfig): Promise<FirstRun> {
  let { adminToken } = loaded;
  let adminTokenFile: string | undefined;
  let adminTokenGenerated = false;
  if (adminToken === undefined) {
    adminTokenFile = join(loaded.dataDir, ADMIN_TOKEN_FILE);
    ({ token: adminToken, generated: adminTokenGenerated } = managedAdminToken(adminTokenFile));
  }
  const run: FirstRun = { config: { ...loaded, adminToken }, adminTokenFile, adminTokenGenerated };
  if (loaded.demoModels) {
    // Rewritten at every start (deterministic, about 1 MB): the files always match this version, and
    // models.json's absolute paths follow the folder if it moves.
    const files = await writeTinyModels(join(loaded.dataDir, 'models'));
    run.config.modelsFile = files.modelsFile;
    run.demo = { model: DEMO_ADAPTER.model, adapterDir: files.adapters[DEMO_ADAPTER.name]! };
  }
  return run;
}

/** Reads the admin token kept in `file`, generating it (readable by the owner only) when there is none. */
function managedAdminToken(file: string): { token: string; generated: boolean } {
  if (existsSync(file)) {
    const token = readFileSync(file, 'utf8').trim();
    if (token.length < 16) throw new ConfigError(`${file} must hold an admin token of at least 16 characters; delete it to have a new one generated`);
    return { token, generated: false };
  }
  const token = generateTokenSecret();
  mkdirSync(join(file, '..'), { recursive: true });
  writeFileSync(file, `${token}\n`, { mode: 0o600, flag: 'wx' });
  return { token, generated: true };
}

export interface FirstAccount {
  id: string;
  /** The API token's secret, only when the account was created by this start. */
  token?: string;
}

/** The oldest account, after creating one with an API token when the database has none. */
export async function ensureFirstAccount(accounts: AccountsService): Promise<FirstAccount> {
  const [first] = await accounts.listAccounts();
  if (first) return { id: first.id };
  const account = await accounts.createAccount('default');
  const token = await accounts.createToken(account.id, 'first-run');
  return { id: account.id, token: token.value };
}

/** What `npm start` prints once it listens: where to reach it and, for a managed setup, how to start using it. */
export function readyBanner(baseUrl: string, run: FirstRun, account: FirstAccount | undefined): string {
  const lines = ['', `lora-hub is ready at ${baseUrl}`];
  if (account) {
    if (account.token !== undefined) {
      lines.push(
        '',
        'Created the first account and an API token (the token is shown only now). Paste this into your shell:',
        `  export BASE=${baseUrl} ACCOUNT=${account.id} TOKEN=${account.token}`,
        // The fragment never reaches the server (nor its logs); the console takes it and clears the address bar.
        'Or open the web console, signed in:',
        `  ${consoleUrl(baseUrl)}#account=${account.id}&token=${account.token}`,
      );
    } else {
      lines.push('', `First account (its API token was shown when it was created):`, `  export BASE=${baseUrl} ACCOUNT=${account.id}`);
      lines.push(`Web console: ${consoleUrl(baseUrl)} (sign in with the account id and an API token)`);
    }
  }
  if (run.adminTokenFile !== undefined) {
    const file = shown(run.adminTokenFile);
    lines.push(
      '',
      run.adminTokenGenerated
        ? `Admin token for ${baseUrl}/admin: ${run.config.adminToken} (saved in ${file}; set ADMIN_TOKEN to use your own)`
        : `Admin token for ${baseUrl}/admin: in ${file}`,
    );
    if (account && account.token === undefined) {
      lines.push(
        'A new API token for the account:',
        `  curl -s -X POST $BASE/admin/accounts/$ACCOUNT/tokens -H "Authorization: Bearer $(cat ${file})" -H 'content-type: application/json' -d '{"name":"laptop"}'`,
      );
    }
  }
  if (run.demo) {
    lines.push('', `Demo model: ${run.demo.model} on llama.cpp; a sample adapter for it is in ${shown(run.demo.adapterDir)}/`);
    if (account) {
      lines.push(
        'Try it:',
        `  curl -s $BASE/accounts/$ACCOUNT/ai/run/${run.demo.model} -H "Authorization: Bearer $TOKEN" -H 'content-type: application/json' -d '{"prompt":"hello world"}'`,
      );
    }
  }
  return `${lines.join('\n')}\n`;
}

function consoleUrl(baseUrl: string): string {
  return new URL(`${CONSOLE_PATH}/`, baseUrl).href;
}

/** Paths under the working directory as typed in a shell there; others as they are. */
function shown(path: string): string {
  const fromCwd = relative(process.cwd(), path);
  return fromCwd.startsWith('..') || isAbsolute(fromCwd) ? path : fromCwd;
}
