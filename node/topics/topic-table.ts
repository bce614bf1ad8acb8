/**
 * The topic table: the runtime state of each topic that is not metadata (the acknowledged end,
 * a rollover in progress, long-poll waiters, idempotent producers, consumer locks), shared by the
 * appender, the reader, the consumers and the reconciler. Also the lookups they all make: the
 * topic's metadata (TOPIC_NOT_FOUND when absent), the segment holding an offset, and the
 * NOT_LEADER error with a hint.
 */
import { ErrorCode, WalrusError, isErrorCode } from '../protocol/error-codes.js';
import type { ResponseByOp } from '../protocol/messages.js';
import { assertTopicName } from '../protocol/topic-name.js';
import type { SegmentMeta, TopicMeta } from '../metadata/metadata-state.js';
import type { MetadataService } from './ports.js';
import type { SegmentReplicator } from './segment-replicator.js';

export interface Waiter {
  readonly offset: number;
  readonly wake: () => void;
}

export interface ProducerState {
  readonly seq: number;
  /** A Durable Streams producer's epoch (absent: a plain idempotent producer, epoch 0). */
  readonly epoch?: number;
  readonly result: Promise<ResponseByOp['append']>;
  /** Set once the batch is acknowledged (what a seal hands to the next segment leader). */
  done?: ResponseByOp['append'];
}

/** Per-topic runtime state that is not metadata. */
export interface TopicRuntime {
  /** Records below this offset are acknowledged and visible. */
  committedEnd: number;
  /** Set while a rollover runs; appends wait for it. */
  rolling: Promise<void> | null;
  readonly waiters: Set<Waiter>;
  readonly producers: Map<string, ProducerState>;
  /**
   * The rebuild of `producers` from the active segment's records after a restart, deferred until
   * the table is first used (producers.ts `settleProducerRestore`): run at start-up for every topic,
   * it read every active segment whole, and the restart took as long as the data took to read.
   */
  producerRestore: (() => void) | null;
  /** Serialises read-next + commit per consumer so two readers never get the same records. */
  readonly consumerLocks: Map<string, Promise<unknown>>;
  /** Set while this node creates the WAL file of a segment it now leads; appends wait for it. */
  segmentReady: Promise<void> | null;
  /** The replication of the active segment, while this node leads it and its local copy is open. */
  replicator: SegmentReplicator | null;
  /** A segment whose seal this node proposed without learning the outcome: no append goes into it. */
  sealInDoubt: number | null;
  /**
   * Set on the segment leader by an append that closes the stream, before its records go to the
   * WAL: later appends are refused at once, before the closeStream command is applied.
   */
  closing?: boolean;
  /** The last Stream-Seq this segment leader accepted (ahead of the metadata's until applied). */
  streamSeq?: string;
}

export function toWalrusError(error: unknown): WalrusError {
  if (error instanceof WalrusError) return error;
  const code = (error as { code?: unknown } | null)?.code;
  const message = error instanceof Error ? error.message : String(error);
  if (isErrorCode(code)) return new WalrusError(code, message, { cause: error });
  return new WalrusError(ErrorCode.INTERNAL, message, { cause: error });
}

/** The segment whose range holds `offset`, if any (the active one holds everything from its base). */
export function segmentOf(topic: TopicMeta, offset: number): SegmentMeta | undefined {
  return topic.segments.find((s) => offset >= s.baseOffset && (s.endOffset === null || offset < s.endOffset));
}

export class TopicTable {
  readonly nodeId: number;
  private readonly meta: MetadataService;
  private readonly runtimes = new Map<string, TopicRuntime>();
  /** WAL data being deleted (a deleted topic, segments retention dropped); a new segment waits for it. */
  readonly deleting = new Map<string, Promise<void>>();

  constructor(nodeId: number, meta: MetadataService) {
    this.nodeId = nodeId;
    this.meta = meta;
  }

  /** The topic's metadata as applied on this node; TOPIC_NOT_FOUND when it holds none. */
  topic(name: string): TopicMeta {
    // A name the metadata holds was checked when the topic was created: only a miss checks it
    // (an append looked its topic up three times, each with the name pattern).
    const topic = this.meta.state.topics.get(name);
    if (topic !== undefined) return topic;
    assertTopicName(name);
    throw new WalrusError(ErrorCode.TOPIC_NOT_FOUND, `topic '${name}' does not exist`);
  }

  runtime(name: string): TopicRuntime {
    const rt = this.runtimes.get(name);
    if (rt === undefined) throw new WalrusError(ErrorCode.TOPIC_NOT_FOUND, `topic '${name}' does not exist`);
    return rt;
  }

  find(name: string): TopicRuntime | undefined {
    return this.runtimes.get(name);
  }

  /** The topic's runtime, made with `committedEnd` if it has none yet. */
  ensure(name: string, committedEnd: number): TopicRuntime {
    let rt = this.runtimes.get(name);
    if (rt === undefined) {
      rt = {
        committedEnd,
        rolling: null,
        waiters: new Set(),
        producers: new Map(),
        producerRestore: null,
        consumerLocks: new Map(),
        segmentReady: null,
        replicator: null,
        sealInDoubt: null,
      };
      this.runtimes.set(name, rt);
    }
    return rt;
  }

  /** Forgets a topic's runtime and wakes its long polls (they then answer TOPIC_NOT_FOUND). */
  remove(name: string): void {
    const rt = this.runtimes.get(name);
    this.runtimes.delete(name);
    if (rt) for (const w of rt.waiters) w.wake();
    rt?.replicator?.stop(null);
  }

  names(): string[] {
    return [...this.runtimes.keys()];
  }

  values(): TopicRuntime[] {
    return [...this.runtimes.values()];
  }

  notLeader(what: string, leaderNodeId: number): WalrusError {
    return new WalrusError(
      ErrorCode.NOT_LEADER,
      `node ${this.nodeId} does not lead ${what}; node ${leaderNodeId} does`,
      {
        leaderHint: {
          nodeId: leaderNodeId,
          clientAddr: this.meta.state.nodes.get(leaderNodeId)?.clientAddr ?? '',
        },
      },
    );
  }
}

/** Wakes the long polls waiting for an offset that is now acknowledged. */
export function wakeWaiters(rt: TopicRuntime): void {
  for (const waiter of rt.waiters) {
    if (waiter.offset < rt.committedEnd) waiter.wake();
  }
}
