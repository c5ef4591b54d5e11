/** The two files of a PEFT LoRA adapter upload. */
export type AdapterFile = 'adapter_config.json' | 'adapter_model.safetensors';

/**
 * The one error the adapter parsers and validators throw for bad input, so the HTTP layer can map every
 * rejection to a single client error while still telling the user which file is wrong and why.
 */
export class AdapterFormatError extends Error {
  constructor(
    readonly file: AdapterFile,
    readonly detail: string,
  ) {
    super(`${file}: ${detail}`);
    this.name = 'AdapterFormatError';
  }
}
