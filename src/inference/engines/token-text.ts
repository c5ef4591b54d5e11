/**
 * Generated tokens turned into text piece by piece, exactly as llama.cpp decodes them all at once: the pieces
 * concatenate to the UTF-8 decoding of all the tokens' bytes (what llama-server returns), whatever the tokens.
 *
 * llama.cpp's detokenizer returns bytes, which reach JavaScript decoded with U+FFFD for invalid or incomplete
 * UTF-8, so the bytes of a lone byte-fallback token are not visible on their own. Decoding the tokens not yet
 * released together shows them: incomplete UTF-8 can only be at the very end of that text, as one U+FFFD (the
 * decoder replaces a truncated sequence with one character), and only that last character can still change when
 * more tokens come. Everything before it is final.
 */
import type { Token } from 'node-llama-cpp';

/** llama.cpp's detokenizer for a list of tokens (no special tokens rendered). */
export type Detokenize = (tokens: Token[]) => string;

const REPLACEMENT_CHAR = '\uFFFD';

export class TokenText {
  /** Tokens whose text is not all released yet. */
  private pending: Token[] = [];
  /** Characters of the pending tokens' text already released. */
  private released = 0;

  /**
   * @param before the token before the first generated one (the prompt's last): llama.cpp drops the leading space
   * of the first token it decodes, so each decode starts with the token before the pending ones, whose text is cut.
   */
  constructor(
    private readonly detokenize: Detokenize,
    private before: Token,
  ) {}

  /** Adds a generated token; returns the text that became final (possibly empty). */
  push(token: Token): string {
    this.pending.push(token);
    const text = this.pendingText();
    const end = text.endsWith(REPLACEMENT_CHAR) ? text.length - 1 : text.length;
    const piece = text.slice(this.released, end);
    this.released = end;
    if (end === text.length) {
      // A clean end: what follows decodes independently of these tokens.
      this.before = token;
      this.pending = [];
      this.released = 0;
    }
    return piece;
  }

  /** The rest once no token follows (an incomplete character stays U+FFFD, as llama.cpp's text has it). */
  flush(): string {
    const piece = this.pendingText().slice(this.released);
    if (this.pending.length > 0) this.before = this.pending.at(-1)!;
    this.pending = [];
    this.released = 0;
    return piece;
  }

  private pendingText(): string {
    if (this.pending.length === 0) return '';
    // `before` ends on a clean boundary, so its own text is a prefix of the joint decoding.
    return this.detokenize([this.before, ...this.pending]).slice(this.detokenize([this.before]).length);
  }
}
