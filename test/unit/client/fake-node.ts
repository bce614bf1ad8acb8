/**
 * An in-memory node for client tests: a real FrameServer speaking both protocols with the real
 * codecs, over a tiny topic store. Tests inject faults per request with `hook`.
 */
import { readRequestId } from '../../../node/protocol/binary-header.js';
import { decodeRequest, encodeErrorReply, encodeReply } from '../../../node/protocol/binary-codec.js';
import { ErrorCode, WalrusError } from '../../../node/protocol/error-codes.js';
import { isBinaryFrame } from '../../../node/protocol/frame.js';
import type {
  ErrorReply,
  Request,
  RequestOp,
  ResponseByOp,
  StoredRecord,
  TopicInfo,
} from '../../../node/protocol/messages.js';
import { encodeTextError, encodeTextReply, parseTextCommand } from '../../../node/protocol/text-codec.js';
import { type FrameConnection, FrameServer } from '../../../node/transport/frame-server.js';

/** What a hook wants done with a request: answer an error, drop the connection, never answer, or go on. */
export type HookResult = ErrorReply | 'drop' | 'hang' | 'apply-then-drop' | undefined;

interface Topic {
  readonly records: StoredRecord[];
  readonly createdAtMs: number;
  retention: { retentionMs: number | null; retentionBytes: number | null };
  /** Absent: the default (1 on this one-node fake). */
  replicationFactor?: number;
}

export class FakeNode {
  readonly nodeId: number;
  readonly topics = new Map<string, Topic>();
  readonly consumers = new Map<string, number>();
  readonly producers = new Map<string, { seq: number; reply: ResponseByOp['append'] }>();
  readonly seen: RequestOp[] = [];
  hook: (request: Request) => HookResult = () => undefined;
  server!: FrameServer;
  port = 0;

  constructor(nodeId: number) {
    this.nodeId = nodeId;
  }

  get addr(): string {
    return `127.0.0.1:${this.port}`;
  }

  count(op: RequestOp): number {
    return this.seen.filter((o) => o === op).length;
  }

  async start(port = 0): Promise<this> {
    this.server = new FrameServer({
      host: '127.0.0.1',
      port,
      frameSizeMaxBytes: 8 * 1024 * 1024,
      connectionCountMax: 32,
      idleTimeoutMs: 60_000,
      inFlightMaxPerConnection: 256,
      writeBufferMaxBytes: 32 * 1024 * 1024,
      onFrame: (conn, payload) => this.onFrame(conn, payload),
    });
    this.port = (await this.server.listen()).port;
    return this;
  }

  stop(): Promise<void> {
    return this.server.close();
  }

  private onFrame(conn: FrameConnection, payload: Buffer): void {
    if (!isBinaryFrame(payload)) {
      conn.send(this.onText(payload));
      return;
    }
    const decoded = decodeRequest(payload);
    if (decoded.kind === 'malformed') {
      conn.send(encodeErrorReply(readRequestId(payload) ?? 0, decoded.error, decoded.opcode));
      return;
    }
    const { requestId, request } = decoded;
    this.seen.push(request.op);
    const hooked = this.hook(request);
    if (hooked === 'drop') {
      conn.close();
      return;
    }
    if (hooked === 'hang') return;
    if (hooked !== undefined && hooked !== 'apply-then-drop') {
      conn.send(encodeErrorReply(requestId, hooked, request.op));
      return;
    }
    try {
      const reply = this.apply(request);
      if (hooked === 'apply-then-drop') conn.close();
      else conn.send(encodeReply(requestId, request.op, reply as never));
    } catch (e) {
      const err = e instanceof WalrusError ? e : new WalrusError(ErrorCode.INTERNAL, String(e));
      conn.send(encodeErrorReply(requestId, err, request.op));
    }
  }

  private onText(payload: Buffer): Buffer {
    const parsed = parseTextCommand(payload);
    if (!parsed.ok) return encodeTextError(parsed.error);
    const c = parsed.command;
    try {
      switch (c.kind) {
        case 'REGISTER':
          this.apply({ op: 'createTopic', topic: c.topic });
          return encodeTextReply({ kind: 'OK' });
        case 'PUT':
          this.apply({ op: 'append', topic: c.topic, records: [{ value: Buffer.from(c.value) }] });
          return encodeTextReply({ kind: 'OK' });
        case 'GET': {
          const r = this.apply({
            op: 'consumerReadNext',
            topic: c.topic,
            consumer: 'shared',
            recordCountMax: 1,
            byteCountMax: 1 << 20,
            autoCommit: true,
          }) as ResponseByOp['consumerReadNext'];
          const rec = r.records[0];
          return rec === undefined
            ? encodeTextReply({ kind: 'EMPTY' })
            : encodeTextReply({ kind: 'OK', payload: rec.value });
        }
        case 'STATE':
          return encodeTextReply({
            kind: 'JSON',
            json: JSON.stringify(
              (this.apply({ op: 'state', topic: c.topic }) as ResponseByOp['state']).state,
            ),
          });
        case 'METRICS':
          return encodeTextReply({
            kind: 'JSON',
            json: JSON.stringify({ id: this.nodeId, state: 'Leader' }),
          });
      }
    } catch (e) {
      return encodeTextError(e instanceof WalrusError ? e : new WalrusError(ErrorCode.INTERNAL, String(e)));
    }
  }

  private topic(name: string): Topic {
    const t = this.topics.get(name);
    if (t === undefined) throw new WalrusError(ErrorCode.TOPIC_NOT_FOUND, `topic '${name}' does not exist`);
    return t;
  }

  private info(name: string): TopicInfo {
    const t = this.topic(name);
    return {
      name,
      retention: t.retention,
      startOffset: 0,
      endOffset: t.records.length,
      currentSegmentId: 1,
      leaderNodeId: this.nodeId,
      segments: [
        {
          id: 1,
          baseOffset: 0,
          endOffset: t.records.length,
          sealed: false,
          leaderNodeId: this.nodeId,
          replicas: [this.nodeId],
          epoch: 1,
        },
      ],
      createdAtMs: t.createdAtMs,
      replicationFactor: t.replicationFactor ?? 1,
      // One copy of the one segment: short of any factor above 1.
      underReplicatedSegmentCount: (t.replicationFactor ?? 1) > 1 ? 1 : 0,
    };
  }

  private apply(r: Request): ResponseByOp[RequestOp] {
    switch (r.op) {
      case 'ping':
        return { nodeId: this.nodeId };
      case 'createTopic': {
        const created = !this.topics.has(r.topic);
        if (created) {
          this.topics.set(r.topic, {
            records: [],
            createdAtMs: 1_700_000_000_000,
            retention: {
              retentionMs: r.retention?.retentionMs ?? null,
              retentionBytes: r.retention?.retentionBytes ?? null,
            },
            ...(r.replicationFactor === undefined ? {} : { replicationFactor: r.replicationFactor }),
          });
        }
        return { created, topic: this.info(r.topic) };
      }
      case 'describeTopic':
        return { topic: this.info(r.topic) };
      case 'listTopics':
        return { topics: [...this.topics.keys()].map((n) => this.info(n)) };
      case 'deleteTopic':
        return { deleted: this.topics.delete(r.topic) };
      case 'configureTopic': {
        const t = this.topic(r.topic);
        t.retention = { ...t.retention, ...r.retention };
        return { topic: this.info(r.topic) };
      }
      case 'append': {
        const t = this.topic(r.topic);
        if (r.expectedOffset !== undefined && r.expectedOffset !== t.records.length) {
          throw new WalrusError(ErrorCode.OFFSET_MISMATCH, `next offset is ${t.records.length}`);
        }
        const key = `${r.topic}/${r.producerId}`;
        const last = r.producerId === undefined ? undefined : this.producers.get(key);
        if (last !== undefined && r.producerSeq === last.seq) return { ...last.reply, duplicate: true };
        const firstOffset = t.records.length;
        for (const rec of r.records) {
          t.records.push({
            offset: t.records.length,
            timestampMs: 1_700_000_000_000,
            headers: rec.headers ?? {},
            value: Buffer.from(rec.value),
          });
        }
        const reply = {
          firstOffset,
          lastOffset: t.records.length - 1,
          timestampMs: 1_700_000_000_000,
          duplicate: false,
          // Echoes what was asked, so tests see both values cross the wire both ways.
          acks: r.acks ?? 'quorum',
        };
        if (r.producerId !== undefined && r.producerSeq !== undefined)
          this.producers.set(key, { seq: r.producerSeq, reply });
        return reply;
      }
      case 'read': {
        const t = this.topic(r.topic);
        const records = t.records.slice(r.offset, r.offset + r.recordCountMax);
        return {
          records,
          nextOffset: r.offset + records.length,
          startOffset: 0,
          endOffset: t.records.length,
        };
      }
      case 'offsetForTimestamp':
      case 'localOffsetForTimestamp': {
        const records = this.topic(r.topic).records;
        const i = records.findIndex((x) => x.timestampMs >= r.timestampMs);
        if (r.op === 'localOffsetForTimestamp') return { offset: i === -1 ? null : i };
        return { offset: i === -1 ? records.length : i };
      }
      case 'consumerReadNext': {
        const t = this.topic(r.topic);
        const key = `${r.topic}/${r.consumer}`;
        const from = this.consumers.get(key) ?? 0;
        const records = t.records.slice(from, from + r.recordCountMax);
        if (r.autoCommit) this.consumers.set(key, from + records.length);
        return { records, nextOffset: from + records.length, endOffset: t.records.length };
      }
      case 'consumerCommit':
        this.topic(r.topic);
        this.consumers.set(`${r.topic}/${r.consumer}`, r.offset);
        return { consumer: { topic: r.topic, consumer: r.consumer, offset: r.offset } };
      case 'consumerGet': {
        this.topic(r.topic);
        const offset = this.consumers.get(`${r.topic}/${r.consumer}`);
        if (offset === undefined)
          throw new WalrusError(ErrorCode.CONSUMER_NOT_FOUND, `no consumer '${r.consumer}'`);
        return { consumer: { topic: r.topic, consumer: r.consumer, offset } };
      }
      case 'consumerList': {
        this.topic(r.topic);
        const consumers = [...this.consumers.entries()]
          .filter(([key]) => key.startsWith(`${r.topic}/`))
          .map(([key, offset]) => ({ topic: r.topic, consumer: key.slice(r.topic.length + 1), offset }));
        return { consumers };
      }
      case 'consumerDelete':
        this.topic(r.topic);
        return { deleted: this.consumers.delete(`${r.topic}/${r.consumer}`) };
      case 'metrics':
        return { metrics: { id: this.nodeId, state: 'Leader', current_term: 1 } };
      case 'removeNode':
        return { removed: false };
      case 'handOff':
        return { handedOff: 0 };
      case 'transferLeader':
        return { leaderId: r.nodeId };
      case 'stream':
        return { stream: null };
      case 'nodeStopping':
        return { marked: false };
      case 'authenticate':
        return { scopes: ['read', 'write', 'admin'] };
      case 'state':
        this.topic(r.topic);
        return {
          state: {
            topic: r.topic,
            current_segment: 1,
            leader_node: this.nodeId,
            sealed_segments: {},
            segment_leaders: { 1: this.nodeId },
          },
        };
    }
  }
}
