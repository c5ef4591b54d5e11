import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromium, type BrowserContext, type Page } from 'playwright-core';

const ROOT = join(import.meta.dirname, '../../..');

/** Screenshots of the console's pages, kept as test artifacts (the folder is gitignored). */
export const ARTIFACTS_DIR = join(ROOT, 'test-artifacts', 'console');

/**
 * Debian's chromium (`.ci/run` installs it when missing), with the flags that work in a container and a fresh
 * profile (Playwright passes it as --user-data-dir).
 */
export async function launchChromium(): Promise<{ context: BrowserContext; close: () => Promise<void> }> {
  const profile = mkdtempSync(join(tmpdir(), 'lora-chromium-'));
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: '/usr/bin/chromium',
    headless: true,
    viewport: { width: 1280, height: 860 },
    args: [
      '--headless',
      '--no-sandbox',
      '--disable-gpu',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
    ],
  });
  return {
    context,
    close: async () => {
      await context.close();
      rmSync(profile, { recursive: true, force: true });
    },
  };
}

/** `npm run build`'s console step alone, so the served files are those of the sources under test. */
export function buildConsole(): void {
  const result = spawnSync(join(ROOT, 'node_modules/.bin/vite'), ['build', '--config', 'console/vite.config.ts'], { cwd: ROOT, encoding: 'utf8' });
  if (result.status !== 0) throw new Error(`console build failed:\n${result.stdout}\n${result.stderr}`);
}

export async function screenshot(page: Page, name: string, fullPage = true): Promise<void> {
  mkdirSync(ARTIFACTS_DIR, { recursive: true });
  await page.screenshot({ path: join(ARTIFACTS_DIR, `${name}.png`), fullPage });
}
