/**
 * Consumer cursors (node/topics/consumers.ts) and the commitCursor command they rely on: readNext
 * commits by compare-and-set, a failed read barrier answers NOT_LEADER and no cursor, concurrent
 * readNexts (on one node or on two) never deliver a record twice, and a cursor below the topic's
 * start reads from the start.
 */
import test from 'ava';
import { MetadataState } from '../../../node/metadata/metadata-state.js';
import { TopicHarness, codeOf, readAll, recordsOf, text, until } from '../../helpers/topic-harness.js';

const next = (recordCountMax: number) => ({
  recordCountMax,
  byteCountMax: readAll.byteCountMax,
  autoCommit: true,
});

test('commitCursor with expectedOffset is a compare-and-set in the state machine', (t) => {
  const state = new MetadataState();
  let index = 0;
  const apply = (command: Parameters<MetadataState['apply']>[1]) => {
    state.apply(++index, command);
    return index;
  };
  apply({
    type: 'createTopic',
    name: 't',
    retention: { retentionMs: null, retentionBytes: null },
    createdAtMs: 0,
    leaderNodeId: 1,
  });
  const cursor = () => state.topics.get('t')!.cursors.get('c');
  apply({ type: 'commitCursor', topic: 't', consumer: 'c', offset: 5, expectedOffset: 3 });
  t.is(cursor(), undefined, 'no cursor yet: only expectedOffset null matches');
  apply({ type: 'commitCursor', topic: 't', consumer: 'c', offset: 5, expectedOffset: null });
  t.is(cursor(), 5);
  apply({ type: 'commitCursor', topic: 't', consumer: 'c', offset: 2, expectedOffset: null });
  const refused = apply({ type: 'commitCursor', topic: 't', consumer: 'c', offset: 2, expectedOffset: 4 });
  t.is(cursor(), 5, 'a commit decided on a stale cursor changes nothing');
  t.true(state.cursorCommitRefused(refused));
  // Two readers that read from the same cursor commit the same offset: only the first takes effect.
  const first = apply({ type: 'commitCursor', topic: 't', consumer: 'c', offset: 7, expectedOffset: 5 });
  const second = apply({ type: 'commitCursor', topic: 't', consumer: 'c', offset: 7, expectedOffset: 5 });
  t.is(cursor(), 7);
  t.deepEqual([state.cursorCommitRefused(first), state.cursorCommitRefused(second)], [false, true]);
  apply({ type: 'commitCursor', topic: 't', consumer: 'c', offset: 9, expectedOffset: 7 });
  t.is(cursor(), 9);
  apply({ type: 'commitCursor', topic: 't', consumer: 'c', offset: 1 });
  t.is(cursor(), 1, 'a plain commit (a seek) may move it anywhere');
  t.is(state.appliedIndex, index);
});

test('readNext commits by compare-and-set: a cursor moved meanwhile is kept, and the read fails', async (t) => {
  const h = await TopicHarness.start();
  t.teardown(() => h.close());
  await h.createTopic('t');
  await h.service.appender.append('t', recordsOf('a', 'b', 'c', 'd'));
  t.deepEqual((await h.service.consumers.readNext('t', 'c', next(1))).records.map(text), ['a']);
  const commits = h.log.commands('commitCursor');
  t.deepEqual(commits.at(-1), {
    type: 'commitCursor',
    topic: 't',
    consumer: 'c',
    offset: 1,
    expectedOffset: null,
  });
  // Another Raft leader moves the cursor between this node's read and its commit.
  h.log.beforeApply = async (command) => {
    if (command.type !== 'commitCursor' || command.expectedOffset === undefined) return;
    h.log.beforeApply = null;
    await h.log.propose({ type: 'commitCursor', topic: 't', consumer: 'c', offset: 3 });
  };
  t.is(await codeOf(() => h.service.consumers.readNext('t', 'c', next(1))), 'UNAVAILABLE');
  t.is(h.log.state.topics.get('t')!.cursors.get('c'), 3);
  t.deepEqual((await h.service.consumers.readNext('t', 'c', next(5))).records.map(text), ['d']);
  t.is((await h.service.consumers.get('t', 'c')).consumer.offset, 4);
});

test('an explicit commit with expectedOffset is a compare-and-set: a late one never moves the cursor back', async (t) => {
  const h = await TopicHarness.start();
  t.teardown(() => h.close());
  await h.createTopic('t');
  await h.service.appender.append('t', recordsOf('a', 'b', 'c', 'd', 'e'));
  const { consumers } = h.service;
  // Read [0, 2) without committing, then commit 2 expecting the cursor read from (0: no cursor yet).
  t.deepEqual((await consumers.readNext('t', 'c', { ...next(2), autoCommit: false })).records.map(text), [
    'a',
    'b',
  ]);
  t.deepEqual((await consumers.commit('t', 'c', 2, 0)).consumer, { topic: 't', consumer: 'c', offset: 2 });
  t.deepEqual((await consumers.commit('t', 'c', 2, 0)).consumer.offset, 2, 'a retried commit succeeds');
  t.deepEqual((await consumers.readNext('t', 'c', next(2))).records.map(text), ['c', 'd']);
  // The first commit arrives again, late (a delayed forward): the cursor is at 4 now, not 0.
  t.is(await codeOf(() => consumers.commit('t', 'c', 2, 0)), 'OFFSET_MISMATCH');
  t.is((await consumers.get('t', 'c')).consumer.offset, 4);
  // A concurrent move between this node's check and the apply is refused by the state machine.
  h.log.beforeApply = async (command) => {
    if (command.type !== 'commitCursor' || command.expectedOffset === undefined) return;
    h.log.beforeApply = null;
    await h.log.propose({ type: 'commitCursor', topic: 't', consumer: 'c', offset: 5 });
  };
  t.is(await codeOf(() => consumers.commit('t', 'c', 1, 4)), 'OFFSET_MISMATCH');
  t.is((await consumers.get('t', 'c')).consumer.offset, 5);
  // Without expectedOffset a commit is a plain set (a seek), backwards included.
  t.is((await consumers.commit('t', 'c', 1)).consumer.offset, 1);
  t.deepEqual((await consumers.readNext('t', 'c', next(1))).records.map(text), ['b']);
});

test('a failed read barrier answers NOT_LEADER and no cursor', async (t) => {
  const h = await TopicHarness.start();
  t.teardown(() => h.close());
  await h.createTopic('t');
  await h.service.appender.append('t', recordsOf('a', 'b'));
  await h.service.consumers.commit('t', 'c', 1);
  const before = h.log.committed.length;
  h.log.leader = false;
  t.is(await codeOf(() => h.service.consumers.get('t', 'c')), 'NOT_LEADER');
  t.is(await codeOf(() => h.service.consumers.readNext('t', 'c', next(5))), 'NOT_LEADER');
  t.is(await codeOf(() => h.service.consumers.readNext('t', 'fresh', next(5))), 'NOT_LEADER');
  t.is(h.log.committed.length, before, 'nothing was proposed');
  h.log.leader = true;
  t.deepEqual((await h.service.consumers.readNext('t', 'c', next(5))).records.map(text), ['b']);
});

test('concurrent readNexts on one node deliver every record exactly once', async (t) => {
  const h = await TopicHarness.start({ segmentEntryCountMax: 7 });
  t.teardown(() => h.close());
  await h.createTopic('t');
  for (let i = 0; i < 30; i += 3)
    await h.service.appender.append('t', recordsOf(`${i}`, `${i + 1}`, `${i + 2}`));
  const replies = await Promise.all(
    Array.from({ length: 15 }, () => h.service.consumers.readNext('t', 'c', next(3))),
  );
  const offsets = replies.flatMap((r) => r.records.map((rec) => rec.offset)).sort((a, b) => a - b);
  t.deepEqual(
    offsets,
    Array.from({ length: 30 }, (_, i) => i),
  );
  t.is(h.log.state.topics.get('t')!.cursors.get('c'), 30);
});

test('concurrent readNexts through two nodes never deliver a record twice', async (t) => {
  const h = await TopicHarness.start({ nodeIds: [1, 2] });
  t.teardown(() => h.close());
  await h.createTopic('t', 1);
  await h.node(1).service.appender.append('t', recordsOf(...Array.from({ length: 20 }, (_, i) => `${i}`)));
  const delivered: number[] = [];
  let failures = 0;
  for (let round = 0; round < 20 && delivered.length < 20; round++) {
    const replies = await Promise.allSettled(
      [1, 2, 1, 2].map((id) => h.node(id).service.consumers.readNext('t', 'c', next(2))),
    );
    for (const r of replies) {
      if (r.status === 'fulfilled') delivered.push(...r.value.records.map((rec) => rec.offset));
      else {
        t.is((r.reason as { code?: string }).code, 'UNAVAILABLE');
        failures += 1;
      }
    }
  }
  t.deepEqual(
    delivered.sort((a, b) => a - b),
    Array.from({ length: 20 }, (_, i) => i),
  );
  t.true(failures > 0, 'the two nodes raced at least once');
});

test('a cursor below the start reads from the start', async (t) => {
  const h = await TopicHarness.start({ segmentEntryCountMax: 2 });
  t.teardown(() => h.close());
  await h.createTopic('t');
  await h.service.appender.append('t', recordsOf('a', 'b'));
  await h.service.appender.append('t', recordsOf('c', 'd'));
  await until('two seals', () => h.log.state.topics.get('t')!.segments.length === 3);
  await h.service.consumers.commit('t', 'c', 1);
  await h.log.propose({ type: 'dropSegments', topic: 't', segmentIds: [1] });
  t.is((await h.service.consumers.get('t', 'c')).consumer.offset, 2);
  const reply = await h.service.consumers.readNext('t', 'c', next(1));
  t.deepEqual(
    reply.records.map((r) => r.offset),
    [2],
  );
  t.is(h.log.state.topics.get('t')!.cursors.get('c'), 3);
});
