#!/usr/bin/env node
// Launcher of the `lora` command-line client, compiled from src/cli with the rest of the service.
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';

const root = join(import.meta.dirname, '..');
const entry = join(root, 'dist', 'cli', 'main.js');

// In a checkout, rebuild when the sources changed, as `npm start` does. The build's own output goes to stderr,
// so stdout carries only the command's answer (scripts capture `lora finetune create`'s id from it).
if (existsSync(join(root, 'src')) && existsSync(join(root, 'scripts', 'ensure-built.mjs'))) {
  const build = spawnSync(process.execPath, [join(root, 'scripts', 'ensure-built.mjs')], { cwd: root, stdio: ['ignore', 2, 2] });
  if (build.status !== 0) {
    process.stderr.write('error: building the service failed; run "npm run build" to see why\n');
    process.exit(1);
  }
}
if (!existsSync(entry)) {
  process.stderr.write(`error: ${entry} is missing; run "npm run build" first\n`);
  process.exit(1);
}
const { main } = await import(pathToFileURL(entry).href);
process.exitCode = await main(process.argv.slice(2), process);
