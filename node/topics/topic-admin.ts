/**
 * Topic lifecycle: create (placed by the name's hash over the live voters), describe, list,
 * configure retention, delete. Changes are metadata commands committed through Raft; a topic's
 * data directory goes when the deletion is applied (see reconciler.ts).
 */
import { ErrorCode, WalrusError } from '../protocol/error-codes.js';
import type { ResponseByOp, TopicInfo } from '../protocol/messages.js';
import { assertTopicName } from '../protocol/topic-name.js';
import {
  type Retention,
  type SegmentMeta,
  type StreamMeta,
  type TopicMeta,
  activeSegment,
  epochOf,
  metadataLimits,
  replicasOf,
  topicStartOffset,
} from '../metadata/metadata-state.js';
import { placeNewTopic } from '../metadata/placement.js';
import type { Reader } from './reader.js';
import { type TopicContext, proposeOrThrow } from './topic-context.js';

export class TopicAdmin {
  private readonly ctx: TopicContext;
  private readonly reader: Reader;
  /** Topic creations this node is proposing, so concurrent creates of one name answer once. */
  private readonly creating = new Map<string, Promise<unknown>>();

  constructor(ctx: TopicContext, reader: Reader) {
    this.ctx = ctx;
    this.reader = reader;
  }

  /** The topic's replication factor, or the cluster default min(3, voters) when it has none. */
  private effectiveReplicationFactor(topic: TopicMeta, voters: readonly number[]): number {
    return topic.replicationFactor ?? Math.max(1, Math.min(3, voters.length));
  }

  topicInfo(topic: TopicMeta, voters: readonly number[] = this.ctx.cluster.voters()): TopicInfo {
    const end = this.reader.knownEnd(topic);
    const active = activeSegment(topic);
    const replicationFactor = this.effectiveReplicationFactor(topic, voters);
    const underReplicated = (s: SegmentMeta): boolean => {
      const replicas = replicasOf(s);
      return replicas.length < replicationFactor || replicas.some((id) => !voters.includes(id));
    };
    return {
      name: topic.name,
      retention: topic.retention,
      startOffset: topicStartOffset(topic),
      endOffset: end,
      currentSegmentId: active.id,
      leaderNodeId: active.leaderNodeId,
      segments: topic.segments.map((s) => ({
        id: s.id,
        baseOffset: s.baseOffset,
        endOffset: s.endOffset ?? Math.max(end, s.baseOffset),
        sealed: s.endOffset !== null,
        leaderNodeId: s.leaderNodeId,
        replicas: [...replicasOf(s)],
        epoch: epochOf(s),
      })),
      createdAtMs: topic.createdAtMs,
      replicationFactor,
      underReplicatedSegmentCount: topic.segments.filter(underReplicated).length,
    };
  }

  async create(
    name: string,
    retention?: Partial<Retention>,
    replicationFactor?: number,
    /** A Durable Streams stream's metadata (stream-state.ts validates it); absent: a plain topic. */
    stream?: Omit<StreamMeta, 'accessedAtMs' | 'softDeleted'>,
  ): Promise<ResponseByOp['createTopic']> {
    const { ctx } = this;
    assertTopicName(name);
    // 0 is the wire's "default", as absent.
    const factor = replicationFactor === 0 ? undefined : replicationFactor;
    if (
      factor !== undefined &&
      (!Number.isSafeInteger(factor) || factor < 1 || factor > metadataLimits.replicaCountMax)
    ) {
      throw new WalrusError(
        ErrorCode.BAD_REQUEST,
        `replicationFactor must be an integer from 1 to ${metadataLimits.replicaCountMax}, got ${factor}`,
      );
    }
    const wanted: Retention = {
      retentionMs:
        retention?.retentionMs !== undefined ? retention.retentionMs : ctx.retentionDefault.retentionMs,
      retentionBytes:
        retention?.retentionBytes !== undefined
          ? retention.retentionBytes
          : ctx.retentionDefault.retentionBytes,
    };
    validateRetention(wanted);
    const existing = ctx.meta.state.topics.get(name);
    if (existing !== undefined) {
      const same =
        retention === undefined ||
        ((retention.retentionMs === undefined || retention.retentionMs === existing.retention.retentionMs) &&
          (retention.retentionBytes === undefined ||
            retention.retentionBytes === existing.retention.retentionBytes));
      if (!same)
        throw new WalrusError(ErrorCode.TOPIC_EXISTS, `topic '${name}' exists with other retention settings`);
      const existingFactor = this.effectiveReplicationFactor(existing, ctx.cluster.voters());
      if (factor !== undefined && factor !== existingFactor) {
        throw new WalrusError(
          ErrorCode.TOPIC_EXISTS,
          `topic '${name}' exists with replication factor ${existingFactor}`,
        );
      }
      return { created: false, topic: this.topicInfo(existing) };
    }
    const voterCount = ctx.cluster.voters().length;
    if (factor !== undefined && factor > voterCount) {
      throw new WalrusError(
        ErrorCode.BAD_REQUEST,
        `replicationFactor ${factor} is above the ${voterCount} voter${voterCount === 1 ? '' : 's'} of the cluster`,
      );
    }
    if (ctx.meta.state.topics.size >= metadataLimits.topicCountMax) {
      throw new WalrusError(
        ErrorCode.BUSY,
        `the cluster holds the maximum of ${metadataLimits.topicCountMax} topics`,
      );
    }
    const inFlight = this.creating.get(name);
    if (inFlight !== undefined) {
      await inFlight;
      return { created: false, topic: this.topicInfo(ctx.table.topic(name)) };
    }
    const creation = proposeOrThrow(ctx, {
      type: 'createTopic',
      name,
      retention: wanted,
      createdAtMs: ctx.nowMs(),
      leaderNodeId: placeNewTopic(name, ctx.cluster.aliveVoters(), ctx.nodeId),
      ...(factor === undefined ? {} : { replicationFactor: factor }),
      ...(stream === undefined ? {} : { stream }),
    });
    this.creating.set(name, creation);
    try {
      await creation;
    } finally {
      this.creating.delete(name);
    }
    const rt = ctx.table.runtime(name);
    if (rt.segmentReady !== null) await rt.segmentReady;
    ctx.logger.info(
      { topic: name, leader: activeSegment(ctx.table.topic(name)).leaderNodeId },
      'Topic registered',
    );
    return { created: true, topic: this.topicInfo(ctx.table.topic(name)) };
  }

  describe(name: string): TopicInfo {
    return this.topicInfo(this.ctx.table.topic(name));
  }

  list(): TopicInfo[] {
    const voters = this.ctx.cluster.voters();
    return [...this.ctx.meta.state.topics.values()]
      .sort((a, b) => (a.name < b.name ? -1 : 1))
      .map((t) => this.topicInfo(t, voters));
  }

  /** Deletes a topic; its data goes on every node when the deletion is applied there. */
  async delete(name: string): Promise<boolean> {
    assertTopicName(name);
    if (!this.ctx.meta.state.topics.has(name)) return false;
    await proposeOrThrow(this.ctx, { type: 'deleteTopic', name });
    await this.ctx.table.deleting.get(name);
    this.ctx.logger.info({ topic: name }, 'Topic deleted');
    return true;
  }

  async configure(name: string, retention: Partial<Retention>): Promise<TopicInfo> {
    const topic = this.ctx.table.topic(name);
    const next: Retention = {
      retentionMs: retention.retentionMs !== undefined ? retention.retentionMs : topic.retention.retentionMs,
      retentionBytes:
        retention.retentionBytes !== undefined ? retention.retentionBytes : topic.retention.retentionBytes,
    };
    validateRetention(next);
    await proposeOrThrow(this.ctx, { type: 'configureTopic', name, retention: next });
    return this.topicInfo(this.ctx.table.topic(name));
  }
}

export function validateRetention(retention: Retention): void {
  for (const [key, value] of Object.entries(retention)) {
    if (value !== null && (!Number.isSafeInteger(value) || value <= 0)) {
      throw new WalrusError(ErrorCode.BAD_REQUEST, `${key} must be a positive integer or null`);
    }
  }
}
