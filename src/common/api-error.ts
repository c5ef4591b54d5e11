/**
 * Typed errors carrying the contract's HTTP status and numeric code.
 * The global exception filter turns them into the response envelope.
 */
export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: number,
    message: string,
    readonly headers: Record<string, string> = {},
  ) {
    super(message);
    this.name = new.target.name;
  }
}

export class AuthenticationError extends ApiError {
  constructor(message = 'Authentication error: a valid bearer token is required') {
    super(401, 10000, message);
  }
}

export class ForbiddenError extends ApiError {
  constructor(message = 'Authentication error: this token is not valid for the requested account') {
    super(403, 10000, message);
  }
}

export class ValidationError extends ApiError {
  constructor(message: string, code = 5006) {
    super(400, code, message);
  }
}

export class NotFoundError extends ApiError {
  constructor(message: string, code = 7000) {
    super(404, code, message);
  }
}

export class ConflictError extends ApiError {
  constructor(message: string, code: number) {
    super(409, code, message);
  }
}

export class TooManyRequestsError extends ApiError {
  constructor(message: string, code: number, retryAfterSeconds?: number) {
    super(429, code, message, retryAfterSeconds === undefined ? {} : { 'retry-after': String(retryAfterSeconds) });
  }
}

export class PayloadTooLargeError extends ApiError {
  constructor(message: string) {
    super(413, 3041, message);
  }
}

export class StorageUnavailableError extends ApiError {
  constructor(message: string) {
    super(503, 7001, message);
  }
}

export class DatabaseUnavailableError extends ApiError {
  constructor(message: string) {
    super(503, 7002, message);
  }
}

export class EngineUnavailableError extends ApiError {
  constructor(message: string) {
    super(503, 7003, message);
  }
}
