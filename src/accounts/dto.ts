import { ApiProperty } from '@nestjs/swagger';
import { IsString, Length, Matches } from 'class-validator';

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
