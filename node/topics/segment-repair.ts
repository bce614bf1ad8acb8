/**
 * Repair of a sealed segment's replica set: a replica that is gone (removed, leaving, or dead for
 * longer than the repair delay) is replaced by another voter, which first fetches a whole copy from
 * the remaining replicas (replica-service.ts `copy`, bandwidth bounded); only then does the
 * metadata list it instead (`setReplicas`, compare-and-set on the set), so a node never counts as a
 * copy before it holds one (KIP-966). The controller decides which segment and which target.
 */
import { ErrorCode, WalrusError } from '../protocol/error-codes.js';
import {
  type ReplicationRequest,
  decodeReplicationReply,
  encodeReplicationRequest,
} from '../protocol/replication-codec.js';
import { replicasOf } from '../metadata/metadata-state.js';
import type { ReplicaService } from './replica-service.js';
import { replicationLimits } from './replication-limits.js';
import { type TopicContext, proposeOrThrow } from './topic-context.js';

export class SegmentRepair {
  constructor(
    private readonly ctx: TopicContext,
    private readonly replicas: ReplicaService,
  ) {}

  /**
   * Makes `target`, a replica of the sealed segment, hold a whole copy (a no-op when it does):
   * before a copy elsewhere is dropped from the set, the ones staying must really hold it.
   */
  async ensureCopy(topic: string, segmentId: number, target: number): Promise<boolean> {
    const { ctx } = this;
    const segment = ctx.meta.state.topics.get(topic)?.segments.find((s) => s.id === segmentId);
    if (segment === undefined || segment.endOffset === null) return false;
    const ask = {
      op: 'replicaCopy' as const,
      topic,
      segmentId,
      baseOffset: segment.baseOffset,
      endOffset: segment.endOffset,
      sources: replicasOf(segment).filter((id) => id !== target),
    };
    const copied = await this.copyOn(target, ask);
    return copied.endOffset >= segment.endOffset;
  }

  /** Asks `target` (this node or another) to hold a whole sealed copy (replica-service.ts `copy`). */
  private async copyOn(
    target: number,
    ask: Extract<ReplicationRequest, { op: 'replicaCopy' }>,
  ): Promise<{ endOffset: number }> {
    const { ctx } = this;
    if (target === ctx.nodeId) return this.replicas.copy(ask);
    const reply = await ctx.cluster.replicate(
      target,
      encodeReplicationRequest(ask),
      replicationLimits.copyTimeoutMs,
    );
    return decodeReplicationReply('replicaCopy', reply);
  }

  /**
   * Replaces `gone` by `target` in the sealed segment's replica set (`gone` 0: adds `target` to a
   * set that has fewer copies than the topic's factor); resolves true once listed.
   */
  async repair(topic: string, segmentId: number, gone: number, target: number): Promise<boolean> {
    const { ctx } = this;
    const segment = ctx.meta.state.topics.get(topic)?.segments.find((s) => s.id === segmentId);
    if (segment === undefined || segment.endOffset === null) return false;
    const before = [...replicasOf(segment)];
    if ((gone !== 0 && !before.includes(gone)) || before.includes(target)) return false;
    const endOffset = segment.endOffset;
    // The remaining replicas first, the one going last (it may still answer: a node being removed).
    const sources = gone === 0 ? before : [...before.filter((id) => id !== gone), gone];
    const ask = {
      op: 'replicaCopy' as const,
      topic,
      segmentId,
      baseOffset: segment.baseOffset,
      endOffset,
      sources,
    };
    const copied = await this.copyOn(target, ask);
    if (copied.endOffset < endOffset) {
      throw new WalrusError(
        ErrorCode.UNAVAILABLE,
        `node ${target} holds segment ${segmentId} of '${topic}' only to ${copied.endOffset}`,
      );
    }
    await proposeOrThrow(ctx, {
      type: 'setReplicas',
      topic,
      segmentId,
      replicas: gone === 0 ? [...before, target] : before.map((id) => (id === gone ? target : id)),
      expected: before,
    });
    const after = ctx.meta.state.topics.get(topic)?.segments.find((s) => s.id === segmentId);
    const done =
      after !== undefined && replicasOf(after).includes(target) && !replicasOf(after).includes(gone);
    ctx.logger.info({ topic, segment: segmentId, gone, target, listed: done }, 'Segment re-replicated');
    return done;
  }
}
