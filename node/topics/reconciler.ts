/**
 * Keeps this node's WAL and topic table in agreement with the applied metadata:
 * - at start-up (`recover`), after a crash at any point of a change, and after a snapshot was
 *   installed (`reconcile`: the same work, since a snapshot can skip any number of commands);
 * - as each command is applied (`onApply`): a topic or segment this node now leads gets its
 *   runtime, a deleted topic's data and the segments retention dropped are deleted here (retention
 *   is decided once, by the Raft leader, from the metadata: see controller/retention.ts).
 * - on each monitor tick (`maintain`): an interrupted rollover of a segment this node leads is
 *   completed, and a full segment rolls over even if no append comes.
 *
 * A segment the metadata lists but whose data this node lost is not papered over: it is logged
 * here and reads of it answer DATA_LOST.
 */
import type { MetaCommand, TopicMeta } from '../metadata/metadata-state.js';
import {
  activeSegment,
  epochOf,
  openingEpoch,
  replicasOf,
  topicStartOffset,
} from '../metadata/metadata-state.js';
import { nextSegmentLeader } from '../metadata/placement.js';
import { type Appender, isSoleReplica } from './appender.js';
import type { ReplicaService } from './replica-service.js';
import { deferProducerRestore, producerTable, takeOverProducers } from './producers.js';
import { type TopicContext, catchUpWithLeaderRetrying, proposeOrThrow } from './topic-context.js';
import type { TopicRuntime } from './topic-table.js';

export const reconcilerLimits = {
  /** Read barriers tried before WAL data of topics the metadata lacks is deleted, and their pace. */
  orphanBarrierAttemptCountMax: 100,
  orphanBarrierRetryMsMin: 20,
  orphanBarrierRetryMsMax: 1_000,
} as const;

export class Reconciler {
  private readonly ctx: TopicContext;
  private readonly appender: Appender;
  private readonly replicas: ReplicaService;

  /** Topics with WAL data here that the metadata did not hold at the last reconcile. */
  private readonly orphans = new Set<string>();
  private sweeping = false;

  constructor(ctx: TopicContext, appender: Appender, replicas: ReplicaService) {
    this.ctx = ctx;
    this.appender = appender;
    this.replicas = replicas;
  }

  /** Start-up: reconcile, then finish what a crash interrupted on the segments this node leads. */
  async recover(): Promise<void> {
    await this.reconcile();
    const { meta, nodeId, table, wal, logger } = this.ctx;
    for (const topic of meta.state.topics.values()) {
      if (activeSegment(topic).leaderNodeId !== nodeId) continue;
      const rt = table.runtime(topic.name);
      rt.committedEnd = Math.max(rt.committedEnd, this.localEnd(topic));
      // Before completing a rollover: its seal hands these producers to the next leader (the
      // rebuild runs when the table is first used: producerTable, checkSequence).
      deferProducerRestore(wal, (name) => meta.state.topics.get(name), topic, rt, nodeId, logger);
      try {
        await this.completeRollover(topic);
      } catch (error) {
        // A Raft leader change or transfer under way, or a quorum away: not a reason to stop the
        // node. The monitor's next tick (maintain) proposes the seal again.
        logger.warn(
          { topic: topic.name, segment: activeSegment(topic).id, err: String(error) },
          'could not complete an interrupted rollover at start-up; the monitor will retry',
        );
        continue;
      }
      const local = wal.segmentInfo(topic.name, activeSegment(topic).id);
      // A copy left open by the last run may lack records a quorum acknowledged: recover it.
      if (local !== undefined && !local.sealed && !isSoleReplica(activeSegment(topic), nodeId))
        this.appender.needsRecovery(topic.name, local.id, 'this node restarted while leading it');
    }
  }

  /**
   * Makes the WAL and the topic table match the metadata as applied now (start-up, snapshot
   * install). The table is brought in line before the first await, so requests that arrive while
   * files are still being deleted already see every topic the metadata holds; the deletions (which
   * new segments of the same topic wait for) are registered at once and awaited last.
   */
  async reconcile(): Promise<void> {
    const { wal, meta, table, nodeId } = this.ctx;
    for (const name of table.names()) if (!meta.state.topics.has(name)) table.remove(name);
    const deletions: Promise<void>[] = [];
    // WAL data of a topic the metadata does not hold is removed only once catching up with the leader has shown
    // the metadata current (sweepOrphans): applied up to a snapshot, or replayed at start-up, it may
    // not hold yet a topic created since, whose replicated appends this node has already taken and
    // acknowledged (deleting them lost a quorum's copy: soak seed 202, S3).
    for (const name of wal.topics()) if (!meta.state.topics.has(name)) this.orphans.add(name);
    if (this.orphans.size > 0) void this.sweepOrphans();
    for (const topic of meta.state.topics.values()) {
      deletions.push(this.deleteDropped(topic));
      const rt = table.ensure(topic.name, this.localEnd(topic));
      this.retireStaleReplicator(topic, rt);
      if (activeSegment(topic).leaderNodeId === nodeId) takeOverProducers(topic, rt);
      else wakeAll(rt);
      this.settleLocalCopies(topic);
      this.reportMissing(topic);
    }
    await Promise.all(deletions);
  }

  /**
   * The replicator of a segment that is no longer the active one (sealed, or dropped) stops, and
   * settles the appends still waiting by THAT segment's seal: in the log below its sealed end,
   * refused past it. One whose active segment a recovery fenced (a newer epoch) is frozen. Runs
   * for each applied seal and for every topic after a snapshot install, which skips the commands.
   * (A snapshot that sealed a segment used to leave its replicator running, and the seal of the
   * next segment then acknowledged its waiting appends by the next segment's end: records cut
   * from the log were acknowledged, whole-node seed 984.)
   */
  private retireStaleReplicator(topic: TopicMeta, rt: TopicRuntime): void {
    const replicator = rt.replicator;
    if (replicator === null) return;
    const active = activeSegment(topic);
    if (replicator.segmentId === active.id) {
      if (replicator.epoch < epochOf(active)) replicator.freeze();
      return;
    }
    const own = topic.segments.find((s) => s.id === replicator.segmentId);
    replicator.stop(own?.endOffset ?? null);
    rt.replicator = null;
  }

  /**
   * Deletes the WAL data of topics the metadata does not hold, once catching up with the leader has made the
   * metadata here current: a topic still missing then was deleted (its creation preceded any
   * record of it here). Bounded retries; what is left is tried at the next reconcile.
   */
  private async sweepOrphans(): Promise<void> {
    if (this.sweeping) return;
    this.sweeping = true;
    const { meta, wal, logger } = this.ctx;
    try {
      const current = await catchUpWithLeaderRetrying(this.ctx, {
        attemptCountMax: reconcilerLimits.orphanBarrierAttemptCountMax,
        retryMsMin: reconcilerLimits.orphanBarrierRetryMsMin,
        retryMsMax: reconcilerLimits.orphanBarrierRetryMsMax,
      });
      if (!current) return;
      for (const name of [...this.orphans]) {
        this.orphans.delete(name);
        if (meta.state.topics.has(name) || !wal.topics().includes(name)) continue;
        logger.warn({ topic: name }, 'Removing WAL data of a topic the metadata does not hold');
        await this.deleteTopicData(name);
      }
    } finally {
      this.sweeping = false;
    }
  }

  /** Called after each metadata command is applied on this node (replays included). */
  onApply(command: MetaCommand): void {
    const { meta, table, nodeId } = this.ctx;
    switch (command.type) {
      case 'fenceSegment': {
        const replicator = table.find(command.topic)?.replicator;
        if (replicator?.segmentId === command.segmentId && replicator.epoch < command.epoch)
          replicator.freeze();
        return;
      }
      case 'createTopic':
      case 'sealSegment': {
        const name = command.type === 'createTopic' ? command.name : command.topic;
        const topic = meta.state.topics.get(name);
        if (topic === undefined) return;
        const active = activeSegment(topic);
        const rt = table.ensure(name, active.baseOffset);
        if (command.type === 'sealSegment') {
          const sealed = topic.segments.find((s) => s.id === command.segmentId);
          this.retireStaleReplicator(topic, rt);
          if (sealed !== undefined && this.ctx.wal.segmentInfo(name, sealed.id) !== undefined) {
            void this.replicas.settleSealed(name, sealed.id).catch((error: unknown) => {
              this.ctx.logger.warn(
                { topic: name, segment: sealed.id, err: String(error) },
                'could not settle a sealed copy',
              );
            });
          }
        }
        if (active.leaderNodeId !== nodeId) {
          wakeAll(rt);
          return;
        }
        takeOverProducers(topic, rt);
        rt.committedEnd = Math.max(rt.committedEnd, active.baseOffset);
        return;
      }
      case 'deleteTopic':
      case 'softDeleteStream': {
        if (command.type === 'deleteTopic' && table.find(command.name) === undefined)
          void this.deleteTopicData(command.name);
        // A deletion may take soft-deleted Durable Streams sources with it (deleteWithForks).
        for (const name of table.names()) {
          if (meta.state.topics.has(name)) continue;
          table.remove(name);
          void this.deleteTopicData(name);
        }
        return;
      }
      case 'closeStream': {
        // Long polls at the end learn of the close at once.
        const rt = table.find(command.topic);
        if (rt !== undefined) wakeAll(rt);
        return;
      }
      case 'dropSegments': {
        const topic = meta.state.topics.get(command.topic);
        if (topic !== undefined) void this.deleteDropped(topic);
        return;
      }
      default:
        return;
    }
  }

  /** The monitor's per-node work: completes an interrupted rollover, rolls over a full segment. */
  async maintain(): Promise<void> {
    const { meta, table, nodeId, logger } = this.ctx;
    for (const topic of [...meta.state.topics.values()]) {
      try {
        const rt = table.find(topic.name);
        if (rt === undefined || rt.rolling !== null) continue;
        this.settleLocalCopies(topic);
        if (activeSegment(topic).leaderNodeId !== nodeId) continue;
        if (rt.replicator?.isFrozen === true)
          this.appender.needsRecovery(topic.name, rt.replicator.segmentId, 'replication stopped');
        rt.rolling = this.completeRollover(topic).finally(() => {
          rt.rolling = null;
        });
        await rt.rolling;
        this.appender.maybeRollover(topic.name);
      } catch (error) {
        logger.error({ topic: topic.name, err: String(error) }, 'monitor tick failed');
      }
    }
  }

  /**
   * Local copies of sealed segments that do not match their seal yet (open, longer, or shorter
   * than the sealed end: a crash or a recovery in between) are settled (replica-service.ts).
   */
  private settleLocalCopies(topic: TopicMeta): void {
    const { wal, nodeId } = this.ctx;
    // A sealed segment this node is listed for but holds no copy of (it was down while the segment
    // was written) gets a whole copy from the other replicas, so every listed replica holds one.
    for (const segment of topic.segments) {
      if (segment.endOffset === null || segment.endOffset === segment.baseOffset) continue;
      if (!replicasOf(segment).includes(nodeId) || wal.segmentInfo(topic.name, segment.id) !== undefined)
        continue;
      void this.replicas
        .copy({
          op: 'replicaCopy',
          topic: topic.name,
          segmentId: segment.id,
          baseOffset: segment.baseOffset,
          endOffset: segment.endOffset,
          sources: replicasOf(segment).filter((id) => id !== nodeId),
        })
        .catch((error: unknown) => {
          this.ctx.logger.info(
            { topic: topic.name, segment: segment.id, err: String(error) },
            'could not fetch a copy this node is listed for; will retry',
          );
        });
    }
    for (const local of wal.segments(topic.name)) {
      const segment = topic.segments.find((s) => s.id === local.id);
      if (segment === undefined || segment.endOffset === null) continue;
      if (local.sealed && local.endOffset === segment.endOffset) continue;
      if (local.sealed && local.endOffset < segment.endOffset) continue; // incomplete: repair's work
      void this.replicas.settleSealed(topic.name, local.id).catch((error: unknown) => {
        this.ctx.logger.warn(
          { topic: topic.name, segment: local.id, err: String(error) },
          'could not settle a sealed copy',
        );
      });
    }
  }

  /**
   * The acknowledged end of the active segment when this node leads it (else its base). A copy
   * still open after a restart may hold records no quorum has: nothing past the base is visible
   * until the recovery seals it (a sealed copy was sealed at a quorum's end).
   */
  private localEnd(topic: TopicMeta): number {
    const active = activeSegment(topic);
    if (active.leaderNodeId !== this.ctx.nodeId) return active.baseOffset;
    const local = this.ctx.wal.segmentInfo(topic.name, active.id);
    if (local === undefined) return active.baseOffset;
    return local.sealed || isSoleReplica(active, this.ctx.nodeId) ? local.endOffset : active.baseOffset;
  }

  /**
   * A crash between the WAL's seal and the metadata's: the seal is logged now, with the WAL's count
   * and the producers, as the rollover would have (else the next leader appends a retry again).
   */
  private async completeRollover(topic: TopicMeta): Promise<void> {
    const { wal, cluster, nodeId, logger, table } = this.ctx;
    const active = activeSegment(topic);
    const walActive = wal.segments(topic.name).find((s) => s.id === active.id);
    if (!walActive?.sealed) return;
    await proposeOrThrow(this.ctx, {
      type: 'sealSegment',
      topic: topic.name,
      segmentId: active.id,
      endOffset: walActive.endOffset,
      epoch: openingEpoch,
      nextLeaderNodeId: nextSegmentLeader(
        active.leaderNodeId,
        cluster.voters(),
        cluster.aliveVoters(),
        nodeId,
      ),
      producers: producerTable(table.runtime(topic.name)),
      sizeBytes: walActive.sizeBytes,
      lastTimestampMs: walActive.lastTimestampMs,
    });
    logger.warn({ topic: topic.name, segment: active.id }, 'Completed an interrupted rollover');
  }

  /** Deletes this node's segments of the topic that lie below the metadata's start (retention). */
  private deleteDropped(topic: TopicMeta): Promise<void> {
    const { wal, logger } = this.ctx;
    const start = topicStartOffset(topic);
    const local = wal.segments(topic.name);
    if (local.length === 0 || local[0]!.endOffset > start || !local[0]!.sealed) return Promise.resolve();
    return this.track(topic.name, async () => {
      try {
        await wal.deleteSegmentsBelow(topic.name, start);
      } catch (error) {
        logger.error(
          { topic: topic.name, err: String(error) },
          'could not delete segments retention dropped',
        );
      }
    });
  }

  private deleteTopicData(name: string): Promise<void> {
    const { wal, logger } = this.ctx;
    if (!wal.topics().includes(name)) return Promise.resolve();
    return this.track(name, async () => {
      try {
        await wal.deleteTopic(name);
      } catch (error) {
        logger.error({ topic: name, err: String(error) }, 'could not delete WAL data of a deleted topic');
      }
    });
  }

  /** Runs a deletion after any other on the topic; new segments of the topic wait for it. */
  private track(name: string, work: () => Promise<void>): Promise<void> {
    const { deleting } = this.ctx.table;
    const run = (deleting.get(name) ?? Promise.resolve()).then(work);
    deleting.set(name, run);
    void run.then(() => {
      if (deleting.get(name) === run) deleting.delete(name);
    });
    return run;
  }

  /** Logs the listed, non-empty sealed segments this node leads but holds no data of. */
  private reportMissing(topic: TopicMeta): void {
    const present = new Set(this.ctx.wal.segments(topic.name).map((s) => s.id));
    const missing = topic.segments
      .filter(
        (s) =>
          s.endOffset !== null &&
          s.endOffset > s.baseOffset &&
          s.leaderNodeId === this.ctx.nodeId &&
          !present.has(s.id),
      )
      .map((s) => s.id);
    if (missing.length > 0)
      this.ctx.logger.error(
        { topic: topic.name, segments: missing },
        'This node leads sealed segments whose data it does not hold; reads of them answer DATA_LOST',
      );
  }
}

/**
 * Wakes the long polls of a topic whose active segment another node now leads: each answers at
 * once (NOT_LEADER with the new leader, which the node that took the request routes to) instead of
 * waiting out its time for appends that will never come here.
 */
function wakeAll(rt: TopicRuntime): void {
  for (const waiter of rt.waiters) waiter.wake();
}
