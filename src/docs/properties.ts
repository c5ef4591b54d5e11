/** `@ApiProperty` options the features' response classes share. */
export const ACCOUNT_ID_PROPERTY = { pattern: '^[0-9a-f]{32}$', example: '3f0c9d7e6b1a4c7e9d2f3a5b6c7d8e9f' };
export const DATE_TIME_PROPERTY = { format: 'date-time', example: '2026-01-01T12:00:00.000Z' };

