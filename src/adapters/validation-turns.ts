/**
 * Runs CPU-bound validation steps one at a time, each in a turn of the event loop of its own: a burst of uploads then
 * lets other requests (such as /healthz) in between two steps rather than behind all of them.
 */
export class ValidationTurns {
  #tail: Promise<unknown> = Promise.resolve();

  run<T>(step: () => T): Promise<T> {
    // An immediate queued while the previous step's immediate runs waits for the next loop iteration, after I/O.
    const result = this.#tail.then(
      () =>
        new Promise<T>((resolve, reject) =>
          setImmediate(() => {
            try {
              resolve(step());
            } catch (error) {
              reject(error);
            }
          }),
        ),
    );
    this.#tail = result.catch(() => undefined);
    return result;
  }
}
