/** Tokens one run processed, as engines report them and as usage records and answers carry them. */
export interface Usage {
  prompt_tokens: number;
  completion_tokens: number;
  total_tokens: number;
}
