/**
 * The Durable Streams additions to the binary protocol: the append extension byte (producer epoch,
 * close, Stream-Seq) and the `stream` op round-trip; an extension byte with unknown bits (or none
 * set) is BAD_REQUEST; appends without them encode exactly as before.
 */
import test from 'ava';
import { binaryHeaderSizeBytes } from '../../../node/protocol/binary-header.js';
import {
  decodeReply,
  decodeRequest,
  encodeReply,
  encodeRequest,
} from '../../../node/protocol/binary-codec.js';
import type { Request, StreamReply } from '../../../node/protocol/messages.js';

const oneRecord = [{ value: Buffer.from('x') }];
const appendOptionsAt = binaryHeaderSizeBytes + 2;

function requestOf(payload: Buffer): Request {
  const d = decodeRequest(payload);
  if (d.kind !== 'request') throw new Error(`did not decode: ${d.error.message}`);
  return d.request;
}

test('append extension fields round-trip, each alone and together', (t) => {
  const cases: Request[] = [
    { op: 'append', topic: 't', records: oneRecord, producerId: 'p', producerSeq: 3, producerEpoch: 7 },
    { op: 'append', topic: 't', records: [], close: true },
    { op: 'append', topic: 't', records: oneRecord, streamSeq: '0002' },
    {
      op: 'append',
      topic: 't',
      records: oneRecord,
      producerId: 'p',
      producerSeq: 0,
      producerEpoch: 1,
      close: true,
      streamSeq: 'b',
      expectedOffset: 4,
    },
  ];
  for (const request of cases) {
    const decoded = requestOf(encodeRequest(9, request));
    t.deepEqual(
      { ...decoded, records: undefined },
      { ...request, records: undefined },
      JSON.stringify({ ...request, records: undefined }),
    );
  }
});

test('an append without DS fields has no extension byte (the wire format of before)', (t) => {
  const plain = encodeRequest(1, {
    op: 'append',
    topic: 't',
    records: oneRecord,
    producerId: 'p',
    producerSeq: 1,
  });
  t.is(plain[appendOptionsAt]! & 0x80, 0);
});

test('an extension byte with unknown bits, or with none, is BAD_REQUEST', (t) => {
  for (const ext of [0x08, 0x80, 0x00]) {
    const good = Buffer.from(encodeRequest(5, { op: 'append', topic: 't', records: oneRecord, close: true }));
    t.is(good[appendOptionsAt]! & 0x80, 0x80);
    good[appendOptionsAt + 1] = ext;
    const d = decodeRequest(good);
    t.true(d.kind === 'malformed' && d.error.code === 'BAD_REQUEST', `ext ${ext}`);
  }
});

test('the stream op carries its action and reply as JSON', (t) => {
  const request: Request = {
    op: 'stream',
    topic: 'ds.abc',
    action: {
      kind: 'create',
      path: '/v1/stream/a b/ü',
      contentType: 'text/plain',
      ttlSeconds: 60,
      expiresAtMs: null,
      forkOf: { topic: 'ds.src', offset: 3, subOffset: 2 },
    },
  };
  t.deepEqual(requestOf(encodeRequest(3, request)), request);
  const reply: StreamReply = { stream: null, producer: { epoch: 2, seq: 9 } };
  const d = decodeReply(encodeReply(3, 'stream', reply));
  t.true(d.kind === 'response' && JSON.stringify(d.response) === JSON.stringify(reply), JSON.stringify(d));
});
