import { ApiProperty, ApiSchema } from '@nestjs/swagger';
import { IsString, IsUUID, Length, Matches } from 'class-validator';
import { ACCOUNT_ID_PROPERTY, DATE_TIME_PROPERTY } from '../docs/properties.js';
import type { Account, ApiToken } from '../generated/prisma/client.js';

export class CreateAccountDto {
  @ApiProperty({ minLength: 1, maxLength: 128, example: 'acme' })
  @IsString()
  @Length(1, 128)
  name!: string;
}

export class CreateTokenDto {
  @ApiProperty({ minLength: 1, maxLength: 128, example: 'laptop' })
  @IsString()
  @Length(1, 128)
  name!: string;
}

export class AccountParams {
  @ApiProperty({ pattern: '^[0-9a-f]{32}$', description: 'the account id: 32 lowercase hexadecimal characters' })
  @Matches(/^[0-9a-f]{32}$/, { message: 'account_id must be 32 lowercase hexadecimal characters' })
  account_id!: string;
}

export class TokenParams extends AccountParams {
  @ApiProperty({ format: 'uuid', description: 'the token id, as listed' })
  @IsUUID('all', { message: 'token_id must be a UUID' })
  token_id!: string;
}

@ApiSchema({ name: 'Account' })
export class AccountResponseDto {
  @ApiProperty(ACCOUNT_ID_PROPERTY) id!: string;
  @ApiProperty({ example: 'acme' }) name!: string;
  @ApiProperty(DATE_TIME_PROPERTY) created_at!: string;
}

export function mapAccount(account: Account): AccountResponseDto {
  return { id: account.id, name: account.name, created_at: account.createdAt.toISOString() };
}

@ApiSchema({ name: 'ApiToken', description: 'An API token; `value` is returned only when the token is created.' })
export class ApiTokenResponseDto {
  @ApiProperty({ format: 'uuid' }) id!: string;
  @ApiProperty({ example: 'laptop' }) name!: string;
  @ApiProperty(ACCOUNT_ID_PROPERTY) account_id!: string;
  @ApiProperty({ description: 'the bearer secret; only its hash is stored' }) value!: string;
  @ApiProperty(DATE_TIME_PROPERTY) created_at!: string;
}

/** The token as created: the only answer that carries its secret. */
export function mapCreatedToken(token: ApiToken, value: string): ApiTokenResponseDto {
  return { id: token.id, name: token.name, account_id: token.accountId, value, created_at: token.createdAt.toISOString() };
}

@ApiSchema({ name: 'ApiTokenSummary', description: 'An API token as listed: never its secret.' })
export class ApiTokenSummaryResponseDto {
  @ApiProperty({ format: 'uuid' }) id!: string;
  @ApiProperty({ example: 'laptop' }) name!: string;
  @ApiProperty(ACCOUNT_ID_PROPERTY) account_id!: string;
  @ApiProperty({
    type: 'string',
    nullable: true,
    example: 'Zb1k',
    description: "the secret's last four characters, to tell tokens apart; null for tokens created before they were kept",
  })
  last_four!: string | null;
  @ApiProperty(DATE_TIME_PROPERTY) created_at!: string;
}

export function mapToken(token: ApiToken): ApiTokenSummaryResponseDto {
  return { id: token.id, name: token.name, account_id: token.accountId, last_four: token.lastFour, created_at: token.createdAt.toISOString() };
}
