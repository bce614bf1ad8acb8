/**
 * Reads: by offset (with long polls on the active segment's leader), wherever a segment lives
 * (here or forwarded to its leader), and by timestamp across the whole topic.
 *
 * Why reads are capped at `committedEnd`: a record is visible only once its append was
 * acknowledged (durable under the fsync policy), so no reader ever sees a record that a crash
 * could take back. A segment the metadata lists is either served or answered with an error: a
 * listed, non-empty segment whose data this node does not hold is DATA_LOST, never an empty read
 * (an empty read would tell a consumer "nothing more here" and stall it for good).
 *
 * Why long reads go in chunks: one read may return 4 MiB, and a client may pipeline a thousand of
 * them. A read larger than `readerLimits.chunkSizeBytes` runs in one of the node's read slots and
 * reads one chunk per step through the ReadPacer (read-pacer.ts), which yields to the event loop
 * every few milliseconds and drops the read when its signal aborts (its connection closed).
 */
import { ErrorCode, WalrusError } from '../protocol/error-codes.js';
import type { ResponseByOp, StoredRecord } from '../protocol/messages.js';
import {
  type SegmentMeta,
  type TopicMeta,
  activeSegment,
  replicasOf,
  topicStartOffset,
} from '../metadata/metadata-state.js';
import type { WalRecord } from '../wal/index.js';
import { headersSizeBytes } from '../wal/record-codec.js';
import { isSoleReplica } from './appender.js';
import { topicLimits } from './limits.js';
import { forReader } from './producers.js';
import { ReadPacer } from './read-pacer.js';
import { type TopicContext, catchUpWithLeaderRetrying } from './topic-context.js';
import { type TopicRuntime, type Waiter, segmentOf, toWalrusError } from './topic-table.js';

export interface ReadLimits {
  readonly recordCountMax: number;
  readonly byteCountMax: number;
}

export const readerLimits = {
  /** Record bytes read in one synchronous step of a long read (at least one record). */
  chunkSizeBytes: 256 * 1024,
  /** Read barriers tried after start-up to confirm the metadata (confirmMetadata), and their pace. */
  confirmAttemptCountMax: 600,
  confirmRetryMsMin: 10,
  confirmRetryMsMax: 1_000,
} as const;

export class Reader {
  private readonly ctx: TopicContext;
  /** Paces the chunks of long reads (node-wide: one Reader per node). */
  readonly pacer: ReadPacer;
  /** Called when a local copy of a sealed segment holds a corrupt record (the service repairs it). */
  onCorrupt: (topic: string, segment: SegmentMeta) => void = () => {};

  /**
   * Set once, after start-up, this node caught up with the Raft leader's applied metadata.
   * Until then this node may believe it leads an active segment that was sealed and replaced while
   * it was down: with no local file of it, "nothing written yet" would answer an empty read where
   * the next segment holds records (whole-node soak seed 2081), so that answer waits for it.
   */
  private metadataConfirmed = false;

  constructor(ctx: TopicContext) {
    this.ctx = ctx;
    this.pacer = new ReadPacer(ctx.scheduler);
  }

  /** Start-up: catches up with the Raft leader's applied metadata, retrying, bounded. */
  async confirmMetadata(): Promise<void> {
    this.metadataConfirmed = await catchUpWithLeaderRetrying(this.ctx, {
      attemptCountMax: readerLimits.confirmAttemptCountMax,
      retryMsMin: readerLimits.confirmRetryMsMin,
      retryMsMax: readerLimits.confirmRetryMsMax,
    });
    if (!this.metadataConfirmed)
      this.ctx.logger.error({}, 'could not confirm the metadata with a Raft leader after start-up');
  }

  async read(
    name: string,
    offset: number,
    limits: ReadLimits & { waitMs: number },
    signal?: AbortSignal,
  ): Promise<ResponseByOp['read']> {
    const { table, nodeId } = this.ctx;
    let topic = table.topic(name);
    let rt = table.runtime(name);
    // A rollover seals the active segment before its seal is applied here; meanwhile the next
    // leader may already acknowledge records past this node's end. A read at or past the end waits
    // for the rollover, then finds the offset in the next segment (NOT_LEADER with its leader).
    for (let attempt = 0; rt.rolling !== null && offset >= rt.committedEnd; attempt++) {
      if (activeSegment(topic).leaderNodeId !== nodeId) break;
      if (attempt >= topicLimits.rolloverWaitCountMax) {
        throw new WalrusError(
          ErrorCode.UNAVAILABLE,
          `topic '${name}' is rolling over to a new segment; retry`,
        );
      }
      await rt.rolling.catch(() => {}); // a failed rollover is logged where it ran
      topic = table.topic(name);
      rt = table.runtime(name);
    }
    const start = topicStartOffset(topic);
    const leadsActive = activeSegment(topic).leaderNodeId === nodeId;
    if (leadsActive && offset >= rt.committedEnd) this.assertEndKnown(name, topic, rt);
    if (offset < start || (leadsActive && offset > rt.committedEnd)) {
      throw new WalrusError(
        ErrorCode.OFFSET_OUT_OF_RANGE,
        `offset ${offset} is outside the stored range [${start}, ${leadsActive ? rt.committedEnd : '?'}]`,
      );
    }
    // A closed stream gets nothing more: a long poll at its end answers at once.
    const polls =
      leadsActive && offset === rt.committedEnd && limits.waitMs > 0 && topic.stream?.closed !== true;
    if (polls) await this.waitFor(rt, offset, Math.min(limits.waitMs, topicLimits.waitMsMax), signal);
    // A long poll reads what arrived while it waited (also when its signal ended the wait, as
    // before): records just appended, read at once. Other long reads go in paced chunks.
    const records =
      polls || limits.byteCountMax <= readerLimits.chunkSizeBytes
        ? this.readLocal(name, offset, limits)
        : await this.pacer.withSlot(signal, () => this.readInChunks(name, offset, limits, signal));
    const last = records[records.length - 1];
    const now = table.topic(name);
    return {
      records,
      nextOffset: last === undefined ? offset : last.offset + 1,
      startOffset: topicStartOffset(now),
      endOffset: this.knownEnd(now),
    };
  }

  /**
   * On the active segment's leader, the end is exact only while its replication runs: a leader that
   * restarted with its copy open, or was fenced, does not know what a quorum holds (a recovery
   * decides it), and answering "nothing more" at its stale end would stall a consumer.
   */
  private assertEndKnown(name: string, topic: TopicMeta, rt: TopicRuntime): void {
    const active = activeSegment(topic);
    const replicator = rt.replicator;
    if (replicator !== null && replicator.segmentId === active.id && !replicator.isFrozen) return;
    if (isSoleReplica(active, this.ctx.nodeId)) return; // its WAL is the whole truth
    // Nothing written yet, the base is the end: once this node knows its metadata is current.
    if (this.ctx.wal.segmentInfo(name, active.id) === undefined) {
      if (this.metadataConfirmed) return;
      throw new WalrusError(
        ErrorCode.UNAVAILABLE,
        `this node has not yet confirmed with the Raft leader, since it started, that it still leads segment ${active.id} of topic '${name}'; retry`,
      );
    }
    throw new WalrusError(
      ErrorCode.UNAVAILABLE,
      `segment ${active.id} of topic '${name}' is being recovered; its end is not known yet; retry`,
    );
  }

  /** The topic's end as this node knows it: exact on the active segment's leader, else a lower bound. */
  knownEnd(topic: TopicMeta): number {
    const active = activeSegment(topic);
    if (active.leaderNodeId === this.ctx.nodeId)
      return this.ctx.table.find(topic.name)?.committedEnd ?? active.baseOffset;
    return active.baseOffset;
  }

  /**
   * Reads acknowledged records at `offset` from this node's WAL. The segment holding `offset` must
   * be led by this node (else NOT_LEADER with a hint); a read never passes that segment's sealed end
   * or, on the active segment, the acknowledged end.
   */
  readLocal(name: string, offset: number, limits: ReadLimits): StoredRecord[] {
    const { table, wal, nodeId } = this.ctx;
    const topic = table.topic(name);
    const rt = table.runtime(name);
    const active = activeSegment(topic);
    const segment = segmentOf(topic, offset) ?? (offset === active.baseOffset ? active : undefined);
    if (segment === undefined) {
      if (active.leaderNodeId !== nodeId)
        throw table.notLeader(`the end of topic '${name}'`, active.leaderNodeId);
      this.assertEndKnown(name, topic, rt);
      return [];
    }
    if (segment.leaderNodeId !== nodeId && !this.holdsSealedCopy(name, segment)) {
      throw table.notLeader(`segment ${segment.id} of topic '${name}'`, segment.leaderNodeId);
    }
    const end = segment.endOffset ?? rt.committedEnd;
    const visible = end - offset;
    if (visible <= 0) {
      if (segment.endOffset === null) this.assertEndKnown(name, topic, rt);
      return [];
    }
    const local = wal.segmentInfo(name, segment.id);
    if (
      local !== undefined &&
      segment.endOffset !== null &&
      local.endOffset < segment.endOffset &&
      offset >= local.endOffset
    ) {
      throw new WalrusError(
        ErrorCode.DATA_LOST,
        `node ${nodeId}'s copy of segment ${segment.id} of topic '${name}' ends at ${local.endOffset}, before the sealed end ${segment.endOffset}`,
      );
    }
    if (local === undefined) {
      // Only the active segment may lack its file (it is made by its first append, and nothing
      // below committedEnd exists before that): a sealed segment with records must be here.
      if (segment.endOffset === null && offset >= rt.committedEnd) return [];
      throw new WalrusError(
        ErrorCode.DATA_LOST,
        `node ${nodeId} leads segment ${segment.id} of topic '${name}' (offsets ${segment.baseOffset}-${end - 1}) but holds none of its data`,
      );
    }
    let records: WalRecord[];
    try {
      records = wal.read(name, offset, {
        recordCountMax: Math.min(limits.recordCountMax, visible),
        byteCountMax: limits.byteCountMax,
      });
    } catch (error) {
      const failure = toWalrusError(error);
      // A sealed copy with a bad record is never served: the read fails over to another replica,
      // and this copy is replaced by one fetched from them.
      if (failure.code === ErrorCode.CORRUPT_RECORD && segment.endOffset !== null)
        this.onCorrupt(name, segment);
      throw failure;
    }
    const out: StoredRecord[] = [];
    for (const r of records) {
      if (r.offset >= end) break;
      out.push(forReader(r));
    }
    return out;
  }

  /**
   * readLocal in chunks of `readerLimits.chunkSizeBytes`, one paced step each, within the segment
   * that holds `offset` (as one readLocal reads): the same records, without holding the event loop.
   * An error on a later chunk (the segment removed meanwhile) ends the read with what it has; an
   * aborted signal rejects it.
   */
  private async readInChunks(
    name: string,
    offset: number,
    limits: ReadLimits,
    signal: AbortSignal | undefined,
  ): Promise<StoredRecord[]> {
    const segmentId = segmentOf(this.ctx.table.topic(name), offset)?.id;
    const out: StoredRecord[] = [];
    let bytes = 0;
    let next = offset;
    while (out.length < limits.recordCountMax && bytes < limits.byteCountMax) {
      const chunkLimits = {
        recordCountMax: limits.recordCountMax - out.length,
        byteCountMax: Math.min(readerLimits.chunkSizeBytes, limits.byteCountMax - bytes),
      };
      let chunk: StoredRecord[];
      try {
        chunk = await this.pacer.step(signal, () => this.readLocal(name, next, chunkLimits));
      } catch (error) {
        if (out.length === 0 || signal?.aborted === true) throw error;
        break;
      }
      for (const record of chunk) {
        const size = headersSizeBytes(record.headers) + record.value.length;
        if (out.length > 0 && bytes + size > limits.byteCountMax) return out;
        out.push(record);
        bytes += size;
      }
      const last = chunk[chunk.length - 1];
      if (last === undefined) break;
      next = last.offset + 1;
      if (this.segmentIdAt(name, next) !== segmentId) break;
    }
    return out;
  }

  /** The id of the segment holding `offset` now; undefined when none (or the topic is gone). */
  private segmentIdAt(name: string, offset: number): number | undefined {
    try {
      return segmentOf(this.ctx.table.topic(name), offset)?.id;
    } catch {
      return undefined;
    }
  }

  /** True when this node is a replica of the sealed segment and its local copy holds all of it. */
  private holdsSealedCopy(name: string, segment: SegmentMeta): boolean {
    if (segment.endOffset === null || !replicasOf(segment).includes(this.ctx.nodeId)) return false;
    const local = this.ctx.wal.segmentInfo(name, segment.id);
    return local?.sealed === true && local.endOffset >= segment.endOffset;
  }

  /**
   * Reads at `offset` wherever the segment lives: here, or on its leader, or (a sealed segment)
   * on any replica holding a whole copy, failing over between them.
   */
  async readAnywhere(name: string, offset: number, limits: ReadLimits): Promise<readonly StoredRecord[]> {
    const topic = this.ctx.table.topic(name);
    const segment = segmentOf(topic, offset) ?? activeSegment(topic);
    if (segment.leaderNodeId === this.ctx.nodeId || this.holdsSealedCopy(name, segment))
      return this.readLocal(name, offset, limits);
    const candidates =
      segment.endOffset === null
        ? [segment.leaderNodeId]
        : replicasOf(segment).filter((id) => id !== this.ctx.nodeId);
    let last: unknown;
    for (const target of candidates) {
      try {
        const reply = await this.ctx.cluster.forward<'read'>(target, {
          op: 'read',
          topic: name,
          offset,
          recordCountMax: limits.recordCountMax,
          byteCountMax: limits.byteCountMax,
          waitMs: 0,
        });
        return reply.records;
      } catch (error) {
        last = error;
      }
    }
    throw last;
  }

  private waitFor(rt: TopicRuntime, offset: number, waitMs: number, signal?: AbortSignal): Promise<void> {
    if (rt.waiters.size >= topicLimits.waiterCountMaxPerTopic) return Promise.resolve();
    return new Promise<void>((resolve) => {
      const { scheduler } = this.ctx;
      const done = (): void => {
        scheduler.clearTimeout(timer);
        rt.waiters.delete(waiter);
        signal?.removeEventListener('abort', done);
        resolve();
      };
      const waiter: Waiter = { offset, wake: done };
      const timer = scheduler.setTimeout(done, waitMs);
      signal?.addEventListener('abort', done, { once: true });
      rt.waiters.add(waiter);
    });
  }

  /**
   * The first offset at or after timestampMs, across the whole topic: the topic's segments live on
   * the nodes that led them, so every member that leads one is asked for its own part
   * (localOffsetForTimestamp, in parallel) and the least answer wins, capped at the topic's end.
   * A leader that cannot be reached fails the lookup (UNAVAILABLE) rather than skipping its records.
   */
  async offsetForTimestamp(name: string, timestampMs: number): Promise<number> {
    const { table, nodeId, meta, cluster } = this.ctx;
    const topic = table.topic(name);
    const leaders = new Set<number>();
    // Each segment is asked of one node holding it: its leader, or a reachable replica when the
    // leader is not (a node answers for every copy it holds, so the least answer is exact).
    for (const s of topic.segments) {
      if (s.endOffset === s.baseOffset) continue;
      const holders = [s.leaderNodeId, ...replicasOf(s)].filter((id) => meta.state.nodes.has(id));
      const chosen = holders.find((id) => cluster.reachable(id)) ?? holders[0];
      if (chosen !== undefined) leaders.add(chosen);
    }
    const answers = await Promise.all(
      [...leaders].map(async (leader) =>
        leader === nodeId
          ? this.localOffsetForTimestamp(name, timestampMs)
          : (
              await cluster.forward<'localOffsetForTimestamp'>(leader, {
                op: 'localOffsetForTimestamp',
                topic: name,
                timestampMs,
              })
            ).offset,
      ),
    );
    let first = await this.topicEnd(name);
    for (const offset of answers) if (offset !== null && offset < first) first = offset;
    return first;
  }

  /** This node's part of offsetForTimestamp: its own segments of the topic only; null when none holds one. */
  localOffsetForTimestamp(name: string, timestampMs: number): number | null {
    const { table, wal } = this.ctx;
    table.topic(name);
    if (wal.segments(name).length === 0) return null;
    try {
      const offset = wal.offsetForTimestamp(name, timestampMs);
      return offset < wal.endOffset(name) ? offset : null;
    } catch (error) {
      throw toWalrusError(error);
    }
  }

  /** The exact end of a topic: here when this node leads the active segment, else asked of its leader. */
  async topicEnd(name: string): Promise<number> {
    const active = activeSegment(this.ctx.table.topic(name));
    if (active.leaderNodeId === this.ctx.nodeId) return this.ctx.table.runtime(name).committedEnd;
    const reply = await this.ctx.cluster.forward<'describeTopic'>(active.leaderNodeId, {
      op: 'describeTopic',
      topic: name,
    });
    return reply.topic.endOffset;
  }
}
