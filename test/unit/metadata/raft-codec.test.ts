/**
 * Raft wire codec: round trip of every message type (with entries and snapshots), garbage and
 * truncation never throw, and each validation rule names what was wrong.
 */
import test from 'ava';
import fc from 'fast-check';
import {
  decodeRaftMessage,
  encodeRaftMessage,
  raftConfMemberCountMax,
  raftMessageEntryCountMax,
} from '../../../node/metadata/raft-codec.js';
import { ByteWriter } from '../../../node/protocol/byte-io.js';
import type { Entry, Message, Snapshot } from '../../../node/raft/index.js';
import { EntryKind, MessageType } from '../../../node/raft/index.js';

const safe = fc.integer({ min: 0, max: Number.MAX_SAFE_INTEGER });
const smallNat = fc.nat({ max: 1_000_000 });
const nat = fc.oneof(smallNat, safe);
const id = fc.oneof(fc.integer({ min: 1, max: 9 }), fc.integer({ min: 1, max: Number.MAX_SAFE_INTEGER }));
const bytes = fc.uint8Array({ maxLength: 64 });

const entries: fc.Arbitrary<Entry[]> = fc
  .tuple(
    fc.integer({ min: 1, max: 1_000_000 }),
    fc.array(fc.record({ term: nat, kind: fc.constantFrom(EntryKind.Normal, EntryKind.Conf), data: bytes }), {
      maxLength: 8,
    }),
  )
  .map(([first, es]) => es.map((e, k) => ({ ...e, index: first + k })));

const snapshot: fc.Arbitrary<Snapshot> = fc.record({
  meta: fc.record({
    index: nat,
    term: nat,
    conf: fc.record({ voters: fc.array(id, { maxLength: 7 }), learners: fc.array(id, { maxLength: 7 }) }),
  }),
  data: fc.uint8Array({ maxLength: 256 }),
});

const message: fc.Arbitrary<Message> = fc.record({
  type: fc.constantFrom(...Object.values(MessageType)),
  from: id,
  to: id,
  term: nat,
  logTerm: nat,
  index: nat,
  entries,
  commit: nat,
  reject: fc.boolean(),
  rejectHint: nat,
  snapshot: fc.option(snapshot, { nil: null }),
  transfer: fc.boolean(),
});

function base(over: Partial<Message> = {}): Message {
  return {
    type: MessageType.App,
    from: 1,
    to: 2,
    term: 3,
    logTerm: 2,
    index: 10,
    entries: [
      { term: 3, index: 11, kind: EntryKind.Normal, data: new Uint8Array([1, 2, 3]) },
      { term: 3, index: 12, kind: EntryKind.Conf, data: new Uint8Array([4]) },
    ],
    commit: 9,
    reject: false,
    rejectHint: 0,
    snapshot: {
      meta: { index: 8, term: 2, conf: { voters: [1, 2, 3], learners: [4] } },
      data: new Uint8Array([9, 9]),
    },
    transfer: true,
    ...over,
  };
}

test('every message type round-trips, with entries and snapshots', (t) => {
  fc.assert(
    fc.property(message, (m) => {
      const decoded = decodeRaftMessage(encodeRaftMessage(m));
      if (!decoded.ok) throw decoded.error;
      t.deepEqual(decoded.message, m);
    }),
    { numRuns: 2000 },
  );
  // Every type seen at least once on its own, too.
  for (const type of Object.values(MessageType)) {
    const decoded = decodeRaftMessage(encodeRaftMessage(base({ type })));
    t.true(decoded.ok && decoded.message.type === type);
  }
});

test('decoded data is a copy independent of the input buffer', (t) => {
  const buf = encodeRaftMessage(base());
  const decoded = decodeRaftMessage(buf);
  if (!decoded.ok) return t.fail(decoded.error.message);
  buf.fill(0);
  t.deepEqual(decoded.message.entries[0]!.data, new Uint8Array([1, 2, 3]));
  t.deepEqual(decoded.message.snapshot!.data, new Uint8Array([9, 9]));
});

test('a Heartbeat is small (fixed 63-byte header, no varints)', (t) => {
  const m = base({ type: MessageType.Heartbeat, entries: [], snapshot: null });
  t.is(encodeRaftMessage(m).length, 63);
});

test('truncation at every byte gives ok:false, never a throw', (t) => {
  fc.assert(
    fc.property(message, (m) => {
      const buf = encodeRaftMessage(m);
      for (let cut = 0; cut < buf.length; cut++) {
        const r = decodeRaftMessage(buf.subarray(0, cut));
        t.false(r.ok);
        if (!r.ok) t.is(r.error.code, 'BAD_REQUEST');
      }
    }),
    { numRuns: 100 },
  );
});

test('random garbage and mutated messages never throw', (t) => {
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 512 }), (junk) => {
      const r = decodeRaftMessage(junk);
      t.true(r.ok === true || r.error.code === 'BAD_REQUEST');
    }),
    { numRuns: 5000 },
  );
  fc.assert(
    fc.property(message, fc.nat(), fc.integer({ min: 0, max: 255 }), (m, at, v) => {
      const buf = Buffer.from(encodeRaftMessage(m));
      buf[at % buf.length] = v;
      const r = decodeRaftMessage(buf);
      if (r.ok) {
        // Whatever decodes satisfies the codec's own rules.
        t.true(r.message.from > 0 && r.message.to > 0);
        t.true(Number.isSafeInteger(r.message.term) && r.message.term >= 0);
      } else {
        t.is(r.error.code, 'BAD_REQUEST');
      }
    }),
    { numRuns: 5000 },
  );
});

test('trailing bytes are refused', (t) => {
  const buf = Buffer.concat([encodeRaftMessage(base()), Buffer.from([0])]);
  const r = decodeRaftMessage(buf);
  t.false(r.ok);
  if (!r.ok) t.regex(r.error.message, /trailing/);
});

/** Patches the encoded bytes of base() and expects a named refusal. */
function refused(t: import('ava').ExecutionContext, buf: Uint8Array, pattern: RegExp): void {
  const r = decodeRaftMessage(buf);
  t.false(r.ok);
  if (!r.ok) {
    t.is(r.error.code, 'BAD_REQUEST');
    t.regex(r.error.message, pattern);
  }
}

test('each field is validated: version, type, ids, safe integers, flags, kinds, order, limits', (t) => {
  const good = encodeRaftMessage(base());
  const patch = (at: number, write: (b: Buffer) => void): Buffer => {
    const b = Buffer.from(good);
    write(b.subarray(at));
    return b;
  };
  refused(
    t,
    patch(0, (b) => b.writeUInt8(2, 0)),
    /version 2/,
  );
  refused(
    t,
    patch(1, (b) => b.writeUInt8(10, 0)),
    /unknown Raft message type code 10/,
  );
  refused(
    t,
    patch(2, (b) => b.writeBigUInt64LE(0n, 0)),
    /from: node id 0/,
  );
  refused(
    t,
    patch(10, (b) => b.writeBigUInt64LE(0n, 0)),
    /to: node id 0/,
  );
  refused(
    t,
    patch(18, (b) => b.writeBigUInt64LE(2n ** 53n, 0)),
    /term is above 2\^53-1/,
  );
  refused(
    t,
    patch(58, (b) => b.writeUInt8(8, 0)),
    /unknown flags/,
  );
  // First entry starts at 63: term(8) index(8) kind(1).
  refused(
    t,
    patch(63 + 16, (b) => b.writeUInt8(7, 0)),
    /unknown kind 7/,
  );
  // Second entry's index (first entry is 21 + 3 bytes long).
  refused(
    t,
    patch(63 + 24 + 8, (b) => b.writeBigUInt64LE(13n, 0)),
    /entry 13 does not follow entry 11/,
  );
  refused(
    t,
    patch(59, (b) => b.writeUInt32LE(raftMessageEntryCountMax + 1, 0)),
    /above the limit/,
  );
  refused(
    t,
    patch(59, (b) => b.writeUInt32LE(1000, 0)),
    /do not fit/,
  );
  // Snapshot voter count (after both entries: 63 + 24 + 22, then index and term).
  refused(
    t,
    patch(63 + 24 + 22 + 16, (b) => b.writeUInt32LE(raftConfMemberCountMax + 1, 0)),
    /members, above the limit/,
  );
  refused(
    t,
    patch(63 + 24 + 22 + 16 + 4, (b) => b.writeBigUInt64LE(0n, 0)),
    /snapshot voters: node id 0/,
  );
});

test('an oversized entry length is refused before anything is allocated', (t) => {
  const w = new ByteWriter();
  w.u8(1);
  w.u8(0);
  for (let i = 0; i < 7; i++) w.u64(1);
  w.u8(0);
  w.u32(1);
  w.u64(1);
  w.u64(2);
  w.u8(0);
  w.u32(0xffffffff);
  refused(t, w.finish(), /above the limit/);
});
