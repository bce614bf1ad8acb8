/**
 * The reader (node/topics/reader.ts) on real WALs: long polls woken by an append and by an abort,
 * reads capped at the acknowledged end, OFFSET_OUT_OF_RANGE below the start, DATA_LOST (never an
 * empty read) for a listed segment whose files are gone, and offsetForTimestamp across the nodes
 * that led the topic's segments.
 */
import fs from 'node:fs';
import test from 'ava';
import {
  TopicHarness,
  codeOf,
  deferred,
  readAll,
  readToEnd,
  recordsOf,
  text,
  turns,
  until,
} from '../../helpers/topic-harness.js';

const wait = (waitMs: number) => ({ ...readAll, waitMs });

test('a long poll at the end wakes on an append', async (t) => {
  const h = await TopicHarness.start();
  t.teardown(() => h.close());
  await h.createTopic('t');
  await h.service.appender.append('t', recordsOf('a'));
  let answered = false;
  const poll = h.service.reader.read('t', 1, wait(30_000)).finally(() => {
    answered = true;
  });
  await turns(20);
  t.false(answered, 'nothing to read yet: the poll waits');
  await h.service.appender.append('t', recordsOf('b', 'c'));
  const reply = await poll;
  t.deepEqual(reply.records.map(text), ['b', 'c']);
  t.is(reply.nextOffset, 3);
  t.is(reply.endOffset, 3);
});

test('a long poll answers [] when its signal aborts, and leaves no waiter behind', async (t) => {
  const h = await TopicHarness.start();
  t.teardown(() => h.close());
  await h.createTopic('t');
  const controller = new AbortController();
  const poll = h.service.reader.read('t', 0, wait(30_000), controller.signal);
  await turns(5);
  controller.abort();
  const reply = await poll;
  t.deepEqual(reply.records, []);
  t.is(reply.nextOffset, 0);
  // A later append still works and a new poll sees it (the aborted waiter was removed, not woken twice).
  await h.service.appender.append('t', recordsOf('a'));
  t.deepEqual((await h.service.reader.read('t', 0, wait(30_000))).records.map(text), ['a']);
});

test('a read never passes the acknowledged end, even when the WAL holds more', async (t) => {
  const h = await TopicHarness.start();
  t.teardown(() => h.close());
  await h.createTopic('t');
  await h.service.appender.append('t', recordsOf('a', 'b'));
  // Records in the WAL that no append acknowledged (what an append in flight looks like).
  await h.node(1).wal.append('t', recordsOf('unacked1', 'unacked2'));
  t.is(h.node(1).wal.endOffset('t'), 4);
  const reply = await h.service.reader.read('t', 0, wait(0));
  t.deepEqual(reply.records.map(text), ['a', 'b']);
  t.is(reply.endOffset, 2);
  t.deepEqual((await h.service.reader.read('t', 2, wait(0))).records, []);
  t.is(await codeOf(() => h.service.reader.read('t', 3, wait(0))), 'OFFSET_OUT_OF_RANGE');
  // A long poll at the acknowledged end is not woken by the unacknowledged records.
  let answered = false;
  const poll = h.service.reader.read('t', 2, wait(30_000)).finally(() => {
    answered = true;
  });
  await turns(20);
  t.false(answered);
  const next = await h.service.appender.append('t', recordsOf('c'));
  t.is(next.firstOffset, 4);
  // The appender acknowledged offset 4, so everything below 5 is visible now.
  t.deepEqual((await poll).records.map(text), ['unacked1', 'unacked2', 'c']);
});

test('an offset below the start or beyond the end is OFFSET_OUT_OF_RANGE', async (t) => {
  const h = await TopicHarness.start({ segmentEntryCountMax: 2 });
  t.teardown(() => h.close());
  await h.createTopic('t');
  await h.service.appender.append('t', recordsOf('a', 'b'));
  await h.service.appender.append('t', recordsOf('c', 'd'));
  await until('two seals', () => h.log.state.topics.get('t')!.segments.length === 3);
  await h.log.propose({ type: 'dropSegments', topic: 't', segmentIds: [1] });
  t.is(await codeOf(() => h.service.reader.read('t', 1, wait(0))), 'OFFSET_OUT_OF_RANGE');
  t.is(await codeOf(() => h.service.reader.read('t', 5, wait(0))), 'OFFSET_OUT_OF_RANGE');
  const reply = await h.service.reader.read('t', 2, wait(0));
  t.deepEqual(reply.records.map(text), ['c', 'd']);
  t.is(reply.startOffset, 2);
});

for (const lost of [1, 2]) {
  test(`a listed sealed segment whose files were deleted answers DATA_LOST, never [] (segment ${lost})`, async (t) => {
    const h = await TopicHarness.start({ segmentEntryCountMax: 2 });
    t.teardown(() => h.close());
    await h.createTopic('t');
    for (const pair of [
      ['a', 'b'],
      ['c', 'd'],
      ['e', 'f'],
    ])
      await h.service.appender.append('t', recordsOf(...pair));
    await until('three seals', () => h.log.state.topics.get('t')!.segments.length === 4);
    const node = h.node(1);
    await node.stop();
    for (const file of node.segmentFiles('t', lost)) fs.rmSync(file, { force: true });
    await node.start();
    t.true(
      node.logger.has(
        'This node leads sealed segments whose data it does not hold; reads of them answer DATA_LOST',
      ),
    );
    const base = (lost - 1) * 2;
    t.is(await codeOf(() => h.service.reader.read('t', base, wait(0))), 'DATA_LOST');
    t.is(await codeOf(() => h.service.reader.read('t', base + 1, wait(0))), 'DATA_LOST');
    await h.service.consumers.commit('t', 'c', base);
    t.is(
      await codeOf(() => h.service.consumers.readNext('t', 'c', { ...readAll, autoCommit: true })),
      'DATA_LOST',
    );
    t.is((await h.service.consumers.get('t', 'c')).consumer.offset, base);
    // The segments that are still there are served, and stop at their own end.
    const other = lost === 1 ? 2 : 0;
    t.deepEqual(
      (await h.service.reader.read('t', other, wait(0))).records.map((r) => r.offset),
      [other, other + 1],
    );
    t.deepEqual((await h.service.reader.read('t', 4, wait(0))).records.map(text), ['e', 'f']);
  });
}

test('offsetForTimestamp finds the first record at or after a time, across segment leaders', async (t) => {
  const h = await TopicHarness.start({ nodeIds: [1, 2], segmentEntryCountMax: 2 });
  t.teardown(() => h.close());
  await h.createTopic('t', 1);
  const t0 = h.clock.now;
  const leaderOf = () => h.log.state.topics.get('t')!.segments.at(-1)!.leaderNodeId;
  for (let i = 0; i < 6; i++) {
    const count = h.log.state.topics.get('t')!.segments.length;
    await h.node(leaderOf()).service.appender.append('t', recordsOf(`r${i}`));
    if (i % 2 === 1)
      await until('the seal', () => h.log.state.topics.get('t')!.segments.length === count + 1);
    h.clock.advance(100);
  }
  // Segments [0,2) on node 1, [2,4) on node 2, [4,6) on node 1; record i at t0 + 100 i.
  t.deepEqual(
    h.log.state.topics.get('t')!.segments.map((s) => s.leaderNodeId),
    [1, 2, 1, 2],
  );
  for (const service of [h.node(1).service, h.node(2).service]) {
    t.is(await service.reader.offsetForTimestamp('t', t0 - 1), 0);
    t.is(await service.reader.offsetForTimestamp('t', t0 + 250), 3);
    t.is(await service.reader.offsetForTimestamp('t', t0 + 300), 3);
    t.is(await service.reader.offsetForTimestamp('t', t0 + 401), 5);
    t.is(await service.reader.offsetForTimestamp('t', t0 + 10_000), 6);
  }
  t.is(h.node(2).service.reader.localOffsetForTimestamp('t', t0), 2);
  t.deepEqual((await h.node(1).service.reader.read('t', 4, wait(0))).records.map(text), ['r4', 'r5']);
  t.deepEqual(await readToEnd(h.node(2).service, 't', 6), []);
});

test('a long poll at the end answers as soon as a rollover moves the active segment to another node', async (t) => {
  const h = await TopicHarness.start({ nodeIds: [1, 2], segmentEntryCountMax: 2 });
  t.teardown(() => h.close());
  await h.createTopic('t', 1);
  const held = deferred();
  let sealReached = false;
  h.log.beforeApply = async (command) => {
    if (command.type !== 'sealSegment') return;
    sealReached = true;
    await held.promise;
  };
  await h.node(1).service.appender.append('t', recordsOf('a', 'b'));
  await until('the rollover to reach the metadata', () => sealReached);
  let outcome = null as string | null;
  void h
    .node(1)
    .service.reader.read('t', 2, wait(30_000))
    .then(
      (reply) => {
        outcome = `records ${reply.records.length}`;
      },
      (error: { code?: string; leaderHint?: { nodeId: number } }) => {
        outcome = `${error.code} ${error.leaderHint?.nodeId}`;
      },
    );
  await turns(20);
  t.is(outcome, null, 'the poll waits while node 1 still leads the active segment');
  held.resolve();
  await until('the poll to answer', () => outcome !== null, 5000);
  t.is(outcome, 'NOT_LEADER 2');
});

test('a read at the end during a rollover waits for it, then names the next segment leader', async (t) => {
  // Found by the whole-node simulator: the old segment leader, its seal committed but not yet
  // applied on itself, answered a read at the sealed end with [] while the next leader had
  // already acknowledged records there (and a read past it with OFFSET_OUT_OF_RANGE).
  const h = await TopicHarness.start({ nodeIds: [1, 2], segmentEntryCountMax: 4 });
  t.teardown(() => h.close());
  await h.createTopic('t', 1);
  const held = deferred();
  let sealReached = false;
  h.log.beforeApply = async (command) => {
    if (command.type !== 'sealSegment') return;
    sealReached = true;
    await held.promise;
  };
  await h.node(1).service.appender.append('t', recordsOf('0', '1', '2', '3'));
  await until('the rollover to reach the metadata', () => sealReached);
  let settled = false;
  const atEnd = codeOf(() => h.node(1).service.reader.read('t', 4, wait(0))).finally(() => {
    settled = true;
  });
  const pastEnd = codeOf(() => h.node(1).service.reader.read('t', 6, wait(0)));
  await turns(50);
  t.false(settled, 'the read waits for the rollover');
  held.resolve();
  t.is(await atEnd, 'NOT_LEADER');
  t.is(await pastEnd, 'NOT_LEADER');
});
