/**
 * Idempotent producers (node/topics/producers.ts) through the appender: a retry of the last
 * sequence answers the first answer, gaps and old sequences are SEQUENCE_MISMATCH, the node-only
 * header never reaches a reader, a restarted node rebuilds its producers from the WAL, and a seal
 * hands them to the next segment leader.
 */
import test from 'ava';
import { producerHeaderName } from '../../../node/topics/producers.js';
import { Wal } from '../../../node/wal/index.js';
import { TopicHarness, codeOf, readAll, readToEnd, recordsOf, until } from '../../helpers/topic-harness.js';

test('a retry of the last sequence answers the first answer, marked duplicate, and writes nothing', async (t) => {
  const h = await TopicHarness.start();
  t.teardown(() => h.close());
  await h.createTopic('t');
  const append = h.service.appender;
  await append.append('t', recordsOf('x'));
  // A retry sent while the first is still in flight gets the same answer.
  const [first, early] = await Promise.all([
    append.append('t', recordsOf('a', 'b'), { producerId: 'p', producerSeq: 0 }),
    append.append('t', recordsOf('a', 'b'), { producerId: 'p', producerSeq: 0 }),
  ]);
  t.deepEqual(first, {
    firstOffset: 1,
    lastOffset: 2,
    timestampMs: first.timestampMs,
    duplicate: false,
    acks: 'quorum',
  });
  h.clock.advance(5000);
  const late = await append.append('t', recordsOf('a', 'b'), { producerId: 'p', producerSeq: 0 });
  t.deepEqual(early, { ...first, duplicate: true });
  t.deepEqual(late, { ...first, duplicate: true });
  t.is(h.node(1).wal.endOffset('t'), 3);
});

test('a gap or an older sequence is SEQUENCE_MISMATCH; the next one is appended', async (t) => {
  const h = await TopicHarness.start();
  t.teardown(() => h.close());
  await h.createTopic('t');
  const append = h.service.appender;
  await append.append('t', recordsOf('a'), { producerId: 'p', producerSeq: 5 });
  await append.append('t', recordsOf('b'), { producerId: 'p', producerSeq: 6 });
  t.is(
    await codeOf(() => append.append('t', recordsOf('c'), { producerId: 'p', producerSeq: 8 })),
    'SEQUENCE_MISMATCH',
  );
  t.is(
    await codeOf(() => append.append('t', recordsOf('c'), { producerId: 'p', producerSeq: 5 })),
    'SEQUENCE_MISMATCH',
  );
  t.is(h.node(1).wal.endOffset('t'), 2);
  const next = await append.append('t', recordsOf('c'), { producerId: 'p', producerSeq: 7 });
  t.is(next.firstOffset, 2);
  // Producers are independent.
  t.false((await append.append('t', recordsOf('d'), { producerId: 'q', producerSeq: 0 })).duplicate);
});

test('the producer header is in the WAL but never reaches a reader', async (t) => {
  const h = await TopicHarness.start({ nodeIds: [1, 2] });
  t.teardown(() => h.close());
  await h.createTopic('t', 1);
  await h.node(1).service.appender.append('t', [{ value: Buffer.from('a'), headers: { k: 'v' } }], {
    producerId: 'p',
    producerSeq: 0,
  });
  const stored = h.node(1).wal.read('t', 0, readAll);
  t.true(producerHeaderName in stored[0]!.headers, 'the node tags the batch in its WAL');
  const local = await h.node(1).service.reader.read('t', 0, { ...readAll, waitMs: 0 });
  t.deepEqual(local.records[0]!.headers, { k: 'v' });
  // Through another node (forwarded) and through a consumer.
  const forwarded = await h.node(2).service.reader.readAnywhere('t', 0, readAll);
  t.deepEqual(forwarded[0]!.headers, { k: 'v' });
  const consumed = await h.node(1).service.consumers.readNext('t', 'c', { ...readAll, autoCommit: true });
  t.deepEqual(consumed.records[0]!.headers, { k: 'v' });
});

test('a restarted node rebuilds its producers from the WAL', async (t) => {
  const h = await TopicHarness.start();
  t.teardown(() => h.close());
  await h.createTopic('t');
  const before = [];
  for (let seq = 0; seq < 3; seq++)
    before.push(
      await h.service.appender.append('t', recordsOf(`${seq}a`, `${seq}b`), {
        producerId: 'p',
        producerSeq: seq,
      }),
    );
  await h.service.appender.append('t', recordsOf('q0'), { producerId: 'q', producerSeq: 0 });
  await h.node(1).restart();
  const append = h.service.appender;
  t.deepEqual(await append.append('t', recordsOf('2a', '2b'), { producerId: 'p', producerSeq: 2 }), {
    ...before[2]!,
    duplicate: true,
  });
  t.is(
    await codeOf(() => append.append('t', recordsOf('x'), { producerId: 'p', producerSeq: 4 })),
    'SEQUENCE_MISMATCH',
  );
  t.true((await append.append('t', recordsOf('q0'), { producerId: 'q', producerSeq: 0 })).duplicate);
  const next = await append.append('t', recordsOf('3a'), { producerId: 'p', producerSeq: 3 });
  t.deepEqual([next.firstOffset, next.duplicate], [7, false]);
  t.is((await readToEnd(h.service, 't')).length, 8);
});

// Serial: it counts the reads of every Wal through the prototype.
test.serial('a restart reads no record: the producers are rebuilt at their first use', async (t) => {
  const h = await TopicHarness.start();
  t.teardown(() => h.close());
  await h.createTopic('t');
  const first = await h.service.appender.append('t', recordsOf('a', 'b'), {
    producerId: 'p',
    producerSeq: 0,
  });
  await h.service.appender.append('t', recordsOf('c'));
  const read = Wal.prototype.read;
  let reads = 0;
  Wal.prototype.read = function (this: Wal, ...args: Parameters<Wal['read']>) {
    reads += 1;
    return read.apply(this, args);
  };
  t.teardown(() => {
    Wal.prototype.read = read;
  });
  await h.node(1).restart();
  // Before, recovery read every active segment whole: a restart took as long as reading the data.
  t.is(reads, 0, 'recovery reads no record');
  await h.service.appender.append('t', recordsOf('d'));
  t.is(reads, 0, 'an append without a producer needs no producer table');
  const retry = await h.service.appender.append('t', recordsOf('a', 'b'), {
    producerId: 'p',
    producerSeq: 0,
  });
  t.true(reads > 0, 'the first producer append rebuilds the table');
  t.deepEqual(retry, { ...first, duplicate: true });
});

test('a seal hands the producers to the next segment leader', async (t) => {
  const h = await TopicHarness.start({ nodeIds: [1, 2], segmentEntryCountMax: 3 });
  t.teardown(() => h.close());
  await h.createTopic('t', 1);
  await h.node(1).service.appender.append('t', recordsOf('a'), { producerId: 'p', producerSeq: 0 });
  const last = await h.node(1).service.appender.append('t', recordsOf('b', 'c'), {
    producerId: 'p',
    producerSeq: 1,
  });
  await until('the seal', () => h.log.state.topics.get('t')!.segments.length === 2);
  t.like(h.log.state.topics.get('t')!.segments[1], { baseOffset: 3, leaderNodeId: 2 });
  t.deepEqual(h.log.commands('sealSegment')[0]!.producers, [['p', 1, 1, 2, last.timestampMs]]);
  const next = h.node(2).service.appender;
  t.deepEqual(await next.append('t', recordsOf('b', 'c'), { producerId: 'p', producerSeq: 1 }), {
    ...last,
    duplicate: true,
  });
  t.is(
    await codeOf(() => next.append('t', recordsOf('z'), { producerId: 'p', producerSeq: 3 })),
    'SEQUENCE_MISMATCH',
  );
  const fresh = await next.append('t', recordsOf('d'), { producerId: 'p', producerSeq: 2 });
  t.deepEqual([fresh.firstOffset, fresh.duplicate], [3, false]);
});
