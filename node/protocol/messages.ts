/**
 * The typed messages of the binary protocol: what a request asks and what a reply answers.
 * The byte layout lives in binary-codec.ts and docs/protocol.md; this file is the contract that the
 * server (node/cluster), the client (node/client) and the gateway program against.
 *
 * Offsets are per-topic record indexes (0, 1, 2, …) and fit in a JS number (< 2^53).
 * Hot-path messages (append, read, consumer read) carry raw bytes; admin messages may carry JSON.
 */
import type { ErrorCode, LeaderHint } from './error-codes.js';

/** A record as a producer sends it. */
export interface RecordInput {
  readonly value: Uint8Array;
  /** Optional string headers; names and values are UTF-8. */
  readonly headers?: Readonly<Record<string, string>>;
}

/** A record as stored and read back. */
export interface StoredRecord {
  readonly offset: number;
  /** Milliseconds since the Unix epoch, set by the segment leader when it appended the record. */
  readonly timestampMs: number;
  readonly headers: Readonly<Record<string, string>>;
  readonly value: Uint8Array;
}

/** Retention settings of a topic; null means "no limit of this kind". */
export interface RetentionSettings {
  readonly retentionMs: number | null;
  readonly retentionBytes: number | null;
}

/**
 * How many copies an append waits for before it is acknowledged: 'quorum' (the default) once a
 * majority of the active segment's replica set holds the batch durable, 'leader' once the segment
 * leader alone has it durable (lower latency; a leader lost before its followers caught up may take
 * the batch with it).
 */
export type AppendAcks = 'leader' | 'quorum';

/** Largest replica set of a segment, and so the largest replication factor of a topic. */
export const replicationFactorMax = 7;

export interface SegmentInfo {
  readonly id: number;
  readonly baseOffset: number;
  /** Exclusive end for sealed segments; for the active segment, the next offset to be given. */
  readonly endOffset: number;
  readonly sealed: boolean;
  readonly leaderNodeId: number;
  /** The nodes holding a copy, the leader first (at most replicationFactorMax). */
  readonly replicas: readonly number[];
  /** The segment's fence epoch (1 when it opens; a recovery raises it). */
  readonly epoch: number;
}

export interface TopicInfo {
  readonly name: string;
  readonly retention: RetentionSettings;
  /** First offset still stored (retention may have deleted older ones). */
  readonly startOffset: number;
  /** Next offset to be given (the high watermark: all offsets below it are readable or deleted). */
  readonly endOffset: number;
  readonly currentSegmentId: number;
  readonly leaderNodeId: number;
  readonly segments: readonly SegmentInfo[];
  readonly createdAtMs: number;
  /**
   * Copies of each new segment: the topic's own setting or, when it has none, the cluster default
   * the node computes (min(3, voters)). 1..replicationFactorMax.
   */
  readonly replicationFactor: number;
  /**
   * Segments (sealed or active) whose replica set has fewer members than the replication factor
   * or holds a node that is no longer a voter: the copies repair has yet to make.
   */
  readonly underReplicatedSegmentCount: number;
}

export interface ConsumerInfo {
  readonly topic: string;
  readonly consumer: string;
  /** The next offset this consumer will read. */
  readonly offset: number;
}

/** Requests, discriminated by `op`. */
export type Request =
  | { readonly op: 'ping' }
  | {
      readonly op: 'createTopic';
      readonly topic: string;
      readonly retention?: Partial<RetentionSettings>;
      /** Copies of each segment, 1..replicationFactorMax; absent (or 0): the cluster default. */
      readonly replicationFactor?: number;
    }
  | { readonly op: 'describeTopic'; readonly topic: string }
  /** Durable Streams metadata of a topic (create, get, delete, touch, producer state); JSON bodies. */
  | { readonly op: 'stream'; readonly topic: string; readonly action: StreamAction }
  | { readonly op: 'listTopics' }
  | { readonly op: 'deleteTopic'; readonly topic: string }
  | { readonly op: 'configureTopic'; readonly topic: string; readonly retention: Partial<RetentionSettings> }
  | {
      readonly op: 'append';
      readonly topic: string;
      readonly records: readonly RecordInput[];
      /** Idempotent producer: with producerSeq, a retried batch is answered with its first offsets, not re-appended. */
      readonly producerId?: string;
      /** Sequence number of this batch for producerId; must be last + 1 (or equal to last for a retry). */
      readonly producerSeq?: number;
      /** Conditional append: fails with OFFSET_MISMATCH unless the topic's next offset equals this. */
      readonly expectedOffset?: number;
      /** When the append is acknowledged; absent: 'quorum'. */
      readonly acks?: AppendAcks;
      /**
       * The sender routes by itself: a node that does not lead the topic's active segment answers
       * NOT_LEADER with the leader's address instead of forwarding the append there (one hop less
       * for every later append; the cluster client sets it). Absent: the node forwards.
       */
      readonly noForward?: boolean;
      /**
       * A Durable Streams producer epoch (with producerId and producerSeq): a higher epoch fences
       * the lower ones (PRODUCER_FENCED) and restarts the sequence at 0; within an epoch a
       * sequence at or below the last is a duplicate. Absent: the plain rule above.
       */
      readonly producerEpoch?: number;
      /**
       * Close the topic after these records (which may be none): later appends are refused with
       * STREAM_CLOSED. A close with no records answers firstOffset = lastOffset = the final end.
       */
      readonly close?: boolean;
      /**
       * A Durable Streams writer's Stream-Seq: refused with SEQUENCE_MISMATCH unless above the
       * stream's last one (compared as strings); at most 255 UTF-8 bytes.
       */
      readonly streamSeq?: string;
    }
  | {
      readonly op: 'read';
      readonly topic: string;
      readonly offset: number;
      readonly recordCountMax: number;
      readonly byteCountMax: number;
      /** Long poll: when nothing is at `offset` yet, wait up to this long for records (0 = answer at once). */
      readonly waitMs: number;
    }
  | { readonly op: 'offsetForTimestamp'; readonly topic: string; readonly timestampMs: number }
  /**
   * Node to node: the first offset at or after timestampMs among the asked node's own segments of
   * the topic (offsetForTimestamp asks every node that leads one and takes the least).
   */
  | { readonly op: 'localOffsetForTimestamp'; readonly topic: string; readonly timestampMs: number }
  | {
      readonly op: 'consumerReadNext';
      readonly topic: string;
      readonly consumer: string;
      readonly recordCountMax: number;
      readonly byteCountMax: number;
      /** When true the cursor moves past the returned records durably before the reply is sent. */
      readonly autoCommit: boolean;
    }
  | {
      readonly op: 'consumerCommit';
      readonly topic: string;
      readonly consumer: string;
      readonly offset: number;
      /**
       * Compare-and-set: the commit takes effect only while the cursor is at this offset (the one
       * the caller read from), else it fails OFFSET_MISMATCH and changes nothing; a cursor already
       * at `offset` answers success (a retried commit). A commit that arrives late (its connection
       * failed, a retry, a delayed forward) can then never move the cursor back. Absent: a plain
       * set, which may move it anywhere (a seek).
       */
      readonly expectedOffset?: number;
    }
  | { readonly op: 'consumerGet'; readonly topic: string; readonly consumer: string }
  /** The topic's named consumers and their cursors, by name (at most protocolLimits.consumerListCountMax). */
  | { readonly op: 'consumerList'; readonly topic: string }
  /** Forgets a consumer's cursor; `deleted` is false when it had none. */
  | { readonly op: 'consumerDelete'; readonly topic: string; readonly consumer: string }
  | { readonly op: 'metrics' }
  | { readonly op: 'state'; readonly topic: string }
  /** Admin: removes a member from the cluster (the Raft leader too: it steps down). */
  | { readonly op: 'removeNode'; readonly nodeId: number }
  /** Node to node: seal the active segments this node leads so that `nodeId` (leaving) leads none. */
  | { readonly op: 'handOff'; readonly nodeId: number }
  /** Admin: the Raft leader hands its leadership to voter `nodeId` (walrus-cli transfer-leader). */
  | { readonly op: 'transferLeader'; readonly nodeId: number }
  /**
   * The first request on a client port that has tokens (docs/protocol.md "Authentication"): proves
   * one of the node's client tokens. Until it succeeds every other request is refused
   * UNAUTHENTICATED and the connection closed.
   */
  | { readonly op: 'authenticate'; readonly token: string }
  /**
   * Node to node, on the Raft leader: node `nodeId` is shutting down (SIGTERM); placement passes it
   * over until it is seen down (or for `controllerLimits.stoppingMarkMsMax`).
   */
  | { readonly op: 'nodeStopping'; readonly nodeId: number };

export type RequestOp = Request['op'];

/** A Durable Streams stream's metadata as the node keeps it (node/metadata/metadata-state.ts). */
export interface StreamSettings {
  /** The DS path (after /v1/stream/), exactly as the client sent it; the topic name is derived from it. */
  readonly path: string;
  readonly contentType: string;
  /** Sliding time to live in seconds (renewed by reads and appends), or null. */
  readonly ttlSeconds: number | null;
  /** Absolute expiry (ms since the epoch), or null. */
  readonly expiresAtMs: number | null;
  /**
   * The topic this one was forked from and the source position where inherited data stops;
   * `subOffset` is the DS Stream-Fork-Sub-Offset the fork was made with (0: none), kept so a
   * repeated create can be compared.
   */
  readonly forkOf: { readonly topic: string; readonly offset: number; readonly subOffset?: number } | null;
}

export interface StreamInfo extends StreamSettings {
  readonly topic: string;
  readonly closed: boolean;
  /** Deleted while forks still read from it: gone for clients, kept for the forks. */
  readonly softDeleted: boolean;
  readonly createdAtMs: number;
  /** The topic's first stored and next offsets (its own offsets, before any fork shift). */
  readonly startOffset: number;
  readonly endOffset: number;
}

export type StreamAction =
  | ({ readonly kind: 'create'; readonly closed?: boolean } & StreamSettings)
  | { readonly kind: 'get' }
  | { readonly kind: 'delete' }
  /** Renews a sliding TTL (reads and appends do it through the gateway). */
  | { readonly kind: 'touch' }
  /** The producer's current epoch and last sequence on this topic (null: unknown producer). */
  | { readonly kind: 'producer'; readonly producerId: string };

export interface StreamReply {
  /** null: no stream (or it expired). */
  readonly stream: StreamInfo | null;
  /** create: whether this call created it. */
  readonly created?: boolean;
  readonly producer?: { readonly epoch: number; readonly seq: number } | null;
}

/** Successful replies, by op. */
export interface ResponseByOp {
  ping: { readonly nodeId: number };
  createTopic: { readonly created: boolean; readonly topic: TopicInfo };
  describeTopic: { readonly topic: TopicInfo };
  stream: StreamReply;
  listTopics: { readonly topics: readonly TopicInfo[] };
  deleteTopic: { readonly deleted: boolean };
  configureTopic: { readonly topic: TopicInfo };
  append: {
    readonly firstOffset: number;
    readonly lastOffset: number;
    readonly timestampMs: number;
    /** True when this was a retry of an already-appended producer batch. */
    readonly duplicate: boolean;
    /**
     * What was achieved: 'quorum' when a majority of the segment's replica set holds the batch
     * durable, 'leader' when only the leader was waited for (asked with acks 'leader'). A decoded
     * reply always carries it. On the node it is optional until the appender sets it: the encoder
     * writes 'quorum' for a reply without it, which is what a segment whose replica set is its
     * leader alone achieves.
     */
    readonly acks?: AppendAcks;
  };
  read: {
    readonly records: readonly StoredRecord[];
    /** Offset to ask for next. */
    readonly nextOffset: number;
    /** First stored offset and the high watermark at the time of the read. */
    readonly startOffset: number;
    readonly endOffset: number;
  };
  offsetForTimestamp: { readonly offset: number };
  /** null when no record of this node's segments of the topic is at or after the time. */
  localOffsetForTimestamp: { readonly offset: number | null };
  consumerReadNext: {
    readonly records: readonly StoredRecord[];
    readonly nextOffset: number;
    /** The topic's end (high watermark) when the records were read, as its active segment's leader knows it. */
    readonly endOffset: number;
  };
  consumerCommit: { readonly consumer: ConsumerInfo };
  consumerGet: { readonly consumer: ConsumerInfo };
  consumerList: { readonly consumers: readonly ConsumerInfo[] };
  consumerDelete: { readonly deleted: boolean };
  /** Seed 002's METRICS JSON object, passed through as parsed JSON. */
  metrics: { readonly metrics: unknown };
  /** Seed 002's STATE JSON object. */
  state: { readonly state: unknown };
  removeNode: { readonly removed: boolean };
  handOff: { readonly handedOff: number };
  /** The Raft leader once the transfer is done (the asked voter). */
  transferLeader: { readonly leaderId: number };
  /** The scopes the token grants (read, write, admin). */
  authenticate: { readonly scopes: readonly string[] };
  nodeStopping: { readonly marked: boolean };
}

export type ResponseOf<Op extends RequestOp> = ResponseByOp[Op];

/** An error reply. */
export interface ErrorReply {
  readonly code: ErrorCode;
  readonly message: string;
  readonly leaderHint?: LeaderHint;
}
