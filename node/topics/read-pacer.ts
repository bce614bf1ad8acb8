/**
 * Paces the synchronous work of long reads so that no client's reads hold the event loop: Raft
 * ticks, peer traffic and other clients' requests get a turn every `sliceMsMax` of read work.
 *
 * - At most `readCountMax` long reads run at once node-wide (each holds up to one reply's records
 *   in memory); the others wait in a FIFO queue of at most `waitingCountMax` (beyond: BUSY).
 * - A running read does its work in steps (one bounded chunk each, reader.ts) through `step()`:
 *   steps run at once while the work done since the last yield is under `sliceMsMax`, and after
 *   that wait for the next turn (the scheduler's setImmediate, after I/O), where they run in order.
 * - A waiting read or step whose signal aborts (its connection closed) is dropped: it rejects and
 *   never runs.
 *
 * Work is timed with the scheduler's monotonic clock; in the simulator that clock does not move
 * during a step, so the pacer never yields there and changes no schedule.
 */
import assert from 'node:assert';
import { ErrorCode, WalrusError } from '../protocol/error-codes.js';
import type { Scheduler } from '../scheduler.js';

export const readPacerLimits = {
  /** Synchronous read work between two yields to the event loop, ms. */
  sliceMsMax: 4,
  /** Long reads running at once node-wide (each holds one reply of up to 4 MiB). */
  readCountMax: 8,
  /** Long reads waiting to run; one more is answered BUSY. */
  waitingCountMax: 100_000,
} as const;

export interface ReadPacerLimits {
  readonly sliceMsMax: number;
  readonly readCountMax: number;
  readonly waitingCountMax: number;
}

assert(readPacerLimits.sliceMsMax > 0 && readPacerLimits.readCountMax > 0);

interface Waiter {
  readonly run: () => void;
}

export class ReadPacer {
  private running = 0;
  private readonly waiting: Waiter[] = [];
  private readonly steps: Waiter[] = [];
  /** Work done since the last yield, ms. */
  private workMs = 0;
  private yieldScheduled = false;

  constructor(
    private readonly scheduler: Scheduler,
    private readonly limits: ReadPacerLimits = readPacerLimits,
  ) {}

  /** Long reads running now. */
  get runningCount(): number {
    return this.running;
  }

  /** Long reads waiting for a slot. */
  get waitingCount(): number {
    return this.waiting.length;
  }

  /** Runs `read` in one of the node's read slots, once one is free (FIFO). */
  async withSlot<T>(signal: AbortSignal | undefined, read: () => Promise<T>): Promise<T> {
    if (this.running >= this.limits.readCountMax) {
      if (this.waiting.length >= this.limits.waitingCountMax) {
        throw new WalrusError(ErrorCode.BUSY, `${this.waiting.length} long reads are waiting; retry later`);
      }
      await this.enqueue(this.waiting, signal);
    }
    this.running += 1;
    try {
      return await read();
    } finally {
      this.running -= 1;
      this.wakeWaiting();
    }
  }

  /** Runs one bounded step of a read now, or on a later turn once this turn's slice is spent. */
  async step<T>(signal: AbortSignal | undefined, work: () => T): Promise<T> {
    if (this.workMs >= this.limits.sliceMsMax || this.steps.length > 0) {
      if (this.workMs >= this.limits.sliceMsMax) this.scheduleYield();
      await this.enqueue(this.steps, signal);
    }
    try {
      assertNotAborted(signal);
      const started = this.scheduler.monotonicMs();
      try {
        return work();
      } finally {
        this.workMs += this.scheduler.monotonicMs() - started;
      }
    } finally {
      this.afterStep();
    }
  }

  private enqueue(queue: Waiter[], signal: AbortSignal | undefined): Promise<void> {
    assertNotAborted(signal);
    return new Promise<void>((resolve, reject) => {
      const onAbort = (): void => {
        const i = queue.indexOf(waiter);
        if (i >= 0) queue.splice(i, 1);
        reject(cancelled());
      };
      const waiter: Waiter = {
        run: () => {
          signal?.removeEventListener('abort', onAbort);
          resolve();
        },
      };
      signal?.addEventListener('abort', onAbort, { once: true });
      queue.push(waiter);
    });
  }

  private wakeWaiting(): void {
    if (this.running < this.limits.readCountMax) this.waiting.shift()?.run();
  }

  /**
   * After each step, the next queued one runs (in a microtask of this turn) while the slice lasts;
   * once it is spent the rest wait for the next turn. So steps run one after another, in order.
   */
  private afterStep(): void {
    if (this.steps.length === 0) return;
    if (this.workMs < this.limits.sliceMsMax) this.steps.shift()!.run();
    else this.scheduleYield();
  }

  private scheduleYield(): void {
    if (this.yieldScheduled) return;
    this.yieldScheduled = true;
    this.scheduler.setImmediate(() => this.resume());
  }

  /** A new turn (after I/O and timers had theirs): the slice starts again with the first waiting step. */
  private resume(): void {
    this.yieldScheduled = false;
    this.workMs = 0;
    this.steps.shift()?.run();
  }
}

function cancelled(): WalrusError {
  return new WalrusError(ErrorCode.UNAVAILABLE, 'the read was cancelled: its connection closed');
}

function assertNotAborted(signal: AbortSignal | undefined): void {
  if (signal?.aborted) throw cancelled();
}
