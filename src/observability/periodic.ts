// A read-only scan run at start and then on a schedule (the agent's node
// inventory, the controller's Secret inventory): one at a time, a failure
// logged and tried again at the next tick, stop() waiting for the one in hand.
// soon() asks for one more scan out of schedule (the agent after a rotation,
// so the inventory a policy decides from shows the new certificates).
export class PeriodicScan {
  private timer: ReturnType<typeof setInterval> | undefined;
  private running: Promise<unknown> | undefined;
  private again = false;
  private stopped = false;

  constructor(
    private readonly scan: () => Promise<unknown>,
    private readonly onError: (err: unknown) => void,
  ) {}

  start(intervalMs: number): void {
    this.once();
    this.timer = setInterval(() => this.once(), intervalMs);
    this.timer.unref();
  }

  /** A scan now, or right after the one in hand (which may have read the files before they changed). */
  soon(): void {
    if (this.stopped || this.timer === undefined) return;
    if (this.running) this.again = true;
    else this.once();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    clearInterval(this.timer);
    // A scan asked for while one ran starts when that one ends: wait for it too.
    while (this.running) await this.running;
  }

  private once(): void {
    if (this.running || this.stopped) return; // one scan at a time
    this.running = this.scan()
      .catch(this.onError)
      .finally(() => {
        this.running = undefined;
        if (this.again) {
          this.again = false;
          this.once();
        }
      });
  }
}
