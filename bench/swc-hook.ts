/**
 * Node's TypeScript loader (tsx/esbuild) does not emit decorator metadata, which Nest's DI needs, so the benchmarks
 * load src/ and test/ through a module hook that compiles them with @swc/core using jest.config.js's settings.
 * Everything else (bench/ itself, node_modules) is left to tsx. Call registerSwcLoader() before the first dynamic
 * import of anything under src/ or test/ (static imports of those would be resolved before it runs).
 */
import { createRequire, register } from 'node:module';
import { join, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const ROOT = resolve(fileURLToPath(import.meta.url), '..', '..');

let registered = false;

/** Compiles src/ and test/ TypeScript with swc (decorator metadata on), leaving everything else to tsx. Idempotent. */
export function registerSwcLoader(): void {
  if (registered) return;
  registered = true;
  const swcPath = createRequire(import.meta.url).resolve('@swc/core');
  const hook = `
    import { readFile } from 'node:fs/promises';
    import { createRequire } from 'node:module';
    import { fileURLToPath } from 'node:url';
    let swc, prefixes;
    export function initialize(data) {
      swc = createRequire(data.self)(data.swcPath);
      prefixes = data.prefixes;
    }
    export async function load(url, context, nextLoad) {
      if (url.endsWith('.ts') && prefixes.some((p) => url.startsWith(p))) {
        const filename = fileURLToPath(url);
        const source = await readFile(filename, 'utf8');
        const { code } = await swc.transform(source, {
          filename,
          jsc: {
            parser: { syntax: 'typescript', decorators: true },
            transform: { legacyDecorator: true, decoratorMetadata: true },
            target: 'es2023',
          },
          module: { type: 'es6' },
          sourceMaps: 'inline',
        });
        return { format: 'module', source: code, shortCircuit: true };
      }
      return nextLoad(url, context);
    }`;
  register(`data:text/javascript,${encodeURIComponent(hook)}`, {
    data: {
      self: import.meta.url,
      swcPath,
      prefixes: [pathToFileURL(join(ROOT, 'src')).href + '/', pathToFileURL(join(ROOT, 'test')).href + '/'],
    },
  });
}
