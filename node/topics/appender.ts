/**
 * Appends and rollover on the leader of a topic's active segment.
 *
 * Replication: the WAL gives each append its offsets at once, the segment's replicator
 * (segment-replicator.ts) sends the records to the follower replicas in the same turn, and the
 * append is acknowledged once a majority of the replica set holds it durable (acks=quorum, the
 * default) or, when the request asks for acks=leader, once this node has it durable (and the reply
 * says so). Readers never see past the high watermark (`committedEnd`).
 *
 * Rollover follows the fix to Walrus: once the active segment holds `segmentEntryCountMax`
 * records, new appends wait, every accepted append reaches a quorum (or, if the quorum is gone,
 * the segment is cut back to what did), the WAL seals the segment, and the seal is logged with
 * that exact count, under the segment's epoch (a recovery that fenced the segment meanwhile wins).
 * The next segment's leader and replicas are chosen by the Raft leader, which alone knows who is
 * alive, before the seal is logged.
 *
 * A full disk answers DISK_FULL on every path: the WAL refuses the append (its disk reserve), the
 * creation of the segment's local file, or the seal of a rollover, and an append waiting on the
 * latter two gets that error instead of waiting out its rounds (UNAVAILABLE "cannot roll over").
 */
import { ErrorCode, WalrusError } from '../protocol/error-codes.js';
import type { RecordInput, ResponseByOp } from '../protocol/messages.js';
import type { Wal } from '../wal/index.js';
import {
  type SegmentMeta,
  activeSegment,
  epochOf,
  openingEpoch,
  replicasOf,
} from '../metadata/metadata-state.js';
import { nextSegmentLeader } from '../metadata/placement.js';
import { topicLimits } from './limits.js';
import {
  checkEpochSequence,
  checkSequence,
  producerTable,
  trackBatch,
  withProducerHeader,
} from './producers.js';
import { checkStreamOpen } from './stream-state.js';
import { type TopicContext, proposeOrThrow } from './topic-context.js';
import { SegmentReplicator } from './segment-replicator.js';
import { type TopicRuntime, toWalrusError, wakeWaiters } from './topic-table.js';

export interface AppendOptions {
  producerId?: string;
  producerSeq?: number;
  expectedOffset?: number;
  /** 'leader': acknowledge once this node has the records durable (default 'quorum'). */
  acks?: 'leader' | 'quorum';
  /** A Durable Streams producer epoch (producers.ts checkEpochSequence). */
  producerEpoch?: number;
  /** Close the stream after these records (which may be none). */
  close?: boolean;
  /** A DS writer's Stream-Seq (must be above the last one, as strings). */
  streamSeq?: string;
}

/** True when the segment's only copy is this node's (replication factor 1). */
export function isSoleReplica(segment: SegmentMeta, nodeId: number): boolean {
  const replicas = replicasOf(segment);
  return replicas.length === 1 && replicas[0] === nodeId;
}

export class Appender {
  private readonly ctx: TopicContext;
  /** Completes and seals this node's open copy of a sealed segment (replica-service.ts `settleSealed`; set by the service). */
  completeSealed: (topic: string, segmentId: number) => Promise<boolean> = () => Promise.resolve(false);
  /** Asks for the recovery of a segment this node leads but can no longer append to (set by the service). */
  needsRecovery: (topic: string, segmentId: number, reason: string) => void = () => {};
  /**
   * The DISK_FULL a segment creation or a rollover ended with, by the promise appends waited on
   * (weakly held: it goes with the promise).
   */
  private readonly diskFull = new WeakMap<Promise<void>, WalrusError>();
  /**
   * Durable ends noted and not yet told to their replicators (noteDurable), at most one entry per
   * replicator with appends settled in this turn.
   */
  private readonly durableEnds = new Map<SegmentReplicator, number>();
  private durableFlushQueued = false;

  constructor(ctx: TopicContext) {
    this.ctx = ctx;
  }

  /**
   * Appends `records` to the topic's active segment (this node must lead it). Never throws: every
   * failure is a rejection. Not an async function: an append that can go in at once (the common
   * case) costs no promise of its own beyond the WAL's and the acknowledgement's.
   */
  append(
    name: string,
    records: readonly RecordInput[],
    options: AppendOptions = {},
  ): Promise<ResponseByOp['append']> {
    try {
      this.ctx.table.topic(name);
      if (records.length === 0 && options.close !== true)
        throw new WalrusError(ErrorCode.BAD_REQUEST, 'an append needs at least one record');
      if ((options.producerId === undefined) !== (options.producerSeq === undefined)) {
        throw new WalrusError(ErrorCode.BAD_REQUEST, 'producerId and producerSeq go together');
      }
      if (options.producerEpoch !== undefined && options.producerId === undefined)
        throw new WalrusError(ErrorCode.BAD_REQUEST, 'producerEpoch needs producerId and producerSeq');
      const rt = this.admitNow(name);
      if (!('committedEnd' in rt)) return this.appendAfterWaiting(name, records, options, rt);
      return this.appendAdmitted(name, rt, records, options);
    } catch (error) {
      return Promise.reject(error);
    }
  }

  /**
   * Records appends to `name` may bring into its active segment now, before it counts as full:
   * an append is admitted while the segment holds fewer than segmentEntryCountMax records, so
   * appends in order are admitted while the records before them stay under this. 0 when an append
   * would not be admitted at once (a rollover or a new segment under way, another leader, no
   * replication running). For joining appends without moving a segment boundary
   * (server/append-join.ts). Changes nothing.
   */
  roomNow(name: string): number {
    const rt = this.ctx.table.find(name);
    const topic = this.ctx.meta.state.topics.get(name);
    if (rt === undefined || topic === undefined || rt.rolling !== null || rt.segmentReady !== null) return 0;
    if (this.ctx.table.deleting.has(name)) return 0; // appends wait for the deletion (ensureLocalSegment)
    const active = activeSegment(topic);
    const replicator = rt.replicator;
    if (
      active.leaderNodeId !== this.ctx.nodeId ||
      rt.sealInDoubt === active.id ||
      replicator === null ||
      replicator.segmentId !== active.id ||
      replicator.isFrozen ||
      epochOf(active) !== openingEpoch
    )
      return 0;
    return Math.max(0, this.ctx.segmentEntryCountMax - (replicator.assignedEnd - active.baseOffset));
  }

  /** An append that waits for a rollover or a new segment first (a bounded number of times). */
  private async appendAfterWaiting(
    name: string,
    records: readonly RecordInput[],
    options: AppendOptions,
    wait: Promise<void>,
  ): Promise<ResponseByOp['append']> {
    let rt: TopicRuntime | Promise<void> = wait;
    for (let attempt = 0; !('committedEnd' in rt); attempt++) {
      if (attempt >= topicLimits.rolloverWaitCountMax) {
        throw new WalrusError(
          ErrorCode.UNAVAILABLE,
          `topic '${name}' cannot roll over to a new segment; retry later`,
        );
      }
      const waited = rt;
      await waited;
      const full = this.diskFull.get(waited);
      if (full !== undefined) throw full;
      rt = this.admitNow(name);
    }
    return this.appendAdmitted(name, rt, records, options);
  }

  /**
   * The append once admitted. Must be called in the turn `admitNow` returned the runtime: from
   * there to the WAL append nothing waits, so the segment-full check, the sequence and offset
   * checks and the offsets the WAL gives cannot be separated. Throws for a refusal.
   */
  private appendAdmitted(
    name: string,
    rt: TopicRuntime,
    records: readonly RecordInput[],
    options: AppendOptions,
  ): Promise<ResponseByOp['append']> {
    const { wal } = this.ctx;
    const { producerId, producerSeq, producerEpoch } = options;
    if (producerId !== undefined && producerSeq !== undefined) {
      const duplicate =
        producerEpoch === undefined
          ? checkSequence(rt, producerId, producerSeq)
          : checkEpochSequence(rt, producerId, producerEpoch, producerSeq);
      if (duplicate !== null) return duplicate;
    }
    const stream = this.ctx.table.topic(name).stream;
    if (stream !== undefined || options.close === true) checkStreamOpen(name, stream, rt, this.ctx.nowMs());
    if (options.streamSeq !== undefined) this.checkStreamSeq(name, rt, options.streamSeq);
    if (options.close === true) rt.closing = true;
    if (options.expectedOffset !== undefined) {
      const next = wal.endOffset(name);
      if (options.expectedOffset !== next) {
        throw new WalrusError(
          ErrorCode.OFFSET_MISMATCH,
          `expected next offset ${options.expectedOffset} but the topic's next offset is ${next}`,
        );
      }
    }
    const tagged =
      producerId === undefined || producerSeq === undefined || records.length === 0
        ? records
        : withProducerHeader(records, producerId, producerSeq, producerEpoch);
    let result =
      records.length === 0 ? this.endNow(name) : this.appendToWal(name, rt, tagged, options.acks ?? 'quorum');
    if (options.close === true) result = this.closeAfter(name, rt, result);
    if (options.streamSeq !== undefined) result = this.recordSeqAfter(name, options.streamSeq, result);
    if (producerId !== undefined && producerSeq !== undefined)
      trackBatch(rt, producerId, producerSeq, result, producerEpoch);
    return result;
  }

  /**
   * Refuses a Stream-Seq at or below the last one and takes it at once (in the admission turn),
   * so that a concurrent append with the same sequence is refused too.
   */
  private checkStreamSeq(name: string, rt: TopicRuntime, seq: string): void {
    const last = rt.streamSeq ?? this.ctx.meta.state.topics.get(name)?.stream?.lastSeq;
    if (last !== undefined && seq <= last)
      throw new WalrusError(
        ErrorCode.SEQUENCE_MISMATCH,
        `Stream-Seq '${seq}' is not above the last one, '${last}'`,
      );
    rt.streamSeq = seq;
  }

  /** Puts an acknowledged Stream-Seq in the metadata before answering (a later leader refuses it too). */
  private async recordSeqAfter(
    name: string,
    seq: string,
    appended: Promise<ResponseByOp['append']>,
  ): Promise<ResponseByOp['append']> {
    const done = await appended;
    await proposeOrThrow(this.ctx, { type: 'setStreamSeq', topic: name, seq });
    return done;
  }

  /** A close with no records: answers the end as it is now (firstOffset = lastOffset = end). */
  private endNow(name: string): Promise<ResponseByOp['append']> {
    const end = this.ctx.wal.endOffset(name);
    return Promise.resolve({
      firstOffset: end,
      lastOffset: end,
      timestampMs: this.ctx.nowMs(),
      duplicate: false,
      acks: 'quorum',
    });
  }

  /**
   * Once the closing batch is acknowledged, the close goes into the metadata (every later leader
   * of the topic refuses appends); the append is answered after that. A failed proposal leaves
   * the close undone (a retry closes again) and lets appends in again.
   */
  private async closeAfter(
    name: string,
    rt: TopicRuntime,
    appended: Promise<ResponseByOp['append']>,
  ): Promise<ResponseByOp['append']> {
    try {
      const done = await appended;
      if (this.ctx.meta.state.topics.get(name)?.stream?.closed !== true)
        await proposeOrThrow(this.ctx, { type: 'closeStream', topic: name });
      return done;
    } catch (error) {
      rt.closing = false;
      throw error;
    }
  }

  /**
   * The runtime when the active segment can take an append now (not rolling over, below
   * segmentEntryCountMax counting appends accepted but not yet durable), or a promise to wait on.
   * A full segment starts its rollover here, so no append is accepted into a segment whose count
   * was taken. Must be followed synchronously by the WAL append.
   */
  private admitNow(name: string): TopicRuntime | Promise<void> {
    const { table, nodeId } = this.ctx;
    const rt = table.runtime(name);
    if (rt.rolling !== null) return rt.rolling;
    const active = activeSegment(table.topic(name));
    if (active.leaderNodeId !== nodeId) {
      throw table.notLeader(`segment ${active.id} of topic '${name}'`, active.leaderNodeId);
    }
    if (rt.sealInDoubt === active.id) {
      this.needsRecovery(name, active.id, 'a seal proposal whose outcome is unknown');
      throw new WalrusError(
        ErrorCode.UNAVAILABLE,
        `segment ${active.id} of topic '${name}' is being recovered; retry shortly`,
      );
    }
    const creating = this.ensureLocalSegment(name, rt);
    if (creating !== null) return creating;
    const replicator = rt.replicator;
    if (replicator === null || replicator.isFrozen || epochOf(active) !== openingEpoch) {
      this.needsRecovery(name, active.id, replicator === null ? 'restarted leader' : 'replication stopped');
      throw new WalrusError(
        ErrorCode.UNAVAILABLE,
        `segment ${active.id} of topic '${name}' is being recovered; retry shortly`,
        { leaderHint: { nodeId: this.ctx.cluster.raftLeaderId(), clientAddr: '' } },
      );
    }
    if (this.activeEntryCount(name) < this.ctx.segmentEntryCountMax) return rt;
    this.maybeRollover(name);
    return rt.rolling ?? Promise.resolve();
  }

  private async appendToWal(
    name: string,
    rt: TopicRuntime,
    records: readonly RecordInput[],
    acks: 'leader' | 'quorum',
  ): Promise<ResponseByOp['append']> {
    const replicator = rt.replicator!;
    let assigned: ReturnType<Wal['appendAssigned']>;
    try {
      // The leader's fdatasync leaves the event loop: its followers' acknowledgements (a majority
      // may be theirs alone) and the next appends are taken while it runs. A sole replica too:
      // on a busy disk an fdatasync on the loop held it for milliseconds per group commit, during
      // which no request was read, decoded or answered (binary bench side by side: +12-38% appends/s).
      assigned = this.ctx.wal.appendAssigned(name, records, { syncInPool: true });
    } catch (error) {
      throw toWalrusError(error);
    }
    const { firstOffset, lastOffset, timestampMs } = assigned;
    const end = lastOffset + 1;
    replicator.offer(firstOffset, records.length, () =>
      records.map((r) =>
        r.headers === undefined
          ? { timestampMs, value: r.value }
          : { timestampMs, value: r.value, headers: r.headers },
      ),
    );
    const durable = assigned.durable.then(
      () => this.noteDurable(replicator, end),
      (error: unknown) => {
        // The followers may hold what this node failed to write: the outcome is unknown, and the
        // segment is left to a recovery (the monitor finds the frozen replicator).
        replicator.freeze();
        const cause = toWalrusError(error);
        // A sole replica that hit a full disk wrote nothing (the WAL cut the batch back) and sent
        // it nowhere: the outcome is known, and it is DISK_FULL.
        const segment = this.ctx.meta.state.topics
          .get(name)
          ?.segments.find((s) => s.id === replicator.segmentId);
        if (
          cause.code === ErrorCode.DISK_FULL &&
          segment !== undefined &&
          isSoleReplica(segment, this.ctx.nodeId)
        )
          throw cause;
        throw new WalrusError(
          ErrorCode.OUTCOME_UNKNOWN,
          `the segment leader could not write the append (${cause.message}); the outcome is unknown`,
          { cause },
        );
      },
    );
    if (acks === 'leader' || replicator.followers.size === 0) {
      // A sole replica's quorum is itself: once durable here, the append is committed (unless the
      // segment was frozen meanwhile: then it waits like any other, for the seal or the timeout).
      await durable;
      this.flushDurable();
      if (acks === 'quorum' && replicator.committedEnd < end) await replicator.waitCommitted(end);
    } else {
      durable.catch(() => {}); // reported through the quorum wait, which can no longer succeed here
      await replicator.waitCommitted(end);
    }
    this.maybeRollover(name);
    return { firstOffset, lastOffset, timestampMs, duplicate: false, acks };
  }

  /**
   * This node's WAL holds [base, end) of the replicator's segment durable. The replicator hears it
   * once per group commit (the highest end), not once per append: every append of a group commit
   * settles in the same turn, and each call recomputed the high watermark and pumped the followers.
   */
  private noteDurable(replicator: SegmentReplicator, end: number): void {
    const known = this.durableEnds.get(replicator);
    if (known === undefined || end > known) this.durableEnds.set(replicator, end);
    if (this.durableFlushQueued) return;
    this.durableFlushQueued = true;
    queueMicrotask(() => {
      this.durableFlushQueued = false;
      this.flushDurable();
    });
  }

  /** Tells the replicators the durable ends noted so far (at once: an append about to be answered). */
  private flushDurable(): void {
    if (this.durableEnds.size === 0) return;
    for (const [replicator, end] of this.durableEnds) replicator.localDurable(end);
    this.durableEnds.clear();
  }

  /**
   * Makes the replicator of the active segment this node leads, once its local copy exists. A
   * segment a recovery has fenced (an epoch above the opening one) gets none: its leader never
   * writes to it again (a replicator started under the recovery's epoch would pass the fence).
   */
  private startReplicator(name: string, rt: TopicRuntime): void {
    const active = activeSegment(this.ctx.table.topic(name));
    if (epochOf(active) !== openingEpoch) return;
    rt.replicator?.stop(null);
    rt.replicator = new SegmentReplicator(
      this.ctx,
      name,
      active.id,
      active.baseOffset,
      openingEpoch,
      replicasOf(active),
      this.ctx.wal.segmentInfo(name, active.id)?.endOffset ?? active.baseOffset,
      (committedEnd) => {
        if (committedEnd > rt.committedEnd) rt.committedEnd = committedEnd;
        wakeWaiters(rt);
      },
    );
  }

  /**
   * Creates the WAL segment of the active segment this node leads if it does not exist yet (a
   * new topic, or leadership that came with a rollover): first seals a WAL segment of the topic
   * still open here. Returns null when the segment is there, else the promise to wait on. The WAL
   * file is made by the first append: creating a topic costs one Raft commit, not a file, an
   * index and four fsyncs on the segment's node.
   */
  ensureLocalSegment(name: string, rt: TopicRuntime): Promise<void> | null {
    if (rt.segmentReady !== null) return rt.segmentReady;
    const { wal, table, logger } = this.ctx;
    const deleting = table.deleting.get(name);
    if (deleting !== undefined) return deleting;
    const active = activeSegment(table.topic(name));
    // A local copy made before this process started (a restart) is never appended to again: the
    // followers may hold records it lost, so the segment is recovered (admitNow asks for it). A
    // segment with no other replica has nothing to recover from: it resumes where its WAL ends.
    if (wal.segments(name).some((s) => s.id === active.id)) {
      if (rt.replicator === null && isSoleReplica(active, this.ctx.nodeId)) this.startReplicator(name, rt);
      return null;
    }
    const ready = (async () => {
      const open = wal.segments(name).find((s) => !s.sealed);
      // This node's copy of an earlier segment, still open: completed to its seal (cut, or its
      // missing tail fetched from the other replicas) and sealed, never sealed short.
      if (open !== undefined && !(await this.completeSealed(name, open.id))) {
        throw new WalrusError(
          ErrorCode.UNAVAILABLE,
          `segment ${open.id} of '${name}' is not complete here yet`,
        );
      }
      await wal.createSegment(name, active.id, active.baseOffset);
      rt.committedEnd = Math.max(rt.committedEnd, active.baseOffset);
      this.startReplicator(name, rt);
      logger.info({ topic: name, segment: active.id, baseOffset: active.baseOffset }, 'Leading new segment');
    })()
      .catch((error: unknown) => {
        // A full disk is logged by the WAL (rate-limited), and answered to the appends waiting.
        if (this.noteDiskFull(ready, error)) return;
        logger.error({ topic: name, err: String(error) }, 'could not create the WAL segment this node leads');
      })
      .finally(() => {
        if (rt.segmentReady === ready) rt.segmentReady = null;
      });
    rt.segmentReady = ready;
    return ready;
  }

  private activeEntryCount(name: string): number {
    const topic = this.ctx.meta.state.topics.get(name);
    if (topic === undefined) return 0;
    const active = activeSegment(topic);
    const replicator = this.ctx.table.find(name)?.replicator;
    if (replicator?.segmentId === active.id) return replicator.assignedEnd - active.baseOffset;
    const local = this.ctx.wal.segmentInfo(name, active.id);
    return local === undefined ? 0 : local.endOffset - active.baseOffset;
  }

  /** Starts a rollover when the active segment is full; appends wait for it. */
  maybeRollover(name: string): void {
    const rt = this.ctx.table.find(name);
    if (rt === undefined || rt.rolling !== null) return;
    if (this.activeEntryCount(name) < this.ctx.segmentEntryCountMax) return;
    const rolling: Promise<void> = this.rollover(name)
      .catch((error: unknown) => {
        if (this.noteDiskFull(rolling, error)) return;
        this.ctx.logger.error({ topic: name, err: String(error) }, 'rollover did not complete');
      })
      .finally(() => {
        rt.rolling = null;
      });
    rt.rolling = rolling;
  }

  /** Remembers a DISK_FULL for the appends waiting on `waited`; false for any other error. */
  private noteDiskFull(waited: Promise<void>, error: unknown): boolean {
    const walrusError = toWalrusError(error);
    if (walrusError.code !== ErrorCode.DISK_FULL) return false;
    this.diskFull.set(waited, walrusError);
    return true;
  }

  /**
   * Seals the active segment of every topic this node leads, whatever their fill, so that the
   * next segments go to other voters: `walrus-cli remove-node` of a segment leader runs this on the
   * leaving node first (`leaving` is its id), or its topics would be stranded. Returns how many
   * segments it sealed.
   */
  async handOff(leaving: number): Promise<number> {
    const { meta, table, nodeId } = this.ctx;
    let sealed = 0;
    for (const topic of [...meta.state.topics.values()]) {
      const rt = table.find(topic.name);
      if (rt === undefined) continue;
      for (let attempt = 0; attempt <= topicLimits.rolloverWaitCountMax; attempt++) {
        if (rt.rolling !== null) await rt.rolling;
        if (rt.segmentReady !== null) await rt.segmentReady;
        if (rt.rolling === null && rt.segmentReady === null) break;
      }
      if (activeSegment(topic).leaderNodeId !== nodeId) continue;
      rt.rolling = this.rollover(topic.name, leaving).finally(() => {
        rt.rolling = null;
      });
      await rt.rolling;
      sealed += 1;
    }
    return sealed;
  }

  private async rollover(name: string, leaving = 0): Promise<void> {
    const { table, wal, cluster, nodeId } = this.ctx;
    const topic = table.topic(name);
    const active = activeSegment(topic);
    // A segment that never took an append has no WAL file: it seals empty, at its base.
    // (A WAL segment already sealed here is a rollover a crash interrupted: its count stands, as
    // it was taken once every record in it had reached a quorum.)
    const local = wal.segmentInfo(name, active.id);
    let sealed: { endOffset: number; sizeBytes: number; lastTimestampMs: number | null };
    if (local === undefined) sealed = { endOffset: active.baseOffset, sizeBytes: 0, lastTimestampMs: null };
    else if (local.sealed) sealed = local;
    else {
      const replicator = table.runtime(name).replicator;
      if (replicator === null || replicator.isFrozen || replicator.segmentId !== active.id) {
        this.needsRecovery(name, active.id, 'a rollover found no replication running');
        return;
      }
      const end = replicator.assignedEnd;
      try {
        await replicator.waitCommitted(end);
      } catch {
        // The quorum is gone: the segment is cut back to what reached one (the rest was never acknowledged).
      }
      if (replicator.isFrozen) return; // a recovery took the segment over; its seal decides
      if (replicator.committedEnd < end) await wal.truncateSegment(name, active.id, replicator.committedEnd);
      sealed = await wal.sealActive(name);
    }
    const voters = cluster.voters().filter((v) => v !== leaving);
    const alive = cluster.aliveVoters().filter((v) => v !== leaving);
    const rt = table.runtime(name);
    // From here the seal may commit whatever this node hears back: if the proposal fails (a
    // timeout, a new Raft leader), its outcome is unknown and the segment takes no append again:
    // it is recovered (the fence makes a late seal of this epoch a no-op). Found by the whole-node
    // simulator (defect I: a seal that "failed" committed later and cut acknowledged records).
    rt.sealInDoubt = active.id;
    await proposeOrThrow(this.ctx, {
      type: 'sealSegment',
      topic: name,
      segmentId: active.id,
      endOffset: sealed.endOffset,
      epoch: openingEpoch,
      nextLeaderNodeId: nextSegmentLeader(active.leaderNodeId, voters, alive, nodeId),
      producers: producerTable(table.runtime(name)),
      sizeBytes: sealed.sizeBytes,
      lastTimestampMs: sealed.lastTimestampMs,
    }).catch((error: unknown) => {
      rt.replicator?.freeze();
      this.needsRecovery(name, active.id, 'a seal proposal whose outcome is unknown');
      throw error;
    });
    this.ctx.logger.info(
      {
        topic: name,
        sealedSegment: active.id,
        entries: sealed.endOffset - active.baseOffset,
        newSegment: active.id + 1,
      },
      'Segment rolled over',
    );
  }
}
