/**
 * fast-check arbitraries for every binary-protocol request and reply, shared by the protocol,
 * transport and client tests.
 */
import fc from 'fast-check';
import type {
  ConsumerInfo,
  RecordInput,
  Request,
  RequestOp,
  ResponseByOp,
  RetentionSettings,
  SegmentInfo,
  StoredRecord,
  TopicInfo,
} from '../../../node/protocol/messages.js';

export const topicArb = fc.stringMatching(/^[A-Za-z0-9._-]{1,40}$/).filter((s) => s !== '.' && s !== '..');
export const longTopicArb = fc.constantFrom('a'.repeat(200), `${'x'.repeat(199)}.`);
export const anyTopicArb = fc.oneof(
  { weight: 9, arbitrary: topicArb },
  { weight: 1, arbitrary: longTopicArb },
);
export const consumerArb = fc
  .string({ minLength: 1, maxLength: 60 })
  .filter((s) => Buffer.byteLength(s) <= 200);
export const offsetArb = fc.oneof(
  fc.nat(),
  fc.constantFrom(0, 2 ** 32 - 1, 2 ** 32, Number.MAX_SAFE_INTEGER),
);
export const u32Arb = fc.oneof(fc.nat(0xffffffff), fc.constantFrom(0, 1, 0xffffffff));
const valueArb = fc.uint8Array({ maxLength: 64 }).map((a) => Buffer.from(a));
const headersArb = fc
  .dictionary(
    fc.string({ minLength: 1, maxLength: 12 }).filter((s) => s !== '__proto__' && s.charCodeAt(0) !== 0), // NUL-led names are the node's
    fc.string({ maxLength: 24 }),
    { maxKeys: 4 },
  )
  .map((h) => h as Record<string, string>);
export const recordInputArb: fc.Arbitrary<RecordInput> = fc.oneof(
  valueArb.map((value) => ({ value })),
  fc.tuple(valueArb, headersArb).map(([value, headers]) => ({ value, headers })),
);
export const storedRecordArb: fc.Arbitrary<StoredRecord> = fc.record({
  offset: offsetArb,
  timestampMs: offsetArb,
  headers: headersArb,
  value: valueArb,
});
const retentionValueArb = fc.oneof(fc.constant(null), offsetArb);
export const partialRetentionArb: fc.Arbitrary<Partial<RetentionSettings>> = fc.record(
  { retentionMs: retentionValueArb, retentionBytes: retentionValueArb },
  { requiredKeys: [] },
);
const retentionArb: fc.Arbitrary<RetentionSettings> = fc.record({
  retentionMs: retentionValueArb,
  retentionBytes: retentionValueArb,
});
export const replicationFactorArb = fc.integer({ min: 1, max: 7 });
const segmentInfoArb: fc.Arbitrary<SegmentInfo> = fc.record({
  id: u32Arb,
  baseOffset: offsetArb,
  endOffset: offsetArb,
  sealed: fc.boolean(),
  leaderNodeId: u32Arb,
  replicas: fc.array(u32Arb, { maxLength: 7 }),
  epoch: u32Arb,
});
export const topicInfoArb: fc.Arbitrary<TopicInfo> = fc
  .record({
    name: anyTopicArb,
    retention: retentionArb,
    startOffset: offsetArb,
    endOffset: offsetArb,
    currentSegmentId: u32Arb,
    leaderNodeId: u32Arb,
    segments: fc.array(segmentInfoArb, { maxLength: 4 }),
    createdAtMs: offsetArb,
    replicationFactor: replicationFactorArb,
    underReplicated: fc.nat(),
  })
  .map(({ underReplicated, ...t }) => ({
    ...t,
    underReplicatedSegmentCount: underReplicated % (t.segments.length + 1),
  }));
export const acksArb = fc.constantFrom('leader' as const, 'quorum' as const);
const consumerInfoArb: fc.Arbitrary<ConsumerInfo> = fc.record({
  topic: anyTopicArb,
  consumer: consumerArb,
  offset: offsetArb,
});
const jsonArb = fc.jsonValue().map((v) => JSON.parse(JSON.stringify(v)) as unknown);

export const requestArb: fc.Arbitrary<Request> = fc.oneof(
  fc.constant({ op: 'ping' } as const),
  fc.record(
    {
      op: fc.constant('createTopic' as const),
      topic: anyTopicArb,
      retention: partialRetentionArb,
      replicationFactor: replicationFactorArb,
    },
    {
      requiredKeys: ['op', 'topic'],
    },
  ),
  fc.record({ op: fc.constant('describeTopic' as const), topic: anyTopicArb }),
  fc.constant({ op: 'listTopics' } as const),
  fc.record({ op: fc.constant('deleteTopic' as const), topic: anyTopicArb }),
  fc.record({ op: fc.constant('removeNode' as const), nodeId: fc.integer({ min: 1, max: 0xffffffff }) }),
  fc.record({ op: fc.constant('handOff' as const), nodeId: fc.integer({ min: 1, max: 0xffffffff }) }),
  fc.record({ op: fc.constant('transferLeader' as const), nodeId: fc.integer({ min: 1, max: 0xffffffff }) }),
  fc.record({ op: fc.constant('nodeStopping' as const), nodeId: fc.integer({ min: 1, max: 0xffffffff }) }),
  fc.record({
    op: fc.constant('authenticate' as const),
    token: fc.string({ unit: 'grapheme-ascii', minLength: 1, maxLength: 512 }),
  }),
  fc.record({
    op: fc.constant('configureTopic' as const),
    topic: anyTopicArb,
    retention: partialRetentionArb,
  }),
  fc.record(
    {
      op: fc.constant('append' as const),
      topic: anyTopicArb,
      records: fc.array(recordInputArb, { maxLength: 5 }),
      producerId: fc.string({ minLength: 1, maxLength: 20 }),
      producerSeq: offsetArb,
      expectedOffset: offsetArb,
      // 'quorum' is the default and travels as an absent option: it decodes as absent.
      acks: fc.constant('leader' as const),
    },
    { requiredKeys: ['op', 'topic', 'records'] },
  ),
  fc.record({
    op: fc.constant('read' as const),
    topic: anyTopicArb,
    offset: offsetArb,
    recordCountMax: fc.integer({ min: 1, max: 10_000 }),
    byteCountMax: fc.integer({ min: 1, max: 4 * 1024 * 1024 }),
    waitMs: fc.integer({ min: 0, max: 60_000 }),
  }),
  fc.record({ op: fc.constant('offsetForTimestamp' as const), topic: anyTopicArb, timestampMs: offsetArb }),
  fc.record({
    op: fc.constant('localOffsetForTimestamp' as const),
    topic: anyTopicArb,
    timestampMs: offsetArb,
  }),
  fc.record({
    op: fc.constant('consumerReadNext' as const),
    topic: anyTopicArb,
    consumer: consumerArb,
    recordCountMax: fc.integer({ min: 1, max: 10_000 }),
    byteCountMax: fc.integer({ min: 1, max: 4 * 1024 * 1024 }),
    autoCommit: fc.boolean(),
  }),
  fc.record(
    {
      op: fc.constant('consumerCommit' as const),
      topic: anyTopicArb,
      consumer: consumerArb,
      offset: offsetArb,
      expectedOffset: offsetArb,
    },
    { requiredKeys: ['op', 'topic', 'consumer', 'offset'] },
  ),
  fc.record({ op: fc.constant('consumerGet' as const), topic: anyTopicArb, consumer: consumerArb }),
  fc.record({ op: fc.constant('consumerList' as const), topic: anyTopicArb }),
  fc.record({ op: fc.constant('consumerDelete' as const), topic: anyTopicArb, consumer: consumerArb }),
  fc.constant({ op: 'metrics' } as const),
  fc.record({ op: fc.constant('state' as const), topic: anyTopicArb }),
);

export type AnyReply = { [Op in RequestOp]: { op: Op; reply: ResponseByOp[Op] } }[RequestOp];

export const replyArb: fc.Arbitrary<AnyReply> = fc.oneof(
  fc.record({ op: fc.constant('ping' as const), reply: fc.record({ nodeId: u32Arb }) }),
  fc.record({
    op: fc.constant('createTopic' as const),
    reply: fc.record({ created: fc.boolean(), topic: topicInfoArb }),
  }),
  fc.record({ op: fc.constant('describeTopic' as const), reply: fc.record({ topic: topicInfoArb }) }),
  fc.record({
    op: fc.constant('listTopics' as const),
    reply: fc.record({ topics: fc.array(topicInfoArb, { maxLength: 3 }) }),
  }),
  fc.record({ op: fc.constant('deleteTopic' as const), reply: fc.record({ deleted: fc.boolean() }) }),
  fc.record({ op: fc.constant('removeNode' as const), reply: fc.record({ removed: fc.boolean() }) }),
  fc.record({
    op: fc.constant('handOff' as const),
    reply: fc.record({ handedOff: fc.integer({ min: 0, max: 0xffffffff }) }),
  }),
  fc.record({
    op: fc.constant('transferLeader' as const),
    reply: fc.record({ leaderId: fc.integer({ min: 0, max: 0xffffffff }) }),
  }),
  fc.record({ op: fc.constant('nodeStopping' as const), reply: fc.record({ marked: fc.boolean() }) }),
  fc.record({
    op: fc.constant('authenticate' as const),
    reply: fc.record({
      scopes: fc.array(fc.constantFrom('read', 'write', 'admin'), { maxLength: 3 }),
    }),
  }),
  fc.record({ op: fc.constant('configureTopic' as const), reply: fc.record({ topic: topicInfoArb }) }),
  fc.record({
    op: fc.constant('append' as const),
    reply: fc.record({
      firstOffset: offsetArb,
      lastOffset: offsetArb,
      timestampMs: offsetArb,
      duplicate: fc.boolean(),
      acks: acksArb,
    }),
  }),
  fc.record({
    op: fc.constant('read' as const),
    reply: fc.record({
      records: fc.array(storedRecordArb, { maxLength: 5 }),
      nextOffset: offsetArb,
      startOffset: offsetArb,
      endOffset: offsetArb,
    }),
  }),
  fc.record({ op: fc.constant('offsetForTimestamp' as const), reply: fc.record({ offset: offsetArb }) }),
  fc.record({
    op: fc.constant('localOffsetForTimestamp' as const),
    reply: fc.record({ offset: fc.option(offsetArb, { nil: null }) }),
  }),
  fc.record({
    op: fc.constant('consumerReadNext' as const),
    reply: fc.record({
      records: fc.array(storedRecordArb, { maxLength: 5 }),
      nextOffset: offsetArb,
      endOffset: offsetArb,
    }),
  }),
  fc.record({ op: fc.constant('consumerCommit' as const), reply: fc.record({ consumer: consumerInfoArb }) }),
  fc.record({ op: fc.constant('consumerGet' as const), reply: fc.record({ consumer: consumerInfoArb }) }),
  fc.record({
    op: fc.constant('consumerList' as const),
    reply: fc.record({ consumers: fc.array(consumerInfoArb, { maxLength: 5 }) }),
  }),
  fc.record({ op: fc.constant('consumerDelete' as const), reply: fc.record({ deleted: fc.boolean() }) }),
  fc.record({ op: fc.constant('metrics' as const), reply: fc.record({ metrics: jsonArb }) }),
  fc.record({ op: fc.constant('state' as const), reply: fc.record({ state: jsonArb }) }),
);

/** Turns Buffers and Uint8Arrays into plain arrays so that deepEqual compares bytes, not classes. */
export function normalize(value: unknown): unknown {
  if (value instanceof Uint8Array) return { bytes: [...value] };
  if (Array.isArray(value)) return value.map(normalize);
  if (value !== null && typeof value === 'object') {
    const out: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(value)) {
      if (v === undefined) continue;
      if (
        (k === 'headers' || k === 'retention') &&
        v !== null &&
        typeof v === 'object' &&
        Object.keys(v).length === 0
      )
        continue;
      out[k] = normalize(v);
    }
    return out;
  }
  return value;
}
