import { loraTensorName } from '../../src/formats/adapter-validation.js';
import { LORA_MODULES, type ModelArchitecture } from '../../src/formats/architecture.js';
import { isTargeted, scaleFor, type PeftLoraConfig } from '../../src/formats/peft-config.js';
import { decodeFileTensor, validateSafetensors } from './safetensors.js';
import { hfLinearName, type HfWeights } from '../../src/demo/tiny-model.js';

/**
 * Merges a PEFT LoRA adapter into HF weights in place: W += scale · B · A for every adapted module, with PEFT's
 * scale (rsLoRA, rank_pattern, alpha_pattern included). Accumulates in float64.
 */
export function mergePeftAdapter(
  weights: HfWeights,
  architecture: ModelArchitecture,
  config: PeftLoraConfig,
  safetensors: Uint8Array,
): void {
  const header = validateSafetensors(safetensors);
  const present = new Set(header.tensors.map((t) => t.name));
  for (let layer = 0; layer < architecture.num_hidden_layers; layer++) {
    for (const module of LORA_MODULES) {
      const nameA = loraTensorName(layer, module, 'A');
      if (!isTargeted(config, layer, module) || !present.has(nameA)) continue;
      const w = weights.get(hfLinearName(layer, module))!;
      const [out, inF] = w.shape;
      const a = decodeFileTensor(safetensors, header, nameA);
      const b = decodeFileTensor(safetensors, header, loraTensorName(layer, module, 'B'));
      const r = a.length / inF;
      const scale = scaleFor(config, layer, module);
      const row = new Float64Array(inF);
      for (let o = 0; o < out; o++) {
        row.fill(0);
        for (let k = 0; k < r; k++) {
          const bk = b[o * r + k];
          for (let i = 0; i < inF; i++) row[i] += bk * a[k * inF + i];
        }
        for (let i = 0; i < inF; i++) w.data[o * inF + i] += scale * row[i];
      }
    }
  }
}
