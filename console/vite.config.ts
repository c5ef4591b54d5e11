import { fileURLToPath } from 'node:url';
import { defineConfig } from 'vite';

// Built by `npm run build` into dist/console-ui, which src/console serves under /console/.
export default defineConfig({
  root: fileURLToPath(new URL('.', import.meta.url)),
  // Relative asset URLs: the page works under whatever path a proxy puts /console/ at.
  base: './',
  logLevel: 'warn',
  oxc: { jsx: { runtime: 'automatic', importSource: 'preact' } },
  build: {
    outDir: fileURLToPath(new URL('../dist/console-ui', import.meta.url)),
    emptyOutDir: true,
    target: 'es2022',
    // The polyfill would be an inline script, which the Content-Security-Policy forbids (and every target has it).
    modulePreload: { polyfill: false },
  },
});
