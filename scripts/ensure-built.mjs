// Builds dist/ when it is missing or older than the sources, so `npm start` works on a fresh clone.
import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';

const root = join(import.meta.dirname, '..');

function newest(path) {
  const stat = statSync(path);
  if (!stat.isDirectory()) return stat.mtimeMs;
  return Math.max(0, ...readdirSync(path).filter((name) => name !== 'generated').map((name) => newest(join(path, name))));
}

const entry = join(root, 'dist', 'main.js');
// `npm run build` also builds the web console (console/) into dist/console-ui.
const consolePage = join(root, 'dist', 'console-ui', 'index.html');
const stale = !existsSync(entry) || !existsSync(consolePage) || !existsSync(join(root, 'src', 'generated')) ||
  Math.max(newest(join(root, 'src')), newest(join(root, 'prisma'))) > statSync(entry).mtimeMs ||
  newest(join(root, 'console')) > statSync(consolePage).mtimeMs;
if (stale) {
  const result = spawnSync('npm', ['run', 'build'], { stdio: 'inherit', cwd: root });
  if (result.status !== 0) process.exit(result.status ?? 1);
}
