/**
 * The replication fields of the client protocol, byte by byte: append's `acks` (bit 3 of the
 * options byte; a trailing u8 in the reply) and `noForward` (bit 4), createTopic's replication factor (presence u8 + u8
 * after the retention block) and the replica sets, epochs, replication factor and
 * under-replicated count of TopicInfo. Values the protocol cannot carry are refused by the encoder
 * and by the decoder, with BAD_REQUEST.
 */
import test from 'ava';
import { binaryHeaderSizeBytes } from '../../../node/protocol/binary-header.js';
import {
  decodeReply,
  decodeRequest,
  encodeReply,
  encodeRequest,
} from '../../../node/protocol/binary-codec.js';
import { ErrorCode, WalrusError } from '../../../node/protocol/error-codes.js';
import type { Request, ResponseByOp, TopicInfo } from '../../../node/protocol/messages.js';

function codeOf(f: () => unknown): string {
  try {
    f();
    return 'ok';
  } catch (e) {
    return e instanceof WalrusError ? e.code : 'untyped';
  }
}

function requestOf(payload: Buffer): Request {
  const d = decodeRequest(payload);
  if (d.kind !== 'request') throw new Error(`did not decode: ${d.error.message}`);
  return d.request;
}

function malformedRequest(payload: Buffer): string {
  const d = decodeRequest(payload);
  return d.kind === 'malformed' ? `${d.error.code} ${d.error.message}` : 'decoded';
}

function malformedReply(payload: Buffer): string {
  const d = decodeReply(payload);
  return d.kind === 'malformed' ? `${d.error.code} ${d.error.message}` : d.kind;
}

// ---- append: acks --------------------------------------------------------------------------------

const oneRecord = [{ value: Buffer.from('x') }];
/** Header, then str8 "t": the options byte follows. */
const appendOptionsAt = binaryHeaderSizeBytes + 2;

test('append acks leader is bit 3 (0x08) of the options byte and round-trips', (t) => {
  const bytes = encodeRequest(1, { op: 'append', topic: 't', records: oneRecord, acks: 'leader' });
  t.is(bytes[appendOptionsAt], 0x08);
  t.like(requestOf(bytes), { op: 'append', acks: 'leader' });
  const all = encodeRequest(1, {
    op: 'append',
    topic: 't',
    records: oneRecord,
    producerId: 'p',
    producerSeq: 3,
    expectedOffset: 9,
    acks: 'leader',
  });
  t.is(all[appendOptionsAt], 0x0f);
  t.like(requestOf(all), { producerId: 'p', producerSeq: 3, expectedOffset: 9, acks: 'leader' });
});

test('append acks quorum is the default: the same bytes as no acks, decoded as absent', (t) => {
  const quorum = encodeRequest(1, { op: 'append', topic: 't', records: oneRecord, acks: 'quorum' });
  const none = encodeRequest(1, { op: 'append', topic: 't', records: oneRecord });
  t.deepEqual(quorum, none);
  t.is(quorum[appendOptionsAt], 0);
  t.false('acks' in requestOf(quorum));
});

test('append noForward is bit 4 (0x10) of the options byte and round-trips; false travels as absent', (t) => {
  const bytes = encodeRequest(1, { op: 'append', topic: 't', records: oneRecord, noForward: true });
  t.is(bytes[appendOptionsAt], 0x10);
  t.like(requestOf(bytes), { op: 'append', noForward: true });
  const off = encodeRequest(1, { op: 'append', topic: 't', records: oneRecord, noForward: false });
  t.deepEqual(off, encodeRequest(1, { op: 'append', topic: 't', records: oneRecord }));
  t.false('noForward' in requestOf(off));
});

test('append options with an unknown bit, or a bad acks value, are BAD_REQUEST', (t) => {
  // 0x80 announces the extension byte (Durable Streams fields; its unknown bits: stream-append-options.test.ts).
  for (const bit of [0x20, 0x40]) {
    const forged = Buffer.from(encodeRequest(5, { op: 'append', topic: 't', records: oneRecord }));
    forged[appendOptionsAt] = bit | 0x08;
    const d = decodeRequest(forged);
    t.true(d.kind === 'malformed' && d.error.code === ErrorCode.BAD_REQUEST && d.requestId === 5, `${bit}`);
    t.regex(malformedRequest(forged), /unknown bits/);
  }
  t.is(
    codeOf(() =>
      encodeRequest(1, { op: 'append', topic: 't', records: oneRecord, acks: 'all' as unknown as 'leader' }),
    ),
    ErrorCode.BAD_REQUEST,
  );
});

const appendReply: ResponseByOp['append'] = {
  firstOffset: 1,
  lastOffset: 2,
  timestampMs: 3,
  duplicate: false,
  acks: 'leader',
};

test('the append reply ends with acks: 0 quorum, 1 leader', (t) => {
  const leader = encodeReply(1, 'append', appendReply);
  t.is(leader[leader.length - 1], 1);
  t.like(decodeReply(leader), { kind: 'response', response: { acks: 'leader' } });
  const quorum = encodeReply(1, 'append', { ...appendReply, acks: 'quorum' });
  t.is(quorum[quorum.length - 1], 0);
  t.like(decodeReply(quorum), { kind: 'response', response: { acks: 'quorum' } });
});

test('a node reply without acks is sent as quorum, and decoded replies always carry acks', (t) => {
  const { acks: _acks, ...withoutAcks } = appendReply;
  const payload = encodeReply(1, 'append', withoutAcks);
  t.is(payload[payload.length - 1], 0);
  const d = decodeReply(payload);
  t.true(d.kind === 'response' && (d.response as ResponseByOp['append']).acks === 'quorum');
});

test('an append reply with an unknown acks byte, or without it, is malformed', (t) => {
  const good = encodeReply(1, 'append', appendReply);
  for (const value of [2, 3, 0xff]) {
    const forged = Buffer.from(good);
    forged[forged.length - 1] = value;
    t.regex(malformedReply(forged), /^BAD_REQUEST acks \d+ is not valid/);
  }
  t.regex(malformedReply(good.subarray(0, good.length - 1)), /^BAD_REQUEST truncated/);
  t.is(
    codeOf(() => encodeReply(1, 'append', { ...appendReply, acks: 'some' as unknown as 'leader' })),
    ErrorCode.BAD_REQUEST,
  );
});

// ---- createTopic: replicationFactor --------------------------------------------------------------

test('createTopic carries the replication factor after the retention block: presence u8, then u8', (t) => {
  const with3 = encodeRequest(1, { op: 'createTopic', topic: 't', replicationFactor: 3 });
  // header, str8 "t", retention tags absent/absent, present, factor
  t.is(with3.subarray(binaryHeaderSizeBytes).toString('hex'), '0174' + '0000' + '01' + '03');
  t.deepEqual(requestOf(with3), { op: 'createTopic', topic: 't', replicationFactor: 3 });
  const none = encodeRequest(1, { op: 'createTopic', topic: 't' });
  t.is(none.subarray(binaryHeaderSizeBytes).toString('hex'), '0174' + '0000' + '00');
  t.deepEqual(requestOf(none), { op: 'createTopic', topic: 't' });
  const zero = encodeRequest(1, { op: 'createTopic', topic: 't', replicationFactor: 0 });
  t.deepEqual(zero, none, '0 is the default, as absent');
  const both = encodeRequest(1, {
    op: 'createTopic',
    topic: 't',
    retention: { retentionMs: 5 },
    replicationFactor: 7,
  });
  t.deepEqual(requestOf(both), {
    op: 'createTopic',
    topic: 't',
    retention: { retentionMs: 5 },
    replicationFactor: 7,
  });
});

test('a replication factor outside 1..7 is BAD_REQUEST, at encode and at decode', (t) => {
  for (const replicationFactor of [8, 100, -1, 1.5, Number.NaN]) {
    t.is(
      codeOf(() => encodeRequest(1, { op: 'createTopic', topic: 't', replicationFactor })),
      ErrorCode.BAD_REQUEST,
      String(replicationFactor),
    );
  }
  const good = encodeRequest(9, { op: 'createTopic', topic: 't', replicationFactor: 3 });
  for (const value of [0, 8, 255]) {
    const forged = Buffer.from(good);
    forged[forged.length - 1] = value;
    const d = decodeRequest(forged);
    t.true(d.kind === 'malformed' && d.error.code === ErrorCode.BAD_REQUEST && d.requestId === 9);
    t.regex(malformedRequest(forged), /replicationFactor must be in \[1, 7\]/);
  }
  const badPresence = Buffer.from(good);
  badPresence[badPresence.length - 2] = 2;
  t.regex(malformedRequest(badPresence), /^BAD_REQUEST replicationFactor present must be 0 or 1/);
  t.regex(malformedRequest(good.subarray(0, good.length - 1)), /^BAD_REQUEST truncated/);
  t.regex(malformedRequest(good.subarray(0, good.length - 2)), /^BAD_REQUEST truncated/);
  const extra = Buffer.concat([encodeRequest(9, { op: 'createTopic', topic: 't' }), Buffer.from([3])]);
  t.regex(malformedRequest(extra), /^BAD_REQUEST/, 'no factor byte after an absent presence');
});

test('configureTopic carries no replication factor', (t) => {
  const bytes = encodeRequest(1, { op: 'configureTopic', topic: 't', retention: { retentionBytes: 1 } });
  t.deepEqual(requestOf(bytes), { op: 'configureTopic', topic: 't', retention: { retentionBytes: 1 } });
  t.regex(malformedRequest(Buffer.concat([bytes, Buffer.from([0])])), /^BAD_REQUEST/);
});

// ---- TopicInfo ----------------------------------------------------------------------------------

const info: TopicInfo = {
  name: 't',
  retention: { retentionMs: null, retentionBytes: null },
  startOffset: 0,
  endOffset: 10,
  currentSegmentId: 2,
  leaderNodeId: 2,
  segments: [
    { id: 1, baseOffset: 0, endOffset: 4, sealed: true, leaderNodeId: 1, replicas: [1, 4], epoch: 3 },
    { id: 2, baseOffset: 4, endOffset: 10, sealed: false, leaderNodeId: 2, replicas: [2, 3, 1], epoch: 1 },
  ],
  createdAtMs: 1_700_000_000_000,
  replicationFactor: 3,
  underReplicatedSegmentCount: 1,
};

/** header, str8 "t", two null retention tags, start, end, current, leader, created, segment count. */
const firstSegmentAt = binaryHeaderSizeBytes + 2 + 2 + 8 + 8 + 4 + 4 + 8 + 4;
/** id, base, end, sealed, leader: the replica count follows. */
const replicaCountAt = firstSegmentAt + 4 + 8 + 8 + 1 + 4;

test('TopicInfo carries replicas and epoch per segment, then the replication factor and under-replicated count', (t) => {
  const payload = encodeReply(1, 'describeTopic', { topic: info });
  t.is(payload[replicaCountAt], 2);
  t.is(payload.readUInt32LE(replicaCountAt + 1), 1);
  t.is(payload.readUInt32LE(replicaCountAt + 5), 4);
  t.is(payload.readUInt32LE(replicaCountAt + 9), 3, 'epoch');
  t.is(payload[payload.length - 5], 3, 'replicationFactor u8');
  t.is(payload.readUInt32LE(payload.length - 4), 1, 'underReplicatedSegmentCount u32');
  t.like(decodeReply(payload), { kind: 'response', response: { topic: info } });
  const d = decodeReply(payload);
  t.true(d.kind === 'response');
  if (d.kind === 'response') t.deepEqual((d.response as ResponseByOp['describeTopic']).topic, info);
});

test('TopicInfo values out of range are refused by the encoder with BAD_REQUEST', (t) => {
  const segment = info.segments[0]!;
  for (const bad of [
    { ...info, replicationFactor: 0 },
    { ...info, replicationFactor: 8 },
    { ...info, underReplicatedSegmentCount: 3 },
    { ...info, underReplicatedSegmentCount: -1 },
    { ...info, segments: [{ ...segment, replicas: [1, 2, 3, 4, 5, 6, 7, 8] }] },
    { ...info, segments: [{ ...segment, replicas: [-1] }] },
    { ...info, segments: [{ ...segment, epoch: 2 ** 32 }] },
  ]) {
    t.is(
      codeOf(() => encodeReply(1, 'describeTopic', { topic: bad })),
      ErrorCode.BAD_REQUEST,
      JSON.stringify(bad),
    );
  }
});

test('a TopicInfo with a bad replica count, replication factor or under-replicated count is malformed', (t) => {
  const good = encodeReply(1, 'describeTopic', { topic: info });
  const replicas = Buffer.from(good);
  replicas[replicaCountAt] = 8;
  t.regex(malformedReply(replicas), /^BAD_REQUEST segment replica count 8 is above the limit of 7/);
  for (const value of [0, 8]) {
    const factor = Buffer.from(good);
    factor[factor.length - 5] = value;
    t.regex(malformedReply(factor), /^BAD_REQUEST replicationFactor must be in \[1, 7\]/);
  }
  const under = Buffer.from(good);
  under.writeUInt32LE(3, under.length - 4);
  t.regex(malformedReply(under), /^BAD_REQUEST underReplicatedSegmentCount 3 is above the segment count 2/);
  t.regex(malformedReply(good.subarray(0, good.length - 1)), /^BAD_REQUEST truncated/);
  // A listTopics reply with the same topic twice reads both whole.
  const list = decodeReply(encodeReply(2, 'listTopics', { topics: [info, info] }));
  t.true(list.kind === 'response');
  if (list.kind === 'response')
    t.deepEqual((list.response as ResponseByOp['listTopics']).topics, [info, info]);
});
