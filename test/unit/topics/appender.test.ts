/**
 * The appender (node/topics/appender.ts) on a real WAL and metadata log: contiguous offsets,
 * rollover at segmentEntryCountMax (exact count, size and time logged in the seal), appends that
 * arrive during a rollover, NOT_LEADER with a hint, expectedOffset, an empty batch, and the bound
 * on how many rollovers an append waits through.
 */
import test from 'ava';
import { activeSegment } from '../../../node/metadata/metadata-state.js';
import { WalrusError } from '../../../node/protocol/error-codes.js';
import { topicLimits } from '../../../node/topics/limits.js';
import {
  TopicHarness,
  clientAddrOf,
  codeOf,
  deferred,
  readAll,
  readToEnd,
  recordsOf,
  text,
  turns,
  until,
} from '../../helpers/topic-harness.js';

test('offsets are contiguous across concurrent batches and rollovers', async (t) => {
  const h = await TopicHarness.start({ segmentEntryCountMax: 5 });
  t.teardown(() => h.close());
  await h.createTopic('t');
  const sizes = [1, 3, 2, 4, 1, 1, 2, 5, 3, 1];
  const answers = await Promise.all(
    sizes.map((n, i) =>
      h.service.appender.append('t', recordsOf(...Array.from({ length: n }, (_, j) => `${i}.${j}`))),
    ),
  );
  const ranges = answers.map((a) => [a.firstOffset, a.lastOffset] as const).sort((a, b) => a[0] - b[0]);
  let next = 0;
  for (const [first, last] of ranges) {
    t.is(first, next);
    next = last + 1;
  }
  t.is(next, 23);
  const records = await readToEnd(h.service, 't');
  t.deepEqual(
    records.map((r) => r.offset),
    Array.from({ length: 23 }, (_, i) => i),
  );
  // Each batch's records are in order at its offsets.
  for (let i = 0; i < sizes.length; i++) {
    const a = answers[i]!;
    t.deepEqual(
      records.slice(a.firstOffset, a.lastOffset + 1).map(text),
      Array.from({ length: sizes[i]! }, (_, j) => `${i}.${j}`),
    );
  }
});

test('rollover seals with the exact count and logs sizeBytes and lastTimestampMs', async (t) => {
  const h = await TopicHarness.start({ segmentEntryCountMax: 3 });
  t.teardown(() => h.close());
  await h.createTopic('t');
  const node = h.node(1);
  await h.service.appender.append('t', recordsOf('a'));
  h.clock.advance(10);
  await h.service.appender.append('t', recordsOf('b'));
  h.clock.advance(10);
  const lastTime = h.clock.now;
  await h.service.appender.append('t', recordsOf('c'));
  await until('the seal', () => h.log.commands('sealSegment').length === 1);
  const seal = h.log.commands('sealSegment')[0]!;
  const walSegment = node.wal.segments('t').find((s) => s.id === 1)!;
  t.true(walSegment.sealed);
  t.is(seal.segmentId, 1);
  t.is(seal.endOffset, 3);
  t.is(seal.sizeBytes, walSegment.sizeBytes);
  t.true(walSegment.sizeBytes > 0);
  t.is(seal.lastTimestampMs, lastTime);
  const topic = h.log.state.topics.get('t')!;
  t.like(topic.segments[0], {
    id: 1,
    baseOffset: 0,
    endOffset: 3,
    sizeBytes: walSegment.sizeBytes,
    lastTimestampMs: lastTime,
  });
  t.like(activeSegment(topic), { id: 2, baseOffset: 3, leaderNodeId: 1 });
  const next = await h.service.appender.append('t', recordsOf('d'));
  t.is(next.firstOffset, 3);
  t.is(node.wal.segments('t').find((s) => s.id === 2)?.baseOffset, 3);
});

test('appends during a rollover wait for it and land in the next segment', async (t) => {
  const h = await TopicHarness.start({ segmentEntryCountMax: 4 });
  t.teardown(() => h.close());
  await h.createTopic('t');
  const held = deferred();
  let sealReached = false;
  h.log.beforeApply = async (command) => {
    if (command.type !== 'sealSegment') return;
    sealReached = true;
    await held.promise;
  };
  await h.service.appender.append('t', recordsOf('0', '1', '2', '3'));
  await until('the rollover to reach the metadata', () => sealReached);
  let settled = 0;
  const waiting = [0, 1, 2].map((i) =>
    h.service.appender.append('t', recordsOf(`late${i}`)).finally(() => {
      settled += 1;
    }),
  );
  // Let the event loop run: the appends must still wait for the seal.
  await turns(50);
  t.is(settled, 0);
  t.false(
    h
      .node(1)
      .wal.segments('t')
      .some((s) => s.id === 2),
  );
  held.resolve();
  const answers = await Promise.all(waiting);
  t.deepEqual(answers.map((a) => a.firstOffset).sort(), [4, 5, 6]);
  const topic = h.log.state.topics.get('t')!;
  t.is(topic.segments[0]!.endOffset, 4);
  t.like(topic.segments[1], { id: 2, baseOffset: 4 });
  t.is(
    h
      .node(1)
      .wal.segments('t')
      .find((s) => s.id === 1)!.endOffset,
    4,
  );
  const read = await h.service.reader.read('t', 4, { ...readAll, waitMs: 0 });
  t.deepEqual(read.records.map(text).sort(), ['late0', 'late1', 'late2']);
});

test('NOT_LEADER with a hint when another node leads the active segment', async (t) => {
  const h = await TopicHarness.start({ nodeIds: [1, 2] });
  t.teardown(() => h.close());
  await h.createTopic('t', 2);
  const error = await t.throwsAsync(h.node(1).service.appender.append('t', recordsOf('x')), {
    instanceOf: WalrusError,
  });
  t.is(error?.code, 'NOT_LEADER');
  t.deepEqual(error?.leaderHint, { nodeId: 2, clientAddr: clientAddrOf(2) });
  t.deepEqual(h.node(1).wal.topics(), []);
  const ok = await h.node(2).service.appender.append('t', recordsOf('x'));
  t.is(ok.firstOffset, 0);
});

test('expectedOffset: a mismatch is OFFSET_MISMATCH and writes nothing; a match appends', async (t) => {
  const h = await TopicHarness.start();
  t.teardown(() => h.close());
  await h.createTopic('t');
  await h.service.appender.append('t', recordsOf('a', 'b'));
  t.is(
    await codeOf(() => h.service.appender.append('t', recordsOf('c'), { expectedOffset: 1 })),
    'OFFSET_MISMATCH',
  );
  t.is(
    await codeOf(() => h.service.appender.append('t', recordsOf('c'), { expectedOffset: 3 })),
    'OFFSET_MISMATCH',
  );
  t.is(h.node(1).wal.endOffset('t'), 2);
  const ok = await h.service.appender.append('t', recordsOf('c'), { expectedOffset: 2 });
  t.is(ok.firstOffset, 2);
});

test('an empty batch is BAD_REQUEST; so is a producer id without a sequence', async (t) => {
  const h = await TopicHarness.start();
  t.teardown(() => h.close());
  await h.createTopic('t');
  t.is(await codeOf(() => h.service.appender.append('t', [])), 'BAD_REQUEST');
  t.is(
    await codeOf(() => h.service.appender.append('t', recordsOf('a'), { producerId: 'p' })),
    'BAD_REQUEST',
  );
  t.is(await codeOf(() => h.service.appender.append('nope', recordsOf('a'))), 'TOPIC_NOT_FOUND');
  t.is(h.node(1).wal.endOffset('t'), 0);
});

test('an append waits through at most rolloverWaitCountMax rollovers, then UNAVAILABLE', async (t) => {
  const h = await TopicHarness.start({ segmentEntryCountMax: 2 });
  t.teardown(() => h.close());
  await h.createTopic('t');
  let refused = 0;
  h.log.beforeApply = (command) => {
    if (command.type === 'sealSegment') {
      refused += 1;
      throw new Error('no quorum');
    }
  };
  await h.service.appender.append('t', recordsOf('a', 'b'));
  t.is(await codeOf(() => h.service.appender.append('t', recordsOf('c'))), 'UNAVAILABLE');
  const attempts = h.node(1).logger.count('rollover did not complete');
  t.true(attempts >= 1 && attempts <= topicLimits.rolloverWaitCountMax + 1, `${attempts} rollover attempts`);
  t.true(refused >= 1);
  // Once the metadata takes the seal again, the monitor completes the rollover and appends go on.
  h.log.beforeApply = null;
  // The monitor skips a topic whose rollover is still in flight: tick until the seal is logged.
  const sealed = () => h.log.state.topics.get('t')!.segments.length === 2;
  for (let tick = 0; tick < 100 && !sealed(); tick++) {
    await h.service.reconciler.maintain();
    await turns(1);
  }
  t.true(sealed());
  const ok = await h.service.appender.append('t', recordsOf('c'));
  t.is(ok.firstOffset, 2);
  t.is(h.log.state.topics.get('t')!.segments[0]!.endOffset, 2);
});

test('roomNow: what the active segment takes at once before it is full, 0 while appends would wait', async (t) => {
  const h = await TopicHarness.start({ segmentEntryCountMax: 5 });
  t.teardown(() => h.close());
  await h.createTopic('t');
  const appender = h.service.appender;
  t.is(appender.roomNow('t'), 0, 'no segment file yet: the first append makes it');
  t.is(appender.roomNow('nope'), 0, 'an unknown topic');
  await appender.append('t', recordsOf('a', 'b'));
  t.is(appender.roomNow('t'), 3);
  const pending = appender.append('t', recordsOf('c'));
  t.is(appender.roomNow('t'), 2, 'counts appends accepted and not yet durable');
  await pending;
  await appender.append('t', recordsOf('d', 'e', 'f'));
  t.is(appender.roomNow('t'), 0, 'full (past the count: a batch may end there)');
  const next = appender.append('t', recordsOf('g')); // starts the rollover and waits for it
  t.is(appender.roomNow('t'), 0, 'rolling over');
  await next;
  await until('the rollover done', () => appender.roomNow('t') > 0);
  t.is(appender.roomNow('t'), 4);
});
