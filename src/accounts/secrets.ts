import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';

/** 40 URL-safe characters, the length of a Cloudflare API token. */
export function generateTokenSecret(): string {
  return randomBytes(30).toString('base64url');
}

export function generateAccountId(): string {
  return randomBytes(16).toString('hex');
}

export function hashSecret(secret: string): string {
  return createHash('sha256').update(secret, 'utf8').digest('hex');
}

/** Compares digests so neither the length nor the content of a secret leaks through timing. */
export function secretsEqual(given: string, expected: string): boolean {
  return timingSafeEqual(Buffer.from(hashSecret(given), 'hex'), Buffer.from(hashSecret(expected), 'hex'));
}

export function bearerToken(header: string | undefined): string | undefined {
  const match = /^Bearer\s+(\S+)\s*$/i.exec(header ?? '');
  return match?.[1];
}
