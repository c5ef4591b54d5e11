/** The contract's response envelope, for successes and errors alike. */
export interface EnvelopeMessage {
  code: number;
  message: string;
}

export interface Envelope<T> {
  result: T | null;
  success: boolean;
  errors: EnvelopeMessage[];
  messages: EnvelopeMessage[];
}

/** A handler result that also carries non-fatal messages (warnings) for the envelope. */
export class WithMessages<T> {
  constructor(
    readonly result: T,
    readonly messages: EnvelopeMessage[],
  ) {}
}

export function success<T>(result: T, messages: EnvelopeMessage[] = []): Envelope<T> {
  return { result, success: true, errors: [], messages };
}

export function failure(errors: EnvelopeMessage[]): Envelope<null> {
  return { result: null, success: false, errors, messages: [] };
}
