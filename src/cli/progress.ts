import { formatBytes } from './format.js';

export interface ProgressOutput {
  write(text: string): unknown;
  isTTY?: boolean;
  columns?: number;
}

/** Redraws at most this often: a bar repainted on every chunk would cost more than the upload's bookkeeping. */
const REDRAW_MS = 100;

/**
 * An upload's progress: a bar redrawn in place (percent, bytes, rate) on a terminal, or only a final summary line
 * when the output is a file or a pipe, where carriage returns would leave a mess.
 */
export class Progress {
  readonly #started = performance.now();
  #drawnAt: number | undefined;
  #sent = 0;

  constructor(
    private readonly out: ProgressOutput,
    private readonly label: string,
    private readonly total: number,
  ) {}

  update(sent: number): void {
    this.#sent = sent;
    if (!this.out.isTTY) return;
    const now = performance.now();
    if (this.#drawnAt !== undefined && now - this.#drawnAt < REDRAW_MS && sent < this.total) return;
    this.#drawnAt = now;
    this.out.write(`\r${this.#line()}\x1b[K`);
  }

  /** Ends the bar's line with the final state. */
  done(): void {
    const seconds = (performance.now() - this.#started) / 1000;
    if (this.out.isTTY) this.out.write(`\r${this.#line()}\x1b[K\n`);
    else this.out.write(`uploaded ${this.label}: ${formatBytes(this.total)} in ${seconds.toFixed(1)} s (${this.#rate()})\n`);
  }

  /** Leaves the bar where it stopped, so a following error message starts on a line of its own. */
  abort(): void {
    if (this.out.isTTY && this.#drawnAt !== undefined) this.out.write('\n');
  }

  #rate(): string {
    const seconds = (performance.now() - this.#started) / 1000;
    return `${formatBytes(seconds > 0 ? Math.round(this.#sent / seconds) : 0)}/s`;
  }

  #line(): string {
    const fraction = this.total > 0 ? this.#sent / this.total : 1;
    const percent = `${Math.floor(fraction * 100)}%`.padStart(4);
    const text = `${percent}  ${formatBytes(this.#sent)} / ${formatBytes(this.total)}  ${this.#rate()}`;
    // Sized for the longest text ("100%  999.9 MB / 999.9 MB  999.9 MB/s"), so the bar does not jump as it changes.
    const width = Math.max(10, Math.min(40, (this.out.columns ?? 80) - this.label.length - 45));
    const filled = Math.round(fraction * width);
    return `${this.label} [${'#'.repeat(filled)}${'.'.repeat(width - filled)}] ${text}`;
  }
}
