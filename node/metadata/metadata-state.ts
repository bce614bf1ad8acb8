/**
 * The cluster metadata state machine: members (addresses and incarnation), the cluster id, topics,
 * their segments (with leaders and sealed ends), consumer cursors and the node being removed (the
 * leaving mark). `apply` is pure and deterministic: the same commands in the same order give the
 * same state on every node: the commands are Raft log entries (raft-node.ts applies them). No
 * command reads a clock when applied: a time it needs is in the command, put there by its proposer.
 *
 * State is mutated in place (O(1) per command, whatever the number of topics).
 *
 * Invariants (asserted): segment ids of a topic ascend from 1 with no gap; exactly the last
 * segment is active (endOffset null); every sealed segment's end is its successor's base.
 *
 * Identity: a member's incarnation (raft-identity.ts) is recorded by its first registration that
 * carries one and stays until the member is unregistered; a registration under another incarnation
 * changes nothing (the wiped node must be removed and re-added). The cluster id is set once.
 * Entries and snapshots from before identities existed carry neither, and apply as they did.
 */
import assert from 'node:assert/strict';
import { isIdentityId } from './identity-id.js';

export interface Retention {
  readonly retentionMs: number | null;
  readonly retentionBytes: number | null;
}

export interface SegmentMeta {
  readonly id: number;
  readonly baseOffset: number;
  /** Exclusive end once sealed; null while active. */
  endOffset: number | null;
  readonly leaderNodeId: number;
  /**
   * The nodes holding a copy (the leader first), each segment its own replica set; absent in
   * metadata from before replication: the leader alone (see replicasOf).
   */
  replicas?: number[];
  /**
   * The fence epoch: 1 when the segment opens; a recovery raises it (fenceSegment) before it fences
   * the replicas, and a seal names the epoch it was decided under (compare-and-set).
   */
  epoch?: number;
  /** Set at the seal: bytes the segment holds, and its newest record's time (null: no record). */
  sizeBytes?: number;
  lastTimestampMs?: number | null;
}

export interface TopicMeta {
  readonly name: string;
  retention: Retention;
  readonly createdAtMs: number;
  /** Ascending by id; retention may have removed the oldest sealed ones. */
  segments: SegmentMeta[];
  /** consumer name → next offset to read. */
  readonly cursors: Map<string, number>;
  /** Producers as of the last seal, for the leader of the active segment to start from. */
  producers: readonly ProducerEntry[];
  /** Copies of each new segment; null: the cluster default, min(3, voters). */
  replicationFactor: number | null;
  /** Durable Streams metadata when the topic was created as a DS stream (absent otherwise). */
  stream?: StreamMeta;
}

/**
 * A Durable Streams stream's metadata (the gateway's /v1/stream/{path}). Kept here, not in a
 * gateway, so that every gateway agrees and a gateway restart forgets nothing.
 */
export interface StreamMeta {
  /** The DS path exactly as sent; the topic name is a digest of it (gateway/ds/path-map.ts). */
  readonly path: string;
  readonly contentType: string;
  readonly ttlSeconds: number | null;
  readonly expiresAtMs: number | null;
  /** Last read or append (ms), for a sliding TTL; renewed by `touchStream`. */
  accessedAtMs: number;
  /** The source topic and the source offset where this fork starts (its offset 0 is that offset). */
  readonly forkOf: { readonly topic: string; readonly offset: number; readonly subOffset?: number } | null;
  /** Set once: no append is accepted after it (the segment leader refuses them). */
  closed: boolean;
  /** Deleted while forks read from it: hidden from clients, dropped with its last fork. */
  softDeleted: boolean;
  /** The last Stream-Seq a writer appended with (absent: none yet). */
  lastSeq?: string;
}

/** When the stream expires (ms), or null: never. */
export function streamExpiryMs(stream: StreamMeta): number | null {
  const sliding = stream.ttlSeconds === null ? null : stream.accessedAtMs + stream.ttlSeconds * 1000;
  if (stream.expiresAtMs === null) return sliding;
  return sliding === null ? stream.expiresAtMs : Math.min(sliding, stream.expiresAtMs);
}

/** The topics forked from `name` (a short scan: forks are few). */
export function forksOf(state: MetadataState, name: string): string[] {
  const forks: string[] = [];
  for (const t of state.topics.values()) if (t.stream?.forkOf?.topic === name) forks.push(t.name);
  return forks;
}

/**
 * An idempotent producer's last batch: [producerId, seq, firstOffset, lastOffset, timestampMs],
 * and the producer's epoch when it is a Durable Streams producer with an epoch above 0.
 */
export type ProducerEntry =
  | readonly [string, number, number, number, number]
  | readonly [string, number, number, number, number, number];

/**
 * The node a `remove-node` is under way for (server/node-removal.ts). In the metadata, not in one
 * leader's memory, so that every Raft leader's placement and repair pass the node over, and so
 * that removals run one at a time: a second is refused while this mark names another node.
 */
export interface LeavingMark {
  readonly nodeId: number;
  /** The Raft leader running the removal now: a new leader that resumes it takes the mark over. */
  readonly byNodeId: number;
  /** When the removal started, on its first proposer's clock (ms since the epoch). */
  readonly sinceMs: number;
}

/** A cluster member's addresses, as it advertised them when it joined. */
export interface NodeMeta {
  readonly nodeId: number;
  /** host:port of its raft (peer) port. */
  readonly raftAddr: string;
  /** host:port of its client port. */
  readonly clientAddr: string;
  /**
   * The member's incarnation (raft_meta/identity.bin) when it registered; peers refuse this node id
   * under any other. Absent for members registered by a version without identities, until the
   * member registers again.
   */
  readonly incarnation?: string;
}

export type MetaCommand =
  | { readonly type: 'registerNode'; readonly node: NodeMeta }
  /** Drops a member's addresses and incarnation; ends a leaving mark on it (the removal is done). */
  | { readonly type: 'unregisterNode'; readonly nodeId: number }
  /**
   * Marks `nodeId` as being removed, by Raft leader `byNodeId`, started at `atMs` (the proposer's
   * clock). Applies only while no other node is marked: a mark on the same node is taken over by
   * `byNodeId` (a new leader resuming it, or a client's retry) and keeps its start.
   */
  | {
      readonly type: 'markLeaving';
      readonly nodeId: number;
      readonly byNodeId: number;
      readonly atMs: number;
    }
  /**
   * Ends the mark on `nodeId` (its removal failed or was given up: the node is placed again), if
   * `byNodeId` still runs it (compare-and-set: a leader that lost the removal to another changes nothing).
   */
  | { readonly type: 'clearLeaving'; readonly nodeId: number; readonly byNodeId: number }
  /** The cluster's id, proposed by a Raft leader while the metadata has none; the first one stays. */
  | { readonly type: 'setClusterId'; readonly clusterId: string }
  | {
      readonly type: 'createTopic';
      readonly name: string;
      readonly retention: Retention;
      readonly createdAtMs: number;
      readonly leaderNodeId: number;
      /** The first segment's replica set (leader first); absent: the leader alone. */
      readonly replicas?: readonly number[];
      readonly replicationFactor?: number | null;
      /** A Durable Streams stream (absent: a plain topic). */
      readonly stream?: Omit<StreamMeta, 'accessedAtMs' | 'softDeleted'>;
    }
  | { readonly type: 'deleteTopic'; readonly name: string }
  /** Closes a DS stream (no more appends); proposed by its active segment's leader. */
  | { readonly type: 'closeStream'; readonly topic: string }
  /** Records a DS writer's Stream-Seq once its append is acknowledged (only ever upwards). */
  | { readonly type: 'setStreamSeq'; readonly topic: string; readonly seq: string }
  /** Renews a DS stream's sliding TTL. */
  | { readonly type: 'touchStream'; readonly topic: string; readonly atMs: number }
  /**
   * Deletes a DS stream whose forks still read from it: it is hidden until its last fork goes
   * (deleteTopic of that fork then deletes it too).
   */
  | { readonly type: 'softDeleteStream'; readonly topic: string }
  | { readonly type: 'configureTopic'; readonly name: string; readonly retention: Retention }
  | {
      readonly type: 'sealSegment';
      readonly topic: string;
      readonly segmentId: number;
      readonly endOffset: number;
      readonly nextLeaderNodeId: number;
      /** The next segment's replica set (its leader first); absent: the leader alone. */
      readonly nextReplicas?: readonly number[];
      /**
       * Compare-and-set: the seal applies only while the segment's epoch is this one (a recovery
       * that raised the epoch meanwhile wins over a rollover decided before). Absent: any epoch.
       */
      readonly epoch?: number;
      /** Idempotent producers' last batches, handed to the next segment leader. */
      readonly producers?: readonly ProducerEntry[];
      /** The sealed segment's size and newest record time, so the Raft leader can judge retention. */
      readonly sizeBytes?: number;
      readonly lastTimestampMs?: number | null;
    }
  | { readonly type: 'dropSegments'; readonly topic: string; readonly segmentIds: readonly number[] }
  /**
   * A recovery of the active segment (its leader dead or cut off) raises its epoch to `epoch`,
   * which must be the current epoch + 1 (compare-and-set), before fencing the replicas at it.
   */
  | {
      readonly type: 'fenceSegment';
      readonly topic: string;
      readonly segmentId: number;
      readonly epoch: number;
    }
  /**
   * Repair: the segment's replica set becomes `replicas`, if it still is `expected` (compare-and-set).
   * A node is added only once it holds a whole copy; a leader is never dropped from an active segment.
   */
  | {
      readonly type: 'setReplicas';
      readonly topic: string;
      readonly segmentId: number;
      readonly replicas: readonly number[];
      readonly expected: readonly number[];
    }
  | {
      readonly type: 'commitCursor';
      readonly topic: string;
      readonly consumer: string;
      readonly offset: number;
      /**
       * Compare-and-set: applied only when the cursor is this value (null: no cursor yet). A read
       * that auto-commits sets it to the cursor it read from, so a commit decided on a stale
       * cursor changes nothing and a cursor never moves backwards behind a reader's back.
       */
      readonly expectedOffset?: number | null;
    }
  /** Forgets a consumer's cursor (a later read by that name starts from the topic's start). */
  | { readonly type: 'deleteCursor'; readonly topic: string; readonly consumer: string };

/** Limits on what the state may hold; commands beyond them are refused before they are logged. */
export const metadataLimits = {
  topicCountMax: 100_000,
  consumerCountMaxPerTopic: 10_000,
  /** Copies of one segment (the replication factor's upper bound). */
  replicaCountMax: 7,
} as const;

/** The JSON form of the whole state, for snapshots. */
export interface MetadataSnapshot {
  readonly appliedIndex: number;
  readonly clusterId?: string;
  readonly nodes?: readonly NodeMeta[];
  /** Absent when no node is being removed (and in snapshots from before leaving marks). */
  readonly leaving?: LeavingMark;
  readonly topics: readonly {
    name: string;
    retention: Retention;
    createdAtMs: number;
    segments: SegmentMeta[];
    cursors: [string, number][];
    producers?: readonly ProducerEntry[];
    replicationFactor?: number | null;
    stream?: StreamMeta;
  }[];
}

/** The segment's replica set, leader first (the leader alone in metadata from before replication). */
export function replicasOf(segment: SegmentMeta): readonly number[] {
  return segment.replicas ?? [segment.leaderNodeId];
}

/**
 * The epoch a segment opens with: its leader writes under it and only under it. A higher epoch
 * means a recovery has fenced the segment; its leader never writes again.
 */
export const openingEpoch = 1;

/** The segment's fence epoch (1 in metadata from before replication). */
export function epochOf(segment: SegmentMeta): number {
  return segment.epoch ?? openingEpoch;
}

function sameIds(a: readonly number[], b: readonly number[]): boolean {
  return a.length === b.length && a.every((x, i) => x === b[i]);
}

function isNodeId(id: unknown): id is number {
  return Number.isSafeInteger(id) && (id as number) > 0;
}

/** A replica set as the metadata stores it: the leader first, no duplicates, at most replicaCountMax. */
function replicaSet(leader: number, replicas: readonly number[] | undefined): number[] {
  const set = [leader];
  for (const id of replicas ?? []) {
    if (set.length >= metadataLimits.replicaCountMax) break;
    if (Number.isSafeInteger(id) && id > 0 && !set.includes(id)) set.push(id);
  }
  return set;
}

export function activeSegment(topic: TopicMeta): SegmentMeta {
  const last = topic.segments[topic.segments.length - 1];
  assert.ok(last !== undefined && last.endOffset === null, `topic ${topic.name} has no active segment`);
  return last;
}

/** First offset still covered by metadata (older segments were dropped by retention). */
export function topicStartOffset(topic: TopicMeta): number {
  return topic.segments[0]?.baseOffset ?? 0;
}

/** Refused cursor commits remembered for their proposers (who ask as soon as theirs is applied). */
const refusedCommitCountMax = 1024;

export class MetadataState {
  /** Index of the last applied command. */
  appliedIndex = 0;
  /** The cluster's id once a `setClusterId` is applied (null in metadata from older versions). */
  clusterId: string | null = null;
  readonly topics = new Map<string, TopicMeta>();
  readonly nodes = new Map<number, NodeMeta>();
  /** The node being removed, if any (one at a time). */
  leaving: LeavingMark | null = null;
  /**
   * Indexes of the latest commitCursor commands whose compare-and-set failed (bounded; not part of
   * snapshots). The cursor's value cannot tell a proposer whether its commit took effect: two
   * readers that read the same records from the same cursor commit the same offset.
   */
  private readonly refusedCommits = new Set<number>();

  /** Advances past an index that holds no metadata command (a new leader's empty entry, a configuration change). */
  skip(index: number): void {
    assert.equal(index, this.appliedIndex + 1, 'metadata commands are applied in index order');
    this.appliedIndex = index;
  }

  /** Replaces the whole state with a snapshot's (a follower installing the leader's snapshot). */
  restore(snapshot: MetadataSnapshot): void {
    const restored = MetadataState.fromSnapshot(snapshot);
    this.appliedIndex = restored.appliedIndex;
    this.clusterId = restored.clusterId;
    this.topics.clear();
    for (const [k, v] of restored.topics) this.topics.set(k, v);
    this.nodes.clear();
    for (const [k, v] of restored.nodes) this.nodes.set(k, v);
    this.leaving = restored.leaving;
  }

  /**
   * Applies one command. Commands that no longer make sense (a topic deleted meanwhile, a seal of a
   * segment that is not active) leave the state unchanged: callers validate before proposing, and the
   * state machine stays total because with consensus a command may be applied after others.
   */
  apply(index: number, command: MetaCommand): void {
    assert.equal(index, this.appliedIndex + 1, 'metadata commands are applied in index order');
    this.appliedIndex = index;
    switch (command.type) {
      case 'registerNode': {
        const known = this.nodes.get(command.node.nodeId)?.incarnation;
        const offered = isIdentityId(command.node.incarnation) ? command.node.incarnation : undefined;
        if (known !== undefined && offered !== undefined && offered !== known) return;
        const { incarnation: _ignored, ...addresses } = command.node;
        const incarnation = known ?? offered;
        this.nodes.set(
          command.node.nodeId,
          incarnation === undefined ? addresses : { ...addresses, incarnation },
        );
        return;
      }
      case 'unregisterNode':
        this.nodes.delete(command.nodeId);
        if (this.leaving?.nodeId === command.nodeId) this.leaving = null;
        return;
      case 'markLeaving': {
        if (!isNodeId(command.nodeId) || !isNodeId(command.byNodeId)) return;
        if (this.leaving !== null && this.leaving.nodeId !== command.nodeId) return;
        const sinceMs = this.leaving?.sinceMs ?? (Number.isFinite(command.atMs) ? command.atMs : 0);
        this.leaving = { nodeId: command.nodeId, byNodeId: command.byNodeId, sinceMs };
        return;
      }
      case 'clearLeaving':
        if (this.leaving?.nodeId === command.nodeId && this.leaving.byNodeId === command.byNodeId)
          this.leaving = null;
        return;
      case 'setClusterId':
        if (this.clusterId === null && isIdentityId(command.clusterId)) this.clusterId = command.clusterId;
        return;
      case 'createTopic': {
        if (this.topics.has(command.name)) return;
        this.topics.set(command.name, {
          name: command.name,
          retention: command.retention,
          createdAtMs: command.createdAtMs,
          segments: [
            {
              id: 1,
              baseOffset: 0,
              endOffset: null,
              leaderNodeId: command.leaderNodeId,
              replicas: replicaSet(command.leaderNodeId, command.replicas),
              epoch: openingEpoch,
            },
          ],
          cursors: new Map(),
          producers: [],
          replicationFactor: command.replicationFactor ?? null,
          ...(command.stream === undefined
            ? {}
            : { stream: { ...command.stream, accessedAtMs: command.createdAtMs, softDeleted: false } }),
        });
        return;
      }
      case 'deleteTopic':
        this.deleteWithForks(command.name);
        return;
      case 'closeStream': {
        const stream = this.topics.get(command.topic)?.stream;
        if (stream !== undefined) stream.closed = true;
        return;
      }
      case 'setStreamSeq': {
        const stream = this.topics.get(command.topic)?.stream;
        if (stream !== undefined && (stream.lastSeq === undefined || command.seq > stream.lastSeq))
          stream.lastSeq = command.seq;
        return;
      }
      case 'touchStream': {
        const stream = this.topics.get(command.topic)?.stream;
        if (stream !== undefined && command.atMs > stream.accessedAtMs) stream.accessedAtMs = command.atMs;
        return;
      }
      case 'softDeleteStream': {
        const stream = this.topics.get(command.topic)?.stream;
        if (stream === undefined) return;
        if (forksOf(this, command.topic).length === 0) this.deleteWithForks(command.topic);
        else stream.softDeleted = true;
        return;
      }
      case 'configureTopic': {
        const topic = this.topics.get(command.name);
        if (topic !== undefined) topic.retention = command.retention;
        return;
      }
      case 'sealSegment': {
        const topic = this.topics.get(command.topic);
        if (topic === undefined) return;
        const active = activeSegment(topic);
        if (active.id !== command.segmentId || command.endOffset < active.baseOffset) return;
        if (command.epoch !== undefined && command.epoch !== epochOf(active)) return;
        active.endOffset = command.endOffset;
        if (command.sizeBytes !== undefined) active.sizeBytes = command.sizeBytes;
        if (command.lastTimestampMs !== undefined) active.lastTimestampMs = command.lastTimestampMs;
        topic.producers = command.producers ?? [];
        topic.segments.push({
          id: active.id + 1,
          baseOffset: command.endOffset,
          endOffset: null,
          leaderNodeId: command.nextLeaderNodeId,
          replicas: replicaSet(command.nextLeaderNodeId, command.nextReplicas),
          epoch: openingEpoch,
        });
        return;
      }
      case 'fenceSegment': {
        const topic = this.topics.get(command.topic);
        if (topic === undefined) return;
        const active = activeSegment(topic);
        if (active.id !== command.segmentId || command.epoch !== epochOf(active) + 1) return;
        active.epoch = command.epoch;
        return;
      }
      case 'setReplicas': {
        const segment = this.topics.get(command.topic)?.segments.find((s) => s.id === command.segmentId);
        if (segment === undefined || !sameIds(replicasOf(segment), command.expected)) return;
        const next = replicaSet(command.replicas[0] ?? segment.leaderNodeId, command.replicas);
        // The leader of an active segment stays in its set: it alone may append.
        if (segment.endOffset === null && !next.includes(segment.leaderNodeId)) return;
        segment.replicas = next;
        return;
      }
      case 'dropSegments': {
        const topic = this.topics.get(command.topic);
        if (topic === undefined) return;
        const drop = new Set(command.segmentIds);
        // Only a prefix of sealed segments may go: never the active one, never a hole.
        let keepFrom = 0;
        while (keepFrom < topic.segments.length - 1 && drop.has(topic.segments[keepFrom]!.id)) keepFrom++;
        if (keepFrom > 0) topic.segments = topic.segments.slice(keepFrom);
        return;
      }
      case 'commitCursor': {
        const topic = this.topics.get(command.topic);
        if (topic === undefined) return;
        if (
          command.expectedOffset !== undefined &&
          (topic.cursors.get(command.consumer) ?? null) !== command.expectedOffset
        ) {
          this.refusedCommits.add(index);
          if (this.refusedCommits.size > refusedCommitCountMax)
            this.refusedCommits.delete(this.refusedCommits.values().next().value!);
          return;
        }
        topic.cursors.set(command.consumer, command.offset);
        return;
      }
      case 'deleteCursor':
        this.topics.get(command.topic)?.cursors.delete(command.consumer);
        return;
    }
  }

  /**
   * Deletes a topic; a soft-deleted DS source left with no fork goes too, and so on up the chain
   * (bounded by the chain's length: each step removes a topic).
   */
  private deleteWithForks(name: string): void {
    let next: string | undefined = name;
    while (next !== undefined) {
      const source: string | undefined = this.topics.get(next)?.stream?.forkOf?.topic;
      this.topics.delete(next);
      const parent: TopicMeta | undefined = source === undefined ? undefined : this.topics.get(source);
      next =
        parent?.stream?.softDeleted === true && forksOf(this, parent.name).length === 0
          ? parent.name
          : undefined;
    }
  }

  /** Whether the commitCursor applied at `index` was refused by its compare-and-set (recent indexes only). */
  cursorCommitRefused(index: number): boolean {
    return this.refusedCommits.has(index);
  }

  toSnapshot(): MetadataSnapshot {
    return {
      appliedIndex: this.appliedIndex,
      ...(this.clusterId === null ? {} : { clusterId: this.clusterId }),
      nodes: [...this.nodes.values()],
      ...(this.leaving === null ? {} : { leaving: { ...this.leaving } }),
      topics: [...this.topics.values()].map((t) => ({
        name: t.name,
        retention: t.retention,
        createdAtMs: t.createdAtMs,
        segments: t.segments.map((s) => ({ ...s, ...(s.replicas ? { replicas: [...s.replicas] } : {}) })),
        cursors: [...t.cursors.entries()],
        producers: t.producers,
        replicationFactor: t.replicationFactor,
        ...(t.stream === undefined ? {} : { stream: { ...t.stream } }),
      })),
    };
  }

  static fromSnapshot(snapshot: MetadataSnapshot): MetadataState {
    const state = new MetadataState();
    state.appliedIndex = snapshot.appliedIndex;
    if (snapshot.clusterId !== undefined) {
      assert.ok(isIdentityId(snapshot.clusterId), 'a snapshot holds a well-formed cluster id');
      state.clusterId = snapshot.clusterId;
    }
    for (const n of snapshot.nodes ?? []) {
      assert.ok(n.incarnation === undefined || isIdentityId(n.incarnation), 'a well-formed incarnation');
      state.nodes.set(n.nodeId, n);
    }
    if (snapshot.leaving !== undefined) {
      const { nodeId, byNodeId, sinceMs } = snapshot.leaving;
      assert.ok(
        isNodeId(nodeId) && isNodeId(byNodeId) && Number.isFinite(sinceMs),
        'a well-formed leaving mark',
      );
      state.leaving = { nodeId, byNodeId, sinceMs };
    }
    for (const t of snapshot.topics) {
      state.topics.set(t.name, {
        name: t.name,
        retention: t.retention,
        createdAtMs: t.createdAtMs,
        segments: t.segments.map((s) => ({ ...s, ...(s.replicas ? { replicas: [...s.replicas] } : {}) })),
        cursors: new Map(t.cursors),
        producers: t.producers ?? [],
        replicationFactor: t.replicationFactor ?? null,
        ...(t.stream === undefined ? {} : { stream: { ...t.stream } }),
      });
    }
    return state;
  }
}
