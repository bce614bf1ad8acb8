/**
 * The clock and timers a node's event-driven parts run on, injected so a simulator can drive a
 * whole node from one seeded event queue and a simulated clock (test/sim/whole-node). Production
 * passes nothing and gets `realScheduler`: Date.now, performance.now and the global timers, so
 * behaviour is unchanged. Like log.ts, a leaf every folder may import.
 */

/** A pending timer; `unref` exists on real timers only (a simulated one never holds a process). */
export interface TimerHandle {
  unref?(): unknown;
}

export interface Scheduler {
  /** Wall-clock milliseconds since the epoch (Date.now). */
  nowMs(): number;
  /** Monotonic milliseconds for durations (performance.now). */
  monotonicMs(): number;
  setTimeout(run: () => void, ms: number): TimerHandle;
  clearTimeout(timer: TimerHandle | null | undefined): void;
  setInterval(run: () => void, ms: number): TimerHandle;
  clearInterval(timer: TimerHandle | null | undefined): void;
  /** Runs `run` after the current turn, before timers (setImmediate). */
  setImmediate(run: () => void): void;
}

export const realScheduler: Scheduler = {
  nowMs: () => Date.now(),
  monotonicMs: () => performance.now(),
  setTimeout: (run, ms) => setTimeout(run, ms),
  clearTimeout: (timer) => clearTimeout(timer as NodeJS.Timeout | undefined),
  setInterval: (run, ms) => setInterval(run, ms),
  clearInterval: (timer) => clearInterval(timer as NodeJS.Timeout | undefined),
  setImmediate: (run) => {
    setImmediate(run);
  },
};

/** Resolves after `ms` on `scheduler`'s clock. */
export function sleep(scheduler: Scheduler, ms: number): Promise<void> {
  return new Promise((resolve) => {
    scheduler.setTimeout(resolve, ms);
  });
}
