/**
 * The follower side of segment replication, and what a recovery asks of a replica: replicated
 * appends (node/replication/replica-gate.ts decides: refuse an older epoch, open the segment
 * locally, ask for a resend after a gap), fences (raise the segment's epoch durably, then report
 * the local end and the idempotent producers of the copy) and reads of a copy (catch-up of another
 * replica, recovery copies, repair). Requests come over the authenticated peer link only.
 *
 * Order: a segment's replicated appends enter the WAL in the order they arrive, with no await in
 * between; a structural change (sealing the topic's previous local segment, creating this one,
 * cutting a tail) is chained per topic and later appends of the topic wait for it.
 */
import { ErrorCode, WalrusError } from '../protocol/error-codes.js';
import {
  ReplicaAppendOutcome,
  type ReplicationReplyByOp,
  type ReplicationRequest,
  decodeReplicationReply,
  decodeReplicationRequest,
  encodeReplicationReply,
  encodeReplicationRequest,
} from '../protocol/replication-codec.js';
import type { ProducerEntry } from '../metadata/metadata-state.js';
import { epochOf, replicasOf } from '../metadata/metadata-state.js';
import { decideReplicaAppend } from '../replication/index.js';
import { WalError, WalErrorCode, type WalRecord, type WalReplicatedRecord } from '../wal/index.js';
import { scanProducers } from './producers.js';
import { replicationLimits } from './replication-limits.js';
import type { TopicContext } from './topic-context.js';
import { toWalrusError } from './topic-table.js';

type AppendAsk = Extract<ReplicationRequest, { op: 'replicaAppend' }>;

export class ReplicaService {
  /** Per topic: the structural change in progress, which the topic's next appends wait for. */
  private readonly structural = new Map<string, Promise<unknown>>();
  /** Per topic/segment: the last replicated append accepted while it is pending (a fence waits for it). */
  private readonly lastAppend = new Map<string, Promise<unknown>>();
  /** Copies being made here (repair), by topic/segment. */
  private readonly copying = new Map<string, Promise<ReplicationReplyByOp['replicaCopy']>>();
  /** Local sealed copies known to hold a corrupt record (reads found it): a copy replaces them. */
  private readonly corrupt = new Set<string>();
  /** Hooks of the leader side: a fence of a segment this node leads freezes its replicator. */
  onFenced: (topic: string, segmentId: number, epoch: number) => void = () => {};

  constructor(private readonly ctx: TopicContext) {}

  /** A peer request carrying a replication message; resolves with the reply body. */
  async handle(payload: Buffer): Promise<Uint8Array> {
    const request = decodeReplicationRequest(payload);
    switch (request.op) {
      case 'replicaAppend':
        return encodeReplicationReply('replicaAppend', await this.append(request));
      case 'fence':
        return encodeReplicationReply(
          'fence',
          await this.fence(request.topic, request.segmentId, request.baseOffset, request.epoch),
        );
      case 'replicaRead':
        return encodeReplicationReply('replicaRead', this.read(request));
      case 'replicaCopy':
        return encodeReplicationReply('replicaCopy', await this.copy(request));
    }
  }

  append(ask: AppendAsk): Promise<ReplicationReplyByOp['replicaAppend']> {
    const pending = this.structural.get(ask.topic);
    if (pending !== undefined) return pending.then(() => this.append(ask));
    const { wal } = this.ctx;
    const key = keyOf(ask.topic, ask.segmentId);
    const meta = this.ctx.meta.state.topics.get(ask.topic)?.segments.find((s) => s.id === ask.segmentId);
    const local = wal.segmentInfo(ask.topic, ask.segmentId);
    const otherActive = wal.segments(ask.topic).find((s) => !s.sealed && s.id !== ask.segmentId);
    const fencedEpoch = wal.segmentEpoch(ask.topic, ask.segmentId);
    const decision = decideReplicaAppend(
      { ...ask, recordCount: ask.records.length },
      {
        fencedEpoch,
        metadataEpoch: meta === undefined ? null : epochOf(meta),
        sealedInMetadata: meta !== undefined && meta.endOffset !== null,
        local: local === undefined ? null : { endOffset: local.endOffset, sealed: local.sealed },
        otherActive:
          otherActive === undefined ? null : { id: otherActive.id, endOffset: otherActive.endOffset },
      },
    );
    switch (decision.kind) {
      case 'fenced':
        return Promise.resolve({
          outcome: ReplicaAppendOutcome.fenced,
          endOffset: local?.endOffset ?? ask.baseOffset,
          epoch: decision.epoch,
        });
      case 'sealed':
      case 'stale':
        return Promise.resolve({
          outcome: ReplicaAppendOutcome.sealed,
          endOffset: local?.endOffset ?? ask.baseOffset,
          epoch: fencedEpoch,
        });
      case 'gap':
        return Promise.resolve({
          outcome: ReplicaAppendOutcome.gap,
          endOffset: decision.expectedOffset,
          epoch: fencedEpoch,
        });
      case 'append':
        break;
    }
    if (decision.create) {
      const other = decision.sealOther;
      const change = this.chain(ask.topic, async () => {
        // The previous segment is completed (its sealed end, from the other replicas) before it is
        // sealed here: a replica of both must hold all of it.
        if (other !== null && !(await this.completeSealed(ask.topic, other.id))) {
          throw new WalrusError(
            ErrorCode.UNAVAILABLE,
            `node ${this.ctx.nodeId} is completing its copy of segment ${other.id} of '${ask.topic}'; resend later`,
          );
        }
        if (wal.segmentInfo(ask.topic, ask.segmentId) === undefined) {
          await wal.createSegment(ask.topic, ask.segmentId, ask.baseOffset);
          this.ctx.logger.info(
            { topic: ask.topic, segment: ask.segmentId, baseOffset: ask.baseOffset },
            'Replica of a new segment',
          );
        }
      });
      return change.then(
        () => this.append(ask),
        (error: unknown) => {
          throw toWalrusError(error);
        },
      );
    }
    const records: WalReplicatedRecord[] = ask.records.map((r, i) => ({
      offset: ask.firstOffset + i,
      timestampMs: r.timestampMs,
      value: r.value,
      ...(r.headers === undefined ? {} : { headers: r.headers }),
    }));
    const written = wal.appendReplicated(ask.topic, ask.segmentId, records).then(
      (result): ReplicationReplyByOp['replicaAppend'] => ({
        outcome: ReplicaAppendOutcome.ok,
        endOffset: result.lastOffset + 1,
        epoch: fencedEpoch,
      }),
      (error: unknown): ReplicationReplyByOp['replicaAppend'] => {
        const expected = (error as { expectedOffset?: unknown }).expectedOffset;
        if (error instanceof WalError && typeof expected === 'number')
          return { outcome: ReplicaAppendOutcome.gap, endOffset: expected, epoch: fencedEpoch };
        throw toWalrusError(error);
      },
    );
    // Kept only while it is pending: a settled entry would outlive its segment (one per segment ever).
    const settled = written.then(
      () => {},
      () => {},
    );
    this.lastAppend.set(key, settled);
    void settled.then(() => {
      if (this.lastAppend.get(key) === settled) this.lastAppend.delete(key);
    });
    return written;
  }

  /**
   * Brings this node's copy of a segment the metadata has sealed in line with the seal: records
   * past the sealed end (never acknowledged) are cut, a missing tail is fetched from the other
   * replicas, and the local copy is sealed. Chained with the topic's other structural changes.
   * Resolves false when the copy could not be completed now (no replica answered; retried later).
   */
  settleSealed(topic: string, segmentId: number): Promise<boolean> {
    return this.chain(topic, () => this.completeSealed(topic, segmentId));
  }

  private async completeSealed(topic: string, segmentId: number): Promise<boolean> {
    const { wal, meta, nodeId, logger } = this.ctx;
    const segment = meta.state.topics.get(topic)?.segments.find((s) => s.id === segmentId);
    if (segment === undefined || segment.endOffset === null) {
      // Not sealed in the metadata applied here yet: wait for it (the seal comes before any later segment).
      await this.ctx.cluster.catchUpWithLeader().catch(() => {});
    }
    const sealed = meta.state.topics.get(topic)?.segments.find((s) => s.id === segmentId);
    if (sealed === undefined) {
      // Dropped by retention or the topic deleted: nothing to keep, but an open copy is closed so
      // the topic's next segment can open here.
      if (wal.segmentInfo(topic, segmentId)?.sealed === false) await wal.sealActive(topic);
      return true;
    }
    const end = sealed.endOffset;
    if (end === null) return false;
    await this.lastAppend.get(keyOf(topic, segmentId));
    let local = wal.segmentInfo(topic, segmentId);
    if (local === undefined) return true; // holds no copy (repair makes one when needed)
    const writtenEnd = local.endOffset;
    if (!local.sealed) {
      // The cut also waits for appends still queued here (an old leader's own, refused FENCED):
      // comparing only what is written would let the seal below drain them past the sealed end
      // (found by the whole-node simulator, defect E). A copy short of the end is not cut.
      const before = local;
      local = await wal.truncateSegment(topic, segmentId, end).catch((error: unknown) => {
        // BAD_REQUEST: the end is past what is assigned here (a short copy, completed below).
        if (error instanceof WalError && error.code === WalErrorCode.BAD_REQUEST) return before;
        throw error;
      });
    } else if (local.endOffset > end) {
      local = await wal.truncateSegment(topic, segmentId, end);
    }
    if (local.endOffset < writtenEnd)
      logger.warn(
        { topic, segment: segmentId, endOffset: end },
        'Cut an unacknowledged tail off a sealed segment',
      );
    if (!local.sealed && local.endOffset < end) {
      const sources = replicasOf(sealed).filter((id) => id !== nodeId);
      for (const source of sources) {
        try {
          await this.fetchTail(topic, segmentId, source, end);
          break;
        } catch (error) {
          logger.info(
            { topic, segment: segmentId, source, err: String(error) },
            'could not fetch a segment tail from a replica',
          );
        }
      }
      const after = wal.segmentInfo(topic, segmentId);
      if (after === undefined) return true; // deleted meanwhile: nothing to settle
      local = after;
      if (local.endOffset < end) return false;
    }
    if (!local.sealed) await wal.sealActive(topic);
    if (local.endOffset < end) {
      logger.error(
        { topic, segment: segmentId, localEnd: local.endOffset, endOffset: end },
        'This copy of a sealed segment is incomplete; it is not served',
      );
    }
    return true;
  }

  /** Appends [local end, endOffset) of the open local copy, read from `source`. */
  private async fetchTail(
    topic: string,
    segmentId: number,
    source: number,
    endOffset: number,
  ): Promise<void> {
    const { wal, cluster } = this.ctx;
    for (let round = 0; round < replicationLimits.tailFetchRoundCountMax; round++) {
      const local = wal.segmentInfo(topic, segmentId);
      // Deleted while a page was on its way (the topic deleted, the segment dropped by retention):
      // nothing is left to complete (this was a TypeError, logged and caught, in a soak run).
      if (local === undefined) throw copyGone(topic, segmentId);
      if (local.endOffset >= endOffset) return;
      const bytes = await cluster.replicate(
        source,
        encodeReplicationRequest({
          op: 'replicaRead',
          topic,
          segmentId,
          offset: local.endOffset,
          endOffset,
          recordCountMax: replicationLimits.catchUpRecordCountMax,
          byteCountMax: replicationLimits.catchUpByteCountMax,
        }),
        replicationLimits.replicaRequestTimeoutMs,
      );
      const page = decodeReplicationReply('replicaRead', bytes);
      if (page.records.length === 0 || page.firstOffset !== local.endOffset) {
        throw new WalrusError(ErrorCode.DATA_LOST, `node ${source} returned nothing at ${local.endOffset}`);
      }
      await wal.appendReplicated(
        topic,
        segmentId,
        page.records.map((r, i) => ({
          offset: page.firstOffset + i,
          timestampMs: r.timestampMs,
          headers: r.headers,
          value: r.value,
        })),
      );
    }
  }

  /**
   * Repair: makes this node hold a whole sealed copy of [baseOffset, endOffset) of a segment,
   * fetched page by page from the first source that serves it (bandwidth bounded by
   * replicationLimits.repairBytesPerSecMax), imported beside the topic's other segments (the WAL
   * puts it in place only once it is whole and durable; an incomplete or corrupt copy here is
   * replaced). Resolves with the end it holds.
   */
  async copy(
    ask: Extract<ReplicationRequest, { op: 'replicaCopy' }>,
  ): Promise<ReplicationReplyByOp['replicaCopy']> {
    const { wal, logger, scheduler } = this.ctx;
    const have = wal.segmentInfo(ask.topic, ask.segmentId);
    if (
      have?.sealed === true &&
      have.endOffset >= ask.endOffset &&
      !this.corrupt.has(keyOf(ask.topic, ask.segmentId))
    )
      return { endOffset: have.endOffset };
    if (this.copying.size >= replicationLimits.concurrentCopyCountMax) {
      throw new WalrusError(
        ErrorCode.BUSY,
        `node ${this.ctx.nodeId} is making ${this.copying.size} copies already; retry`,
      );
    }
    const key = keyOf(ask.topic, ask.segmentId);
    const running = this.copying.get(key);
    if (running !== undefined) return running;
    const run = this.chain(ask.topic, async () => {
      let lastError: unknown = new WalrusError(ErrorCode.UNAVAILABLE, 'no source to copy from');
      for (const source of ask.sources.filter((id) => id !== this.ctx.nodeId)) {
        const target = await wal.importSegment(ask.topic, ask.segmentId, ask.baseOffset);
        try {
          for (let offset = ask.baseOffset, round = 0; offset < ask.endOffset; round++) {
            if (round >= replicationLimits.tailFetchRoundCountMax)
              throw new WalrusError(ErrorCode.UNAVAILABLE, 'copy did not finish');
            const startedMs = scheduler.monotonicMs();
            const bytes = await this.ctx.cluster.replicate(
              source,
              encodeReplicationRequest({
                op: 'replicaRead',
                topic: ask.topic,
                segmentId: ask.segmentId,
                offset,
                endOffset: ask.endOffset,
                recordCountMax: replicationLimits.catchUpRecordCountMax,
                byteCountMax: replicationLimits.catchUpByteCountMax,
              }),
              replicationLimits.replicaRequestTimeoutMs,
            );
            const page = decodeReplicationReply('replicaRead', bytes);
            if (page.records.length === 0 || page.firstOffset !== offset)
              throw new WalrusError(ErrorCode.DATA_LOST, `node ${source} returned nothing at ${offset}`);
            await target.append(
              page.records.map((r, i) => ({
                offset: offset + i,
                timestampMs: r.timestampMs,
                headers: r.headers,
                value: r.value,
              })),
            );
            offset += page.records.length;
            // Bounded bandwidth: a page of b bytes takes at least b / rate seconds.
            const pageBytes = page.records.reduce((sum, r) => sum + r.value.length, 0);
            const minMs = (pageBytes * 1000) / replicationLimits.repairBytesPerSecMax;
            const tookMs = scheduler.monotonicMs() - startedMs;
            if (tookMs < minMs)
              await new Promise<void>((resolve) => scheduler.setTimeout(resolve, minMs - tookMs));
          }
          const info = await target.finish(ask.endOffset);
          this.corrupt.delete(key);
          logger.info(
            { topic: ask.topic, segment: ask.segmentId, source, endOffset: info.endOffset },
            'Copied a sealed segment',
          );
          return { endOffset: info.endOffset };
        } catch (error) {
          lastError = error;
          await target.abort().catch(() => {});
          logger.warn(
            { topic: ask.topic, segment: ask.segmentId, source, err: String(error) },
            'could not copy a segment from a replica',
          );
        }
      }
      throw toWalrusError(lastError);
    }).finally(() => {
      this.copying.delete(key);
    });
    this.copying.set(key, run);
    return run;
  }

  /** A local copy with a record that failed its checksum: the next copy request replaces it. */
  markCorrupt(topic: string, segmentId: number): void {
    if (this.corrupt.size < replicationLimits.concurrentCopyCountMax * 64)
      this.corrupt.add(keyOf(topic, segmentId));
  }

  /** Runs a structural change after the topic's previous one; the topic's appends wait for it. */
  private chain<T>(topic: string, work: () => Promise<T>): Promise<T> {
    const previous = this.structural.get(topic) ?? Promise.resolve();
    const run = previous.then(work);
    const settled = run.catch(() => {});
    this.structural.set(topic, settled);
    void settled.then(() => {
      if (this.structural.get(topic) === settled) this.structural.delete(topic);
    });
    return run;
  }

  /**
   * Raises the segment's epoch here to `epoch` (durably, before answering; 0 only reports), waits
   * for the replicated appends already accepted to be durable, and reports the local copy.
   */
  async fence(
    topic: string,
    segmentId: number,
    baseOffset: number,
    epoch: number,
  ): Promise<ReplicationReplyByOp['fence']> {
    const { wal } = this.ctx;
    if (epoch > 0) {
      this.onFenced(topic, segmentId, epoch);
      await wal.raiseSegmentEpoch(topic, segmentId, epoch);
    }
    await this.structural.get(topic);
    await this.lastAppend.get(keyOf(topic, segmentId));
    const local = wal.segmentInfo(topic, segmentId);
    const endOffset = local?.endOffset ?? baseOffset;
    let producers: ProducerEntry[] = [];
    if (local !== undefined) producers = scanProducers(wal, topic, local.baseOffset, endOffset);
    return {
      epoch: wal.segmentEpoch(topic, segmentId),
      endOffset,
      sealed: local?.sealed ?? false,
      producers,
    };
  }

  /** Records of this node's copy of a segment, from `offset`, never at or past `endOffset`. */
  read(ask: Extract<ReplicationRequest, { op: 'replicaRead' }>): ReplicationReplyByOp['replicaRead'] {
    const local = this.ctx.wal.segmentInfo(ask.topic, ask.segmentId);
    if (local === undefined || ask.offset < local.baseOffset || ask.offset >= local.endOffset) {
      throw new WalrusError(
        ErrorCode.DATA_LOST,
        `node ${this.ctx.nodeId} holds no record at ${ask.offset} of segment ${ask.segmentId} of '${ask.topic}'`,
      );
    }
    const bound = Math.min(ask.endOffset, local.endOffset);
    let records: WalRecord[];
    try {
      records = this.ctx.wal.read(ask.topic, ask.offset, {
        recordCountMax: Math.max(1, Math.min(ask.recordCountMax, bound - ask.offset)),
        byteCountMax: ask.byteCountMax,
      });
    } catch (error) {
      throw toWalrusError(error);
    }
    return {
      firstOffset: ask.offset,
      records: records
        .filter((r) => r.offset < bound)
        .map((r) => ({ timestampMs: r.timestampMs, headers: { ...r.headers }, value: r.value })),
    };
  }
}

function keyOf(topic: string, segmentId: number): string {
  return `${topic}\u0000${segmentId}`;
}

function copyGone(topic: string, segmentId: number): WalrusError {
  return new WalrusError(
    ErrorCode.UNAVAILABLE,
    `the local copy of segment ${segmentId} of topic '${topic}' was deleted while its tail was fetched`,
  );
}
