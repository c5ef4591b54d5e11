/**
 * Preloaded into a process under measurement (`node --expose-gc --import ./bench/heap-probe.mjs ...`): on SIGWINCH (which Nest's shutdown hooks leave alone, unlike SIGUSR2) it
 * collects garbage and writes `heap-probe <heapUsed bytes>` to stderr, so a benchmark can read the live heap of a
 * server it did not start in-process (lora-hub's `node dist/main.js`, the Portkey gateway) without changing it.
 */
process.on('SIGWINCH', () => {
  globalThis.gc?.();
  globalThis.gc?.();
  process.stderr.write(`heap-probe ${process.memoryUsage().heapUsed}\n`);
});
