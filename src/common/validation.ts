import { ValidationPipe, type ValidationError as ClassValidatorError } from '@nestjs/common';
import { ApiError } from './errors.js';

function describe(errors: ClassValidatorError[], parent = ''): string[] {
  return errors.flatMap((error) => {
    const path = parent ? `${parent}.${error.property}` : error.property;
    // class-validator's texts already start with the property name; nested ones need their parent path.
    const own = Object.values(error.constraints ?? {}).map((text) => (parent ? `${parent}.${text}` : text));
    return [...own, ...describe(error.children ?? [], path)];
  });
}

/** DTO validation whose failures name every offending field, as 400/5006. */
export function createValidationPipe(): ValidationPipe {
  return new ValidationPipe({
    transform: true,
    whitelist: true,
    forbidNonWhitelisted: true,
    exceptionFactory: (errors) => new ApiError('validation', describe(errors).join('; ')),
  });
}
