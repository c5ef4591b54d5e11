import { Injectable } from '@nestjs/common';

/** Lets caches elsewhere (resolved adapters, responses) forget a finetune the moment it is deleted. */
@Injectable()
export class FinetuneEvents {
  private readonly deletedListeners: ((finetuneId: string) => void)[] = [];

  onDeleted(listener: (finetuneId: string) => void): void {
    this.deletedListeners.push(listener);
  }

  deleted(finetuneId: string): void {
    for (const listener of this.deletedListeners) listener(finetuneId);
  }
}
