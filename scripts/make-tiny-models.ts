/**
 * Writes the tiny test models, a models.json catalog describing them and sample PEFT adapters, deterministically.
 * Usage: npx tsx scripts/make-tiny-models.ts <outDir>
 */
import { writeTinyModels } from '../src/demo/tiny-model-files.js';

const outDir = process.argv[2];
if (!outDir) {
  console.error('usage: npx tsx scripts/make-tiny-models.ts <outDir>');
  process.exit(2);
}
const { modelsFile, adapters } = await writeTinyModels(outDir);
console.log(`wrote ${modelsFile} and ${Object.keys(adapters).length} sample adapters`);
