/**
 * The segment leader's view of one follower replica: what it holds durable, what was sent, and
 * whether the next records go out as they are appended ("live": pipelined, bounded in flight) or
 * are read back from the leader's WAL ("catch-up": after a gap, a lost connection, a follower that
 * restarted, or a backlog over the in-flight bound). Pure: the driver (topics/replica-streams.ts)
 * sends and reads, and reports what happened.
 */
import assert from 'node:assert/strict';

export const followerFlowLimits = {
  /** Replicated appends in flight to one follower before the next wait for the WAL (catch-up). */
  inFlightCountMax: 64,
} as const;

export type FollowerMode = 'live' | 'catchUp';

export class FollowerFlow {
  /** The follower's durable end as it last reported it (the segment's base until then). */
  ackedEnd: number;
  /** The next offset to send. */
  sentEnd: number;
  inFlight = 0;
  mode: FollowerMode = 'catchUp';
  /** A catch-up read is being sent (one at a time). */
  catchUpBusy = false;

  constructor(
    readonly nodeId: number,
    baseOffset: number,
  ) {
    this.ackedEnd = baseOffset;
    this.sentEnd = baseOffset;
  }

  /**
   * Records [firstOffset, firstOffset + count) were just appended on the leader. True: send them
   * now (live). False: the follower is behind or saturated and will get them by catch-up.
   */
  offer(firstOffset: number, count: number): boolean {
    assert.ok(count > 0);
    // Records that continue exactly what was sent go out at once, whatever the mode: a catch-up
    // that reached the leader's end hands over to live sending here.
    if (this.sentEnd === firstOffset && this.inFlight < followerFlowLimits.inFlightCountMax) {
      this.sentEnd += count;
      this.inFlight += 1;
      this.mode = 'live';
      return true;
    }
    this.mode = 'catchUp';
    return false;
  }

  /** A catch-up read of what the leader has written: from where, or null when nothing is to send now. */
  catchUpFrom(leaderWrittenEnd: number): number | null {
    if (this.mode !== 'catchUp' || this.catchUpBusy || this.inFlight > 0) return null;
    if (this.sentEnd >= leaderWrittenEnd) return null;
    return this.sentEnd;
  }

  /** A catch-up message of `count` records from `fromOffset` was sent. */
  sentCatchUp(fromOffset: number, count: number): void {
    assert.equal(fromOffset, this.sentEnd, 'catch-up continues where the last send ended');
    this.sentEnd += count;
    this.inFlight += 1;
    this.catchUpBusy = true;
  }

  /**
   * The follower holds [base, endOffset) durable. `assignedEnd` is the leader's next offset: when
   * the follower is caught up with it, new appends go out live again.
   */
  acked(endOffset: number, assignedEnd: number): void {
    this.inFlight = Math.max(0, this.inFlight - 1);
    this.catchUpBusy = false;
    if (endOffset > this.ackedEnd) this.ackedEnd = endOffset;
    if (this.mode === 'catchUp' && this.inFlight === 0 && this.sentEnd >= assignedEnd) this.mode = 'live';
  }

  /** The follower's next offset is `expectedOffset`, not what was sent: resend from there. */
  gap(expectedOffset: number): void {
    this.inFlight = Math.max(0, this.inFlight - 1);
    this.catchUpBusy = false;
    this.mode = 'catchUp';
    // What the follower has taken (durable or about to be) is not sent again.
    this.sentEnd = Math.max(this.ackedEnd, expectedOffset);
  }

  /** A send failed (timeout, lost connection, refusal): resend from what is known durable. */
  failed(): void {
    this.inFlight = Math.max(0, this.inFlight - 1);
    this.catchUpBusy = false;
    this.mode = 'catchUp';
    this.sentEnd = this.ackedEnd;
  }
}
