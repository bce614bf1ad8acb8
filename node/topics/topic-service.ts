/**
 * The topic service of a node: one object over the topic table that the server calls, built from
 * its parts (each in its own file): topic administration, the appender (appends, rollover), the
 * reader (reads, long polls, timestamps), consumers (cursors) and the reconciler (start-up, applied
 * commands, snapshot installs, the monitor's per-node work).
 */
import type { Logger } from '../log.js';
import {
  type MetaCommand,
  type MetadataState,
  type Retention,
  type SegmentMeta,
  type TopicMeta,
  activeSegment,
  replicasOf,
} from '../metadata/metadata-state.js';
import { ackQuorum } from '../replication/index.js';
import { type Scheduler, realScheduler } from '../scheduler.js';
import type { Wal } from '../wal/index.js';
import { Appender } from './appender.js';
import { Consumers } from './consumers.js';
import type { ClusterView, MetadataService } from './ports.js';
import { Reader } from './reader.js';
import { Reconciler } from './reconciler.js';
import { ReplicaService } from './replica-service.js';
import { SegmentRecovery } from './segment-recovery.js';
import { SegmentRepair } from './segment-repair.js';
import { TopicAdmin } from './topic-admin.js';
import { StreamAdmin } from './stream-state.js';
import type { TopicContext } from './topic-context.js';
import { TopicTable } from './topic-table.js';

/**
 * Least time between two recovery attempts of one topic's segment: the first retry after 250 ms,
 * doubling after each attempt that does not complete, up to 10 s (an attempt fences the segment at
 * a new epoch through the metadata log: a segment whose replicas cannot answer must not add an
 * entry every 250 ms for as long as they are away).
 */
const recoveryRetryIntervalMsMin = 250;
const recoveryRetryIntervalMsMax = 10_000;

export interface TopicServiceOptions {
  readonly nodeId: number;
  readonly wal: Wal;
  readonly meta: MetadataService;
  readonly cluster: ClusterView;
  readonly segmentEntryCountMax: number;
  readonly retentionDefault: Retention;
  readonly nowMs: () => number;
  readonly logger: Logger;
  /** Timers of long polls. Default the real ones (the whole-node simulator passes its own). */
  readonly scheduler?: Scheduler;
}

export class TopicService {
  readonly admin: TopicAdmin;
  readonly streams: StreamAdmin;
  readonly appender: Appender;
  readonly reader: Reader;
  readonly consumers: Consumers;
  readonly reconciler: Reconciler;
  readonly replicas: ReplicaService;
  readonly recovery: SegmentRecovery;
  readonly repair: SegmentRepair;
  private readonly ctx: TopicContext;
  /** When each segment's last recovery attempt started (throttles retries), by topic. */
  /** Per topic: when its last recovery attempt started, and the wait before the next. */
  private readonly recoveryAttempts = new Map<string, { atMs: number; waitMs: number }>();

  constructor(options: TopicServiceOptions) {
    this.ctx = {
      ...options,
      scheduler: options.scheduler ?? realScheduler,
      table: new TopicTable(options.nodeId, options.meta),
    };
    this.reader = new Reader(this.ctx);
    this.appender = new Appender(this.ctx);
    this.admin = new TopicAdmin(this.ctx, this.reader);
    this.streams = new StreamAdmin(this.ctx, this.admin, this.reader);
    this.consumers = new Consumers(this.ctx, this.reader);
    this.replicas = new ReplicaService(this.ctx);
    this.recovery = new SegmentRecovery(this.ctx, this.replicas);
    this.repair = new SegmentRepair(this.ctx, this.replicas);
    this.reconciler = new Reconciler(this.ctx, this.appender, this.replicas);
    this.appender.needsRecovery = (topic, segmentId, reason) =>
      void this.recoverSegment(topic, segmentId, reason);
    this.reader.onCorrupt = (topic, segment) => this.repairCorruptCopy(topic, segment);
    this.appender.completeSealed = (topic, segmentId) => this.replicas.settleSealed(topic, segmentId);
    this.replicas.onFenced = (topic, segmentId, epoch) => {
      const replicator = this.ctx.table.find(topic)?.replicator;
      if (replicator?.segmentId === segmentId && replicator.epoch < epoch) replicator.freeze();
    };
  }

  /**
   * Recovers a topic's active segment (segment-recovery.ts), with a backoff between attempts
   * (recoveryRetryIntervalMsMin..Max); resolves true once it is sealed, false otherwise (logged).
   */
  async recoverSegment(topic: string, segmentId: number, reason: string): Promise<boolean> {
    if (this.recovery.isRecovering(topic)) return false;
    const nowMs = this.ctx.scheduler.monotonicMs();
    const last = this.recoveryAttempts.get(topic);
    if (last !== undefined && nowMs - last.atMs < last.waitMs) return false;
    const waitMs =
      last === undefined ? recoveryRetryIntervalMsMin : Math.min(last.waitMs * 2, recoveryRetryIntervalMsMax);
    if (this.recoveryAttempts.size > this.ctx.meta.state.topics.size + 1024) this.recoveryAttempts.clear();
    this.recoveryAttempts.set(topic, { atMs: nowMs, waitMs });
    try {
      const sealed = await this.recovery.recover(topic, segmentId, reason);
      if (sealed) this.recoveryAttempts.delete(topic);
      return sealed;
    } catch (error) {
      this.ctx.logger.warn(
        { topic, segment: segmentId, err: String(error) },
        'Segment recovery did not complete; will retry',
      );
      return false;
    }
  }

  /** Replaces this node's copy of a sealed segment that holds a corrupt record with one from its other replicas. */
  private repairCorruptCopy(topic: string, segment: SegmentMeta): void {
    const { nodeId, logger } = this.ctx;
    if (segment.endOffset === null) return;
    this.replicas.markCorrupt(topic, segment.id);
    logger.error(
      { topic, segment: segment.id },
      'A local copy holds a corrupt record; fetching a whole copy from its replicas',
    );
    void this.replicas
      .copy({
        op: 'replicaCopy',
        topic,
        segmentId: segment.id,
        baseOffset: segment.baseOffset,
        endOffset: segment.endOffset,
        sources: replicasOf(segment).filter((id) => id !== nodeId),
      })
      .catch((error: unknown) => {
        logger.warn(
          { topic, segment: segment.id, err: String(error) },
          'could not replace a corrupt copy; will retry on the next read',
        );
      });
  }

  /** Re-replicates a sealed segment (segment-repair.ts): `target` copies it and replaces `gone`. */
  repairSegment(topic: string, segmentId: number, gone: number, target: number): Promise<boolean> {
    return this.repair.repair(topic, segmentId, gone, target);
  }

  /** The topic's segments with a copy on a node that is not a voter or not reachable from here. */
  underReplicatedSegments(topic: TopicMeta, up = this.upPredicate()): number {
    return topic.segments.filter((s) => !replicasOf(s).every(up)).length;
  }

  private upPredicate(): (id: number) => boolean {
    const voters = new Set(this.ctx.cluster.voters());
    return (id) => voters.has(id) && this.ctx.cluster.reachable(id);
  }

  /** Each follower of each active segment this node leads, with the records it has yet to make durable (metrics). */
  forEachReplicaLag(visit: (topic: string, followerId: number, lagRecords: number) => void): void {
    for (const rt of this.ctx.table.values()) {
      const r = rt.replicator;
      if (r === null || r.isFrozen) continue;
      for (const f of r.followers.values()) visit(r.topic, f.nodeId, Math.max(0, r.assignedEnd - f.ackedEnd));
    }
  }

  /** Makes `target` hold a whole copy of a sealed segment it is listed for (segment-repair.ts). */
  ensureCopy(topic: string, segmentId: number, target: number): Promise<boolean> {
    return this.repair.ensureCopy(topic, segmentId, target);
  }

  /** A replication request from a peer (node/protocol/replication-codec.ts). */
  handleReplication(payload: Buffer): Promise<Uint8Array> {
    return this.replicas.handle(payload);
  }

  get logger(): Logger {
    return this.ctx.logger;
  }

  /** The metadata as applied on this node. */
  get metadata(): MetadataState {
    return this.ctx.meta.state;
  }

  /** Start-up: reconciles with the metadata, then confirms it with the Raft leader in the background. */
  async recover(): Promise<void> {
    await this.reconciler.recover();
    void this.reader.confirmMetadata();
  }

  onApply(command: MetaCommand): void {
    this.reconciler.onApply(command);
  }

  /** Storage figures that METRICS adds beside the Raft fields, with the replication health. */
  storageStats(): Record<string, number | boolean | null> {
    const health = this.replicationHealth();
    const disk = this.ctx.wal.diskSpace();
    return {
      topics: this.ctx.meta.state.topics.size,
      ...this.ctx.wal.stats(),
      ...this.ctx.wal.memoryStats(),
      segments_under_replicated: health.underReplicatedSegmentCount,
      topics_unwritable: health.unwritableTopics.length,
      disk_free_bytes: disk.freeBytes,
      disk_reserve_bytes: disk.reserveBytes,
      disk_full: disk.full,
    };
  }

  /**
   * As this node sees the cluster now: segments with fewer reachable member copies than their
   * replica set holds (a replica removed, or not reachable from here), and topics that cannot take
   * a write (the active segment's leader unreachable, or fewer reachable replicas than a quorum).
   */
  replicationHealth(): { underReplicatedSegmentCount: number; unwritableTopics: string[] } {
    const { meta } = this.ctx;
    const up = this.upPredicate();
    let underReplicatedSegmentCount = 0;
    const unwritableTopics: string[] = [];
    for (const topic of meta.state.topics.values()) {
      underReplicatedSegmentCount += this.underReplicatedSegments(topic, up);
      const active = activeSegment(topic);
      const replicas = replicasOf(active);
      if (!up(active.leaderNodeId) || replicas.filter(up).length < ackQuorum(replicas.length))
        unwritableTopics.push(topic.name);
    }
    return { underReplicatedSegmentCount, unwritableTopics };
  }

  /**
   * Wakes every long poll and waits for rollovers in flight (shutdown). A rollover that fails here
   * (Raft is stopped first: its seal's outcome is unknown, as after a crash) does not fail the
   * shutdown: the restart's recovery settles it.
   */
  async close(): Promise<void> {
    for (const rt of this.ctx.table.values()) {
      for (const w of rt.waiters) w.wake();
      if (rt.rolling) await rt.rolling.catch(() => {});
      rt.replicator?.freeze();
    }
  }
}
