/**
 * The invariants of segment replication (docs/replication.md, "How it is checked"), checked on the
 * real nodes of a whole-node run against what their simulated disks hold, the metadata each node
 * applies, every WAL write and what the clients were told. Each is checked where it can first
 * break, after every event, cheaply: only the node whose event ran and the files the event changed
 * on any disk (SimDisk change tracking; a crash, wipe or bit flip marks all of a node's copies).
 *
 * - S1 (no acknowledgement past a seal): once a segment is sealed at E in any node's applied
 *   metadata, no client holds a quorum acknowledgement of a record written into that segment at an
 *   offset ≥ E. A record's segment is the one its leader's WAL wrote it into (`onWrite`; values
 *   are unique). Checked as each acknowledgement reaches its client and as each seal is first
 *   applied.
 * - S2 (acknowledged records stay): every acknowledged record (above the highest start any node
 *   applied, topic not deleted) is held durably, at its offset with its bytes, by at least one
 *   node of its segment's replica set (a crashed node counts with what it made durable). Checked
 *   whenever a copy of the segment changes.
 * - S3 (sealed means on a quorum): every offset below a seal is held durably, with the bytes its
 *   leader wrote, by at least ackQuorum(n) of the segment's n replicas: when the seal is first
 *   applied and whenever a copy of the segment changes. Not for segments a wiped node may have
 *   held a copy of (one short until repair replaces it), nor those retention dropped anywhere.
 * - S4 (the high watermark is durable on a quorum): whenever a segment leader raises its high
 *   watermark (SegmentReplicator.committedEnd) to h, at least ackQuorum(n) replicas hold
 *   [base, h) durably; it never goes back. A replica whose disk was wiped, until the operator
 *   has removed it, counts with what it held durably at the wipe and nothing since: the
 *   acknowledgment it sent just before may still be on its way to the leader, and no leader can
 *   know of the wipe before it arrives (soak seed 70937: [16, 21) durable on nodes 2 and 3, node 3
 *   wiped, node 2 raises to 21 in the same millisecond). One lost disk after an acknowledgment is
 *   the failure a quorum tolerates; S3 makes the same exception for a wiped node's segments.
 * - S5 (one record per offset): within a segment, a node is asked to write at an offset only the
 *   record already there, unless no copy holds that one (a write that failed gave its offsets
 *   back); every copy on every disk (page cache and durable) holds at each offset the record the
 *   segment's leader wrote. Across segments the clients' history (oracle.ts) checks that reads
 *   return the acknowledged record at each acknowledged offset.
 * - S6 (fencing): a segment's leader writes only under the epoch the segment opened with (1),
 *   never after it applied a fence of the segment; a recovery's seal (one without sizeBytes) under
 *   epoch e is applied only when at least n − ackQuorum(n) + 1 replicas hold epoch ≥ e durably.
 * - S7 (one seal, epochs only rise): on every node, a segment's epoch never goes down, a
 *   fenceSegment raises it by exactly one, a sealed end never changes, and every node applies the
 *   same seal (end and epoch) for a segment.
 * - S8 (nothing kept past a seal): a node that seals its copy of a segment the metadata it applied
 *   has sealed at E holds nothing at or past E; at the end of a run (everything healed and settled)
 *   every running node's copy of every sealed segment is sealed and ends at or below E.
 * - S9 (a wiped node is not a replica): a node whose disk was wiped is never let back in under its
 *   old identity (it must not serve before it was removed from the cluster), and counts in S4 only
 *   with what it held durably before the wipe; S2 holds across a wipe (one node of three).
 *
 * Violations found inside a node's own call (a WAL write, an applied command) are reported through
 * `report` (the run stops after the event), never thrown into the node's code.
 */
import { InvariantViolation } from '../invariants.js';
import {
  type MetaCommand,
  type MetadataState,
  type SegmentMeta,
  type TopicMeta,
  epochOf,
  replicasOf,
  topicStartOffset,
} from '../../../node/metadata/metadata-state.js';
import { ackQuorum, fenceQuorum } from '../../../node/replication/index.js';
import type { TopicContext } from '../../../node/topics/topic-context.js';
import type { SegmentReplicator } from '../../../node/topics/segment-replicator.js';
import type { TopicRuntime } from '../../../node/topics/topic-table.js';
import type { TopicService } from '../../../node/topics/topic-service.js';
import type { Wal, WalSegmentInfo } from '../../../node/wal/index.js';
import type { Oracle } from './oracle.js';
import { type CopyView, ReplicaView, keyValue, recordKey } from './replica-view.js';
import type { SimNode } from './sim-node.js';
import type { SimProcess } from './sim-world.js';

/** What the checks need of the cluster (SimCluster). */
export interface ChecksHost {
  readonly nodes: ReadonlyMap<number, SimNode>;
  /** Nodes whose durable data had a bit flipped. */
  readonly rotted: ReadonlySet<number>;
  readonly world: { readonly now: number; readonly events: number; readonly lastOwner: SimProcess | null };
}

/** The node hooks the checks need (installed by sim-node.ts on each WAL it opens). */
export interface WalObserver {
  onWrite(
    nodeId: number,
    topic: string,
    segmentId: number,
    firstOffset: number,
    keys: readonly string[],
    leader: boolean,
  ): void;
  onSealed(nodeId: number, topic: string, info: WalSegmentInfo): void;
}

interface SealRecord {
  readonly end: number;
  readonly epoch: number;
  readonly firstNode: number;
}

interface Shadow {
  epoch: number;
  end: number | null;
}

interface Wipe {
  readonly nodeId: number;
  /** Per topic, the newest segment id at the wipe: segments up to it may have had a copy there. */
  readonly activeIds: ReadonlyMap<string, number>;
  /** The incarnation the metadata registered for the node when its disk was wiped. */
  readonly incarnation: string | undefined;
  /** The durable end of each copy the node held when its disk was wiped, by segKey (S4). */
  readonly durableEnds: ReadonlyMap<string, number>;
}

export interface ReplicationStats {
  writes: number;
  sealsChecked: number;
  /** Seals decided by a recovery (fenced, planned from the fence answers), among sealsChecked. */
  recoverySeals: number;
  watermarksChecked: number;
  sweeps: number;
  decodedRecords: number;
}

export class ReplicationChecks implements WalObserver {
  readonly view = new ReplicaView();
  readonly stats: ReplicationStats = {
    writes: 0,
    sealsChecked: 0,
    recoverySeals: 0,
    watermarksChecked: 0,
    sweeps: 0,
    decodedRecords: 0,
  };
  /** (topic, segment) → offset − base → the record the segment's leader wrote there. */
  private readonly written = new Map<string, string[]>();
  /** topic → value → where its leader wrote it. */
  private readonly placed = new Map<string, Map<string, { segmentId: number; offset: number }>>();
  /** topic → acknowledged offset → segment it was written into. */
  private readonly ackedIn = new Map<string, Map<number, number>>();
  /** (topic, segment) → highest acknowledged offset in it. */
  private readonly ackedMax = new Map<string, number>();
  /** (topic, segment) → acknowledged offsets in it. */
  private readonly ackedBySegment = new Map<string, number[]>();
  /** (topic, its creation time, segment) → the seal every node applied (a topic made anew is another). */
  private readonly seals = new Map<string, SealRecord>();
  /** topic → the highest start (first offset retention kept) any node applied: copies below may be gone. */
  private readonly starts = new Map<string, number>();
  /** (topic, segment) → its sealed end, for topics still checked. */
  private readonly sealEnds = new Map<string, number>();
  /** node → topic → segment → epoch and end as last applied there (by this process: a restart replays). */
  private readonly shadows = new Map<
    number,
    { incarnation: number; topics: Map<string, Map<number, Shadow>> }
  >();
  /** Topics some node deleted: a create in flight may make them anew, so nothing more is checked. */
  private readonly deleted = new Set<string>();
  /** The high watermark last seen of each replicator. */
  private readonly watermarks = new WeakMap<SegmentReplicator, number>();
  /** Verified prefix length of each decoded copy's keys (S5 on disk). */
  private readonly verified = new WeakMap<readonly string[], number>();
  private readonly wipes: Wipe[] = [];
  /** Wiped nodes not yet removed: they must not serve. */
  readonly wipedPending = new Set<number>();
  /** Set by the run: where violations go (the run stops after the event). */
  report: (error: InvariantViolation) => void = (error) => {
    throw error;
  };

  constructor(
    private readonly host: ChecksHost,
    private readonly oracle: Oracle,
  ) {}

  private fail(invariant: string, detail: string): void {
    this.report(new InvariantViolation(invariant, detail));
  }

  private ignored(topic: string): boolean {
    return this.deleted.has(topic) || this.oracle.topics.get(topic)?.deleteAsked === true;
  }

  // ---- S5 at each write, and where each record went (for S1) ----

  onWrite(
    nodeId: number,
    topic: string,
    segmentId: number,
    firstOffset: number,
    keys: readonly string[],
    leader: boolean,
  ): void {
    if (this.ignored(topic)) return;
    this.stats.writes++;
    const k = segKey(topic, segmentId);
    let records = this.written.get(k);
    const base = this.baseOf(topic, segmentId, nodeId);
    if (base === null) return; // no such local segment: the WAL refuses the write
    if (records === undefined) {
      records = [];
      this.written.set(k, records);
    }
    let placed = this.placed.get(topic);
    if (leader && placed === undefined) {
      placed = new Map();
      this.placed.set(topic, placed);
    }
    if (leader) this.checkWriterEpoch(nodeId, topic, segmentId, firstOffset);
    for (let i = 0; i < keys.length; i++) {
      const offset = firstOffset + i;
      const at = offset - base;
      const key = keys[i]!;
      const before = records[at];
      if (before !== undefined && before !== key) {
        // A write that failed (ENOSPC: its offsets given back) left the record nowhere: then the
        // offset may be written again. If any copy holds the first record, two records compete.
        const holder = this.holderOf(topic, segmentId, offset, before);
        if (holder !== null) {
          this.fail(
            'S5',
            `node ${nodeId} ${leader ? 'wrote' : 'was asked to write'} ${show(key)} at offset ${offset} of segment ${segmentId} of topic ${topic}, where node ${holder} holds ${show(before)}`,
          );
          return;
        }
      }
      records[at] = key;
      if (leader) placed!.set(keyValue(key), { segmentId, offset });
    }
  }

  /** A node whose copy of the segment (page cache or durable) holds `key` at `offset`, or null. */
  private holderOf(topic: string, segmentId: number, offset: number, key: string): number | null {
    for (const n of this.host.nodes.values()) {
      for (const durable of [false, true]) {
        const copy = this.view.copy(n.disk, n.dir, topic, segmentId, durable);
        if (
          copy !== null &&
          offset < copy.baseOffset + copy.keys.length &&
          copy.keys[offset - copy.baseOffset] === key
        )
          return n.id;
      }
    }
    return null;
  }

  /**
   * S6: a segment's leader writes only under the epoch the segment opened with (1): once it has
   * applied a fence of the segment (a recovery raised the epoch), its replicas may be sealing it
   * and nothing it writes may be acknowledged.
   */
  private checkWriterEpoch(nodeId: number, topic: string, segmentId: number, offset: number): void {
    const s = this.host.nodes
      .get(nodeId)
      ?.running?.state.topics.get(topic)
      ?.segments.find((x) => x.id === segmentId);
    if (s !== undefined && epochOf(s) !== 1)
      this.fail(
        'S6',
        `node ${nodeId} wrote offset ${offset} into segment ${segmentId} of topic ${topic} as its leader after applying its fence at epoch ${epochOf(s)} (a recovery is sealing it)`,
      );
  }

  /** The segment's base offset: from any node's applied metadata, else the writer's WAL. */
  private bases = new Map<string, number>();
  private baseOf(topic: string, segmentId: number, nodeId: number): number | null {
    const k = segKey(topic, segmentId);
    const known = this.bases.get(k);
    if (known !== undefined) return known;
    const base = this.host.nodes.get(nodeId)?.running?.wal?.segmentInfo(topic, segmentId)?.baseOffset;
    if (base === undefined) return null;
    this.bases.set(k, base);
    return base;
  }

  // ---- S1 as acknowledgements arrive ----

  /** A client received a quorum acknowledgement of `values` at first..last. */
  onAck(topic: string, values: readonly string[], first: number): void {
    if (this.ignored(topic)) return;
    const placed = this.placed.get(topic);
    let acked = this.ackedIn.get(topic);
    if (acked === undefined) {
      acked = new Map();
      this.ackedIn.set(topic, acked);
    }
    for (let i = 0; i < values.length; i++) {
      const offset = first + i;
      const at = placed?.get(values[i]!);
      if (at === undefined || at.offset !== offset) {
        this.fail(
          'S1',
          `topic ${topic}: ${values[i]} was acknowledged at offset ${offset}, but ${at === undefined ? 'no segment leader ever wrote it' : `its leader wrote it at ${at.offset} of segment ${at.segmentId}`}`,
        );
        return;
      }
      acked.set(offset, at.segmentId);
      const k = segKey(topic, at.segmentId);
      let list = this.ackedBySegment.get(k);
      if (list === undefined) {
        list = [];
        this.ackedBySegment.set(k, list);
      }
      list.push(offset);
      this.ackedMax.set(k, Math.max(this.ackedMax.get(k) ?? -1, offset));
      const sealedAt = this.sealEnds.get(k);
      if (sealedAt !== undefined && offset >= sealedAt) {
        this.fail(
          'S1',
          `topic ${topic}: offset ${offset} of segment ${at.segmentId} was acknowledged, but the segment was sealed at ${sealedAt}`,
        );
        return;
      }
    }
  }

  // ---- S6, S7 (and S1, S3 at a seal) as commands are applied ----

  /** A node applied `command` (null: installed a snapshot). */
  onApplied(nodeId: number, state: MetadataState, command: MetaCommand | null): void {
    const incarnation = this.host.nodes.get(nodeId)?.running?.process.incarnation ?? 0;
    let entry = this.shadows.get(nodeId);
    if (entry === undefined || entry.incarnation !== incarnation) {
      entry = { incarnation, topics: new Map() };
      this.shadows.set(nodeId, entry);
    }
    const shadow = entry.topics;
    if (command === null) {
      for (const topic of state.topics.values()) this.noteStart(topic);
      for (const [name, segs] of shadow) {
        const topic = state.topics.get(name);
        if (topic === undefined) shadow.delete(name);
        else this.compare(nodeId, topic, segs, null);
      }
      for (const topic of state.topics.values())
        if (!shadow.has(topic.name)) this.compare(nodeId, topic, new Map(), null);
      for (const topic of state.topics.values()) shadow.set(topic.name, shadowOf(topic));
      return;
    }
    switch (command.type) {
      case 'deleteTopic':
        this.deleted.add(command.name);
        shadow.delete(command.name);
        return;
      case 'createTopic': {
        const topic = state.topics.get(command.name);
        if (topic !== undefined && !shadow.has(topic.name)) shadow.set(topic.name, shadowOf(topic));
        return;
      }
      case 'fenceSegment':
      case 'sealSegment':
      case 'setReplicas':
      case 'dropSegments': {
        const topic = state.topics.get(command.topic);
        if (topic === undefined) return;
        if (command.type === 'dropSegments') this.noteStart(topic);
        let segs = shadow.get(topic.name);
        if (segs === undefined) {
          segs = new Map();
          shadow.set(topic.name, segs);
        }
        this.compare(nodeId, topic, segs, command);
        return;
      }
      default:
        return;
    }
  }

  private noteStart(topic: TopicMeta): void {
    const start = topicStartOffset(topic);
    if (start > (this.starts.get(topic.name) ?? 0)) this.starts.set(topic.name, start);
  }

  /** True when retention dropped the segment on some node (its copies may be deleted). */
  private dropped(topic: string, s: SegmentMeta): boolean {
    return s.endOffset !== null && s.endOffset <= (this.starts.get(topic) ?? 0);
  }

  /** Compares a topic's segments as applied now with what the node had applied before. */
  private compare(
    nodeId: number,
    topic: TopicMeta,
    segs: Map<number, Shadow>,
    command: MetaCommand | null,
  ): void {
    const present = new Set<number>();
    for (const s of topic.segments) {
      present.add(s.id);
      const epoch = epochOf(s);
      const before = segs.get(s.id);
      if (before !== undefined) {
        if (epoch < before.epoch)
          this.fail(
            'S7',
            `node ${nodeId}: the epoch of segment ${s.id} of ${topic.name} went down from ${before.epoch} to ${epoch}`,
          );
        if (
          command?.type === 'fenceSegment' &&
          command.segmentId === s.id &&
          epoch !== before.epoch &&
          epoch !== before.epoch + 1
        )
          this.fail(
            'S7',
            `node ${nodeId}: fenceSegment moved segment ${s.id} of ${topic.name} from epoch ${before.epoch} to ${epoch}`,
          );
        if (before.end !== null && s.endOffset !== before.end)
          this.fail(
            'S7',
            `node ${nodeId}: segment ${s.id} of ${topic.name}, sealed at ${before.end}, now ends at ${s.endOffset}`,
          );
      }
      if (s.endOffset !== null && (before === undefined || before.end === null))
        this.onSeal(nodeId, topic, s, command?.type === 'sealSegment' && command.sizeBytes === undefined);
      segs.set(s.id, { epoch, end: s.endOffset });
    }
    for (const id of [...segs.keys()]) if (!present.has(id)) segs.delete(id);
  }

  /** A node applied the seal of `s` (or learnt it from a snapshot); `byRecovery`: a recovery's seal. */
  private onSeal(nodeId: number, topic: TopicMeta, s: SegmentMeta, byRecovery: boolean): void {
    const end = s.endOffset!;
    const k = segKey(topic.name, s.id);
    if (!this.ignored(topic.name)) this.bases.set(k, s.baseOffset);
    if (end < s.baseOffset)
      this.fail('S7', `segment ${s.id} of ${topic.name} sealed at ${end}, below its base ${s.baseOffset}`);
    const sealKey = `${k}\u0000${topic.createdAtMs}`;
    const known = this.seals.get(sealKey);
    if (known !== undefined) {
      if (known.end !== end || known.epoch !== epochOf(s))
        this.fail(
          'S7',
          `segment ${s.id} of ${topic.name}: node ${known.firstNode} applied its seal at ${known.end} (epoch ${known.epoch}), node ${nodeId} at ${end} (epoch ${epochOf(s)})`,
        );
      return;
    }
    this.seals.set(sealKey, { end, epoch: epochOf(s), firstNode: nodeId });
    if (this.ignored(topic.name)) return;
    this.sealEnds.set(k, end);
    this.stats.sealsChecked++;
    const acked = this.ackedMax.get(k);
    if (acked !== undefined && acked >= end)
      this.fail(
        'S1',
        `segment ${s.id} of ${topic.name} was sealed at ${end} (epoch ${epochOf(s)}, applied first on node ${nodeId}), but offset ${acked} of it had been acknowledged`,
      );
    if (byRecovery) this.stats.recoverySeals++;
    if (this.wipedReplica(topic.name, s) !== null) return;
    this.checkSealedQuorum(topic.name, s, `when its seal was first applied (node ${nodeId})`);
    const epoch = epochOf(s);
    if (byRecovery) {
      const replicas = replicasOf(s);
      const fenced = replicas.filter((id) => {
        const n = this.host.nodes.get(id);
        return (
          n !== undefined &&
          (this.host.rotted.has(id) || this.view.durableEpoch(n.disk, n.dir, topic.name, s.id) >= epoch)
        );
      });
      if (fenced.length < fenceQuorum(replicas.length))
        this.fail(
          'S6',
          `segment ${s.id} of ${topic.name} was sealed by a recovery at ${end} under epoch ${epoch} with only [${fenced.join(', ')}] of replicas [${replicas.join(', ')}] fenced durably at it (${fenceQuorum(replicas.length)} needed)`,
        );
    }
  }

  // ---- S3 ----

  /** S3 for one sealed segment: [base, end) durable on a quorum of its replicas, as its leader wrote it. */
  private checkSealedQuorum(topic: string, s: SegmentMeta, when: string): void {
    const end = s.endOffset!;
    if (end <= s.baseOffset) return;
    const replicas = replicasOf(s);
    const holding: number[] = [];
    const ends: string[] = [];
    for (const id of replicas) {
      const n = this.host.nodes.get(id);
      if (n === undefined) continue;
      if (this.host.rotted.has(id)) {
        holding.push(id);
        continue;
      }
      const copy = this.view.copy(n.disk, n.dir, topic, s.id, true);
      ends.push(`${id}:${copy?.end ?? 'none'}`);
      if (copy === null) continue;
      this.checkCopy(id, topic, s.id, copy, 'durable');
      if (copy.end >= end) holding.push(id);
    }
    if (holding.length < ackQuorum(replicas.length))
      this.fail(
        'S3',
        `segment ${s.id} of ${topic} is sealed at ${end} but only [${holding.join(', ')}] of replicas [${replicas.join(', ')}] hold [${s.baseOffset}, ${end}) durably ${when} (durable ends ${ends.join(' ')})`,
      );
  }

  /** The first wiped node in a segment's replica set that may have held a copy of it, or null. */
  private wipedReplica(topic: string, s: SegmentMeta): number | null {
    for (const w of this.wipes) {
      if (!replicasOf(s).includes(w.nodeId)) continue;
      const newest = w.activeIds.get(topic);
      if (newest !== undefined && s.id <= newest) return w.nodeId;
    }
    return null;
  }

  // ---- S5 on disk ----

  /** Every record of a copy is the one its segment's leader wrote at that offset. */
  private checkCopy(nodeId: number, topic: string, segmentId: number, copy: CopyView, what: string): void {
    const records = this.written.get(segKey(topic, segmentId));
    const count = copy.end - copy.baseOffset;
    const from = this.verified.get(copy.keys) ?? 0;
    if (from >= count) return;
    for (let i = from; i < count; i++) {
      const expected = records?.[i];
      const key = copy.keys[i]!;
      if (expected === undefined || expected !== key) {
        this.fail(
          'S5',
          `node ${nodeId}'s ${what} copy of segment ${segmentId} of ${topic} holds ${show(key)} at offset ${copy.baseOffset + i}, but ${expected === undefined ? 'no node was asked to write a record there' : `its leader wrote ${show(expected)}`}`,
        );
        return;
      }
    }
    this.verified.set(copy.keys, count);
  }

  // ---- S8 ----

  onSealed(nodeId: number, topic: string, info: WalSegmentInfo): void {
    const n = this.host.nodes.get(nodeId);
    const s = n?.running?.state.topics.get(topic)?.segments.find((x) => x.id === info.id);
    if (s === undefined || s.endOffset === null || this.ignored(topic)) return;
    if (info.endOffset > s.endOffset)
      this.fail(
        'S8',
        `node ${nodeId} sealed its copy of segment ${info.id} of ${topic} at ${info.endOffset}, past the seal at ${s.endOffset} it had applied`,
      );
  }

  /** At the end of a run: every running node's copy of a sealed segment is sealed, at or below the seal. */
  checkSettled(): void {
    const problem = this.unsettled();
    if (problem !== null) this.fail('S8', problem);
  }

  /** The first copy of a sealed segment on a running node that does not match its seal yet, or null. */
  unsettled(): string | null {
    for (const n of this.host.nodes.values()) {
      const r = n.running;
      if (r?.wal == null || !r.serving) continue;
      for (const topic of r.state.topics.values()) {
        if (this.ignored(topic.name)) continue;
        for (const local of r.wal.segments(topic.name)) {
          const s = topic.segments.find((x) => x.id === local.id);
          if (s === undefined || s.endOffset === null) continue;
          if (local.endOffset > s.endOffset || !local.sealed)
            return `node ${n.id}'s copy of segment ${s.id} of ${topic.name} ends at ${local.endOffset} (${local.sealed ? 'sealed' : 'open'}) after everything healed, but the segment is sealed at ${s.endOffset}`;
        }
      }
    }
    return null;
  }

  // ---- S9 ----

  /** A node's disk was wiped: `state` is the most advanced metadata (what may have had a copy there). */
  onWipe(nodeId: number, state: MetadataState | null): void {
    const activeIds = new Map<string, number>();
    const durableEnds = new Map<string, number>();
    const node = this.host.nodes.get(nodeId);
    for (const t of state?.topics.values() ?? []) {
      activeIds.set(t.name, t.segments[t.segments.length - 1]!.id);
      if (node === undefined) continue;
      for (const seg of t.segments) {
        const copy = this.view.copy(node.disk, node.dir, t.name, seg.id, true);
        if (copy !== null) durableEnds.set(segKey(t.name, seg.id), copy.end);
      }
    }
    this.wipes.push({ nodeId, activeIds, incarnation: state?.nodes.get(nodeId)?.incarnation, durableEnds });
    this.wipedPending.add(nodeId);
  }

  /**
   * Whether the cluster has forgotten the identity a wiped node had (the most advanced metadata of
   * the other running nodes unregistered it, or registers another incarnation): it was removed,
   * whether or not anyone saw the removal's answer (one under way when the disk was wiped, say).
   */
  oldIdentityForgotten(nodeId: number): boolean {
    const wipe = this.wipes.findLast((w) => w.nodeId === nodeId);
    let best: MetadataState | null = null;
    for (const n of this.host.nodes.values()) {
      const state = n.id === nodeId ? undefined : n.running?.state;
      if (state !== undefined && (best === null || state.appliedIndex > best.appliedIndex)) best = state;
    }
    if (wipe === undefined || best === null) return false;
    const registered = best.nodes.get(nodeId);
    return registered === undefined || registered.incarnation !== wipe.incarnation;
  }

  get wipeCount(): number {
    return this.wipes.length;
  }

  // ---- after every event ----

  /**
   * After each event: S9 and S4 on the node whose event it was; S5 on every copy whose file
   * changed on any disk (page cache or durable), and S2 and S3 of the segments those copies belong
   * to (a crash, a wipe or a bit flip marks all of a node's copies).
   */
  afterEvent(): void {
    const owner = this.host.world.lastOwner;
    if (owner !== null) {
      const n = this.host.nodes.get(owner.nodeId);
      const r = n?.running;
      if (n !== undefined && r != null && r.process === owner) {
        if (this.wipedPending.has(n.id) && r.serving && !this.oldIdentityForgotten(n.id))
          this.fail(
            'S9',
            `node ${n.id} serves again under its old identity after its disk was wiped, without being removed first`,
          );
        if (r.topics !== null) this.checkWatermarks(n, r.topics);
      }
    }
    let state: MetadataState | null | undefined;
    for (const n of this.host.nodes.values()) {
      const disk = n.disk;
      if (!disk.tracking) {
        disk.tracking = true;
        disk.changedAll = true;
      }
      if (!disk.changedAll && disk.changedPaths.size === 0) continue;
      state ??= this.bestState();
      if (state !== null) this.collect(n, state);
      disk.changedAll = false;
      disk.changedPaths.clear();
    }
    if (state != null) this.checkDirty();
  }

  /** A full pass over every copy and segment (at the end of a run). */
  sweep(): void {
    this.stats.sweeps++;
    const state = this.bestState();
    for (const n of this.host.nodes.values()) {
      n.disk.tracking = true;
      n.disk.changedAll = true;
      if (state !== null) this.collect(n, state);
      n.disk.changedAll = false;
      n.disk.changedPaths.clear();
    }
    if (state !== null) this.checkDirty();
  }

  /** Copies changed since the last look: (node, segment) pairs, and the segments they belong to. */
  private readonly dirtyCopies = new Map<SimNode, Set<SegmentMeta>>();
  private readonly dirtySegments = new Map<SegmentMeta, TopicMeta>();

  private markDirty(n: SimNode, topic: TopicMeta, s: SegmentMeta): void {
    let copies = this.dirtyCopies.get(n);
    if (copies === undefined) {
      copies = new Set();
      this.dirtyCopies.set(n, copies);
    }
    copies.add(s);
    this.dirtySegments.set(s, topic);
  }

  private collect(n: SimNode, state: MetadataState): void {
    const disk = n.disk;
    if (disk.changedAll) {
      for (const topic of state.topics.values()) {
        if (this.ignored(topic.name)) continue;
        for (const s of topic.segments) this.markDirty(n, topic, s);
      }
      return;
    }
    const prefix = `${ReplicaView.topicsDir(n.dir)}/`;
    for (const p of disk.changedPaths) {
      if (!p.startsWith(prefix)) {
        // A topic directory moved to the trash (a deletion): its name follows the trash directory.
        const trash = p.indexOf('/user_data/trash/');
        if (trash < 0) continue;
        const name = p.slice(trash + 17).split('/')[0]!;
        const topic = state.topics.get(name);
        if (topic !== undefined && !this.ignored(name))
          for (const s of topic.segments) this.markDirty(n, topic, s);
        continue;
      }
      const rest = p.slice(prefix.length);
      const slash = rest.indexOf('/');
      const name = slash < 0 ? rest : rest.slice(0, slash);
      const topic = state.topics.get(name);
      if (topic === undefined || this.ignored(name)) continue;
      if (slash < 0) {
        for (const s of topic.segments) this.markDirty(n, topic, s);
        continue;
      }
      const file = rest.slice(slash + 1);
      if (!file.endsWith('.wal')) continue;
      const s = segmentById(topic, Number(file.slice(0, file.length - 4)));
      if (s !== undefined) this.markDirty(n, topic, s);
    }
  }

  private checkDirty(): void {
    for (const [n, segments] of this.dirtyCopies) {
      if (this.host.rotted.has(n.id)) continue;
      for (const s of segments) {
        const topic = this.dirtySegments.get(s)!;
        for (const durable of [false, true]) {
          const copy = this.view.copy(n.disk, n.dir, topic.name, s.id, durable);
          if (copy !== null) this.checkCopy(n.id, topic.name, s.id, copy, durable ? 'durable' : 'page-cache');
        }
      }
    }
    this.dirtyCopies.clear();
    const now = Math.round(this.host.world.now);
    for (const [s, topic] of this.dirtySegments) {
      if (s.endOffset !== null && this.wipedReplica(topic.name, s) === null && !this.dropped(topic.name, s))
        this.checkSealedQuorum(topic.name, s, `(a copy changed, at simulated ${now} ms)`);
      this.checkAckedHeld(topic, s);
    }
    this.dirtySegments.clear();
  }

  /** S4 for every segment this node leads whose high watermark moved. */
  private checkWatermarks(n: SimNode, topics: TopicService): void {
    const table = (topics as unknown as { ctx: TopicContext }).ctx.table;
    const runtimes = (table as unknown as { runtimes: Map<string, TopicRuntime> }).runtimes;
    for (const [name, rt] of runtimes) {
      const rep = rt.replicator;
      if (rep === null) continue;
      const hw = rep.committedEnd;
      const seen = this.watermarks.get(rep);
      if (seen === hw) continue;
      this.watermarks.set(rep, hw);
      if (seen !== undefined && hw < seen) {
        this.fail(
          'S4',
          `node ${n.id}: the high watermark of segment ${rep.segmentId} of ${name} went back from ${seen} to ${hw}`,
        );
        continue;
      }
      if (hw <= rep.baseOffset || this.ignored(name)) continue;
      this.stats.watermarksChecked++;
      const holding: number[] = [];
      const ends: string[] = [];
      for (const id of rep.replicas) {
        const m = this.host.nodes.get(id);
        if (m === undefined) continue;
        if (this.host.rotted.has(id)) {
          holding.push(id);
          continue;
        }
        const copy = this.view.copy(m.disk, m.dir, name, rep.segmentId, true);
        const atWipe = this.durableEndAtWipe(id, name, rep.segmentId);
        ends.push(`${id}:${copy?.end ?? 'none'}${atWipe === undefined ? '' : ` (${atWipe} when wiped)`}`);
        if ((copy !== null && copy.end >= hw) || (atWipe !== undefined && atWipe >= hw)) holding.push(id);
      }
      if (holding.length < ackQuorum(rep.replicas.length))
        this.fail(
          'S4',
          `node ${n.id} raised the high watermark of segment ${rep.segmentId} (epoch ${rep.epoch}) of ${name} to ${hw}, but only [${holding.join(', ')}] of replicas [${rep.replicas.join(', ')}] hold [${rep.baseOffset}, ${hw}) durably (durable ends ${ends.join(' ')})`,
        );
    }
  }

  /**
   * What a wiped node, not yet removed by the operator, held durably of a segment when its disk
   * was wiped (S4); undefined when it is not such a node or held no copy.
   */
  private durableEndAtWipe(nodeId: number, topic: string, segmentId: number): number | undefined {
    if (!this.wipedPending.has(nodeId)) return undefined;
    return this.wipes.findLast((w) => w.nodeId === nodeId)?.durableEnds.get(segKey(topic, segmentId));
  }

  /** The applied metadata of the most advanced running node. */
  private bestState(): MetadataState | null {
    let best: MetadataState | null = null;
    for (const n of this.host.nodes.values()) {
      const s = n.running?.state;
      if (s !== undefined && (best === null || s.appliedIndex > best.appliedIndex)) best = s;
    }
    return best;
  }

  /** S2 for one segment: each acknowledged record in it above the topic's start is durable on one of its replicas. */
  private checkAckedHeld(topic: TopicMeta, s: SegmentMeta): void {
    const offsets = this.ackedBySegment.get(segKey(topic.name, s.id));
    if (offsets === undefined || this.host.rotted.size > 0) return;
    const model = this.oracle.topics.get(topic.name);
    const start = Math.max(topicStartOffset(topic), model?.startMax ?? 0, this.starts.get(topic.name) ?? 0);
    const records = this.written.get(segKey(topic.name, s.id));
    const copies: CopyView[] = [];
    for (const id of replicasOf(s)) {
      const n = this.host.nodes.get(id);
      const copy = n === undefined ? null : this.view.copy(n.disk, n.dir, topic.name, s.id, true);
      if (copy !== null) copies.push(copy);
    }
    for (const offset of offsets) {
      if (offset < start) continue;
      const key = records?.[offset - s.baseOffset];
      if (copies.some((c) => offset < c.end && c.keys[offset - c.baseOffset] === key)) continue;
      this.fail(
        'S2',
        `topic ${topic.name}: acknowledged offset ${offset} (${model?.acked.get(offset)}, segment ${s.id}, replicas [${replicasOf(s).join(', ')}]) is held durably by none of its replicas (durable ends ${copies.map((c) => c.end).join(', ') || 'none'})`,
      );
      return;
    }
  }
}

/** The topic's segment with this id (ids ascend by one). */
function segmentById(topic: TopicMeta, id: number): SegmentMeta | undefined {
  const first = topic.segments[0];
  if (first === undefined) return undefined;
  const s = topic.segments[id - first.id];
  return s?.id === id ? s : undefined;
}

function segKey(topic: string, segmentId: number): string {
  return `${topic}\u0000${segmentId}`;
}

function shadowOf(topic: TopicMeta): Map<number, Shadow> {
  return new Map(topic.segments.map((s) => [s.id, { epoch: epochOf(s), end: s.endOffset }]));
}

function show(key: string): string {
  return JSON.stringify(key.replace('\u0000', '@'));
}

/** Installs the observer's hooks on a node's WAL (TEST ONLY: wraps the instance's methods). */
export function observeWal(wal: Wal, nodeId: number, observer: WalObserver): void {
  const internals = wal as unknown as { topicMap: Map<string, { active: { id: number } | null }> };
  const appendAssigned = wal.appendAssigned.bind(wal);
  wal.appendAssigned = (topic, records) => {
    const segmentId = internals.topicMap.get(topic)?.active?.id;
    const result = appendAssigned(topic, records);
    if (segmentId !== undefined)
      observer.onWrite(
        nodeId,
        topic,
        segmentId,
        result.firstOffset,
        records.map((r) => recordKey(r.value, r.headers ?? {}, result.timestampMs)),
        true,
      );
    return result;
  };
  const appendReplicated = wal.appendReplicated.bind(wal);
  wal.appendReplicated = (topic, segmentId, records) => {
    const first = records[0];
    if (first !== undefined)
      observer.onWrite(
        nodeId,
        topic,
        segmentId,
        first.offset,
        records.map((r) => recordKey(r.value, r.headers ?? {}, r.timestampMs)),
        false,
      );
    return appendReplicated(topic, segmentId, records);
  };
  const sealActive = wal.sealActive.bind(wal);
  wal.sealActive = async (topic) => {
    const info = await sealActive(topic);
    observer.onSealed(nodeId, topic, info);
    return info;
  };
}
