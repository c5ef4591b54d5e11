/**
 * Generated text cut at the first stop string. Text is released only when no stop string can still start in
 * it, so a stop string never reaches the caller, even split across pieces.
 */
export class StopCutter {
  text = '';
  private released = 0;
  private readonly longest: number;

  constructor(private readonly stops: string[]) {
    this.longest = Math.max(0, ...stops.map((s) => s.length));
  }

  /** Appends a piece; true when a stop string appeared (the text then ends before it). */
  push(piece: string): boolean {
    const from = Math.max(0, this.text.length - this.longest + 1);
    this.text += piece;
    let cut = -1;
    for (const stop of this.stops) {
      const at = this.text.indexOf(stop, from);
      if (at !== -1 && (cut === -1 || at < cut)) cut = at;
    }
    if (cut === -1) return false;
    this.text = this.text.slice(0, cut);
    return true;
  }

  /** Text not yet released; unless `final`, minus a tail that may be the beginning of a stop string. */
  release(final: boolean): string {
    let end = this.text.length;
    if (!final) {
      for (const stop of this.stops) {
        // A stop string cannot start in released text (it would have been held), so k stops there.
        for (let k = Math.min(stop.length - 1, this.text.length - this.released); k > 0; k--) {
          if (this.text.endsWith(stop.slice(0, k))) {
            end = Math.min(end, this.text.length - k);
            break;
          }
        }
      }
    }
    const out = this.text.slice(this.released, end);
    this.released = Math.max(this.released, end);
    return out;
  }
}
