import { CallHandler, ExecutionContext, Injectable, NestInterceptor } from '@nestjs/common';
import { Readable } from 'node:stream';
import { map, type Observable } from 'rxjs';
import { success, WithMessages, type Envelope } from './envelope.js';

/** Wraps every JSON handler result in the envelope; handlers that stream write the reply themselves. */
@Injectable()
export class EnvelopeInterceptor implements NestInterceptor {
  intercept(_context: ExecutionContext, next: CallHandler): Observable<Envelope<unknown> | Readable> {
    return next.handle().pipe(
      map((value: unknown) => {
        if (value instanceof Readable) return value;
        return value instanceof WithMessages ? success(value.result, value.messages) : success(value ?? null);
      }),
    );
  }
}
