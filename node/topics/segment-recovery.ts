/**
 * Recovery of an active segment whose leader is dead, cut off, or restarted (BookKeeper's ledger
 * recovery; invariants S1-S3, S6-S8): raise the segment's epoch in the metadata (compare-and-set),
 * fence the replicas at it (each stores the epoch durably and refuses the old leader from then on),
 * take the greatest end among the fenced answers (node/replication/recovery.ts), copy what the
 * others lack until a quorum holds it, and seal the segment there with a compare-and-set on the
 * epoch; the seal opens the next segment on a live node (the Raft leader places it) and hands it
 * the idempotent producers found in the copy. Run by the Raft leader's controller for a dead
 * leader, and by a restarted leader for its own segment (it may lack records a quorum acknowledged).
 *
 * Any step may fail (a replica unreachable, the Raft leader changed): the recovery stops, and the
 * controller starts it again later; every step is safe to repeat, and a newer recovery (a higher
 * epoch) supersedes an older one.
 */
import { ErrorCode, WalrusError } from '../protocol/error-codes.js';
import {
  type ReplicationReplyByOp,
  type ReplicationRequest,
  ReplicaAppendOutcome,
  decodeReplicationReply,
  encodeReplicationRequest,
} from '../protocol/replication-codec.js';
import { activeSegment, epochOf, replicasOf } from '../metadata/metadata-state.js';
import { nextSegmentLeader } from '../metadata/placement.js';
import { type FenceReport, planRecovery } from '../replication/index.js';
import { mergeProducers } from './producers.js';
import type { ReplicaService } from './replica-service.js';
import { replicationLimits } from './replication-limits.js';
import { type TopicContext, proposeOrThrow } from './topic-context.js';

export class SegmentRecovery {
  /** Recoveries in progress, by topic (one at a time per topic). */
  private readonly running = new Map<string, Promise<boolean>>();

  constructor(
    private readonly ctx: TopicContext,
    private readonly replicas: ReplicaService,
  ) {}

  /** Recovers the topic's active segment if it is still `segmentId`; resolves true once it is sealed. */
  recover(topic: string, segmentId: number, reason: string): Promise<boolean> {
    const running = this.running.get(topic);
    if (running !== undefined) return running;
    const run = this.run(topic, segmentId, reason).finally(() => {
      this.running.delete(topic);
    });
    this.running.set(topic, run);
    return run;
  }

  isRecovering(topic: string): boolean {
    return this.running.has(topic);
  }

  private async run(name: string, segmentId: number, reason: string): Promise<boolean> {
    const { ctx } = this;
    const topic = ctx.meta.state.topics.get(name);
    if (topic === undefined || activeSegment(topic).id !== segmentId) return false;
    const startedMs = ctx.scheduler.monotonicMs();
    const before = activeSegment(topic);
    const epoch = epochOf(before) + 1;
    ctx.logger.warn(
      { topic: name, segment: segmentId, leader: before.leaderNodeId, epoch, reason },
      'Recovering segment',
    );
    await proposeOrThrow(ctx, { type: 'fenceSegment', topic: name, segmentId, epoch });
    const fenced = this.activeAt(name, segmentId, epoch);
    if (fenced === null) return false; // sealed meanwhile, or a newer recovery
    const replicas = replicasOf(fenced);
    const reports = new Map<
      number,
      FenceReport & { producers: ReplicationReplyByOp['fence']['producers'] }
    >();
    let plan = planRecovery({ baseOffset: fenced.baseOffset, replicas }, epoch, []);
    for (let round = 0; round < replicationLimits.fenceRoundCountMax && plan.kind === 'wait'; round++) {
      const asked = replicas.filter((id) => !reports.has(id));
      const answers = await Promise.allSettled(
        asked.map((id) => this.fenceOne(id, name, segmentId, fenced.baseOffset, epoch)),
      );
      answers.forEach((a, i) => {
        if (a.status === 'fulfilled') reports.set(asked[i]!, { nodeId: asked[i]!, ...a.value });
      });
      plan = planRecovery({ baseOffset: fenced.baseOffset, replicas }, epoch, [...reports.values()]);
    }
    if (plan.kind === 'superseded') return false;
    if (plan.kind === 'wait') {
      throw new WalrusError(
        ErrorCode.UNAVAILABLE,
        `cannot recover segment ${segmentId} of '${name}': ${plan.reason}`,
      );
    }
    for (const target of plan.copyTo) {
      await this.copy(
        name,
        segmentId,
        fenced.baseOffset,
        epoch,
        plan.sourceNodeId,
        target.nodeId,
        target.fromOffset,
        plan.endOffset,
      );
    }
    const current = this.activeAt(name, segmentId, epoch);
    if (current === null) return false;
    const source = reports.get(plan.sourceNodeId)!;
    const voters = ctx.cluster.voters();
    const alive = ctx.cluster.aliveVoters().filter((id) => id !== before.leaderNodeId);
    await proposeOrThrow(ctx, {
      type: 'sealSegment',
      topic: name,
      segmentId,
      endOffset: plan.endOffset,
      epoch,
      nextLeaderNodeId: nextSegmentLeader(before.leaderNodeId, voters, alive, ctx.nodeId),
      producers: mergeProducers(
        ctx.meta.state.topics.get(name)?.producers ?? [],
        source.producers,
        plan.endOffset,
      ),
    });
    const sealed = ctx.meta.state.topics.get(name)?.segments.find((s) => s.id === segmentId);
    const done = sealed !== undefined && sealed.endOffset === plan.endOffset;
    ctx.logger.warn(
      {
        topic: name,
        segment: segmentId,
        endOffset: plan.endOffset,
        copied: plan.copyTo.map((c) => c.nodeId),
        durationMs: Math.round(ctx.scheduler.monotonicMs() - startedMs),
        sealed: done,
      },
      'Segment recovered',
    );
    return done;
  }

  /** The topic's active segment when it is still `segmentId` at `epoch`, else null. */
  private activeAt(name: string, segmentId: number, epoch: number) {
    const topic = this.ctx.meta.state.topics.get(name);
    if (topic === undefined) return null;
    const active = activeSegment(topic);
    return active.id === segmentId && epochOf(active) === epoch ? active : null;
  }

  private async fenceOne(
    nodeId: number,
    topic: string,
    segmentId: number,
    baseOffset: number,
    epoch: number,
  ): Promise<ReplicationReplyByOp['fence']> {
    if (nodeId === this.ctx.nodeId) return this.replicas.fence(topic, segmentId, baseOffset, epoch);
    return this.call(
      nodeId,
      { op: 'fence', topic, segmentId, baseOffset, epoch },
      replicationLimits.fenceTimeoutMs,
    );
  }

  /** Copies [fromOffset, endOffset) of the segment from `source` to `target`, under the recovery's epoch. */
  private async copy(
    topic: string,
    segmentId: number,
    baseOffset: number,
    epoch: number,
    source: number,
    target: number,
    fromOffset: number,
    endOffset: number,
  ): Promise<void> {
    let offset = fromOffset;
    for (let round = 0; offset < endOffset; round++) {
      if (round >= replicationLimits.tailFetchRoundCountMax) {
        throw new WalrusError(
          ErrorCode.UNAVAILABLE,
          `copy of segment ${segmentId} of '${topic}' did not finish`,
        );
      }
      const ask: Extract<ReplicationRequest, { op: 'replicaRead' }> = {
        op: 'replicaRead',
        topic,
        segmentId,
        offset,
        endOffset,
        recordCountMax: replicationLimits.catchUpRecordCountMax,
        byteCountMax: replicationLimits.catchUpByteCountMax,
      };
      const page =
        source === this.ctx.nodeId
          ? this.replicas.read(ask)
          : await this.call(source, ask, replicationLimits.replicaRequestTimeoutMs);
      if (page.records.length === 0)
        throw new WalrusError(ErrorCode.DATA_LOST, `node ${source} returned no record at ${offset}`);
      const append: Extract<ReplicationRequest, { op: 'replicaAppend' }> = {
        op: 'replicaAppend',
        topic,
        segmentId,
        baseOffset,
        epoch,
        committedEnd: baseOffset,
        firstOffset: offset,
        records: page.records,
      };
      const reply =
        target === this.ctx.nodeId
          ? await this.replicas.append(append)
          : await this.call(target, append, replicationLimits.replicaRequestTimeoutMs);
      if (reply.outcome === ReplicaAppendOutcome.gap) {
        offset = reply.endOffset;
        continue;
      }
      if (reply.outcome !== ReplicaAppendOutcome.ok) {
        throw new WalrusError(
          ErrorCode.FENCED,
          `node ${target} refused the recovery copy (epoch ${reply.epoch})`,
        );
      }
      offset = reply.endOffset;
    }
  }

  private async call<Op extends ReplicationRequest['op']>(
    nodeId: number,
    request: Extract<ReplicationRequest, { op: Op }>,
    timeoutMs: number,
  ): Promise<ReplicationReplyByOp[Op]> {
    const bytes = await this.ctx.cluster.replicate(nodeId, encodeReplicationRequest(request), timeoutMs);
    return decodeReplicationReply(request.op as Op, bytes);
  }
}
