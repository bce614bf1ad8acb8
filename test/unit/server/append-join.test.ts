/**
 * The join of plain appends (node/server/append-join.ts) against fake ports: what is joined and
 * what is not, how a joined reply is split, and how a failed join answers each member exactly as
 * an append of its own would have been (sent again alone, or failed with the join's error).
 */
import test from 'ava';
import { ErrorCode, WalrusError } from '../../../node/protocol/error-codes.js';
import type { AppendAcks, RecordInput } from '../../../node/protocol/messages.js';
import {
  AppendJoin,
  type AppendReply,
  type AppendRequest,
  type JoinMember,
  isJoinable,
} from '../../../node/server/append-join.js';
import { serverLimits } from '../../../node/server/limits.js';

interface Conn {
  readonly id: number;
  closed: boolean;
}

interface Sent {
  readonly topic: string;
  readonly records: readonly RecordInput[];
  readonly acks: AppendAcks | undefined;
  settle(outcome: AppendReply | WalrusError): void;
}

/** An AppendJoin whose appends wait for the test to settle them, and what each member was told. */
function harness(room = () => Number.POSITIVE_INFINITY) {
  const sent: Sent[] = [];
  const alone: number[] = [];
  const replies = new Map<number, AppendReply>();
  const failures = new Map<number, string>();
  const join = new AppendJoin<Conn>({
    append: (topic, records, acks) =>
      new Promise<AppendReply>((resolve, reject) => {
        sent.push({
          topic,
          records,
          acks,
          settle: (outcome) => (outcome instanceof WalrusError ? reject(outcome) : resolve(outcome)),
        });
      }),
    roomNow: room,
    alone: (m: JoinMember<Conn>) => alone.push(m.requestId),
    reply: (m, firstOffset, lastOffset, joined) =>
      replies.set(m.requestId, { ...joined, firstOffset, lastOffset }),
    fail: (m, error) => failures.set(m.requestId, (error as WalrusError).code),
  });
  return { join, sent, alone, replies, failures };
}

function append(topic: string, count = 1, extra: Partial<AppendRequest> = {}): AppendRequest {
  const records = Array.from({ length: count }, (_, i) => ({ value: Buffer.from(`v${i}`) }));
  return { op: 'append', topic, records, ...extra };
}

function reply(firstOffset: number, lastOffset: number): AppendReply {
  return { firstOffset, lastOffset, timestampMs: 1000, duplicate: false, acks: 'quorum' };
}

/** Lets queued microtasks and promise reactions run. */
const settled = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

test('only plain appends with records are joinable', (t) => {
  t.true(isJoinable(append('a')));
  t.true(isJoinable(append('a', 3, { acks: 'leader', noForward: true })));
  t.false(isJoinable(append('a', 0)));
  t.false(isJoinable(append('a', 1, { producerId: 'p', producerSeq: 0 })));
  t.false(isJoinable(append('a', 1, { producerId: 'p', producerSeq: 0, producerEpoch: 1 })));
  t.false(isJoinable(append('a', 1, { expectedOffset: 4 })));
  t.false(isJoinable(append('a', 1, { close: true })));
  t.false(isJoinable(append('a', 1, { streamSeq: '1' })));
});

test('the appends of one turn go as one append, and each member gets its own offsets in order', async (t) => {
  const h = harness();
  const conn = { id: 1, closed: false };
  h.join.add(conn, 10, append('a', 1), 0);
  h.join.add(conn, 11, append('a', 3), 0);
  h.join.add(conn, 12, append('a', 2), 0);
  t.is(h.sent.length, 0, 'nothing is sent before the turn ends');
  await settled();
  t.is(h.sent.length, 1);
  t.is(h.sent[0]!.records.length, 6);
  t.is(h.join.openCount, 0);
  h.sent[0]!.settle(reply(40, 45));
  await settled();
  t.deepEqual(h.replies.get(10), reply(40, 40));
  t.deepEqual(h.replies.get(11), reply(41, 43));
  t.deepEqual(h.replies.get(12), reply(44, 45));
  t.deepEqual(h.alone, []);
});

test('another topic or acks ends the join; a join of one goes alone', async (t) => {
  const h = harness();
  const conn = { id: 1, closed: false };
  h.join.add(conn, 1, append('a'), 0);
  h.join.add(conn, 2, append('a'), 0);
  h.join.add(conn, 3, append('b'), 0); // ends a's join
  h.join.add(conn, 4, append('b', 1, { acks: 'leader' }), 0); // ends b's (one member: alone)
  h.join.add(conn, 5, append('b', 1, { acks: 'leader' }), 0);
  t.is(h.sent.length, 1, "a's join left when b's began");
  t.deepEqual(h.alone, [3]);
  await settled();
  t.deepEqual(
    h.sent.map((s) => [s.topic, s.acks, s.records.length]),
    [
      ['a', undefined, 2],
      ['b', 'leader', 2],
    ],
  );
});

test('joins are per connection, and flushAll sends them at once', (t) => {
  const h = harness();
  const one = { id: 1, closed: false };
  const two = { id: 2, closed: false };
  h.join.add(one, 1, append('a'), 0);
  h.join.add(two, 2, append('a'), 0);
  h.join.add(one, 3, append('a'), 0);
  h.join.add(two, 4, append('a'), 0);
  t.is(h.join.openCount, 2);
  h.join.flushAll();
  t.is(h.join.openCount, 0);
  t.deepEqual(
    h.sent.map((s) => s.records.length),
    [2, 2],
  );
});

test('a join keeps to its record and byte limits; a larger append goes alone', (t) => {
  const h = harness();
  const conn = { id: 1, closed: false };
  const max = serverLimits.joinedAppendRecordCountMax;
  h.join.add(conn, 1, append('a', max - 1), 0);
  h.join.add(conn, 2, append('a', 2), 0); // does not fit: the first join leaves (alone: one member)
  t.deepEqual(h.alone, [1]);
  h.join.add(conn, 3, append('a', max + 1), 0); // larger than any join: after what came before it
  t.deepEqual(h.alone, [1, 2, 3]);
  const big = { value: Buffer.alloc(serverLimits.joinedAppendSizeMaxBytes / 2 + 1) };
  h.join.add(conn, 4, { op: 'append', topic: 'a', records: [big] }, 0);
  h.join.add(conn, 5, { op: 'append', topic: 'a', records: [big] }, 0);
  t.deepEqual(h.alone, [1, 2, 3, 4], 'two halves and a byte do not fit one join');
  h.join.flushAll();
  t.deepEqual(h.alone, [1, 2, 3, 4, 5]);
  t.is(h.sent.length, 0);
});

test('an error one request can cause sends every member again alone', async (t) => {
  for (const code of [
    ErrorCode.BAD_REQUEST,
    ErrorCode.RECORD_TOO_LARGE,
    ErrorCode.BATCH_TOO_LARGE,
    ErrorCode.HEADERS_TOO_LARGE,
    ErrorCode.DISK_FULL,
  ]) {
    const h = harness();
    const conn = { id: 1, closed: false };
    h.join.add(conn, 1, append('a'), 0);
    h.join.add(conn, 2, append('a'), 0);
    h.join.flushAll();
    h.sent[0]!.settle(new WalrusError(code, 'refused'));
    await settled();
    t.deepEqual(h.alone, [1, 2], code);
    t.is(h.failures.size, 0);
  }
});

test('a join the active segment would not admit whole goes alone, so the boundary does not move', (t) => {
  let room = 3;
  const h = harness(() => room);
  const conn = { id: 1, closed: false };
  // Records before the last member: 1 + 1 = 2 < 3: alone, all three would be admitted (4 records).
  h.join.add(conn, 1, append('a'), 0);
  h.join.add(conn, 2, append('a'), 0);
  h.join.add(conn, 3, append('a', 2), 0);
  h.join.flushAll();
  t.is(h.sent.length, 1);
  t.is(h.sent[0]!.records.length, 4);
  // Records before the last member: 3, not below the room: the last would wait for a rollover.
  h.join.add(conn, 4, append('a'), 0);
  h.join.add(conn, 5, append('a', 2), 0);
  h.join.add(conn, 6, append('a'), 0);
  h.join.flushAll();
  t.is(h.sent.length, 1);
  t.deepEqual(h.alone, [4, 5, 6]);
  room = 0; // a rollover under way: nothing is admitted at once
  h.join.add(conn, 7, append('a'), 0);
  h.join.add(conn, 8, append('a'), 0);
  h.join.flushAll();
  t.deepEqual(h.alone, [4, 5, 6, 7, 8]);
});

test('DISK_FULL from the group commit (replication frozen, no room) fails every member', async (t) => {
  let room = 10;
  const h = harness(() => room);
  const conn = { id: 1, closed: false };
  h.join.add(conn, 1, append('a'), 0);
  h.join.add(conn, 2, append('a'), 0);
  h.join.flushAll();
  room = 0; // the write failed and froze the segment's replication: it takes nothing now
  h.sent[0]!.settle(new WalrusError(ErrorCode.DISK_FULL, 'no space left on device'));
  await settled();
  t.deepEqual([...h.failures.values()], [ErrorCode.DISK_FULL, ErrorCode.DISK_FULL]);
  t.deepEqual(h.alone, []);
});

test('any other error is every member’s answer, as it would have been for each alone', async (t) => {
  for (const code of [ErrorCode.OUTCOME_UNKNOWN, ErrorCode.UNAVAILABLE, ErrorCode.TIMEOUT]) {
    const h = harness();
    const conn = { id: 1, closed: false };
    h.join.add(conn, 1, append('a'), 0);
    h.join.add(conn, 2, append('a'), 0);
    h.join.flushAll();
    h.sent[0]!.settle(new WalrusError(code, 'failed'));
    await settled();
    t.deepEqual(
      [...h.failures],
      [
        [1, code],
        [2, code],
      ],
    );
    t.deepEqual(h.alone, []);
  }
});

test('a reply that does not cover the joined records fails every member OUTCOME_UNKNOWN', async (t) => {
  const h = harness();
  const conn = { id: 1, closed: false };
  h.join.add(conn, 1, append('a'), 0);
  h.join.add(conn, 2, append('a'), 0);
  h.join.flushAll();
  h.sent[0]!.settle(reply(5, 5));
  await settled();
  t.deepEqual([...h.failures.values()], [ErrorCode.OUTCOME_UNKNOWN, ErrorCode.OUTCOME_UNKNOWN]);
  t.is(h.replies.size, 0);
});

test('the join of a connection closed before it left is not started', async (t) => {
  const h = harness();
  const conn = { id: 1, closed: false };
  h.join.add(conn, 1, append('a'), 0);
  h.join.add(conn, 2, append('a'), 0);
  conn.closed = true;
  await settled();
  t.is(h.sent.length, 0);
  t.deepEqual(h.alone, []);
});
