/**
 * One interval timer for many deadlines: it runs only while its owner has something with a
 * deadline, and each tick hands the owner the time to expire what is due. A timer per request cost
 * more than the rest of the client at 256 requests in flight; a sweep makes a request time out at
 * most one period late.
 */
import assert from 'node:assert';

export class DeadlineSweep {
  private timer: NodeJS.Timeout | undefined;

  /** `sweep(nowMs)` expires what is due and returns whether anything with a deadline is left. */
  constructor(
    private readonly periodMs: number,
    private readonly sweep: (nowMs: number) => boolean,
  ) {
    assert(periodMs > 0);
  }

  /** Starts the timer unless it runs. */
  ensure(): void {
    if (this.timer !== undefined) return;
    this.timer = setInterval(() => {
      if (!this.sweep(Date.now())) this.stop();
    }, this.periodMs);
  }

  stop(): void {
    clearInterval(this.timer);
    this.timer = undefined;
  }
}
