/**
 * Plain appends to one topic that arrive in the same event-loop turn go to the cluster as ONE
 * append, and each HTTP request gets its own slice of the offsets back. While a joined append to
 * the topic is in flight upstream (coalescedAppendInFlightMax), the next turns' appends gather in
 * one held group that leaves when it settles (or after coalescedAppendHoldMsMax): under load the
 * batch grows with the round trip, with no linger when the topic is quiet. Many HTTP writers of one
 * topic then cost the node one request, one WAL batch and one replication round per turn instead
 * of one each (what a Kafka producer's batching does, with no linger: a batch leaves after the poll
 * phase, when the transport's own write leaves anyway, transport/frame-batcher.ts).
 *
 * Only appends without a producer id or an expected offset are joined: those checks are per
 * request. A joined batch is atomic like any append: it is written whole or not at all, so every
 * member gets the batch's outcome. The exceptions are errors a single request's records can cause
 * (a record too large, a bad header): nothing was written, and each member is sent again on its
 * own so that only the culprit sees its error.
 */
import assert from 'node:assert';
import { ErrorCode, WalrusError } from '../node/protocol/error-codes.js';
import type { RecordInput, ResponseOf } from '../node/protocol/messages.js';
import { outcomeUnknownError, recordRefusalCodes } from '../node/protocol/outcome.js';
import {
  coalescedAppendHoldMsMax,
  coalescedAppendInFlightMax,
  coalescedAppendRecordCountMax,
  coalescedAppendSizeMaxBytes,
} from './limits.js';
import type { GatewayMetrics } from './metrics.js';
import type { Upstream } from './upstream.js';

type AppendReply = ResponseOf<'append'>;
type Acks = 'leader' | 'quorum' | undefined;

interface Member {
  readonly records: readonly RecordInput[];
  readonly resolve: (reply: AppendReply) => void;
  readonly reject: (error: unknown) => void;
}

interface Group {
  readonly topic: string;
  readonly acks: Acks;
  readonly members: Member[];
  recordCount: number;
  sizeBytes: number;
  /** While held: sends it after coalescedAppendHoldMsMax. */
  holdTimer?: NodeJS.Timeout;
}

function sizeOf(records: readonly RecordInput[]): number {
  let bytes = 0;
  for (const r of records) {
    bytes += r.value.byteLength;
    if (r.headers !== undefined)
      for (const name in r.headers) bytes += name.length + (r.headers[name]?.length ?? 0);
  }
  return bytes;
}

export class AppendCoalescer {
  private groups = new Map<string, Group>();
  private scheduled = false;
  /** Joined appends in flight upstream, per group key (absent: none). */
  private readonly inFlight = new Map<string, number>();
  /** Groups held at the end of their turn because their key had coalescedAppendInFlightMax in flight. */
  private readonly held = new Map<string, Group>();

  constructor(
    private readonly upstream: Upstream,
    private readonly metrics: GatewayMetrics,
  ) {}

  /** Appends `records` to `topic`, joined with the other plain appends of this turn. */
  append(topic: string, records: readonly RecordInput[], acks: Acks): Promise<AppendReply> {
    const sizeBytes = sizeOf(records);
    if (records.length > coalescedAppendRecordCountMax || sizeBytes > coalescedAppendSizeMaxBytes)
      return this.send(topic, records, acks);
    const key = acks === undefined ? topic : `${topic}\0${acks}`;
    // A group held behind the appends in flight takes this one too, while it has room.
    const held = this.held.get(key);
    let group = held ?? this.groups.get(key);
    if (
      group !== undefined &&
      (group.recordCount + records.length > coalescedAppendRecordCountMax ||
        group.sizeBytes + sizeBytes > coalescedAppendSizeMaxBytes)
    ) {
      // Full: it leaves now, whatever is in flight (so a held group never outgrows the limits).
      if (held !== undefined) this.release(key, held);
      else {
        this.groups.delete(key);
        this.flush(key, group);
      }
      group = undefined;
    }
    if (group === undefined) {
      group = { topic, acks, members: [], recordCount: 0, sizeBytes: 0 };
      this.groups.set(key, group);
    }
    group.recordCount += records.length;
    group.sizeBytes += sizeBytes;
    const joined = group;
    const reply = new Promise<AppendReply>((resolve, reject) => {
      joined.members.push({ records, resolve, reject });
    });
    if (joined === held) return reply;
    if (!this.scheduled) {
      this.scheduled = true;
      setImmediate(() => this.flushAll());
    }
    return reply;
  }

  /** One upstream append; never throws (it runs from a setImmediate, where a throw ends the process). */
  private send(topic: string, records: readonly RecordInput[], acks: Acks): Promise<AppendReply> {
    try {
      return this.upstream.request({
        op: 'append',
        topic,
        records,
        ...(acks === undefined ? {} : { acks }),
      });
    } catch (error) {
      return Promise.reject(error);
    }
  }

  /**
   * The end of a turn: each group leaves, unless its key already has coalescedAppendInFlightMax
   * appends in flight. Then it is held, takes the appends of the next turns too, and leaves when
   * one in flight settles (the node would queue it behind their group commit anyway): under load,
   * one upstream append carries the HTTP appends of many turns instead of one or two each.
   */
  private flushAll(): void {
    this.scheduled = false;
    const groups = this.groups;
    this.groups = new Map();
    for (const [key, group] of groups) {
      // A key with a held group gets no other (append joins the held one while it has room).
      assert(!this.held.has(key), 'one held group per key');
      if ((this.inFlight.get(key) ?? 0) < coalescedAppendInFlightMax) {
        this.flush(key, group);
        continue;
      }
      this.held.set(key, group);
      group.holdTimer = setTimeout(() => this.release(key, group), coalescedAppendHoldMsMax);
      group.holdTimer.unref();
    }
  }

  /** One of `key`'s appends settled: its held group, if any, leaves now. */
  private settled(key: string): void {
    const count = this.inFlight.get(key)! - 1;
    if (count === 0) this.inFlight.delete(key);
    else this.inFlight.set(key, count);
    const held = this.held.get(key);
    if (held !== undefined) this.release(key, held);
  }

  /** Sends a held group (once: when it is no longer the key's held group, nothing happens). */
  private release(key: string, group: Group): void {
    if (this.held.get(key) !== group) return;
    this.held.delete(key);
    clearTimeout(group.holdTimer);
    this.flush(key, group);
  }

  private flush(key: string, group: Group): void {
    const { topic, acks, members } = group;
    this.inFlight.set(key, (this.inFlight.get(key) ?? 0) + 1);
    const done = () => this.settled(key);
    if (members.length === 1) {
      const only = members[0]!;
      const sent = this.send(topic, only.records, acks);
      sent.then(done, done);
      sent.then(only.resolve, only.reject);
      return;
    }
    this.metrics.appendsJoined.inc(members.length);
    this.metrics.joinedAppendBatches.inc();
    const records: RecordInput[] = [];
    for (const m of members) for (const r of m.records) records.push(r);
    const sent = this.send(topic, records, acks);
    sent.then(done, done);
    sent.then(
      (reply) => {
        if (reply.lastOffset - reply.firstOffset + 1 !== records.length) {
          // The cluster answered for another count of records: no split of it can be trusted.
          const error = outcomeUnknownError(
            'append',
            new WalrusError(
              ErrorCode.INTERNAL,
              `a joined append of ${records.length} records was answered with offsets ${reply.firstOffset}..${reply.lastOffset}`,
            ),
          );
          for (const m of members) m.reject(error);
          return;
        }
        let first = reply.firstOffset;
        for (const m of members) {
          const count = m.records.length;
          m.resolve({ ...reply, firstOffset: first, lastOffset: first + count - 1 });
          first += count;
        }
      },
      (error: unknown) => {
        if (error instanceof WalrusError && recordRefusalCodes.has(error.code)) {
          // Nothing was written: each request again on its own, so only the culprit fails.
          for (const m of members) this.send(topic, m.records, acks).then(m.resolve, m.reject);
          return;
        }
        for (const m of members) m.reject(error);
      },
    );
  }
}
