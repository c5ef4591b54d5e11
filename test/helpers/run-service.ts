/**
 * Runs the service's entry point (src/main.ts) in this process, configured by the environment as `npm start` is,
 * with src/ compiled on the fly (bench/swc-hook.ts). For tests that need the service in a process of its own:
 *   node --import tsx test/helpers/run-service.ts
 */
import { registerSwcLoader } from '../../bench/swc-hook.js';

registerSwcLoader();
await import('../../src/main.js');
