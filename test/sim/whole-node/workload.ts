/**
 * The clients of a whole-node run and what they are told: each client sends one binary request at a
 * time to a random node (create, delete, configure topic, append, read, consumer read-next with or
 * without auto-commit, commit, get, remove node) and records the answer in the oracle, which
 * checks it. Request ids, payloads and choices come from the run's seed. Record values are unique
 * (`v<seq>`), so a record found at two offsets is caught.
 */
import { ErrorCode } from '../../../node/protocol/error-codes.js';
import type { Request, RequestOp } from '../../../node/protocol/messages.js';
import type { Prng } from '../../../node/raft/index.js';
import { type MetadataState, topicStartOffset } from '../../../node/metadata/metadata-state.js';
import type { ClientOutcome, SimCluster } from './sim-cluster.js';
import { type Oracle, type TopicModel, violation } from './oracle.js';

/** Records per append at most. */
const appendRecordCountMax = 4;
/** Records per read at most. */
const readRecordCountMax = 16;
const readByteCountMax = 1024 * 1024;
/** Consumers per topic the workload uses. */
const consumerNames = ['c1', 'c2'] as const;
/** Long-poll wait of a read at the end (ms). */
const longPollMs = 300;

/** Retention of a topic, by its number: most keep everything, some expire by age or size. */
export function retentionOf(topicNumber: number): { retentionMs?: number; retentionBytes?: number } {
  switch (topicNumber % 5) {
    case 3:
      return { retentionMs: 4000 };
    case 4:
      return { retentionBytes: 600 };
    default:
      return {};
  }
}

/**
 * Errors a consumer request answers only before its cursor commit is proposed, or when Raft
 * refused the proposal outright (NOT_LEADER): the cursor did not change.
 */
function noEffect(code: string): boolean {
  return (
    code === ErrorCode.OFFSET_OUT_OF_RANGE ||
    code === ErrorCode.BAD_REQUEST ||
    code === ErrorCode.NOT_LEADER ||
    code === ErrorCode.TOPIC_NOT_FOUND ||
    code === ErrorCode.CONSUMER_NOT_FOUND
  );
}

export interface WorkloadStats {
  ops: number;
  acks: number;
  errors: number;
  timeouts: number;
  appendedRecords: number;
  readRecords: number;
  notLeaderReplies: number;
  removals: number;
  /** Removals refused because another node's removal was under way (UNAVAILABLE, retryable). */
  removalsRefused: number;
}

type Op = 'create' | 'delete' | 'configure' | 'append' | 'read' | 'readNext' | 'commit' | 'get' | 'remove';

const opWeights: readonly [Op, number][] = [
  ['create', 6],
  ['delete', 1],
  ['configure', 1],
  ['append', 34],
  ['read', 18],
  ['readNext', 16],
  ['commit', 12],
  ['get', 16],
  ['remove', 1],
];
const opWeightTotal = opWeights.reduce((n, [, w]) => n + w, 0);

export class Workload {
  readonly stats: WorkloadStats = {
    ops: 0,
    acks: 0,
    errors: 0,
    timeouts: 0,
    appendedRecords: 0,
    readRecords: 0,
    notLeaderReplies: 0,
    removals: 0,
    removalsRefused: 0,
  };
  private valueSeq = 0;
  /** Topics named so far (t1, t2, …); a deleted name is never reused, at most topicCountMax live at once. */
  private topicCount = 0;
  /** Whether the workload removes nodes (never below 3 members). */
  allowRemovals = true;
  /** TEST ONLY (defect 7): remove nodes without the hand-off of their segments. */
  removeWithoutHandOff = false;
  /** True while no other node may be removed (a wiped node is out: removing more loses the quorum). */
  holdRemovals: () => boolean = () => false;
  /**
   * Nodes a removeNode of this workload is under way for. They count as gone when it picks a
   * victim: its policy is never to go below 2 members, and a victim picked while another removal
   * runs would leave one once both are done. (Two removals at once are the product's to refuse:
   * server/node-removal.ts answers the second UNAVAILABLE, which the workload takes as an answer.)
   */
  readonly removing = new Set<number>();
  /** Sees every acknowledged append (the replication checks' S1). */
  onAck: (t: TopicModel, values: readonly string[], first: number) => void = () => {};

  constructor(
    private readonly cluster: SimCluster,
    readonly oracle: Oracle,
    private readonly prng: Prng,
    private readonly topicCountMax: number,
    /** A client gives up on a request after this long (simulated ms); its outcome is then unknown. */
    private readonly clientTimeoutMs: number,
  ) {}

  /** A node to talk to: any known node, up or not (a client may pick a dead one). */
  pickNode(): number {
    const ids = [...this.cluster.nodes.keys()].filter((id) => !this.cluster.removed.has(id));
    return ids[this.prng.nextInt(ids.length)]!;
  }

  /** The applied metadata of the most advanced live node (for the checks' topic start). */
  bestState(): MetadataState | null {
    let best: MetadataState | null = null;
    for (const n of this.cluster.nodes.values()) {
      const s = n.running?.state;
      if (s !== undefined && (best === null || s.appliedIndex > best.appliedIndex)) best = s;
    }
    return best;
  }

  /**
   * The highest start of the topic any node has applied, ever (a start never moves back; a node
   * that just restarted may not have applied it yet).
   */
  startMax(name: string): number {
    const t = this.oracle.topic(name);
    for (const n of this.cluster.nodes.values()) {
      const meta = n.running?.state.topics.get(name);
      if (meta !== undefined) t.startMax = Math.max(t.startMax, topicStartOffset(meta));
    }
    return t.startMax;
  }

  private liveTopics(): TopicModel[] {
    return [...this.oracle.topics.values()].filter((t) => !t.deleteAsked);
  }

  private pickTopic(): TopicModel | null {
    const live = this.liveTopics();
    if (live.length === 0) return null;
    return live[this.prng.nextInt(live.length)]!;
  }

  async call<Op extends RequestOp>(
    request: Extract<Request, { op: Op }>,
    node = this.pickNode(),
  ): Promise<ClientOutcome<Op>> {
    this.stats.ops++;
    const out = await this.cluster.call<Op>(node, request, this.clientTimeoutMs);
    if (out.ok) this.stats.acks++;
    else {
      this.stats.errors++;
      if (out.code === ErrorCode.TIMEOUT) this.stats.timeouts++;
      if (out.code === ErrorCode.NOT_LEADER) this.stats.notLeaderReplies++;
    }
    return out;
  }

  /** One random operation. */
  async step(): Promise<void> {
    let r = this.prng.nextInt(opWeightTotal);
    let op: Op = 'append';
    for (const [name, w] of opWeights) {
      if (r < w) {
        op = name;
        break;
      }
      r -= w;
    }
    const topic = this.pickTopic();
    const room = this.liveTopics().length < this.topicCountMax;
    if (topic === null || (op === 'create' && room)) {
      if (room) await this.create(this.oracle.topic(`t${++this.topicCount}`));
      return;
    }
    switch (op) {
      case 'create':
        return this.create(topic);
      case 'delete':
        return this.delete(topic);
      case 'configure':
        return this.configure(topic);
      case 'append':
        await this.append(topic);
        return;
      case 'read':
        return this.read(topic, this.readOffset(topic), this.prng.chance(0.2) ? longPollMs : 0);
      case 'readNext': {
        const [hot, consumer] = this.consumerTarget(topic);
        return this.readNext(hot, consumer, this.prng.chance(0.4));
      }
      case 'commit': {
        const [hot, consumer] = this.consumerTarget(topic);
        return this.commit(hot, consumer, this.prng.nextInt(hot.ackedEnd + 1));
      }
      case 'get': {
        const [hot, consumer] = this.consumerTarget(topic);
        return this.get(hot, consumer);
      }
      case 'remove':
        return this.remove();
    }
  }

  /** Half of the consumer requests go to one hot cursor (the oldest live topic's first consumer), so races on it are frequent. */
  private consumerTarget(topic: TopicModel): [TopicModel, string] {
    if (this.prng.chance(0.5)) {
      const hot = this.liveTopics().find((t) => t.createdAt < Number.POSITIVE_INFINITY);
      if (hot !== undefined) return [hot, consumerNames[0]];
    }
    return [topic, consumerNames[this.prng.nextInt(consumerNames.length)]!];
  }

  private readOffset(t: TopicModel): number {
    const end = t.ackedEnd;
    if (end === 0 || this.prng.chance(0.3)) return end;
    return Math.max(0, end - 1 - this.prng.nextInt(Math.min(end, 40)));
  }

  private topicNumber(t: TopicModel): number {
    return Number(t.name.slice(1));
  }

  async create(t: TopicModel): Promise<void> {
    const out = await this.call<'createTopic'>({
      op: 'createTopic',
      topic: t.name,
      retention: retentionOf(this.topicNumber(t)),
    });
    if (out.ok) t.createdAt = Math.min(t.createdAt, this.cluster.world.now);
  }

  private async delete(t: TopicModel): Promise<void> {
    t.deleteAsked = true;
    await this.call<'deleteTopic'>({ op: 'deleteTopic', topic: t.name });
  }

  private async configure(t: TopicModel): Promise<void> {
    const sentAt = this.cluster.world.now;
    const out = await this.call<'configureTopic'>({
      op: 'configureTopic',
      topic: t.name,
      retention: retentionOf(this.topicNumber(t)),
    });
    this.notFound(t, out, sentAt, 'configure');
  }

  private notFound(t: TopicModel, out: ClientOutcome<RequestOp>, sentAt: number, what: string): void {
    if (!out.ok && out.code === ErrorCode.TOPIC_NOT_FOUND) t.onNotFound(sentAt, `${what} (${out.message})`);
  }

  async append(t: TopicModel, node?: number): Promise<boolean> {
    const n = 1 + this.prng.nextInt(appendRecordCountMax);
    const values: string[] = [];
    for (let i = 0; i < n; i++) values.push(`v${++this.valueSeq}`);
    const sentAt = this.cluster.world.now;
    const out = await this.call<'append'>(
      { op: 'append', topic: t.name, records: values.map((v) => ({ value: Buffer.from(v) })) },
      node,
    );
    if (out.ok) {
      this.stats.appendedRecords += n;
      if (out.response.acks !== 'quorum' && !t.deleteAsked)
        violation(
          'AckedAppendStays',
          `topic ${t.name}: an append asked with the default acks (quorum) was answered acks ${out.response.acks}`,
        );
      t.onAppendAck(values, out.response.firstOffset, out.response.lastOffset, this.cluster.world.now);
      if (!t.deleteAsked) this.onAck(t, values, out.response.firstOffset);
      return true;
    }
    this.notFound(t, out, sentAt, 'append');
    return false;
  }

  /** Reads at `offset`; returns the reply's records and next offset, or null on an error. */
  async read(t: TopicModel, offset: number, waitMs: number, node?: number): Promise<void> {
    await this.readPage(t, offset, waitMs, node);
  }

  async readPage(
    t: TopicModel,
    offset: number,
    waitMs: number,
    node?: number,
  ): Promise<{ nextOffset: number; count: number } | { error: string }> {
    const sentAt = this.cluster.world.now;
    const out = await this.call<'read'>(
      {
        op: 'read',
        topic: t.name,
        offset,
        recordCountMax: readRecordCountMax,
        byteCountMax: readByteCountMax,
        waitMs,
      },
      node,
    );
    if (!out.ok) {
      this.notFound(t, out, sentAt, `read at ${offset}`);
      if (out.code === ErrorCode.DATA_LOST && !t.deleteAsked && !this.cluster.dataMayBeLost())
        violation(
          'AckedAppendStays',
          `topic ${t.name}: read at ${offset} answered DATA_LOST: ${out.message}`,
        );
      return { error: out.code };
    }
    const records = out.response.records.map((r) => ({
      offset: r.offset,
      value: Buffer.from(r.value).toString(),
    }));
    this.stats.readRecords += records.length;
    t.onRead(offset, records, sentAt, `read, waitMs ${waitMs}`);
    return { nextOffset: out.response.nextOffset, count: records.length };
  }

  private async readNext(t: TopicModel, consumer: string, autoCommit: boolean): Promise<void> {
    const model = t.consumer(consumer, readRecordCountMax);
    const sentAt = this.cluster.world.now;
    const write = autoCommit ? model.writeAuto(sentAt) : null;
    const out = await this.call<'consumerReadNext'>({
      op: 'consumerReadNext',
      topic: t.name,
      consumer,
      recordCountMax: readRecordCountMax,
      byteCountMax: readByteCountMax,
      autoCommit,
    });
    const now = this.cluster.world.now;
    if (!out.ok) {
      this.notFound(t, out, sentAt, `read-next of ${consumer}`);
      if (write !== null && noEffect(out.code)) model.drop(write);
      return;
    }
    const records = out.response.records.map((r) => ({
      offset: r.offset,
      value: Buffer.from(r.value).toString(),
    }));
    const from = records[0]?.offset ?? out.response.nextOffset;
    if (!t.deleteAsked) {
      model.check(`read-next of ${t.name}/${consumer}`, from, sentAt, now, this.startMax(t.name));
      t.onRead(from, records, sentAt, `read-next of ${consumer}`);
    }
    this.stats.readRecords += records.length;
    if (write !== null) model.settle(write, out.response.nextOffset, now);
  }

  private async commit(t: TopicModel, consumer: string, offset: number): Promise<void> {
    const model = t.consumer(consumer, readRecordCountMax);
    const sentAt = this.cluster.world.now;
    const write = model.write(offset, sentAt);
    const out = await this.call<'consumerCommit'>({ op: 'consumerCommit', topic: t.name, consumer, offset });
    if (out.ok) write.ackedAt = this.cluster.world.now;
    else if (noEffect(out.code)) model.drop(write);
    this.notFound(t, out, sentAt, `commit of ${consumer}`);
  }

  private async get(t: TopicModel, consumer: string): Promise<void> {
    const model = t.consumer(consumer, readRecordCountMax);
    const sentAt = this.cluster.world.now;
    const out = await this.call<'consumerGet'>({ op: 'consumerGet', topic: t.name, consumer });
    const now = this.cluster.world.now;
    this.notFound(t, out, sentAt, `get of ${consumer}`);
    if (t.deleteAsked) return;
    if (out.ok)
      model.check(
        `get of ${t.name}/${consumer}`,
        out.response.consumer.offset,
        sentAt,
        now,
        this.startMax(t.name),
      );
    else if (out.code === ErrorCode.CONSUMER_NOT_FOUND)
      model.check(`get of ${t.name}/${consumer}`, null, sentAt, now, 0);
  }

  private async remove(): Promise<void> {
    if (!this.allowRemovals || this.holdRemovals()) return;
    // Removals under way count as done: the client's limit (never fewer than 2 members) held only
    // for one removal at a time, and three in flight at once took a 3-node cluster down to 1 voter.
    const members = [...this.cluster.nodes.keys()].filter(
      (id) => !this.cluster.removed.has(id) && !this.removing.has(id),
    );
    if (members.length <= 2) return;
    const victim = members[this.prng.nextInt(members.length)]!;
    if (this.removeWithoutHandOff) {
      await this.removeBypassingHandOff(victim);
      return;
    }
    this.removing.add(victim);
    try {
      const out = await this.removeAndSee(victim);
      if (!out.ok && /is being removed/.test(out.message)) {
        if (out.code !== ErrorCode.UNAVAILABLE)
          violation('RemovalsOneAtATime', `a removal refused for another one under way answered ${out.code}`);
        this.stats.removalsRefused++;
      }
    } finally {
      this.removing.delete(victim);
    }
  }

  /**
   * Asks to remove `id` and decommissions it once removed, unless the node answered for is gone
   * already: an operator that removed a wiped node (the same removal: the product joins it) may
   * have re-added it under a new identity before this answer came.
   */
  async removeAndSee(id: number): Promise<ClientOutcome<'removeNode'>> {
    const life = this.cluster.lifeOf(id);
    const out = await this.call<'removeNode'>({ op: 'removeNode', nodeId: id });
    if (out.ok && out.response.removed && this.cluster.lifeOf(id) === life && !this.cluster.removed.has(id)) {
      this.stats.removals++;
      this.cluster.decommission(id);
    }
    return out;
  }

  /** TEST ONLY (defect 7): remove-node as it was, straight to the Raft leader, nothing handed off. */
  private async removeBypassingHandOff(victim: number): Promise<void> {
    const leader = [...this.cluster.nodes.values()].find((n) => n.running?.raft?.isLeader === true);
    if (leader === undefined) return;
    const removed = await leader.running!.raft!.removeNode(victim).catch(() => false);
    if (removed) {
      this.stats.removals++;
      this.cluster.decommission(victim);
    }
  }
}
