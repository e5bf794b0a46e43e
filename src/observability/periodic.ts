// A read-only scan run at start and then on a schedule (the agent's node
// inventory, the controller's Secret inventory): one at a time, a failure
// logged and tried again at the next tick, stop() waiting for the one in hand.
export class PeriodicScan {
  private timer: ReturnType<typeof setInterval> | undefined;
  private running: Promise<unknown> | undefined;

  constructor(
    private readonly scan: () => Promise<unknown>,
    private readonly onError: (err: unknown) => void,
  ) {}

  start(intervalMs: number): void {
    const once = (): void => {
      if (this.running) return; // one scan at a time
      this.running = this.scan()
        .catch(this.onError)
        .finally(() => (this.running = undefined));
    };
    once();
    this.timer = setInterval(once, intervalMs);
    this.timer.unref();
  }

  async stop(): Promise<void> {
    clearInterval(this.timer);
    await this.running;
  }
}
