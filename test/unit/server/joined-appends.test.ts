/**
 * Joined appends through the request handler and a real topic service and WAL: the plain appends
 * of one connection's turn become one WAL append, and every request is answered as it would have
 * been alone: its own offsets in arrival order, an expected offset checked after the appends that
 * came before it, idempotent producers and per-request errors untouched.
 */
import test from 'ava';
import { decodeReply, encodeRequest } from '../../../node/protocol/binary-codec.js';
import { ErrorCode } from '../../../node/protocol/error-codes.js';
import type { Request } from '../../../node/protocol/messages.js';
import type { ReplyChannel } from '../../../node/server/request-handler.js';
import { TopicHarness, readToEnd, text, until } from '../../helpers/topic-harness.js';

type Answer = { firstOffset: number; lastOffset: number; duplicate: boolean } | string;

/** A connection that keeps each reply by request id (offsets, or the error code). */
function connection(id: number) {
  const answers = new Map<number, Answer>();
  const conn: ReplyChannel = {
    id,
    closed: false,
    close: () => {},
    send: (payload) => {
      const reply = decodeReply(Buffer.from(payload));
      if (reply.kind === 'response') {
        const r = reply.response as { firstOffset: number; lastOffset: number; duplicate: boolean };
        answers.set(reply.requestId, {
          firstOffset: r.firstOffset,
          lastOffset: r.lastOffset,
          duplicate: r.duplicate,
        });
      } else if (reply.kind === 'error') answers.set(reply.requestId, reply.error.code);
    },
  };
  return { conn, answers };
}

function appendOf(topic: string, ...values: string[]): Extract<Request, { op: 'append' }> {
  return { op: 'append', topic, records: values.map((v) => ({ value: Buffer.from(v) })) };
}

test('the appends of one turn take consecutive offsets in arrival order, each its own', async (t) => {
  const joins: number[] = [];
  const h = await TopicHarness.start({
    requestObserver: { requestDone: () => {}, appendsJoined: (memberCount) => joins.push(memberCount) },
  });
  await h.createTopic('t');
  const handler = h.node(1).handler;
  const { conn, answers } = connection(1);
  // The topic's first append makes its segment (appends that wait for it are not joined).
  handler.onFrame(conn, encodeRequest(9, appendOf('t', 'first')));
  await until('the first answer', () => answers.size === 1);
  const appendsBefore = h.node(1).wal.stats().appendCount;
  // All in one synchronous run, as the frames of one read chunk are delivered.
  handler.onFrame(conn, encodeRequest(1, appendOf('t', 'a')));
  handler.onFrame(conn, encodeRequest(2, appendOf('t', 'b', 'c')));
  handler.onFrame(conn, encodeRequest(3, appendOf('t', 'd')));
  await until('three answers', () => answers.size === 4);
  t.deepEqual(answers.get(1), { firstOffset: 1, lastOffset: 1, duplicate: false });
  t.deepEqual(answers.get(2), { firstOffset: 2, lastOffset: 3, duplicate: false });
  t.deepEqual(answers.get(3), { firstOffset: 4, lastOffset: 4, duplicate: false });
  t.is(h.node(1).wal.stats().appendCount - appendsBefore, 1, 'one WAL append');
  t.deepEqual(joins, [3], 'the metrics see one join of three requests');
  t.deepEqual((await readToEnd(h.service, 't')).map(text), ['first', 'a', 'b', 'c', 'd']);
  await h.close();
});

test('a request after joined appends sees them done: an expected offset checks the end after them', async (t) => {
  const h = await TopicHarness.start();
  await h.createTopic('t');
  const handler = h.node(1).handler;
  const { conn, answers } = connection(1);
  handler.onFrame(conn, encodeRequest(1, appendOf('t', 'a')));
  handler.onFrame(conn, encodeRequest(2, appendOf('t', 'b')));
  handler.onFrame(conn, encodeRequest(3, { ...appendOf('t', 'c'), expectedOffset: 2 }));
  handler.onFrame(conn, encodeRequest(4, { ...appendOf('t', 'x'), expectedOffset: 2 }));
  handler.onFrame(conn, encodeRequest(5, appendOf('t', 'd')));
  await until('five answers', () => answers.size === 5);
  t.deepEqual(answers.get(3), { firstOffset: 2, lastOffset: 2, duplicate: false });
  t.is(answers.get(4), ErrorCode.OFFSET_MISMATCH);
  t.deepEqual(answers.get(5), { firstOffset: 3, lastOffset: 3, duplicate: false });
  t.deepEqual((await readToEnd(h.service, 't')).map(text), ['a', 'b', 'c', 'd']);
  await h.close();
});

test('idempotent producers are not joined: a repeat is still answered as a duplicate', async (t) => {
  const h = await TopicHarness.start();
  await h.createTopic('t');
  const handler = h.node(1).handler;
  const { conn, answers } = connection(1);
  const produced: Request = { ...appendOf('t', 'p'), producerId: 'prod', producerSeq: 0 };
  handler.onFrame(conn, encodeRequest(1, appendOf('t', 'a')));
  handler.onFrame(conn, encodeRequest(2, produced));
  handler.onFrame(conn, encodeRequest(3, appendOf('t', 'b')));
  await until('three answers', () => answers.size === 3);
  handler.onFrame(conn, encodeRequest(4, produced));
  await until('the repeat answered', () => answers.size === 4);
  t.deepEqual(answers.get(2), { firstOffset: 1, lastOffset: 1, duplicate: false });
  t.deepEqual(answers.get(4), { firstOffset: 1, lastOffset: 1, duplicate: true });
  t.deepEqual(answers.get(3), { firstOffset: 2, lastOffset: 2, duplicate: false });
  await h.close();
});

test('each request keeps its own errors: an unknown topic fails only its own appends', async (t) => {
  const h = await TopicHarness.start();
  await h.createTopic('t');
  const handler = h.node(1).handler;
  const { conn, answers } = connection(1);
  handler.onFrame(conn, encodeRequest(1, appendOf('t', 'a')));
  handler.onFrame(conn, encodeRequest(2, appendOf('nope', 'x')));
  handler.onFrame(conn, encodeRequest(3, appendOf('nope', 'y')));
  handler.onFrame(conn, encodeRequest(4, appendOf('t', 'b')));
  await until('four answers', () => answers.size === 4);
  t.deepEqual(answers.get(1), { firstOffset: 0, lastOffset: 0, duplicate: false });
  t.is(answers.get(2), ErrorCode.TOPIC_NOT_FOUND);
  t.is(answers.get(3), ErrorCode.TOPIC_NOT_FOUND);
  t.deepEqual(answers.get(4), { firstOffset: 1, lastOffset: 1, duplicate: false });
  await h.close();
});

test('two connections in one turn each get their own join and their own offsets', async (t) => {
  const h = await TopicHarness.start();
  await h.createTopic('t');
  const handler = h.node(1).handler;
  const one = connection(1);
  const two = connection(2);
  handler.onFrame(one.conn, encodeRequest(1, appendOf('t', 'a')));
  handler.onFrame(two.conn, encodeRequest(1, appendOf('t', 'x')));
  handler.onFrame(one.conn, encodeRequest(2, appendOf('t', 'b')));
  handler.onFrame(two.conn, encodeRequest(2, appendOf('t', 'y')));
  await until('four answers', () => one.answers.size === 2 && two.answers.size === 2);
  const offsets = [...one.answers.values(), ...two.answers.values()].map(
    (a) => (a as { firstOffset: number }).firstOffset,
  );
  t.deepEqual([...offsets].sort(), [0, 1, 2, 3], 'every offset handed out once');
  const records = (await readToEnd(h.service, 't')).map(text);
  t.true(records.indexOf('a') < records.indexOf('b') && records.indexOf('x') < records.indexOf('y'));
  await h.close();
});

test('joined appends roll segments over at the same boundaries as appends alone', async (t) => {
  const h = await TopicHarness.start({ segmentEntryCountMax: 10 });
  await h.createTopic('t');
  const handler = h.node(1).handler;
  const { conn, answers } = connection(1);
  // A first append makes the segment's file; then 24 more in one turn, one of them of 3 records.
  handler.onFrame(conn, encodeRequest(100, appendOf('t', 'first')));
  await until('the first answer', () => answers.size === 1);
  for (let i = 1; i < 25; i++)
    handler.onFrame(conn, encodeRequest(i, i === 8 ? appendOf('t', 'x', 'y', 'z') : appendOf('t', `v${i}`)));
  await until('every answer', () => answers.size === 25);
  t.true([...answers.values()].every((a) => typeof a !== 'string'));
  // Alone: offsets 0..7 one each, then the 3-record append at 8..10 crosses the count of 10 (it was
  // admitted at 8), the next waits for the rollover and starts segment 2 at 11; 10 more end at 21.
  const segments = h.log.state.topics.get('t')!.segments.map((s) => s.baseOffset);
  t.deepEqual(segments, [0, 11, 21]);
  t.deepEqual(answers.get(8), { firstOffset: 8, lastOffset: 10, duplicate: false });
  t.is((await readToEnd(h.service, 't')).length, 27);
  await h.close();
});
