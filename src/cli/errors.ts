/** A failure reported as one `error:` line (plus an optional `hint:` line); exit code 1, or 2 for command-line mistakes. */
export class CliError extends Error {
  hint?: string;

  constructor(
    message: string,
    readonly exitCode: 1 | 2 = 1,
  ) {
    super(message);
  }
}

export class UsageError extends CliError {
  constructor(message: string) {
    super(message, 2);
  }
}

/** The service's answer to a failed request: the first error of its envelope. */
export class ApiError extends CliError {
  constructor(
    readonly code: number,
    readonly detail: string,
  ) {
    super(`${detail} (code ${code})`);
  }
}

/** A request that never got an answer. */
export function unreachable(url: string, error: unknown): CliError {
  // fetch reports every network failure as "fetch failed" with the socket's error as the cause.
  const { cause } = error as { cause?: unknown };
  return new CliError(`cannot reach ${url}: ${reason(typeof cause === 'object' && cause !== null ? cause : error)}`);
}

/** Read by shape rather than `instanceof`: errors of Node's own sockets may come from another realm (vm contexts). */
export function reason(error: unknown): string {
  const { message, code } = (typeof error === 'object' && error !== null ? error : {}) as { message?: unknown; code?: unknown };
  // Connecting to "localhost" fails with an AggregateError whose message is empty but whose code is set.
  if (typeof message === 'string' && message !== '') return message;
  return typeof code === 'string' ? code : String(error);
}
