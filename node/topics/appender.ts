/**
 * Appends and rollover on the leader of a topic's active segment.
 *
 * Rollover follows the fix to Walrus: once the active segment holds `segmentEntryCountMax`
 * records, new appends wait, the WAL seals the segment after every accepted append is durable,
 * and the seal is logged with that exact count. No acknowledged entry can land in a segment after
 * its count was taken. The next segment's leader is chosen round-robin (re-chosen by the Raft
 * leader, which alone knows who is alive, before the seal is logged).
 *
 * A record is acknowledged once durable under the fsync policy; only then does `committedEnd`
 * pass it, and readers never see past `committedEnd`.
 */
import { ErrorCode, WalrusError } from '../protocol/error-codes.js';
import type { RecordInput, ResponseByOp } from '../protocol/messages.js';
import { activeSegment } from '../metadata/metadata-state.js';
import { nextSegmentLeader } from '../metadata/placement.js';
import { topicLimits } from './limits.js';
import { checkSequence, producerTable, trackBatch, withProducerHeader } from './producers.js';
import { type TopicContext, proposeOrThrow } from './topic-context.js';
import { type TopicRuntime, toWalrusError, wakeWaiters } from './topic-table.js';

export interface AppendOptions {
  producerId?: string;
  producerSeq?: number;
  expectedOffset?: number;
}

export class Appender {
  private readonly ctx: TopicContext;

  constructor(ctx: TopicContext) {
    this.ctx = ctx;
  }

  async append(
    name: string,
    records: readonly RecordInput[],
    options: AppendOptions = {},
  ): Promise<ResponseByOp['append']> {
    const { table, wal } = this.ctx;
    table.topic(name);
    if (records.length === 0)
      throw new WalrusError(ErrorCode.BAD_REQUEST, 'an append needs at least one record');
    const { producerId, producerSeq } = options;
    if ((producerId === undefined) !== (producerSeq === undefined)) {
      throw new WalrusError(ErrorCode.BAD_REQUEST, 'producerId and producerSeq go together');
    }
    let rt = this.admitNow(name);
    for (let attempt = 0; !('committedEnd' in rt); attempt++) {
      if (attempt >= topicLimits.rolloverWaitCountMax) {
        throw new WalrusError(
          ErrorCode.UNAVAILABLE,
          `topic '${name}' cannot roll over to a new segment; retry later`,
        );
      }
      await rt;
      rt = this.admitNow(name);
    }
    // From here to wal.append there is no await, so the segment-full check, the sequence and
    // offset checks and the offsets the WAL gives cannot be separated.
    if (producerId !== undefined && producerSeq !== undefined) {
      const duplicate = checkSequence(rt, producerId, producerSeq);
      if (duplicate !== null) return duplicate;
    }
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
      producerId === undefined || producerSeq === undefined
        ? records
        : withProducerHeader(records, producerId, producerSeq);
    const result = this.appendToWal(name, rt, tagged);
    if (producerId !== undefined && producerSeq !== undefined)
      trackBatch(rt, producerId, producerSeq, result);
    return result;
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
    const creating = this.ensureLocalSegment(name, rt);
    if (creating !== null) return creating;
    if (this.activeEntryCount(name) < this.ctx.segmentEntryCountMax) return rt;
    this.maybeRollover(name);
    return rt.rolling ?? Promise.resolve();
  }

  private async appendToWal(
    name: string,
    rt: TopicRuntime,
    records: readonly RecordInput[],
  ): Promise<ResponseByOp['append']> {
    let written: { firstOffset: number; lastOffset: number; timestampMs: number };
    try {
      written = await this.ctx.wal.append(name, records);
    } catch (error) {
      throw toWalrusError(error);
    }
    if (written.lastOffset + 1 > rt.committedEnd) rt.committedEnd = written.lastOffset + 1;
    wakeWaiters(rt);
    this.maybeRollover(name);
    return { ...written, duplicate: false };
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
    if (wal.segments(name).some((s) => s.id === active.id)) return null;
    const ready = (async () => {
      if (wal.segments(name).some((s) => !s.sealed)) await wal.sealActive(name);
      await wal.createSegment(name, active.id, active.baseOffset);
      rt.committedEnd = Math.max(rt.committedEnd, active.baseOffset);
      logger.info({ topic: name, segment: active.id, baseOffset: active.baseOffset }, 'Leading new segment');
    })()
      .catch((error: unknown) => {
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
    return this.ctx.wal.endOffset(name) - activeSegment(topic).baseOffset;
  }

  /** Starts a rollover when the active segment is full; appends wait for it. */
  maybeRollover(name: string): void {
    const rt = this.ctx.table.find(name);
    if (rt === undefined || rt.rolling !== null) return;
    if (this.activeEntryCount(name) < this.ctx.segmentEntryCountMax) return;
    rt.rolling = this.rollover(name)
      .catch((error: unknown) => {
        this.ctx.logger.error({ topic: name, err: String(error) }, 'rollover did not complete');
      })
      .finally(() => {
        rt.rolling = null;
      });
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
    // (A WAL segment already sealed here is a rollover a crash interrupted: its count stands.)
    const local = wal.segments(name).find((s) => s.id === active.id);
    const sealed =
      local === undefined
        ? { endOffset: active.baseOffset, sizeBytes: 0, lastTimestampMs: null }
        : local.sealed
          ? local
          : await wal.sealActive(name);
    const voters = cluster.voters().filter((v) => v !== leaving);
    const alive = cluster.aliveVoters().filter((v) => v !== leaving);
    await proposeOrThrow(this.ctx, {
      type: 'sealSegment',
      topic: name,
      segmentId: active.id,
      endOffset: sealed.endOffset,
      nextLeaderNodeId: nextSegmentLeader(active.leaderNodeId, voters, alive, nodeId),
      producers: producerTable(table.runtime(name)),
      sizeBytes: sealed.sizeBytes,
      lastTimestampMs: sealed.lastTimestampMs,
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
