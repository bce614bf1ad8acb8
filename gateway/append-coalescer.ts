/**
 * Plain appends to one topic that arrive in the same event-loop turn go to the cluster as ONE
 * append, and each HTTP request gets its own slice of the offsets back. Many HTTP writers of one
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
import { ErrorCode, WalrusError } from '../node/protocol/error-codes.js';
import type { RecordInput, ResponseOf } from '../node/protocol/messages.js';
import { outcomeUnknownError, recordRefusalCodes } from '../node/protocol/outcome.js';
import { coalescedAppendRecordCountMax, coalescedAppendSizeMaxBytes } from './limits.js';
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
    let group = this.groups.get(key);
    if (
      group !== undefined &&
      (group.recordCount + records.length > coalescedAppendRecordCountMax ||
        group.sizeBytes + sizeBytes > coalescedAppendSizeMaxBytes)
    ) {
      this.groups.delete(key);
      this.flush(group);
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

  private flushAll(): void {
    this.scheduled = false;
    const groups = this.groups;
    this.groups = new Map();
    for (const group of groups.values()) this.flush(group);
  }

  private flush(group: Group): void {
    const { topic, acks, members } = group;
    if (members.length === 1) {
      const only = members[0]!;
      this.send(topic, only.records, acks).then(only.resolve, only.reject);
      return;
    }
    this.metrics.appendsJoined.inc(members.length);
    this.metrics.joinedAppendBatches.inc();
    const records: RecordInput[] = [];
    for (const m of members) for (const r of m.records) records.push(r);
    this.send(topic, records, acks).then(
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
