import { CallHandler, ExecutionContext, Injectable, NestInterceptor } from '@nestjs/common';
import { map, type Observable } from 'rxjs';
import { success, WithMessages, type Envelope } from './envelope.js';

/** Wraps every JSON handler result in the envelope; handlers that stream write the reply themselves. */
@Injectable()
export class EnvelopeInterceptor implements NestInterceptor {
  intercept(_context: ExecutionContext, next: CallHandler): Observable<Envelope<unknown>> {
    return next
      .handle()
      .pipe(map((value: unknown) => (value instanceof WithMessages ? success(value.result, value.messages) : success(value ?? null))));
  }
}
