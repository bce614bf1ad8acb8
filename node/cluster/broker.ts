/**
 * The data service of a node: topics over the WAL, rollover, retention, consumer cursors and
 * long-poll reads. Metadata changes (topics, seals, cursors) go through the metadata log and are
 * applied only once durable; record data goes to the WAL.
 *
 * Why reads are capped at `committedEnd`: a record is visible only once its append was
 * acknowledged (durable under the fsync policy), so no reader ever sees a record that a crash
 * could take back.
 *
 * Rollover follows the fix to Walrus: once the active segment holds
 * `segmentEntryCountMax` records, new appends wait, the WAL seals the segment after every accepted
 * append is durable, and the seal is logged with that exact count. No acknowledged entry can land
 * in a segment after its count was taken.
 */
import assert from 'node:assert/strict';
import { walLimits } from '../wal/limits.js';
import type { Wal, WalRecord } from '../wal/index.js';
import { protocolLimits } from '../protocol/limits.js';
import { ErrorCode, WalrusError, isErrorCode } from '../protocol/error-codes.js';
import type {
  RecordInput,
  Request,
  RequestOp,
  ResponseByOp,
  StoredRecord,
  TopicInfo,
} from '../protocol/messages.js';
import { assertTopicName } from '../protocol/topic-name.js';
import {
  type MetaCommand,
  type MetadataState,
  type ProducerEntry,
  type Retention,
  type SegmentMeta,
  type TopicMeta,
  activeSegment,
  metadataLimits,
  topicStartOffset,
} from './metadata-state.js';

/**
 * The header the broker adds to the last record of an idempotent producer's batch: `[producerId,
 * producerSeq, recordCount]` as JSON. A leader that restarts rebuilds its producers from it, so a
 * retry after a crash is still answered as a duplicate. Names starting with NUL are refused at the
 * protocol boundary, and the header is taken off every record read.
 */
export const producerHeaderName = '\u0000walrus.producer';

assert(
  walLimits.headerCountMax > protocolLimits.recordHeaderCountMax,
  'the WAL must take one header more than a client may send: the producer header',
);

export const brokerLimits = {
  /** Long-poll reads waiting on one topic; beyond it a read answers at once. */
  waiterCountMaxPerTopic: 10_000,
  /** Longest long poll a client may ask for. */
  waitMsMax: 60_000,
  /** Idempotent producers remembered per topic (oldest forgotten first). */
  producerCountMaxPerTopic: 10_000,
  /** Records and bytes per read while a restarted leader rebuilds its producers. */
  producerScanPageRecordCount: 10_000,
  producerScanPageBytes: 16 * 1024 * 1024,
  /** Consumer name length. */
  consumerNameLengthMax: 200,
  /** Producers handed to the next segment leader at a seal (the most recent ones). */
  producerCountMaxInSeal: 1_000,
  /** Rollovers an append waits through before it gives up with UNAVAILABLE. */
  rolloverWaitCountMax: 8,
} as const;

/** The consumer that the Walrus `GET <topic>` command reads through. */
export const sharedConsumerName = 'shared';

export interface BrokerLogger {
  info(obj: object, msg: string): void;
  warn(obj: object, msg: string): void;
  error(obj: object, msg: string): void;
}

/** Where metadata commands are committed: the node's own log, or Raft. */
export interface MetadataService {
  readonly state: MetadataState;
  /** Commits the command and resolves with its index once it is applied on this node. */
  propose(command: MetaCommand): Promise<number>;
}

/** What the broker needs to know of the cluster (a node alone answers for itself). */
export interface ClusterView {
  /** Raft leader id, 0 when none is known. */
  raftLeaderId(): number;
  /** Voters, ascending. */
  voters(): number[];
  /** Voters heard from within an election timeout (this node included). */
  aliveVoters(): number[];
  /** Removes a member through Raft (configuration change, then its addresses). */
  removeNode(nodeId: number): Promise<boolean>;
  /** Resolves once this node has applied what the Raft leader has (read-your-writes after forwarding). */
  catchUpWithLeader(): Promise<void>;
  /** Sends a client request to another node to execute there (never forwarded again). */
  forward<Op extends RequestOp>(
    nodeId: number,
    request: Extract<Request, { op: Op }>,
  ): Promise<ResponseByOp[Op]>;
}

export interface BrokerOptions {
  readonly nodeId: number;
  readonly wal: Wal;
  readonly meta: MetadataService;
  readonly cluster: ClusterView;
  readonly segmentEntryCountMax: number;
  readonly retentionDefault: Retention;
  readonly nowMs: () => number;
  readonly logger: BrokerLogger;
}

interface Waiter {
  readonly offset: number;
  readonly wake: () => void;
}

interface ProducerState {
  readonly seq: number;
  readonly result: Promise<ResponseByOp['append']>;
  /** Set once the batch is acknowledged (what a seal hands to the next segment leader). */
  done?: ResponseByOp['append'];
}

/** Per-topic runtime state that is not metadata. */
interface TopicRuntime {
  /** Records below this offset are acknowledged and visible. */
  committedEnd: number;
  /** Set while a rollover runs; appends wait for it. */
  rolling: Promise<void> | null;
  readonly waiters: Set<Waiter>;
  readonly producers: Map<string, ProducerState>;
  /** Serialises read-next + commit per consumer so two readers never get the same records. */
  readonly consumerLocks: Map<string, Promise<unknown>>;
  /** Set while this node creates the WAL file of a segment it now leads; appends wait for it. */
  segmentReady: Promise<void> | null;
}

const consumerNamePattern = /^[A-Za-z0-9._-]{1,200}$/;

export function toWalrusError(error: unknown): WalrusError {
  if (error instanceof WalrusError) return error;
  const code = (error as { code?: unknown } | null)?.code;
  const message = error instanceof Error ? error.message : String(error);
  if (isErrorCode(code)) return new WalrusError(code, message, { cause: error });
  return new WalrusError(ErrorCode.INTERNAL, message, { cause: error });
}

/** The batch with the producer header on its last record (a copy; the caller's records are kept). */
function withProducerHeader(
  records: readonly RecordInput[],
  producerId: string,
  producerSeq: number,
): RecordInput[] {
  const copy = records.slice();
  const last = copy[copy.length - 1]!;
  copy[copy.length - 1] = {
    ...last,
    headers: {
      ...last.headers,
      [producerHeaderName]: JSON.stringify([producerId, producerSeq, records.length]),
    },
  };
  return copy;
}

function withoutProducerHeader(record: WalRecord): StoredRecord {
  const headers: Record<string, string> = {};
  for (const [name, value] of Object.entries(record.headers))
    if (name !== producerHeaderName) headers[name] = value;
  return { ...record, headers };
}

/** `[producerId, producerSeq, recordCount]`, or null when the header is not one the broker wrote. */
function parseProducerHeader(value: string): [string, number, number] | null {
  try {
    const parsed = JSON.parse(value) as unknown;
    if (
      Array.isArray(parsed) &&
      parsed.length === 3 &&
      typeof parsed[0] === 'string' &&
      Number.isSafeInteger(parsed[1]) &&
      Number.isSafeInteger(parsed[2]) &&
      (parsed[2] as number) >= 1
    )
      return parsed as [string, number, number];
  } catch {
    // Not JSON: not ours.
  }
  return null;
}

export class Broker {
  private readonly options: BrokerOptions;
  private readonly wal: Wal;
  private readonly meta: MetadataService;
  private readonly runtimes = new Map<string, TopicRuntime>();
  private monitorTimer: NodeJS.Timeout | null = null;
  private monitorRunning = false;
  /** Topic creations this node is proposing, so concurrent creates of one name answer once. */
  private readonly creating = new Map<string, Promise<void>>();

  constructor(options: BrokerOptions) {
    this.options = options;
    this.wal = options.wal;
    this.meta = options.meta;
  }

  /** Brings the WAL and the metadata into agreement after a crash at any point of a change. */
  async recover(): Promise<void> {
    const { wal, meta, logger } = this;
    for (const name of wal.topics()) {
      if (!meta.state.topics.has(name)) {
        logger.warn({ topic: name }, 'Removing WAL data of a topic the metadata does not hold');
        await wal.deleteTopic(name);
      }
    }
    for (const topic of meta.state.topics.values()) {
      const leads = activeSegment(topic).leaderNodeId === this.options.nodeId;
      if (leads) await this.repairTopic(topic);
      const rt = this.newRuntime(this.localEnd(topic));
      if (leads) {
        this.takeOverProducers(topic, rt);
        this.restoreProducers(topic, rt);
      }
      this.runtimes.set(topic.name, rt);
    }
  }

  /** The producers the previous segment's leader handed over when it sealed (newer knowledge wins). */
  private takeOverProducers(topic: TopicMeta, rt: TopicRuntime): void {
    for (const [id, seq, firstOffset, lastOffset, timestampMs] of topic.producers) {
      const known = rt.producers.get(id);
      if (known !== undefined && known.seq >= seq) continue;
      this.rememberProducer(rt, id, seq, { firstOffset, lastOffset, timestampMs, duplicate: false });
    }
  }

  /** Rebuilds the producers of the active segment from the producer headers of its records. */
  private restoreProducers(topic: TopicMeta, rt: TopicRuntime): void {
    const active = activeSegment(topic);
    if (!this.wal.segments(topic.name).some((s) => s.id === active.id)) return;
    let restored = 0;
    for (let offset = active.baseOffset; offset < rt.committedEnd; ) {
      const page = this.wal.read(topic.name, offset, {
        recordCountMax: brokerLimits.producerScanPageRecordCount,
        byteCountMax: brokerLimits.producerScanPageBytes,
      });
      if (page.length === 0) break;
      for (const r of page) {
        const tag = r.headers[producerHeaderName];
        if (tag === undefined) continue;
        const parsed = parseProducerHeader(tag);
        if (parsed === null) continue;
        const [id, seq, count] = parsed;
        const done = {
          firstOffset: r.offset - count + 1,
          lastOffset: r.offset,
          timestampMs: r.timestampMs,
          duplicate: false,
        };
        this.rememberProducer(rt, id, seq, done);
        restored += 1;
      }
      offset = page[page.length - 1]!.offset + 1;
    }
    if (restored > 0)
      this.logger.info(
        { topic: topic.name, batches: restored, producers: rt.producers.size },
        'Restored idempotent producers',
      );
  }

  /** Records an acknowledged producer batch, most recent last, bounded. */
  private rememberProducer(rt: TopicRuntime, id: string, seq: number, done: ResponseByOp['append']): void {
    rt.producers.delete(id);
    rt.producers.set(id, { seq, result: Promise.resolve(done), done });
    if (rt.producers.size > brokerLimits.producerCountMaxPerTopic) {
      const oldest = rt.producers.keys().next().value;
      if (oldest !== undefined) rt.producers.delete(oldest);
    }
  }

  /** The acknowledged end of the active segment when this node leads it (else its base). */
  private localEnd(topic: TopicMeta): number {
    const active = activeSegment(topic);
    if (active.leaderNodeId !== this.options.nodeId) return active.baseOffset;
    return this.wal.segments(topic.name).some((s) => s.id === active.id)
      ? this.wal.endOffset(topic.name)
      : active.baseOffset;
  }

  /**
   * Called after each metadata command is applied on this node (replays included): creates the WAL
   * segment this node now leads, removes data of deleted topics and dropped segments.
   */
  onApply(command: MetaCommand): void {
    const self = this.options.nodeId;
    switch (command.type) {
      case 'createTopic':
      case 'sealSegment': {
        const name = command.type === 'createTopic' ? command.name : command.topic;
        const topic = this.meta.state.topics.get(name);
        if (topic === undefined) return;
        let rt = this.runtimes.get(name);
        if (rt === undefined) {
          rt = this.newRuntime(activeSegment(topic).baseOffset);
          this.runtimes.set(name, rt);
        }
        const active = activeSegment(topic);
        if (active.leaderNodeId !== self) return;
        this.takeOverProducers(topic, rt);
        // The WAL file is created by the first append (ensureLocalSegment): creating a topic costs
        // one Raft commit, not a file, an index and four fsyncs on the segment's node.
        rt.committedEnd = Math.max(rt.committedEnd, active.baseOffset);
        return;
      }
      case 'deleteTopic': {
        const rt = this.runtimes.get(command.name);
        this.runtimes.delete(command.name);
        if (rt) for (const w of rt.waiters) w.wake();
        if (this.wal.topics().includes(command.name)) {
          void this.wal.deleteTopic(command.name).catch((error: unknown) => {
            this.logger.error(
              { topic: command.name, err: String(error) },
              'could not delete WAL data of a deleted topic',
            );
          });
        }
        return;
      }
      default:
        return;
    }
  }

  /**
   * Run on the Raft leader before it proposes a command: the leader alone knows which voters are
   * alive, so it re-chooses the next segment leader of a seal (a follower that sealed its segment
   * cannot tell a dead voter from a quiet one).
   */
  prepareProposal(command: MetaCommand): MetaCommand {
    if (command.type !== 'sealSegment') return command;
    const topic = this.meta.state.topics.get(command.topic);
    const active = topic === undefined ? undefined : activeSegment(topic);
    if (active === undefined || active.id !== command.segmentId) return command;
    const next = this.nextSegmentLeader(active.leaderNodeId);
    return next === command.nextLeaderNodeId ? command : { ...command, nextLeaderNodeId: next };
  }

  /**
   * Creates the WAL segment of the active segment this node leads if it does not exist yet (a
   * new topic, or leadership that came with a rollover): first seals a WAL segment of the topic
   * still open here. Returns null when the segment is there, else the promise to wait on.
   */
  private ensureLocalSegment(name: string, rt: TopicRuntime): Promise<void> | null {
    if (rt.segmentReady !== null) return rt.segmentReady;
    const active = activeSegment(this.topicMeta(name));
    if (this.wal.segments(name).some((s) => s.id === active.id)) return null;
    const ready = (async () => {
      if (this.wal.segments(name).some((s) => !s.sealed)) await this.wal.sealActive(name);
      await this.wal.createSegment(name, active.id, active.baseOffset);
      rt.committedEnd = Math.max(rt.committedEnd, active.baseOffset);
      this.logger.info(
        { topic: name, segment: active.id, baseOffset: active.baseOffset },
        'Leading new segment',
      );
    })()
      .catch((error: unknown) => {
        this.logger.error(
          { topic: name, err: String(error) },
          'could not create the WAL segment this node leads',
        );
      })
      .finally(() => {
        if (rt.segmentReady === ready) rt.segmentReady = null;
      });
    rt.segmentReady = ready;
    return ready;
  }

  /** The node that must execute a client request (this node, or where it is forwarded). */
  routeOf(request: Request): number {
    const self = this.options.nodeId;
    const raftLeader = (): number => this.options.cluster.raftLeaderId() || self;
    switch (request.op) {
      case 'createTopic':
      case 'deleteTopic':
      case 'configureTopic':
      case 'consumerReadNext':
      case 'consumerCommit':
      case 'consumerGet':
      case 'removeNode':
        return raftLeader();
      case 'append':
      case 'describeTopic':
      case 'state': {
        const topic = this.meta.state.topics.get(request.topic);
        return topic === undefined ? self : activeSegment(topic).leaderNodeId;
      }
      case 'read': {
        const topic = this.meta.state.topics.get(request.topic);
        if (topic === undefined) return self;
        return (this.segmentOf(topic, request.offset) ?? activeSegment(topic)).leaderNodeId;
      }
      default:
        return self;
    }
  }

  private segmentOf(topic: TopicMeta, offset: number): SegmentMeta | undefined {
    return topic.segments.find(
      (s) => offset >= s.baseOffset && (s.endOffset === null || offset < s.endOffset),
    );
  }

  private notLeader(what: string, leaderNodeId: number): WalrusError {
    return new WalrusError(
      ErrorCode.NOT_LEADER,
      `node ${this.options.nodeId} does not lead ${what}; node ${leaderNodeId} does`,
      {
        leaderHint: {
          nodeId: leaderNodeId,
          clientAddr: this.meta.state.nodes.get(leaderNodeId)?.clientAddr ?? '',
        },
      },
    );
  }

  /** The state the metadata holds (for the driver's wiring and METRICS). */
  get metadata(): MetadataState {
    return this.meta.state;
  }

  private get logger(): BrokerLogger {
    return this.options.logger;
  }

  private newRuntime(committedEnd: number): TopicRuntime {
    return {
      committedEnd,
      rolling: null,
      waiters: new Set(),
      producers: new Map(),
      consumerLocks: new Map(),
      segmentReady: null,
    };
  }

  /** Finishes a rollover or a topic creation that a crash interrupted; drops retention leftovers. */
  private async repairTopic(topic: TopicMeta): Promise<void> {
    const active = activeSegment(topic);
    const walActive = this.wal.segments(topic.name).find((s) => s.id === active.id);
    if (walActive?.sealed) {
      await this.meta.propose({
        type: 'sealSegment',
        topic: topic.name,
        segmentId: active.id,
        endOffset: walActive.endOffset,
        nextLeaderNodeId: this.nextSegmentLeader(active.leaderNodeId),
      });
      this.logger.warn({ topic: topic.name, segment: active.id }, 'Completed an interrupted rollover');
    }
    // The active segment's WAL file, if missing, is created by the next append (ensureLocalSegment).
    const present = new Set(this.wal.segments(topic.name).map((s) => s.id));
    const missing = topic.segments
      .filter((s) => s.endOffset !== null && s.leaderNodeId === this.options.nodeId && !present.has(s.id))
      .map((s) => s.id);
    if (missing.length > 0)
      await this.meta.propose({ type: 'dropSegments', topic: topic.name, segmentIds: missing });
  }

  private topicMeta(name: string): TopicMeta {
    assertTopicName(name);
    const topic = this.meta.state.topics.get(name);
    if (topic === undefined)
      throw new WalrusError(ErrorCode.TOPIC_NOT_FOUND, `topic '${name}' does not exist`);
    return topic;
  }

  private runtime(name: string): TopicRuntime {
    const rt = this.runtimes.get(name);
    if (rt === undefined) throw new WalrusError(ErrorCode.TOPIC_NOT_FOUND, `topic '${name}' does not exist`);
    return rt;
  }

  private async propose(command: MetaCommand): Promise<void> {
    try {
      await this.meta.propose(command);
    } catch (error) {
      throw toWalrusError(error);
    }
  }

  topicInfo(topic: TopicMeta): TopicInfo {
    const end = this.knownEnd(topic);
    const active = activeSegment(topic);
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
      })),
      createdAtMs: topic.createdAtMs,
    };
  }

  async createTopic(name: string, retention?: Partial<Retention>): Promise<ResponseByOp['createTopic']> {
    assertTopicName(name);
    const wanted: Retention = {
      retentionMs:
        retention?.retentionMs !== undefined
          ? retention.retentionMs
          : this.options.retentionDefault.retentionMs,
      retentionBytes:
        retention?.retentionBytes !== undefined
          ? retention.retentionBytes
          : this.options.retentionDefault.retentionBytes,
    };
    validateRetention(wanted);
    const existing = this.meta.state.topics.get(name);
    if (existing !== undefined) {
      const same =
        retention === undefined ||
        ((retention.retentionMs === undefined || retention.retentionMs === existing.retention.retentionMs) &&
          (retention.retentionBytes === undefined ||
            retention.retentionBytes === existing.retention.retentionBytes));
      if (!same)
        throw new WalrusError(ErrorCode.TOPIC_EXISTS, `topic '${name}' exists with other retention settings`);
      return { created: false, topic: this.topicInfo(existing) };
    }
    if (this.meta.state.topics.size >= metadataLimits.topicCountMax) {
      throw new WalrusError(
        ErrorCode.BUSY,
        `the cluster holds the maximum of ${metadataLimits.topicCountMax} topics`,
      );
    }
    const inFlight = this.creating.get(name);
    if (inFlight !== undefined) {
      await inFlight;
      return { created: false, topic: this.topicInfo(this.topicMeta(name)) };
    }
    const creation = this.proposeCreate(name, wanted);
    this.creating.set(name, creation);
    try {
      await creation;
    } finally {
      this.creating.delete(name);
    }
    const rt = this.runtime(name);
    if (rt.segmentReady !== null) await rt.segmentReady;
    this.logger.info(
      { topic: name, leader: activeSegment(this.topicMeta(name)).leaderNodeId },
      'Topic registered',
    );
    return { created: true, topic: this.topicInfo(this.topicMeta(name)) };
  }

  private async proposeCreate(name: string, retention: Retention): Promise<void> {
    await this.propose({
      type: 'createTopic',
      name,
      retention,
      createdAtMs: this.options.nowMs(),
      leaderNodeId: this.placeNewTopic(name),
    });
  }

  /**
   * The initial segment leader of a new topic: the name hashed over the voters that are alive
   * (a node the Raft leader has not heard from within an election timeout gets no new segments).
   */
  private placeNewTopic(name: string): number {
    const alive = this.options.cluster.aliveVoters();
    const candidates = alive.length > 0 ? [...alive].sort((a, b) => a - b) : [this.options.nodeId];
    let hash = 2166136261;
    for (let i = 0; i < name.length; i++) hash = Math.imul(hash ^ name.charCodeAt(i), 16777619) >>> 0;
    return candidates[hash % candidates.length]!;
  }

  /** Round-robin over the voters after `current`, skipping voters that are not alive when possible. */
  private nextSegmentLeader(current: number): number {
    const voters = [...this.options.cluster.voters()].sort((a, b) => a - b);
    if (voters.length === 0) return this.options.nodeId;
    const alive = new Set(this.options.cluster.aliveVoters());
    const start = Math.max(
      0,
      voters.findIndex((v) => v > current),
    );
    for (let i = 0; i < voters.length; i++) {
      const candidate = voters[(start + i) % voters.length]!;
      if (alive.has(candidate)) return candidate;
    }
    return voters[start % voters.length]!;
  }

  describeTopic(name: string): TopicInfo {
    return this.topicInfo(this.topicMeta(name));
  }

  listTopics(): TopicInfo[] {
    return [...this.meta.state.topics.values()]
      .sort((a, b) => (a.name < b.name ? -1 : 1))
      .map((t) => this.topicInfo(t));
  }

  async deleteTopic(name: string): Promise<boolean> {
    assertTopicName(name);
    if (!this.meta.state.topics.has(name)) return false;
    await this.propose({ type: 'deleteTopic', name });
    const rt = this.runtimes.get(name);
    this.runtimes.delete(name);
    if (rt) for (const w of rt.waiters) w.wake();
    await this.wal.deleteTopic(name);
    this.logger.info({ topic: name }, 'Topic deleted');
    return true;
  }

  async configureTopic(name: string, retention: Partial<Retention>): Promise<TopicInfo> {
    const topic = this.topicMeta(name);
    const next: Retention = {
      retentionMs: retention.retentionMs !== undefined ? retention.retentionMs : topic.retention.retentionMs,
      retentionBytes:
        retention.retentionBytes !== undefined ? retention.retentionBytes : topic.retention.retentionBytes,
    };
    validateRetention(next);
    await this.propose({ type: 'configureTopic', name, retention: next });
    return this.topicInfo(this.topicMeta(name));
  }

  async append(
    name: string,
    records: readonly RecordInput[],
    options: { producerId?: string; producerSeq?: number; expectedOffset?: number } = {},
  ): Promise<ResponseByOp['append']> {
    this.topicMeta(name);
    if (records.length === 0)
      throw new WalrusError(ErrorCode.BAD_REQUEST, 'an append needs at least one record');
    let rt = this.admitNow(name);
    for (let attempt = 0; !('committedEnd' in rt); attempt++) {
      if (attempt >= brokerLimits.rolloverWaitCountMax) {
        throw new WalrusError(
          ErrorCode.UNAVAILABLE,
          `topic '${name}' cannot roll over to a new segment; retry later`,
        );
      }
      await rt;
      rt = this.admitNow(name);
    }
    // From here to wal.append there is no await (except for an answered duplicate), so the
    // segment-full check, the offset check and the offsets the WAL gives cannot be separated.
    const { producerId, producerSeq } = options;
    if ((producerId === undefined) !== (producerSeq === undefined)) {
      throw new WalrusError(ErrorCode.BAD_REQUEST, 'producerId and producerSeq go together');
    }
    if (producerId !== undefined && producerSeq !== undefined) {
      const known = rt.producers.get(producerId);
      if (known !== undefined && producerSeq === known.seq) {
        const previous = await known.result;
        return { ...previous, duplicate: true };
      }
      if (known !== undefined && producerSeq !== known.seq + 1) {
        throw new WalrusError(
          ErrorCode.SEQUENCE_MISMATCH,
          `producer '${producerId}' sent sequence ${producerSeq}; expected ${known.seq + 1}`,
        );
      }
    }
    if (options.expectedOffset !== undefined) {
      const next = this.wal.endOffset(name);
      if (options.expectedOffset !== next) {
        throw new WalrusError(
          ErrorCode.OFFSET_MISMATCH,
          `expected next offset ${options.expectedOffset} but the topic's next offset is ${next}`,
        );
      }
    }
    const tagged =
      producerId === undefined || producerSeq === undefined
        ? records
        : withProducerHeader(records, producerId, producerSeq);
    const result = this.appendToWal(name, rt, tagged);
    if (producerId !== undefined && producerSeq !== undefined) {
      const previous = rt.producers.get(producerId);
      const entry: ProducerState = { seq: producerSeq, result };
      result.then(
        (r) => {
          entry.done = r;
        },
        () => {},
      );
      rt.producers.delete(producerId);
      rt.producers.set(producerId, entry);
      if (rt.producers.size > brokerLimits.producerCountMaxPerTopic) {
        const oldest = rt.producers.keys().next().value;
        if (oldest !== undefined) rt.producers.delete(oldest);
      }
      result.catch(() => {
        if (rt.producers.get(producerId) === entry) {
          if (previous) rt.producers.set(producerId, previous);
          else rt.producers.delete(producerId);
        }
      });
    }
    return result;
  }

  /**
   * The runtime when the active segment can take an append now (not rolling over, below
   * segmentEntryCountMax counting appends accepted but not yet durable), or a promise to wait on.
   * A full segment starts its rollover here, so no append is accepted into a segment whose count
   * was taken. Must be followed synchronously by the WAL append.
   */
  private admitNow(name: string): TopicRuntime | Promise<void> {
    const rt = this.runtime(name);
    if (rt.rolling !== null) return rt.rolling;
    const active = activeSegment(this.topicMeta(name));
    if (active.leaderNodeId !== this.options.nodeId) {
      throw this.notLeader(`segment ${active.id} of topic '${name}'`, active.leaderNodeId);
    }
    const creating = this.ensureLocalSegment(name, rt);
    if (creating !== null) return creating;
    if (this.activeEntryCount(name) < this.options.segmentEntryCountMax) return rt;
    this.maybeRollover(name);
    return rt.rolling ?? Promise.resolve();
  }

  private async appendToWal(
    name: string,
    rt: TopicRuntime,
    records: readonly RecordInput[],
  ): Promise<ResponseByOp['append']> {
    let written: { firstOffset: number; lastOffset: number; timestampMs: number };
    try {
      written = await this.wal.append(name, records);
    } catch (error) {
      throw toWalrusError(error);
    }
    if (written.lastOffset + 1 > rt.committedEnd) rt.committedEnd = written.lastOffset + 1;
    this.wakeWaiters(rt);
    this.maybeRollover(name);
    return { ...written, duplicate: false };
  }

  /** The most recent acknowledged producer batches, bounded, for the seal command. */
  private producerTable(rt: TopicRuntime): ProducerEntry[] {
    const table: ProducerEntry[] = [];
    for (const [id, p] of rt.producers) {
      if (p.done !== undefined)
        table.push([id, p.seq, p.done.firstOffset, p.done.lastOffset, p.done.timestampMs]);
    }
    return table.slice(-brokerLimits.producerCountMaxInSeal);
  }

  private wakeWaiters(rt: TopicRuntime): void {
    for (const waiter of rt.waiters) {
      if (waiter.offset < rt.committedEnd) waiter.wake();
    }
  }

  private activeEntryCount(name: string): number {
    const topic = this.meta.state.topics.get(name);
    if (topic === undefined) return 0;
    return this.wal.endOffset(name) - activeSegment(topic).baseOffset;
  }

  /** Starts a rollover when the active segment is full; appends wait for it. */
  private maybeRollover(name: string): void {
    const rt = this.runtimes.get(name);
    if (rt === undefined || rt.rolling !== null) return;
    if (this.activeEntryCount(name) < this.options.segmentEntryCountMax) return;
    rt.rolling = this.rollover(name)
      .catch((error: unknown) => {
        this.logger.error(
          { topic: name, err: String(error) },
          'monitor tick failed: rollover did not complete',
        );
      })
      .finally(() => {
        rt.rolling = null;
      });
  }

  private async rollover(name: string): Promise<void> {
    const topic = this.topicMeta(name);
    const active = activeSegment(topic);
    const sealed = await this.wal.sealActive(name);
    await this.propose({
      type: 'sealSegment',
      topic: name,
      segmentId: active.id,
      endOffset: sealed.endOffset,
      nextLeaderNodeId: this.nextSegmentLeader(active.leaderNodeId),
      producers: this.producerTable(this.runtime(name)),
    });
    this.logger.info(
      {
        topic: name,
        sealedSegment: active.id,
        entries: sealed.endOffset - active.baseOffset,
        newSegment: active.id + 1,
      },
      'Segment rolled over',
    );
  }

  async read(
    name: string,
    offset: number,
    limits: { recordCountMax: number; byteCountMax: number; waitMs: number },
    signal?: AbortSignal,
  ): Promise<ResponseByOp['read']> {
    const topic = this.topicMeta(name);
    const rt = this.runtime(name);
    const start = topicStartOffset(topic);
    const active = activeSegment(topic);
    const leadsActive = active.leaderNodeId === this.options.nodeId;
    if (offset < start || (leadsActive && offset > rt.committedEnd)) {
      throw new WalrusError(
        ErrorCode.OFFSET_OUT_OF_RANGE,
        `offset ${offset} is outside the stored range [${start}, ${leadsActive ? rt.committedEnd : '?'}]`,
      );
    }
    if (leadsActive && offset === rt.committedEnd && limits.waitMs > 0) {
      await this.waitFor(rt, offset, Math.min(limits.waitMs, brokerLimits.waitMsMax), signal);
    }
    const records = this.readLocal(name, offset, limits);
    const last = records[records.length - 1];
    const now = this.topicMeta(name);
    return {
      records,
      nextOffset: last === undefined ? offset : last.offset + 1,
      startOffset: topicStartOffset(now),
      endOffset: this.knownEnd(now),
    };
  }

  /** The topic's end as this node knows it: exact on the active segment's leader, else a lower bound. */
  private knownEnd(topic: TopicMeta): number {
    const active = activeSegment(topic);
    if (active.leaderNodeId === this.options.nodeId)
      return this.runtimes.get(topic.name)?.committedEnd ?? active.baseOffset;
    return active.baseOffset;
  }

  /**
   * Reads acknowledged records at `offset` from this node's WAL. The segment holding `offset` must
   * be led by this node (else NOT_LEADER with a hint); a read never passes that segment's sealed end
   * or, on the active segment, the acknowledged end.
   */
  private readLocal(
    name: string,
    offset: number,
    limits: { recordCountMax: number; byteCountMax: number },
  ): StoredRecord[] {
    const topic = this.topicMeta(name);
    const rt = this.runtime(name);
    const active = activeSegment(topic);
    const segment = this.segmentOf(topic, offset) ?? (offset === active.baseOffset ? active : undefined);
    if (segment === undefined) {
      if (active.leaderNodeId !== this.options.nodeId)
        throw this.notLeader(`the end of topic '${name}'`, active.leaderNodeId);
      return [];
    }
    if (segment.leaderNodeId !== this.options.nodeId) {
      throw this.notLeader(`segment ${segment.id} of topic '${name}'`, segment.leaderNodeId);
    }
    const end = segment.endOffset ?? rt.committedEnd;
    const visible = end - offset;
    if (visible <= 0) return [];
    // A segment that never took an append has no WAL file yet (see ensureLocalSegment).
    if (!this.wal.segments(name).some((s) => s.id === segment.id)) return [];
    let records: WalRecord[];
    try {
      records = this.wal.read(name, offset, {
        recordCountMax: Math.min(limits.recordCountMax, visible),
        byteCountMax: limits.byteCountMax,
      });
    } catch (error) {
      throw toWalrusError(error);
    }
    const out: StoredRecord[] = [];
    for (const r of records) {
      if (r.offset >= end) break;
      out.push(producerHeaderName in r.headers ? withoutProducerHeader(r) : r);
    }
    return out;
  }

  /** Reads at `offset` wherever the segment lives: here, or on its leader. */
  private async readAnywhere(
    name: string,
    offset: number,
    limits: { recordCountMax: number; byteCountMax: number },
  ): Promise<readonly StoredRecord[]> {
    const topic = this.topicMeta(name);
    const active = activeSegment(topic);
    const segment = this.segmentOf(topic, offset) ?? active;
    if (segment.leaderNodeId === this.options.nodeId) return this.readLocal(name, offset, limits);
    const reply = await this.options.cluster.forward<'read'>(segment.leaderNodeId, {
      op: 'read',
      topic: name,
      offset,
      recordCountMax: limits.recordCountMax,
      byteCountMax: limits.byteCountMax,
      waitMs: 0,
    });
    return reply.records;
  }

  private waitFor(rt: TopicRuntime, offset: number, waitMs: number, signal?: AbortSignal): Promise<void> {
    if (rt.waiters.size >= brokerLimits.waiterCountMaxPerTopic) return Promise.resolve();
    return new Promise<void>((resolve) => {
      const done = (): void => {
        clearTimeout(timer);
        rt.waiters.delete(waiter);
        signal?.removeEventListener('abort', done);
        resolve();
      };
      const waiter: Waiter = { offset, wake: done };
      const timer = setTimeout(done, waitMs);
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
    const topic = this.topicMeta(name);
    const self = this.options.nodeId;
    const leaders = new Set<number>();
    for (const s of topic.segments) {
      if (s.endOffset !== s.baseOffset && this.meta.state.nodes.has(s.leaderNodeId))
        leaders.add(s.leaderNodeId);
    }
    const answers = await Promise.all(
      [...leaders].map(async (nodeId) =>
        nodeId === self
          ? this.localOffsetForTimestamp(name, timestampMs)
          : (
              await this.options.cluster.forward<'localOffsetForTimestamp'>(nodeId, {
                op: 'localOffsetForTimestamp',
                topic: name,
                timestampMs,
              })
            ).offset,
      ),
    );
    const end = await this.topicEnd(name);
    let first = end;
    for (const offset of answers) if (offset !== null && offset < first) first = offset;
    return first;
  }

  /** This node's part of offsetForTimestamp: its own segments of the topic only; null when none holds one. */
  localOffsetForTimestamp(name: string, timestampMs: number): number | null {
    this.topicMeta(name);
    if (this.wal.segments(name).length === 0) return null;
    try {
      const offset = this.wal.offsetForTimestamp(name, timestampMs);
      return offset < this.wal.endOffset(name) ? offset : null;
    } catch (error) {
      throw toWalrusError(error);
    }
  }

  /** The exact end of a topic: here when this node leads the active segment, else asked of its leader. */
  private async topicEnd(name: string): Promise<number> {
    const active = activeSegment(this.topicMeta(name));
    if (active.leaderNodeId === this.options.nodeId) return this.runtime(name).committedEnd;
    const reply = await this.options.cluster.forward<'describeTopic'>(active.leaderNodeId, {
      op: 'describeTopic',
      topic: name,
    });
    return reply.topic.endOffset;
  }

  private checkConsumer(consumer: string): void {
    if (!consumerNamePattern.test(consumer) || consumer === '.' || consumer === '..') {
      throw new WalrusError(
        ErrorCode.BAD_REQUEST,
        'consumer names are 1-200 letters, digits, ".", "_" or "-" (and not "." or "..")',
      );
    }
  }

  private withConsumerLock<T>(rt: TopicRuntime, consumer: string, work: () => Promise<T>): Promise<T> {
    const before = rt.consumerLocks.get(consumer) ?? Promise.resolve();
    const run = before.then(work, work);
    const tail = run.catch(() => undefined);
    rt.consumerLocks.set(consumer, tail);
    void tail.then(() => {
      if (rt.consumerLocks.get(consumer) === tail) rt.consumerLocks.delete(consumer);
    });
    return run;
  }

  private cursorOf(topic: TopicMeta, consumer: string): number {
    return Math.max(topic.cursors.get(consumer) ?? 0, topicStartOffset(topic));
  }

  consumerReadNext(
    name: string,
    consumer: string,
    limits: { recordCountMax: number; byteCountMax: number; autoCommit: boolean },
  ): Promise<ResponseByOp['consumerReadNext']> {
    this.topicMeta(name);
    this.checkConsumer(consumer);
    const rt = this.runtime(name);
    return this.withConsumerLock(rt, consumer, async () => {
      const topic = this.topicMeta(name);
      if (!topic.cursors.has(consumer) && topic.cursors.size >= metadataLimits.consumerCountMaxPerTopic) {
        throw new WalrusError(ErrorCode.BUSY, `topic '${name}' has the maximum number of consumers`);
      }
      const offset = this.cursorOf(topic, consumer);
      const records = await this.readAnywhere(name, offset, limits);
      const last = records[records.length - 1];
      const nextOffset = last === undefined ? offset : last.offset + 1;
      if (limits.autoCommit && nextOffset !== topic.cursors.get(consumer)) {
        await this.propose({ type: 'commitCursor', topic: name, consumer, offset: nextOffset });
      }
      return { records, nextOffset, endOffset: Math.max(this.knownEnd(this.topicMeta(name)), nextOffset) };
    });
  }

  async consumerCommit(
    name: string,
    consumer: string,
    offset: number,
  ): Promise<ResponseByOp['consumerCommit']> {
    const topic = this.topicMeta(name);
    this.checkConsumer(consumer);
    const rt = this.runtime(name);
    const end = await this.topicEnd(name);
    if (!Number.isSafeInteger(offset) || offset < 0 || offset > end) {
      throw new WalrusError(
        ErrorCode.OFFSET_OUT_OF_RANGE,
        `cannot commit offset ${offset}: the topic's end is ${end}`,
      );
    }
    if (!topic.cursors.has(consumer) && topic.cursors.size >= metadataLimits.consumerCountMaxPerTopic) {
      throw new WalrusError(ErrorCode.BUSY, `topic '${name}' has the maximum number of consumers`);
    }
    return this.withConsumerLock(rt, consumer, async () => {
      await this.propose({ type: 'commitCursor', topic: name, consumer, offset });
      return { consumer: { topic: name, consumer, offset } };
    });
  }

  consumerGet(name: string, consumer: string): ResponseByOp['consumerGet'] {
    const topic = this.topicMeta(name);
    this.checkConsumer(consumer);
    if (!topic.cursors.has(consumer)) {
      throw new WalrusError(
        ErrorCode.CONSUMER_NOT_FOUND,
        `consumer '${consumer}' has no cursor on topic '${name}'`,
      );
    }
    return { consumer: { topic: name, consumer, offset: this.cursorOf(topic, consumer) } };
  }

  /** Seed 002's STATE JSON, Walrus's `last_sealed_entry_offset`, plus offsets and retention. */
  stateJson(name: string): Record<string, unknown> {
    const topic = this.topicMeta(name);
    const active = activeSegment(topic);
    const sealed: Record<string, number> = {};
    const leaders: Record<string, number> = {};
    for (const s of topic.segments) {
      leaders[String(s.id)] = s.leaderNodeId;
      if (s.endOffset !== null) sealed[String(s.id)] = s.endOffset - s.baseOffset;
    }
    const info = this.topicInfo(topic);
    return {
      topic: name,
      current_segment: active.id,
      leader_node: active.leaderNodeId,
      last_sealed_entry_offset: active.baseOffset,
      sealed_segments: sealed,
      segment_leaders: leaders,
      start_offset: info.startOffset,
      end_offset: info.endOffset,
      retention_ms: topic.retention.retentionMs,
      retention_bytes: topic.retention.retentionBytes,
    };
  }

  /** Index of the last applied metadata command. */
  metadataAppliedIndex(): number {
    return this.meta.state.appliedIndex;
  }

  /** Storage figures that METRICS adds beside seed 002's Raft fields. */
  storageStats(): Record<string, number> {
    return { topics: this.meta.state.topics.size, ...this.wal.stats() };
  }

  /** Starts the monitor loop: rollover safety net and retention, every `intervalMs`. */
  startMonitor(intervalMs: number): void {
    this.monitorTimer = setInterval(() => void this.monitorTick(), intervalMs);
    this.monitorTimer.unref();
    this.logger.info({ intervalMs }, 'Monitor loop started');
  }

  async monitorTick(): Promise<void> {
    if (this.monitorRunning) return;
    this.monitorRunning = true;
    try {
      for (const topic of [...this.meta.state.topics.values()]) {
        try {
          await this.repairTopicIfBroken(topic.name);
          this.maybeRollover(topic.name);
          await this.applyRetention(topic.name);
        } catch (error) {
          this.logger.error({ topic: topic.name, err: String(error) }, 'monitor tick failed');
        }
      }
    } finally {
      this.monitorRunning = false;
    }
  }

  private async repairTopicIfBroken(name: string): Promise<void> {
    const rt = this.runtimes.get(name);
    const topic = this.meta.state.topics.get(name);
    if (rt === undefined || topic === undefined || rt.rolling !== null) return;
    const active = activeSegment(topic);
    if (active.leaderNodeId !== this.options.nodeId) return;
    // Only an interrupted rollover needs repair; a missing WAL file is created by the first append.
    const walActive = this.wal.segments(name).find((s) => s.id === active.id);
    if (walActive?.sealed) {
      rt.rolling = this.repairTopic(topic).finally(() => {
        rt.rolling = null;
      });
      await rt.rolling;
    }
  }

  private async applyRetention(name: string): Promise<void> {
    const topic = this.meta.state.topics.get(name);
    if (topic === undefined) return;
    if (topic.retention.retentionMs === null && topic.retention.retentionBytes === null) return;
    const deleted = await this.wal.applyRetention(name, topic.retention, this.options.nowMs());
    if (deleted.length > 0) {
      await this.propose({ type: 'dropSegments', topic: name, segmentIds: deleted });
      this.logger.info({ topic: name, segments: deleted }, 'Retention deleted sealed segments');
    }
  }

  async close(): Promise<void> {
    if (this.monitorTimer) clearInterval(this.monitorTimer);
    for (const rt of this.runtimes.values()) {
      for (const w of rt.waiters) w.wake();
      if (rt.rolling) await rt.rolling;
    }
  }
}

function validateRetention(retention: Retention): void {
  for (const [key, value] of Object.entries(retention)) {
    if (value !== null && (!Number.isSafeInteger(value) || value <= 0)) {
      throw new WalrusError(ErrorCode.BAD_REQUEST, `${key} must be a positive integer or null`);
    }
  }
}
