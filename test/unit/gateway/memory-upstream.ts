/**
 * An in-process imitation of the binary-protocol contract (node/protocol/messages.ts): topics,
 * appends with producer dedup and expectedOffset, reads with long polls, consumers, retention bounds.
 *
 * NO gateway test uses it any more: test/unit/gateway/ runs against a real walrus-node (helpers.ts).
 * It stays only because test/unit/sdk/client.test.ts (another owner) still imports it; delete this
 * file once that test runs over a real node too.
 */
import { ErrorCode, WalrusError } from '../../../node/protocol/error-codes.js';
import type {
  RecordInput,
  RequestOp,
  ResponseOf,
  StoredRecord,
  TopicInfo,
} from '../../../node/protocol/messages.js';
import { assertTopicName } from '../../../node/protocol/topic-name.js';
import type { RequestFor, Upstream, UpstreamCallOptions } from '../../../gateway/upstream.js';

interface TopicState {
  name: string;
  retention: { retentionMs: number | null; retentionBytes: number | null };
  startOffset: number;
  records: StoredRecord[];
  createdAtMs: number;
  producers: Map<string, { seq: number; firstOffset: number; lastOffset: number; timestampMs: number }>;
  consumers: Map<string, number>;
  waiters: Set<() => void>;
}

export class MemoryUpstream implements Upstream {
  readonly topics = new Map<string, TopicState>();
  /** Calls seen, by op (tests assert on sharing of upstream reads). */
  readonly calls = new Map<string, number>();
  /** When set, every call fails with this code (once per call) until cleared. */
  failWith: ErrorCode | null = null;

  private info(t: TopicState): TopicInfo {
    const endOffset = t.startOffset + t.records.length;
    return {
      name: t.name,
      retention: t.retention,
      startOffset: t.startOffset,
      endOffset,
      currentSegmentId: 1,
      leaderNodeId: 1,
      segments: [{ id: 1, baseOffset: 0, endOffset, sealed: false, leaderNodeId: 1 }],
      createdAtMs: t.createdAtMs,
    };
  }

  private topic(name: string): TopicState {
    const t = this.topics.get(name);
    if (t === undefined) throw new WalrusError(ErrorCode.TOPIC_NOT_FOUND, `topic '${name}' does not exist`);
    return t;
  }

  /** Drops records below `offset` as retention would. */
  trim(name: string, offset: number): void {
    const t = this.topic(name);
    const drop = offset - t.startOffset;
    t.records.splice(0, drop);
    t.startOffset = offset;
  }

  async request<Op extends RequestOp>(
    req: RequestFor<Op>,
    options?: UpstreamCallOptions,
  ): Promise<ResponseOf<Op>> {
    this.calls.set(req.op, (this.calls.get(req.op) ?? 0) + 1);
    if (this.failWith !== null) throw new WalrusError(this.failWith, 'injected failure');
    return (await this.handle(req as RequestFor<RequestOp>, options)) as ResponseOf<Op>;
  }

  private async handle(req: RequestFor<RequestOp>, options?: UpstreamCallOptions): Promise<unknown> {
    switch (req.op) {
      case 'ping':
        return { nodeId: 1 };
      case 'metrics':
        return { metrics: { id: 1, state: 'Leader', current_term: 1, current_leader: 1 } };
      case 'removeNode':
        return { removed: false };
      case 'state':
        return { state: { topic: req.topic } };
      case 'createTopic': {
        assertTopicName(req.topic);
        const retention = {
          retentionMs: req.retention?.retentionMs ?? null,
          retentionBytes: req.retention?.retentionBytes ?? null,
        };
        const existing = this.topics.get(req.topic);
        if (existing !== undefined) {
          if (
            existing.retention.retentionMs !== retention.retentionMs ||
            existing.retention.retentionBytes !== retention.retentionBytes
          ) {
            throw new WalrusError(ErrorCode.TOPIC_EXISTS, `topic '${req.topic}' exists with other settings`);
          }
          return { created: false, topic: this.info(existing) };
        }
        const t: TopicState = {
          name: req.topic,
          retention,
          startOffset: 0,
          records: [],
          createdAtMs: Date.now(),
          producers: new Map(),
          consumers: new Map(),
          waiters: new Set(),
        };
        this.topics.set(req.topic, t);
        return { created: true, topic: this.info(t) };
      }
      case 'describeTopic':
        return { topic: this.info(this.topic(req.topic)) };
      case 'listTopics':
        return { topics: [...this.topics.values()].map((t) => this.info(t)) };
      case 'deleteTopic':
        return { deleted: this.topics.delete(req.topic) };
      case 'configureTopic': {
        const t = this.topic(req.topic);
        t.retention = { ...t.retention, ...req.retention };
        return { topic: this.info(t) };
      }
      case 'append': {
        const t = this.topic(req.topic);
        const endOffset = t.startOffset + t.records.length;
        if (req.producerId !== undefined && req.producerSeq !== undefined) {
          const last = t.producers.get(req.producerId);
          if (last !== undefined && last.seq === req.producerSeq) {
            return {
              firstOffset: last.firstOffset,
              lastOffset: last.lastOffset,
              timestampMs: last.timestampMs,
              duplicate: true,
            };
          }
          const expectedSeq = last === undefined ? 0 : last.seq + 1;
          if (req.producerSeq !== expectedSeq) {
            throw new WalrusError(
              ErrorCode.SEQUENCE_MISMATCH,
              `expected sequence ${expectedSeq}, got ${req.producerSeq}`,
            );
          }
        }
        if (req.expectedOffset !== undefined && req.expectedOffset !== endOffset) {
          throw new WalrusError(
            ErrorCode.OFFSET_MISMATCH,
            `next offset is ${endOffset}, not ${req.expectedOffset}`,
          );
        }
        const timestampMs = Date.now();
        req.records.forEach((r: RecordInput, i) => {
          t.records.push({ offset: endOffset + i, timestampMs, headers: r.headers ?? {}, value: r.value });
        });
        const result = {
          firstOffset: endOffset,
          lastOffset: endOffset + req.records.length - 1,
          timestampMs,
          duplicate: false,
        };
        if (req.producerId !== undefined && req.producerSeq !== undefined) {
          t.producers.set(req.producerId, { seq: req.producerSeq, ...result });
        }
        for (const wake of [...t.waiters]) wake();
        return result;
      }
      case 'read': {
        const t = this.topic(req.topic);
        let endOffset = t.startOffset + t.records.length;
        if (req.offset < t.startOffset || req.offset > endOffset) {
          throw new WalrusError(
            ErrorCode.OFFSET_OUT_OF_RANGE,
            `offset ${req.offset} is outside [${t.startOffset}, ${endOffset}]`,
          );
        }
        if (req.offset === endOffset && req.waitMs > 0) {
          await new Promise<void>((resolve) => {
            const done = (): void => {
              clearTimeout(timer);
              t.waiters.delete(done);
              options?.signal?.removeEventListener('abort', done);
              resolve();
            };
            const timer = setTimeout(done, req.waitMs);
            t.waiters.add(done);
            options?.signal?.addEventListener('abort', done);
          });
          if (options?.signal?.aborted) throw new WalrusError(ErrorCode.UNAVAILABLE, 'aborted');
          endOffset = t.startOffset + t.records.length;
        }
        const out: StoredRecord[] = [];
        let bytes = 0;
        for (let o = req.offset; o < endOffset && out.length < req.recordCountMax; o++) {
          const r = t.records[o - t.startOffset]!;
          if (out.length > 0 && bytes + r.value.byteLength > req.byteCountMax) break;
          out.push(r);
          bytes += r.value.byteLength;
        }
        return { records: out, nextOffset: req.offset + out.length, startOffset: t.startOffset, endOffset };
      }
      case 'offsetForTimestamp': {
        const t = this.topic(req.topic);
        const found = t.records.find((r) => r.timestampMs >= req.timestampMs);
        return { offset: found?.offset ?? t.startOffset + t.records.length };
      }
      case 'consumerReadNext': {
        const t = this.topic(req.topic);
        const from = Math.max(t.consumers.get(req.consumer) ?? 0, t.startOffset);
        const endOffset = t.startOffset + t.records.length;
        const records = t.records.slice(from - t.startOffset, from - t.startOffset + req.recordCountMax);
        const nextOffset = from + records.length;
        if (req.autoCommit) t.consumers.set(req.consumer, nextOffset);
        return { records, nextOffset, endOffset };
      }
      case 'consumerCommit': {
        const t = this.topic(req.topic);
        if (req.offset > t.startOffset + t.records.length) {
          throw new WalrusError(ErrorCode.OFFSET_OUT_OF_RANGE, `offset ${req.offset} is beyond the end`);
        }
        t.consumers.set(req.consumer, req.offset);
        return { consumer: { topic: req.topic, consumer: req.consumer, offset: req.offset } };
      }
      case 'consumerGet': {
        const t = this.topic(req.topic);
        const offset = t.consumers.get(req.consumer);
        if (offset === undefined)
          throw new WalrusError(ErrorCode.CONSUMER_NOT_FOUND, `no consumer '${req.consumer}'`);
        return { consumer: { topic: req.topic, consumer: req.consumer, offset } };
      }
    }
  }
}
