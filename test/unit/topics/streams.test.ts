/**
 * Durable Streams on the node (stream-state.ts, the appender, producers.ts): the stream op's
 * create / get / delete, appends refused after a close (STREAM_CLOSED) and by an expired stream,
 * producer epochs (fencing, a new epoch at sequence 0, duplicates at or below the last), Stream-Seq,
 * and a long poll at the end of a closed stream answering at once.
 */
import test from 'ava';
import type { StreamAction } from '../../../node/protocol/messages.js';
import { TopicHarness, codeOf, recordsOf } from '../../helpers/topic-harness.js';

function create(name: string, extra: Partial<Extract<StreamAction, { kind: 'create' }>> = {}): StreamAction {
  return {
    kind: 'create',
    path: `/v1/stream/${name}`,
    contentType: 'text/plain',
    ttlSeconds: null,
    expiresAtMs: null,
    forkOf: null,
    ...extra,
  };
}

async function start(t: import('ava').ExecutionContext): Promise<TopicHarness> {
  const h = await TopicHarness.start();
  t.teardown(() => h.close());
  return h;
}

test('create is idempotent with the same settings and TOPIC_EXISTS with others; get and delete', async (t) => {
  const h = await start(t);
  const s = h.service.streams;
  const first = await s.handle('ds.a', create('a'));
  t.true(first.created);
  t.is(first.stream?.path, '/v1/stream/a');
  t.false((await s.handle('ds.a', create('a', { contentType: 'TEXT/plain' }))).created);
  t.is(
    await codeOf(() => s.handle('ds.a', create('a', { contentType: 'application/json' }))),
    'TOPIC_EXISTS',
  );
  t.is(await codeOf(() => s.handle('ds.a', create('other-path'))), 'CONFLICT');
  t.is((await s.handle('ds.a', { kind: 'get' })).stream?.closed, false);
  t.truthy((await s.handle('ds.a', { kind: 'delete' })).stream);
  t.is((await s.handle('ds.a', { kind: 'get' })).stream, null);
});

test('after a close every append is STREAM_CLOSED; a close with no records answers the end', async (t) => {
  const h = await start(t);
  await h.service.streams.handle('ds.c', create('c'));
  const append = h.service.appender;
  await append.append('ds.c', recordsOf('a', 'b'));
  const closing = await append.append('ds.c', recordsOf('c'), { close: true });
  t.is(closing.lastOffset, 2);
  t.is(await codeOf(() => append.append('ds.c', recordsOf('late'))), 'STREAM_CLOSED');
  t.is(await codeOf(() => append.append('ds.c', [], { close: true })), 'STREAM_CLOSED');
  t.true((await h.service.streams.handle('ds.c', { kind: 'get' })).stream?.closed);
  // A close with no records on an open stream.
  await h.service.streams.handle('ds.d', create('d'));
  await append.append('ds.d', recordsOf('x'));
  const closed = await append.append('ds.d', [], { close: true });
  t.deepEqual([closed.firstOffset, closed.lastOffset], [1, 1]);
  // A long poll at the end of a closed stream answers at once (well under its wait).
  const startedAt = Date.now();
  const read = await h.service.reader.read('ds.d', 1, {
    recordCountMax: 10,
    byteCountMax: 1 << 20,
    waitMs: 20_000,
  });
  t.is(read.records.length, 0);
  t.true(Date.now() - startedAt < 10_000);
  // A plain topic cannot be closed.
  await h.createTopic('plain');
  t.is(await codeOf(() => append.append('plain', [], { close: true })), 'BAD_REQUEST');
});

test('producer epochs: an older epoch is fenced, a new one starts at 0, at or below the last is a duplicate', async (t) => {
  const h = await start(t);
  await h.service.streams.handle('ds.p', create('p'));
  const append = h.service.appender;
  const as = (epoch: number, seq: number, value = `e${epoch}s${seq}`) =>
    append.append('ds.p', recordsOf(value), { producerId: 'w', producerEpoch: epoch, producerSeq: seq });
  t.is(await codeOf(() => as(0, 1)), 'SEQUENCE_MISMATCH', 'a new producer starts at 0');
  await as(0, 0);
  await as(0, 1);
  t.true((await as(0, 0)).duplicate);
  t.true((await as(0, 1)).duplicate);
  t.is(await codeOf(() => as(0, 3)), 'SEQUENCE_MISMATCH');
  t.is(await codeOf(() => as(1, 1)), 'BAD_REQUEST', 'a new epoch starts at sequence 0');
  await as(1, 0);
  t.is(await codeOf(() => as(0, 2)), 'PRODUCER_FENCED');
  const position = await h.service.streams.handle('ds.p', { kind: 'producer', producerId: 'w' });
  t.deepEqual(position.producer, { epoch: 1, seq: 0 });
  t.is(h.node(1).wal.endOffset('ds.p'), 3);
});

test('Stream-Seq: each append must name a sequence above the last (as strings)', async (t) => {
  const h = await start(t);
  await h.service.streams.handle('ds.s', create('s'));
  const append = h.service.appender;
  await append.append('ds.s', recordsOf('a'), { streamSeq: '2' });
  t.is(await codeOf(() => append.append('ds.s', recordsOf('b'), { streamSeq: '10' })), 'SEQUENCE_MISMATCH');
  t.is(await codeOf(() => append.append('ds.s', recordsOf('b'), { streamSeq: '2' })), 'SEQUENCE_MISMATCH');
  await append.append('ds.s', recordsOf('c'), { streamSeq: '3' });
  t.is(h.node(1).wal.endOffset('ds.s'), 2);
});

test('an expired stream is gone: get answers null, appends TOPIC_NOT_FOUND, the sweep deletes it', async (t) => {
  const h = await start(t);
  await h.service.streams.handle('ds.t', create('t', { ttlSeconds: 5 }));
  await h.service.appender.append('ds.t', recordsOf('a'));
  h.clock.advance(6000);
  t.is(await codeOf(() => h.service.appender.append('ds.t', recordsOf('b'))), 'TOPIC_NOT_FOUND');
  t.is(await h.service.streams.expireStreams(), 1);
  t.is((await h.service.streams.handle('ds.t', { kind: 'get' })).stream, null);
  t.false(h.service.metadata.topics.has('ds.t'));
});
