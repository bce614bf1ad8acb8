/**
 * The leader side of one active segment's replication: every append is sent to the follower
 * replicas (pipelined, batched per turn, bounded in flight, read back from the WAL after a gap or
 * a failure: node/replication/follower-flow.ts decides), their durable ends come back, and the
 * high watermark (the end a majority of the replica set holds durable, never past the leader's own) decides what is
 * acknowledged and what readers see (`rt.committedEnd`).
 *
 * Stopping: a recovery that fences the segment (a newer epoch) freezes the replicator: nothing
 * more is sent and nothing more is acknowledged here; the seal then settles every waiting append:
 * those below the sealed end are acknowledged (they are in the log), the rest fail FENCED (they
 * never will be).
 */
import { ErrorCode, WalrusError } from '../protocol/error-codes.js';
import {
  ReplicaAppendOutcome,
  type ReplicaRecord,
  decodeReplicationReply,
  encodeReplicationRequest,
} from '../protocol/replication-codec.js';
import { FollowerFlow, highWatermark } from '../replication/index.js';
import type { TimerHandle } from '../scheduler.js';
import type { TopicContext } from './topic-context.js';
import { replicationLimits } from './replication-limits.js';

interface Waiting {
  readonly end: number;
  readonly resolve: () => void;
  readonly reject: (error: WalrusError) => void;
  /** When it fails OUTCOME_UNKNOWN unless acknowledged (monotonic ms; non-decreasing along `waiting`). */
  readonly deadlineMs: number;
}

interface LiveBatch {
  firstOffset: number;
  records: ReplicaRecord[];
}

/**
 * The maps of a replicator without followers (a segment this node holds alone): shared, since they
 * stay empty (every entry is keyed by a follower), so 10,000 such topics do not hold 40,000 maps.
 */
const noFollowers = new Map<number, FollowerFlow>();
const noLive = new Map<number, LiveBatch>();
const noRetryTimers = new Map<number, TimerHandle>();
const noBackoffMs = new Map<number, number>();

export class SegmentReplicator {
  readonly followers: Map<number, FollowerFlow>;
  /** The leader's own durable end. */
  private localEnd: number;
  /** The next offset the WAL gives (what has been offered). */
  assignedEnd: number;
  /** The high watermark: acknowledged and visible below it. */
  committedEnd: number;
  private readonly waiting: Waiting[] = [];
  private live: Map<number, LiveBatch>;
  private flushQueued = false;
  private frozen = false;
  private stopped = false;
  private readonly retryTimers: Map<number, TimerHandle>;
  /** Fires at the oldest waiting append's deadline. */
  private ackTimer: TimerHandle | null = null;
  private readonly backoffMs: Map<number, number>;

  constructor(
    private readonly ctx: TopicContext,
    readonly topic: string,
    readonly segmentId: number,
    readonly baseOffset: number,
    readonly epoch: number,
    readonly replicas: readonly number[],
    /** Where the leader's WAL ends now (a leader that resumes after a handover starts from it). */
    localEnd: number,
    private readonly onCommitted: (committedEnd: number) => void,
  ) {
    this.localEnd = localEnd;
    this.assignedEnd = localEnd;
    this.committedEnd = baseOffset;
    const alone = replicas.every((id) => id === ctx.nodeId);
    this.followers = alone ? noFollowers : new Map();
    this.live = alone ? noLive : new Map();
    this.retryTimers = alone ? noRetryTimers : new Map();
    this.backoffMs = alone ? noBackoffMs : new Map();
    for (const id of replicas)
      if (id !== ctx.nodeId) this.followers.set(id, new FollowerFlow(id, baseOffset));
    this.advance();
    for (const f of this.followers.values()) this.pump(f);
  }

  get isFrozen(): boolean {
    return this.frozen || this.stopped;
  }

  /**
   * The `count` records [firstOffset, …) were just given offsets by the WAL: send them to the
   * followers. `recordsOf` makes them, once, and only when a follower takes them live (a sole
   * replica, or followers that catch up from the WAL, need no copy of every record).
   */
  offer(firstOffset: number, count: number, recordsOf: () => readonly ReplicaRecord[]): void {
    if (this.isFrozen) return;
    this.assignedEnd = firstOffset + count;
    let records: readonly ReplicaRecord[] | undefined;
    for (const f of this.followers.values()) {
      const pendingBatch = this.live.get(f.nodeId);
      if (
        pendingBatch !== undefined &&
        pendingBatch.firstOffset + pendingBatch.records.length === firstOffset
      ) {
        f.sentEnd += count; // joins the batch already counted in flight
        records ??= recordsOf();
        pendingBatch.records.push(...records);
        continue;
      }
      if (!f.offer(firstOffset, count)) continue;
      records ??= recordsOf();
      this.live.set(f.nodeId, { firstOffset, records: [...records] });
    }
    if (this.live.size > 0 && !this.flushQueued) {
      this.flushQueued = true;
      queueMicrotask(() => this.flushLive());
    }
  }

  /** The leader's WAL holds [base, end) durable. */
  localDurable(end: number): void {
    if (end > this.localEnd) this.localEnd = end;
    this.advance();
    for (const f of this.followers.values()) this.pump(f);
  }

  /** Resolves once [base, end) is acknowledged by a quorum; rejects on timeout or when the segment is sealed below it. */
  waitCommitted(end: number): Promise<void> {
    if (end <= this.committedEnd) return Promise.resolve();
    if (this.stopped) return Promise.reject(this.stoppedError());
    if (this.waiting.length >= replicationLimits.waitingAppendCountMax) {
      return Promise.reject(
        // The append is already in this node's WAL and on its way to the followers.
        new WalrusError(
          ErrorCode.OUTCOME_UNKNOWN,
          'too many appends wait for replication; this one was written here and may still be replicated',
        ),
      );
    }
    return new Promise<void>((resolve, reject) => {
      // Appends are offered in offset order, so `waiting` stays sorted by end and by deadline: one
      // timer, armed for the oldest, serves them all (a timer per append cost more than the append).
      const deadlineMs = this.ctx.scheduler.monotonicMs() + replicationLimits.ackTimeoutMs;
      this.waiting.push({ end, resolve, reject, deadlineMs });
      this.armAckTimer();
    });
  }

  private armAckTimer(): void {
    const oldest = this.waiting[0];
    if (this.ackTimer !== null || oldest === undefined) return;
    const delayMs = Math.max(0, oldest.deadlineMs - this.ctx.scheduler.monotonicMs());
    this.ackTimer = this.ctx.scheduler.setTimeout(() => {
      this.ackTimer = null;
      const nowMs = this.ctx.scheduler.monotonicMs();
      let expired = 0;
      while (expired < this.waiting.length && this.waiting[expired]!.deadlineMs <= nowMs) expired++;
      for (const w of this.waiting.splice(0, expired)) {
        w.reject(
          new WalrusError(
            ErrorCode.OUTCOME_UNKNOWN,
            `segment ${this.segmentId} of topic '${this.topic}' did not reach a quorum of its replicas in ${replicationLimits.ackTimeoutMs} ms; the outcome is unknown`,
          ),
        );
      }
      this.armAckTimer();
    }, delayMs + 1);
  }

  /** A newer epoch fenced the segment: send and acknowledge nothing more; waiting appends wait for the seal. */
  freeze(): void {
    this.frozen = true;
    this.live.clear();
    for (const t of this.retryTimers.values()) this.ctx.scheduler.clearTimeout(t);
    this.retryTimers.clear();
  }

  /**
   * The segment is sealed at `sealedEnd` (null: it is gone, a deleted topic): appends below it are
   * acknowledged, the others fail FENCED. Nothing is sent any more.
   */
  stop(sealedEnd: number | null): void {
    if (this.stopped) return;
    this.freeze();
    this.stopped = true;
    this.ctx.scheduler.clearTimeout(this.ackTimer);
    this.ackTimer = null;
    for (const w of this.waiting.splice(0)) {
      if (sealedEnd !== null && w.end <= sealedEnd) w.resolve();
      else w.reject(this.stoppedError());
    }
  }

  private stoppedError(): WalrusError {
    return new WalrusError(
      ErrorCode.FENCED,
      `segment ${this.segmentId} of topic '${this.topic}' was sealed by a recovery before this append reached a quorum; it was not written`,
    );
  }

  /** Recomputes the high watermark and acknowledges what it passed. */
  private advance(): void {
    if (this.isFrozen) return;
    const ends = [this.localEnd, ...[...this.followers.values()].map((f) => f.ackedEnd)];
    // Never past the leader's own durable end, though the followers alone may make a majority: the
    // leader serves the segment's reads from its WAL, which shows a record once it is durable here
    // (an acknowledged append is readable at once).
    const hw = Math.min(highWatermark(ends, this.replicas.length, this.baseOffset), this.localEnd);
    if (hw <= this.committedEnd) return;
    this.committedEnd = hw;
    let settled = 0;
    while (settled < this.waiting.length && this.waiting[settled]!.end <= hw) settled++;
    for (const w of this.waiting.splice(0, settled)) w.resolve();
    this.onCommitted(hw);
  }

  private flushLive(): void {
    this.flushQueued = false;
    const batches = this.live;
    this.live = new Map();
    if (this.isFrozen) return;
    // Followers that are level get the same records: the message is encoded once for all of them.
    const encoded = new Map<string, Buffer>();
    for (const [nodeId, batch] of batches) {
      const f = this.followers.get(nodeId);
      if (f !== undefined) this.send(f, batch.firstOffset, batch.records, encoded);
    }
  }

  private send(
    f: FollowerFlow,
    firstOffset: number,
    records: readonly ReplicaRecord[],
    encoded?: Map<string, Buffer>,
  ): void {
    const key = `${firstOffset}:${records.length}`;
    let payload: Buffer | undefined = encoded?.get(key);
    try {
      payload ??= encodeReplicationRequest({
        op: 'replicaAppend',
        topic: this.topic,
        segmentId: this.segmentId,
        baseOffset: this.baseOffset,
        epoch: this.epoch,
        committedEnd: this.committedEnd,
        firstOffset,
        records,
      });
    } catch (error) {
      this.ctx.logger.error(
        { topic: this.topic, err: String(error) },
        'could not encode a replicated append',
      );
      f.failed();
      this.retryLater(f);
      return;
    }
    encoded?.set(key, payload);
    this.ctx.cluster
      .replicate(f.nodeId, payload, replicationLimits.replicaRequestTimeoutMs)
      .then((bytes) => {
        if (this.isFrozen) return;
        const reply = decodeReplicationReply('replicaAppend', bytes);
        switch (reply.outcome) {
          case ReplicaAppendOutcome.ok:
            this.backoffMs.delete(f.nodeId);
            f.acked(reply.endOffset, this.assignedEnd);
            this.advance();
            this.pump(f);
            return;
          case ReplicaAppendOutcome.gap:
            f.gap(reply.endOffset);
            this.pump(f);
            return;
          default:
            // FENCED or sealed there: a recovery has taken the segment over; its seal stops us.
            this.ctx.logger.warn(
              { topic: this.topic, segment: this.segmentId, replica: f.nodeId, epoch: reply.epoch },
              'A replica refused this leader: the segment is being recovered',
            );
            this.freeze();
            return;
        }
      })
      .catch((error: unknown) => {
        if (this.isFrozen) return;
        f.failed();
        this.ctx.logger.info(
          { topic: this.topic, segment: this.segmentId, replica: f.nodeId, err: String(error) },
          'replicated append failed; will resend',
        );
        this.retryLater(f);
      });
  }

  private retryLater(f: FollowerFlow): void {
    if (this.isFrozen || this.retryTimers.has(f.nodeId)) return;
    const last = this.backoffMs.get(f.nodeId);
    const delayMs =
      last === undefined
        ? replicationLimits.retryBackoffMsMin
        : Math.min(last * 2, replicationLimits.retryBackoffMsMax);
    this.backoffMs.set(f.nodeId, delayMs);
    const timer = this.ctx.scheduler.setTimeout(() => {
      this.retryTimers.delete(f.nodeId);
      this.pump(f);
    }, delayMs);
    this.retryTimers.set(f.nodeId, timer);
  }

  /** Sends a follower in catch-up what it lacks, read back from the WAL (one message at a time). */
  private pump(f: FollowerFlow): void {
    if (this.isFrozen || this.retryTimers.has(f.nodeId)) return;
    const from = f.catchUpFrom(this.localEnd);
    if (from === null) {
      // Caught up with everything assigned: back to live sending.
      if (f.mode === 'catchUp' && f.inFlight === 0 && f.sentEnd >= this.assignedEnd) f.mode = 'live';
      return;
    }
    let records: ReplicaRecord[];
    try {
      records = this.ctx.wal
        .read(this.topic, from, {
          recordCountMax: Math.min(replicationLimits.catchUpRecordCountMax, this.localEnd - from),
          byteCountMax: replicationLimits.catchUpByteCountMax,
        })
        .filter((r) => r.offset < this.localEnd)
        .map((r) => ({ timestampMs: r.timestampMs, headers: r.headers, value: r.value }));
    } catch (error) {
      this.ctx.logger.error(
        { topic: this.topic, segment: this.segmentId, err: String(error) },
        'could not read records back for a follower',
      );
      this.retryLater(f);
      return;
    }
    if (records.length === 0) return;
    f.sentCatchUp(from, records.length);
    this.send(f, from, records);
  }
}
