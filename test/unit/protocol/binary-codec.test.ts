/**
 * The binary codec: every request and reply variant round-trips, several messages split at every
 * byte still decode, and garbage gives a typed error (with the request id when readable), never an
 * exception and never a hang.
 */
import test from 'ava';
import fc from 'fast-check';
import { binaryHeaderSizeBytes, Opcode, opcodeRanges } from '../../../node/protocol/binary-header.js';
import {
  decodeReply,
  decodeRequest,
  encodeAppendReply,
  encodeErrorReply,
  encodeReply,
  encodeRequest,
} from '../../../node/protocol/binary-codec.js';
import { ErrorCode, WalrusError } from '../../../node/protocol/error-codes.js';
import { encodeFrame } from '../../../node/protocol/frame.js';
import { FrameDecoder } from '../../../node/protocol/frame-decoder.js';
import type { Request } from '../../../node/protocol/messages.js';
import { normalize, replyArb, requestArb, u32Arb } from './arbitraries.js';

test('every request variant round-trips with its request id', (t) => {
  fc.assert(
    fc.property(u32Arb, requestArb, (requestId, request) => {
      const decoded = decodeRequest(encodeRequest(requestId, request));
      if (decoded.kind !== 'request') return false;
      t.is(decoded.requestId, requestId);
      t.deepEqual(normalize(decoded.request), normalize(request));
      return true;
    }),
    { numRuns: 500 },
  );
});

test('every reply variant round-trips with its request id and op', (t) => {
  fc.assert(
    fc.property(u32Arb, replyArb, (requestId, { op, reply }) => {
      const decoded = decodeReply(encodeReply(requestId, op, reply as never));
      if (decoded.kind !== 'response') return false;
      t.is(decoded.requestId, requestId);
      t.is(decoded.op, op);
      t.deepEqual(normalize(decoded.response), normalize(reply));
      return true;
    }),
    { numRuns: 500 },
  );
});

test('error replies carry code, message and leader hint', (t) => {
  const payload = encodeErrorReply(
    9,
    {
      code: ErrorCode.NOT_LEADER,
      message: 'ask node 2',
      leaderHint: { nodeId: 2, clientAddr: '127.0.0.1:9092' },
    },
    'append',
  );
  t.deepEqual(decodeReply(payload), {
    kind: 'error',
    requestId: 9,
    op: 'append',
    error: {
      code: ErrorCode.NOT_LEADER,
      message: 'ask node 2',
      leaderHint: { nodeId: 2, clientAddr: '127.0.0.1:9092' },
    },
  });
  const noOp = decodeReply(encodeErrorReply(10, new WalrusError(ErrorCode.BAD_REQUEST, 'bad')));
  t.deepEqual(noOp, {
    kind: 'error',
    requestId: 10,
    op: undefined,
    error: { code: ErrorCode.BAD_REQUEST, message: 'bad' },
  });
  const long = decodeReply(encodeErrorReply(1, { code: ErrorCode.INTERNAL, message: 'é'.repeat(10_000) }));
  t.true(
    long.kind === 'error' && Buffer.byteLength(long.error.message) <= 4096,
    'long messages are truncated',
  );
});

test('an unknown error code from a newer peer is read as INTERNAL with the raw code kept', (t) => {
  const payload = encodeErrorReply(3, { code: ErrorCode.BUSY, message: 'm' });
  const forged = Buffer.concat([
    payload.subarray(0, binaryHeaderSizeBytes),
    Buffer.from([8]),
    Buffer.from('NEW_CODE'),
    payload.subarray(binaryHeaderSizeBytes + 1 + 4),
  ]);
  const r = decodeReply(forged);
  t.true(r.kind === 'error' && r.error.code === ErrorCode.INTERNAL && r.error.message === 'NEW_CODE: m');
});

test('the worked example of docs/protocol.md: one append request and its reply, byte for byte', (t) => {
  const request = encodeRequest(42, {
    op: 'append',
    topic: 'logs',
    records: [{ value: Buffer.from('hello'), headers: { k: 'v' } }],
  });
  t.is(
    encodeFrame(request).toString('hex'),
    '23000000' +
      'b10110002a000000' +
      '046c6f6773' +
      '00' +
      '01000000' +
      '0100' +
      '01006b' +
      '010076' +
      '0500000068656c6c6f',
  );
  const reply = encodeReply(42, 'append', {
    firstOffset: 7,
    lastOffset: 7,
    timestampMs: 1_700_000_000_000,
    duplicate: false,
    acks: 'quorum',
  });
  t.is(
    encodeFrame(reply).toString('hex'),
    '22000000' +
      'b10110012a000000' +
      '0700000000000000' +
      '0700000000000000' +
      '0068e5cf8b010000' +
      '00' +
      '00',
  );
});

test('several messages in one stream, split at every byte boundary, decode identically', (t) => {
  const requests: Request[] = [
    { op: 'ping' },
    {
      op: 'append',
      topic: 't',
      records: [{ value: Buffer.from('a b') }, { value: Buffer.alloc(0) }],
      producerId: 'p',
      producerSeq: 1,
    },
    { op: 'read', topic: 't', offset: 5, recordCountMax: 10, byteCountMax: 100, waitMs: 0 },
    { op: 'consumerCommit', topic: 't', consumer: 'c', offset: 2 ** 40 },
    { op: 'consumerCommit', topic: 't', consumer: 'c', offset: 9, expectedOffset: 4 },
  ];
  const stream = Buffer.concat(requests.map((r, i) => encodeFrame(encodeRequest(i + 1, r))));
  const expected = requests.map((r, i) => ({ requestId: i + 1, request: normalize(r) }));
  for (let at = 0; at <= stream.length; at += 1) {
    const decoder = new FrameDecoder();
    const frames = [
      ...decoder.push(stream.subarray(0, at)).frames,
      ...decoder.push(stream.subarray(at)).frames,
    ];
    const decoded = frames.map((f) => {
      const d = decodeRequest(f);
      return d.kind === 'request' ? { requestId: d.requestId, request: normalize(d.request) } : d;
    });
    t.deepEqual(decoded, expected);
  }
});

test('random garbage gives a typed error, never a throw', (t) => {
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 200 }), (bytes) => {
      const buf = Buffer.from(bytes);
      const req = decodeRequest(buf);
      const rep = decodeReply(buf);
      return (
        (req.kind === 'request' || req.error instanceof WalrusError) &&
        (rep.kind !== 'malformed' || rep.error instanceof WalrusError)
      );
    }),
    { numRuns: 2000 },
  );
  t.pass();
});

test('mutated and truncated valid messages never throw, and what decodes re-encodes stably', (t) => {
  fc.assert(
    fc.property(
      requestArb,
      fc.array(fc.tuple(fc.nat(), fc.nat(255)), { maxLength: 4 }),
      fc.nat(),
      (request, flips, cutAt) => {
        const bytes = Buffer.from(encodeRequest(7, request));
        for (const [at, value] of flips)
          bytes[binaryHeaderSizeBytes + (at % Math.max(1, bytes.length - binaryHeaderSizeBytes))] = value;
        const truncated = bytes.subarray(0, cutAt % (bytes.length + 1));
        for (const candidate of [bytes, truncated]) {
          const d = decodeRequest(candidate);
          if (d.kind === 'malformed') {
            if (!(d.error instanceof WalrusError)) return false;
            if (candidate.length >= binaryHeaderSizeBytes && d.requestId !== 7) return false;
            continue;
          }
          const again = decodeRequest(encodeRequest(d.requestId, d.request));
          if (again.kind !== 'request') return false;
          t.deepEqual(normalize(again.request), normalize(d.request));
        }
        return true;
      },
    ),
    { numRuns: 1000 },
  );
});

test('a huge length field inside a message is rejected without allocating it', (t) => {
  const valid = encodeRequest(5, { op: 'append', topic: 't', records: [{ value: Buffer.from('x') }] });
  // Record count field sits after header(8) + topic(2) + options(1).
  const forged = Buffer.from(valid);
  forged.writeUInt32LE(0xffffffff, binaryHeaderSizeBytes + 3);
  const r = decodeRequest(forged);
  t.true(r.kind === 'malformed' && r.error.code === ErrorCode.BATCH_TOO_LARGE && r.requestId === 5);
  const forgedValue = Buffer.from(valid);
  forgedValue.writeUInt32LE(0x7fffffff, forgedValue.length - 5);
  const v = decodeRequest(forgedValue);
  t.true(v.kind === 'malformed' && v.error.code === ErrorCode.BAD_REQUEST);
});

test('decode validates topics, numeric ranges, versions, flags and opcodes, keeping the request id', (t) => {
  const read = encodeRequest(77, {
    op: 'read',
    topic: 'ab',
    offset: 1,
    recordCountMax: 1,
    byteCountMax: 1,
    waitMs: 0,
  });
  const badTopic = Buffer.from(read);
  badTopic.write('..', binaryHeaderSizeBytes + 1, 'latin1');
  t.like(decodeRequest(badTopic), {
    kind: 'malformed',
    requestId: 77,
    error: { code: ErrorCode.INVALID_TOPIC_NAME },
  });

  const bigOffset = Buffer.from(read);
  bigOffset.writeUInt32LE(0x200000, binaryHeaderSizeBytes + 3 + 4); // high word of the offset: 2^53
  t.like(decodeRequest(bigOffset), {
    kind: 'malformed',
    requestId: 77,
    error: { code: ErrorCode.BAD_REQUEST },
  });

  const zeroCount = Buffer.from(read);
  zeroCount.writeUInt32LE(0, binaryHeaderSizeBytes + 3 + 8);
  t.like(decodeRequest(zeroCount), {
    kind: 'malformed',
    requestId: 77,
    error: { code: ErrorCode.BAD_REQUEST },
  });

  const version = Buffer.from(read);
  version[1] = 2;
  t.like(decodeRequest(version), {
    kind: 'malformed',
    requestId: 77,
    error: { code: ErrorCode.BAD_REQUEST },
  });

  const flags = Buffer.from(read);
  flags[3] = 1;
  t.like(decodeRequest(flags), { kind: 'malformed', requestId: 77, error: { code: ErrorCode.BAD_REQUEST } });

  const trailing = Buffer.concat([read, Buffer.from([0])]);
  t.like(decodeRequest(trailing), {
    kind: 'malformed',
    requestId: 77,
    error: { code: ErrorCode.BAD_REQUEST },
  });

  for (const [name, [low, high]] of Object.entries(opcodeRanges)) {
    if (name === 'client') continue;
    for (const opcode of [low, high]) {
      const op = Buffer.from(read);
      op[2] = opcode;
      t.like(decodeRequest(op), {
        kind: 'malformed',
        requestId: 77,
        opcode,
        error: { code: ErrorCode.UNKNOWN_COMMAND },
      });
    }
  }
  t.like(decodeRequest(Buffer.from([0xb1, 1, 1])), { kind: 'malformed', requestId: undefined });
});

test('encode rejects what the protocol cannot carry with typed errors', (t) => {
  const code = (f: () => unknown) => {
    try {
      f();
      return 'ok';
    } catch (e) {
      return e instanceof WalrusError ? e.code : 'untyped';
    }
  };
  t.is(
    code(() => encodeRequest(1, { op: 'state', topic: '../x' })),
    ErrorCode.INVALID_TOPIC_NAME,
  );
  t.is(
    code(() => encodeRequest(1, { op: 'consumerCommit', topic: 't', consumer: 'c', offset: -1 })),
    ErrorCode.BAD_REQUEST,
  );
  t.is(
    code(() => encodeRequest(1, { op: 'offsetForTimestamp', topic: 't', timestampMs: 2 ** 53 })),
    ErrorCode.BAD_REQUEST,
  );
  t.is(
    code(() => encodeRequest(2 ** 32, { op: 'ping' })),
    ErrorCode.BAD_REQUEST,
  );
  t.is(
    code(() =>
      encodeRequest(1, {
        op: 'append',
        topic: 't',
        records: Array.from({ length: 10_001 }, () => ({ value: new Uint8Array() })),
      }),
    ),
    ErrorCode.BATCH_TOO_LARGE,
  );
  t.is(
    code(() =>
      encodeRequest(1, { op: 'append', topic: 't', records: [{ value: Buffer.alloc(4 * 1024 * 1024 + 1) }] }),
    ),
    ErrorCode.BATCH_TOO_LARGE,
  );
  t.is(
    code(() => encodeRequest(1, { op: 'append', topic: 't', records: [], producerId: '' })),
    ErrorCode.BAD_REQUEST,
  );
  t.is(
    code(() => encodeRequest(1, { op: 'nope' } as unknown as Request)),
    ErrorCode.UNKNOWN_COMMAND,
  );
});

test('opcodes are unique and inside the client range', (t) => {
  const codes = Object.values(Opcode);
  t.is(new Set(codes).size, codes.length);
  for (const c of codes) t.true(c >= opcodeRanges.client[0] && c <= opcodeRanges.client[1]);
});

test('headers named like Object.prototype members stay plain data', (t) => {
  const d = decodeRequest(
    encodeRequest(1, {
      op: 'append',
      topic: 't',
      records: [{ value: Buffer.from('v'), headers: { constructor: 'x', toString: 'y' } }],
    }),
  );
  t.true(d.kind === 'request' && d.request.op === 'append');
  if (d.kind === 'request' && d.request.op === 'append')
    t.deepEqual({ ...d.request.records[0]!.headers }, { constructor: 'x', toString: 'y' });
  const proto: Record<string, string> = {};
  Object.defineProperty(proto, '__proto__', {
    value: 'z',
    enumerable: true,
    writable: true,
    configurable: true,
  });
  const p = decodeRequest(
    encodeRequest(1, { op: 'append', topic: 't', records: [{ value: Buffer.from('v'), headers: proto }] }),
  );
  t.true(p.kind === 'request');
  if (p.kind === 'request' && p.request.op === 'append') {
    const h = p.request.records[0]!.headers!;
    t.is(Object.getPrototypeOf(h), Object.prototype, 'the prototype was not replaced');
    t.deepEqual(Object.getOwnPropertyDescriptor(h, '__proto__')?.value, 'z');
  }
});

test('a record header name starting with NUL is reserved for the node: BAD_REQUEST', (t) => {
  const d = decodeRequest(
    encodeRequest(1, {
      op: 'append',
      topic: 't',
      records: [{ value: Buffer.from('v'), headers: { '\u0000walrus.producer': '["p",1,1]' } }],
    }),
  );
  t.is(d.kind, 'malformed');
  if (d.kind === 'malformed') t.is(d.error.code, 'BAD_REQUEST');
  const ok = decodeRequest(
    encodeRequest(1, {
      op: 'append',
      topic: 't',
      records: [{ value: Buffer.from('v'), headers: { 'a\u0000': 'x' } }],
    }),
  );
  t.is(ok.kind, 'request', 'a NUL later in a name is only data');
});

test('encodeAppendReply writes what encodeReply writes for an append, and refuses what it refuses', (t) => {
  const big = 2 ** 40 + 12_345;
  const reply = encodeAppendReply(0xfffffffe, big, big + 9, 1_700_000_000_001, true, 'leader');
  t.is(reply.length, binaryHeaderSizeBytes + 26);
  const decoded = decodeReply(reply);
  t.deepEqual(decoded, {
    kind: 'response',
    requestId: 0xfffffffe,
    op: 'append',
    response: {
      firstOffset: big,
      lastOffset: big + 9,
      timestampMs: 1_700_000_000_001,
      duplicate: true,
      acks: 'leader',
    },
  });
  t.deepEqual(
    encodeAppendReply(3, 1, 2, 5, false, undefined),
    encodeAppendReply(3, 1, 2, 5, false, 'quorum'),
    'absent acks is quorum',
  );
  for (const bad of [
    () => encodeAppendReply(2 ** 32, 0, 0, 0, false, 'quorum'),
    () => encodeAppendReply(1, -1, 0, 0, false, 'quorum'),
    () => encodeAppendReply(1, 0, 2 ** 53, 0, false, 'quorum'),
    () => encodeAppendReply(1, 0, 0, 0.5, false, 'quorum'),
    () => encodeAppendReply(1, 0, 0, 0, false, 'all' as 'quorum'),
  ])
    t.throws(bad, { instanceOf: WalrusError });
});

test('a plain append encodes to the bytes of the general path (records with empty headers take it)', (t) => {
  const topicArb = fc.constantFrom('t', 'logs', 'a.b-c_d', 'x'.repeat(200));
  const recordsArb = fc.array(fc.uint8Array({ maxLength: 300 }), { minLength: 0, maxLength: 20 });
  fc.assert(
    fc.property(
      u32Arb,
      topicArb,
      recordsArb,
      fc.constantFrom(undefined, 'leader' as const, 'quorum' as const),
      fc.boolean(),
      (requestId, topic, values, acks, noForward) => {
        const plain: Request = {
          op: 'append',
          topic,
          records: values.map((v) => ({ value: Buffer.from(v) })),
          ...(acks === undefined ? {} : { acks }),
          ...(noForward ? { noForward } : {}),
        };
        const general: Request = {
          ...plain,
          records: values.map((v) => ({ value: Buffer.from(v), headers: {} })),
        };
        t.deepEqual(encodeRequest(requestId, plain), encodeRequest(requestId, general));
      },
    ),
  );
  const code = (run: () => unknown): string => {
    try {
      run();
    } catch (e) {
      return (e as WalrusError).code;
    }
    return 'none';
  };
  const value = { value: Buffer.from('v') };
  t.is(
    code(() => encodeRequest(1, { op: 'append', topic: 'bad name', records: [value] })),
    ErrorCode.INVALID_TOPIC_NAME,
  );
  t.is(
    code(() => encodeRequest(2 ** 32, { op: 'append', topic: 't', records: [value] })),
    ErrorCode.BAD_REQUEST,
  );
  t.is(
    code(() => encodeRequest(1, { op: 'append', topic: 't', records: [value], acks: 'all' as 'quorum' })),
    ErrorCode.BAD_REQUEST,
  );
  t.is(
    code(() =>
      encodeRequest(1, { op: 'append', topic: 't', records: Array.from({ length: 10_001 }, () => value) }),
    ),
    ErrorCode.BATCH_TOO_LARGE,
  );
});
