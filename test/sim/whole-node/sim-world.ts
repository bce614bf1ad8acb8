/**
 * The whole-node simulator's event loop and simulated time: one seeded EventQueue for every timer,
 * immediate, message and disk completion of every node; a `SimProcess` per node incarnation that
 * fences what a killed process left behind (its timers never fire again, its I/O throws); and a
 * `SimScheduler` per process implementing node/scheduler.ts over the queue.
 *
 * After each event the loop lets the microtask queue drain (one real setImmediate turn), exactly
 * as Node runs promise continuations after each callback, so async production code runs at the
 * same simulated instant and in the same order on every replay. Nothing else real is used.
 */
import { EventQueue } from '../event-queue.js';
import type { Scheduler, TimerHandle } from '../../../node/scheduler.js';

/** Wall-clock epoch of simulated time 0 (WAL record times, retention, topic creation). */
export const simEpochMs = 1_700_000_000_000;

/** One incarnation of a node's process; everything it scheduled dies with it. */
export class SimProcess {
  alive = true;
  /**
   * SIGSTOP: until this simulated time nothing the process scheduled runs (timers, I/O
   * completions, messages and requests delivered to it wait, in order); then it resumes and finds
   * its clock moved on, as after SIGCONT.
   */
  pausedUntil = 0;
  constructor(
    readonly nodeId: number,
    readonly incarnation: number,
  ) {}
}

/** Thrown by the I/O of a process that is no longer alive; never reaches a live node. */
export class ProcessDead extends Error {
  constructor(readonly nodeId: number) {
    super(`node ${nodeId}'s process is dead`);
    this.name = 'ProcessDead';
  }
}

interface WorldEvent {
  time: number;
  seq: number;
  readonly owner: SimProcess | null;
  readonly run: () => void;
}

export class SimWorld {
  now = 0;
  events = 0;
  /** The process whose event ran last (null: the simulator's own), for checks that look only at it. */
  lastOwner: SimProcess | null = null;
  private readonly queue = new EventQueue<WorldEvent>();
  /** Called when a process's callback throws (an uncaught exception: the process dies). */
  onProcessError: (owner: SimProcess, error: unknown) => void = (_owner, error) => {
    throw error;
  };

  get pending(): number {
    return this.queue.size;
  }

  /** Runs `run` at `time` (clamped to now) unless `owner` has died by then. */
  at(time: number, run: () => void, owner: SimProcess | null = null): void {
    this.queue.push({ time: Math.max(time, this.now), owner, run });
  }

  after(delay: number, run: () => void, owner: SimProcess | null = null): void {
    this.at(this.now + delay, run, owner);
  }

  /**
   * Runs events until the queue is empty, `stop()` says so or `untilTime` passes; `afterEvent` runs
   * after each event once its microtasks drained (invariant checks).
   */
  async run(o: { untilTime: number; stop?: () => boolean; afterEvent?: () => void }): Promise<void> {
    for (;;) {
      if (o.stop?.() === true) return;
      const next = this.queue.peek();
      if (next === undefined) return;
      if (next.time > o.untilTime) {
        this.now = Math.max(this.now, o.untilTime);
        return;
      }
      const e = this.queue.pop()!;
      if (e.owner !== null && !e.owner.alive) continue;
      if (e.owner !== null && e.owner.pausedUntil > e.time) {
        // Stopped: the event waits for SIGCONT, behind what was due before it.
        this.queue.push({ time: e.owner.pausedUntil, owner: e.owner, run: e.run });
        continue;
      }
      this.now = e.time;
      this.events++;
      this.lastOwner = e.owner;
      try {
        e.run();
      } catch (error) {
        if (e.owner === null) throw error;
        this.onProcessError(e.owner, error);
      }
      await drainMicrotasks();
      o.afterEvent?.();
    }
  }
}

/** Resolves after every microtask queued so far (and those they queue) has run. */
export function drainMicrotasks(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve));
}

interface SimTimer extends TimerHandle {
  cancelled: boolean;
}

/** node/scheduler.ts over the world's queue, for one process; `skewMs` offsets its wall clock. */
export class SimScheduler implements Scheduler {
  constructor(
    private readonly world: SimWorld,
    readonly process: SimProcess,
    private readonly skewMs: number,
  ) {}

  nowMs(): number {
    return simEpochMs + Math.round(this.world.now) + this.skewMs;
  }

  monotonicMs(): number {
    return this.world.now;
  }

  setTimeout(run: () => void, ms: number): TimerHandle {
    const timer: SimTimer = { cancelled: false };
    this.world.after(
      Math.max(1, ms),
      () => {
        if (!timer.cancelled) run();
      },
      this.process,
    );
    return timer;
  }

  clearTimeout(timer: TimerHandle | null | undefined): void {
    if (timer !== null && timer !== undefined) (timer as SimTimer).cancelled = true;
  }

  setInterval(run: () => void, ms: number): TimerHandle {
    const timer: SimTimer = { cancelled: false };
    const period = Math.max(1, ms);
    const fire = (): void => {
      if (timer.cancelled) return;
      this.world.after(period, fire, this.process);
      run();
    };
    this.world.after(period, fire, this.process);
    return timer;
  }

  clearInterval(timer: TimerHandle | null | undefined): void {
    this.clearTimeout(timer);
  }

  setImmediate(run: () => void): void {
    this.world.at(this.world.now, run, this.process);
  }
}
