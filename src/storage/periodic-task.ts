/**
 * Runs a background task once right after start (not awaited, so start-up is not delayed) and then every
 * `intervalMs`; a run never overlaps the previous one, and stop() waits for the one in progress.
 */
export class PeriodicTask {
  private timer?: NodeJS.Timeout;
  private running?: Promise<void>;

  constructor(
    private readonly task: () => Promise<void>,
    private readonly intervalMs: number,
    private readonly onError: (error: unknown) => void,
  ) {}

  start(): void {
    this.run();
    this.timer = setInterval(() => this.run(), this.intervalMs);
    this.timer.unref();
  }

  async stop(): Promise<void> {
    clearInterval(this.timer);
    await this.running;
  }

  private run(): void {
    if (this.running) return;
    this.running = this.task()
      .catch(this.onError)
      .finally(() => (this.running = undefined));
  }
}
