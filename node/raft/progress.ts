/**
 * Per-follower replication progress on the leader, with flow control. States:
 * - probe: one App in flight at a time until the follower's match point is found;
 * - replicate: optimistic pipelining, bounded by Inflights (count and bytes);
 * - snapshot: a snapshot was sent; nothing else is sent until it is acknowledged (or times out).
 */
import assert from 'node:assert/strict';
import type { ProgressState } from './types.js';

/** A ring of (last index, bytes) of unacknowledged App messages to one follower. */
export class Inflights {
  private readonly indexes: number[];
  private readonly sizes: number[];
  private start = 0;
  count = 0;
  bytes = 0;

  constructor(
    readonly countMax: number,
    readonly bytesMax: number,
  ) {
    this.indexes = new Array<number>(countMax).fill(0);
    this.sizes = new Array<number>(countMax).fill(0);
  }

  full(): boolean {
    return this.count >= this.countMax || this.bytes >= this.bytesMax;
  }

  add(index: number, bytes: number): void {
    assert.ok(!this.full(), 'Inflights.add on a full window');
    if (this.count > 0) {
      const last = this.indexes[(this.start + this.count - 1) % this.countMax]!;
      assert.ok(index > last, `inflight index ${index} not above ${last}`);
    }
    const slot = (this.start + this.count) % this.countMax;
    this.indexes[slot] = index;
    this.sizes[slot] = bytes;
    this.count++;
    this.bytes += bytes;
  }

  /** Frees every message whose last index is <= index (acknowledged). */
  freeLE(index: number): void {
    while (this.count > 0 && this.indexes[this.start]! <= index) {
      this.bytes -= this.sizes[this.start]!;
      this.start = (this.start + 1) % this.countMax;
      this.count--;
    }
    if (this.count === 0) this.start = 0;
  }

  /** Frees the oldest message (a heartbeat response shows the follower is alive: let one more go). */
  freeFirstOne(): void {
    if (this.count === 0) return;
    this.freeLE(this.indexes[this.start]!);
  }

  reset(): void {
    this.start = 0;
    this.count = 0;
    this.bytes = 0;
  }
}

export class Progress {
  /** Highest index known to be replicated (durably) on the follower. */
  match = 0;
  /** Next index to send. Invariant: match < next. */
  next: number;
  state: ProgressState = 'probe';
  /** probe: an App was sent and not answered yet (paused until a response or heartbeat). */
  probeSent = false;
  /** snapshot: index of the snapshot in flight. */
  pendingSnapshot = 0;
  /** Ticks spent in snapshot state (bounded by snapshotTimeoutTick). */
  snapshotTicks = 0;
  /** Heard from within the current election timeout (CheckQuorum). */
  recentActive = false;
  readonly inflights: Inflights;

  constructor(next: number, inflightMsgCountMax: number, inflightBytesMax: number) {
    this.next = next;
    this.inflights = new Inflights(inflightMsgCountMax, inflightBytesMax);
  }

  private resetState(state: ProgressState): void {
    this.probeSent = false;
    this.pendingSnapshot = 0;
    this.snapshotTicks = 0;
    this.state = state;
    this.inflights.reset();
  }

  becomeProbe(): void {
    if (this.state === 'snapshot') {
      const pending = this.pendingSnapshot;
      this.resetState('probe');
      this.next = Math.max(this.match + 1, pending + 1);
    } else {
      this.resetState('probe');
      this.next = this.match + 1;
    }
  }

  becomeReplicate(): void {
    this.resetState('replicate');
    this.next = this.match + 1;
  }

  becomeSnapshot(snapshotIndex: number): void {
    this.resetState('snapshot');
    this.pendingSnapshot = snapshotIndex;
  }

  /** An ack for index n: returns true if match advanced. */
  maybeUpdate(n: number): boolean {
    let updated = false;
    if (this.match < n) {
      this.match = n;
      updated = true;
      this.probeSent = false;
    }
    this.next = Math.max(this.next, n + 1);
    return updated;
  }

  /**
   * A rejection of the App at `rejected`; `matchHint` is where the follower's log may match.
   * Returns false when the rejection is stale (out of order) and must be ignored.
   */
  maybeDecrTo(rejected: number, matchHint: number): boolean {
    if (this.state === 'replicate') {
      if (rejected <= this.match) return false;
      this.next = this.match + 1;
      return true;
    }
    if (this.next - 1 !== rejected) return false;
    this.next = Math.max(Math.min(rejected, matchHint + 1), this.match + 1);
    this.probeSent = false;
    return true;
  }

  /** True when nothing more may be sent to this follower now. */
  isPaused(): boolean {
    switch (this.state) {
      case 'probe':
        return this.probeSent;
      case 'replicate':
        return this.inflights.full();
      case 'snapshot':
        return true;
    }
  }
}
