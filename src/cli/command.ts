import type { ProgressOutput } from './progress.js';

/** Where a command writes and what it reads; `process` itself fits, and tests pass their own. */
export interface CliIo {
  stdout: { write(text: string): unknown };
  stderr: ProgressOutput;
  env: Record<string, string | undefined>;
}

export interface Command {
  /** Synopsis after "lora ", e.g. "finetune get <id_or_name> [--json]". */
  usage: string;
  summary: string;
  /** Option lines for --help, besides the connection options every command takes. */
  options: string[];
  run(args: string[], io: CliIo): Promise<void>;
}
