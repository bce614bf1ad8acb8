/**
 * The Raft driver's read barrier (Raft ReadIndex, etcd's ReadOnlySafe) for reads only the leader
 * may answer: a caller passes once a quorum has confirmed, after the call, that this node still
 * leads, and the node has applied everything committed at that moment. Callers that arrive before
 * the next round starts (one turn of the event loop) share one `readIndex` round. A round is lost
 * when leadership is lost or the term changes (its callers get NOT_LEADER), and each caller is
 * bounded in time (TIMEOUT) and in number (BUSY).
 *
 * The driver (raft-node.ts) owns the core and the Ready loop; it calls `startRound` before it
 * drains Readies, `confirm` for each readState, and `failLost` after.
 */
import { ErrorCode, WalrusError } from '../protocol/error-codes.js';
import type { RaftState } from '../raft/index.js';
import { RaftError } from '../raft/index.js';
import type { Scheduler, TimerHandle } from '../scheduler.js';

export const readBarrierLimits = {
  /** Callers of readBarrier waiting at once; beyond it BUSY. */
  waiterCountMax: 100_000,
  /** How long a read barrier may wait for a quorum to confirm the leadership before TIMEOUT. */
  timeoutMs: 5_000,
} as const;

/** What the barrier needs of the driver. */
export interface ReadBarrierHost {
  readonly scheduler: Scheduler;
  /** The core's readIndex (throws RaftError NOT_LEADER / READ_INDEX_NOT_READY / BUSY). */
  readIndex(ctx: number): void;
  role(): RaftState;
  term(): number;
  stopped(): boolean;
  /** NOT_LEADER with the leader hint this node knows. */
  notLeaderError(): WalrusError;
  /** Turns any other error into a typed one. */
  typed(error: unknown): WalrusError;
  waitApplied(index: number): Promise<void>;
  /** Asks the driver to run its Ready loop soon (which starts the round). */
  scheduleProcess(): void;
}

interface BarrierWaiter {
  readonly resolve: () => void;
  readonly reject: (error: Error) => void;
  readonly timer: TimerHandle;
}

export class ReadBarrier {
  private readonly host: ReadBarrierHost;
  /** Callers waiting for the next round (they join it until it starts). */
  private batch: BarrierWaiter[] = [];
  /** Rounds in flight: ctx → the term they were asked in and their callers. */
  private readonly rounds = new Map<number, { term: number; waiters: BarrierWaiter[] }>();
  private waiterCount = 0;
  /** ReadIndex rounds started (each serves every caller batched into it). */
  roundCount = 0;

  constructor(host: ReadBarrierHost) {
    this.host = host;
  }

  /** Resolves once this node may answer from its applied state as of now (see the file header). */
  wait(): Promise<void> {
    const host = this.host;
    if (host.stopped())
      return Promise.reject(new WalrusError(ErrorCode.UNAVAILABLE, 'this node is shutting down'));
    if (host.role() !== 'Leader') return Promise.reject(host.notLeaderError());
    if (this.waiterCount >= readBarrierLimits.waiterCountMax) {
      return Promise.reject(new WalrusError(ErrorCode.BUSY, 'too many reads waiting for a read barrier'));
    }
    return new Promise<void>((resolve, reject) => {
      const waiter: BarrierWaiter = {
        resolve,
        reject,
        timer: host.scheduler.setTimeout(() => {
          this.fail(
            (w) => w === waiter,
            new WalrusError(ErrorCode.TIMEOUT, 'no quorum confirmed the Raft leadership in time'),
          );
        }, readBarrierLimits.timeoutMs),
      };
      this.waiterCount++;
      this.batch.push(waiter);
      host.scheduleProcess();
    });
  }

  /** Starts one ReadIndex round for every batched caller (a new leader retries until ready). */
  startRound(): void {
    if (this.batch.length === 0) return;
    const ctx = this.roundCount + 1;
    try {
      this.host.readIndex(ctx);
    } catch (error) {
      if (error instanceof RaftError && error.code === 'READ_INDEX_NOT_READY') return; // its first entry commits soon
      const batch = new Set(this.batch);
      this.fail(
        (w) => batch.has(w),
        error instanceof RaftError && error.code === 'NOT_LEADER'
          ? this.host.notLeaderError()
          : this.host.typed(error),
      );
      return;
    }
    this.roundCount = ctx;
    this.rounds.set(ctx, { term: this.host.term(), waiters: this.batch });
    this.batch = [];
  }

  /** A round was confirmed at `index`: its callers pass once this node has applied it. */
  confirm(ctx: number, index: number): void {
    const round = this.rounds.get(ctx);
    if (round === undefined) return;
    this.rounds.delete(ctx);
    for (const w of round.waiters) {
      this.host.scheduler.clearTimeout(w.timer);
      this.waiterCount--;
      this.host.waitApplied(index).then(w.resolve, w.reject);
    }
  }

  /** Rounds the core dropped (leadership lost, or a new term) fail with NOT_LEADER. */
  failLost(): void {
    if (this.rounds.size === 0 && this.batch.length === 0) return;
    if (this.host.role() === 'Leader') {
      const term = this.host.term();
      for (const [ctx, round] of this.rounds) {
        if (round.term === term) continue;
        const lost = new Set(round.waiters);
        this.rounds.delete(ctx);
        this.fail((w) => lost.has(w), this.host.notLeaderError());
      }
      return;
    }
    this.fail(() => true, this.host.notLeaderError());
  }

  /** Fails every caller (shutdown). */
  failAll(error: Error): void {
    this.fail(() => true, error);
  }

  private fail(which: (w: BarrierWaiter) => boolean, error: Error): void {
    const drop = (list: BarrierWaiter[]): BarrierWaiter[] =>
      list.filter((w) => {
        if (!which(w)) return true;
        this.host.scheduler.clearTimeout(w.timer);
        this.waiterCount--;
        w.reject(error);
        return false;
      });
    this.batch = drop(this.batch);
    for (const [ctx, round] of this.rounds) {
      round.waiters = drop(round.waiters);
      if (round.waiters.length === 0) this.rounds.delete(ctx);
    }
  }
}
