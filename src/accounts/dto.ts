import { IsString, Length, Matches } from 'class-validator';

export class CreateAccountDto {
  @IsString()
  @Length(1, 128)
  name!: string;
}

export class CreateTokenDto {
  @IsString()
  @Length(1, 128)
  name!: string;
}

export class AccountParams {
  @Matches(/^[0-9a-f]{32}$/, { message: 'account_id must be 32 lowercase hexadecimal characters' })
  account_id!: string;
}
