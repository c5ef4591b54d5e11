import { IsInt, IsString, Length, Max, Min, ValidateIf } from 'class-validator';

export class SetLimitDto {
  @IsString()
  @Length(1, 255)
  model!: string;

  /** null removes the override (the catalog's limits apply again). */
  @ValidateIf((dto: SetLimitDto) => dto.max_requests_per_min !== null)
  @IsInt()
  @Min(1)
  @Max(1_000_000)
  max_requests_per_min!: number | null;
}
