/**
 * The reconciler (node/topics/reconciler.ts): recover() finishing a rollover that a crash cut
 * between the WAL's seal and the metadata's; reconcile() after the metadata was replaced by a
 * snapshot (defect 5 of issue 8: deleted topics lose their data, created ones are served, dropped
 * segments' files go); onApply(dropSegments) deleting files; delete then re-create of a name.
 */
import fs from 'node:fs';
import test from 'ava';
import { MetadataState } from '../../../node/metadata/metadata-state.js';
import { TopicHarness, codeOf, readToEnd, recordsOf, text, until } from '../../helpers/topic-harness.js';

test('recover() completes a rollover cut between the WAL seal and the metadata seal', async (t) => {
  const h = await TopicHarness.start({ segmentEntryCountMax: 10 });
  t.teardown(() => h.close());
  await h.createTopic('t');
  await h.service.appender.append('t', recordsOf('a', 'b', 'c'));
  // The rollover's first step, then the crash.
  const sealed = await h.node(1).wal.sealActive('t');
  await h.node(1).restart();
  const seal = h.log.commands('sealSegment');
  t.is(seal.length, 1);
  t.like(seal[0], {
    segmentId: 1,
    endOffset: 3,
    sizeBytes: sealed.sizeBytes,
    lastTimestampMs: sealed.lastTimestampMs,
  });
  t.true(h.node(1).logger.has('Completed an interrupted rollover'));
  const next = await h.service.appender.append('t', recordsOf('d'));
  t.is(next.firstOffset, 3);
  t.deepEqual((await readToEnd(h.service, 't')).map(text), ['a', 'b', 'c', 'd']);
});

test('a rollover completed at recovery still hands the producers to the next leader', async (t) => {
  const h = await TopicHarness.start({ nodeIds: [1, 2], segmentEntryCountMax: 10 });
  t.teardown(() => h.close());
  await h.createTopic('t', 1);
  const first = await h
    .node(1)
    .service.appender.append('t', recordsOf('a', 'b'), { producerId: 'p', producerSeq: 0 });
  await h.node(1).wal.sealActive('t');
  await h.node(1).restart();
  t.like(h.log.state.topics.get('t')!.segments[1], { baseOffset: 2, leaderNodeId: 2 });
  const retry = await h
    .node(2)
    .service.appender.append('t', recordsOf('a', 'b'), { producerId: 'p', producerSeq: 0 });
  t.deepEqual(retry, { ...first, duplicate: true });
  t.is(h.node(2).wal.endOffset('t'), 2, 'the retry wrote nothing (segment 2 starts at 2)');
});

test('reconcile() after a snapshot install: deleted topics go, created ones are served, dropped segments go', async (t) => {
  const h = await TopicHarness.start({ segmentEntryCountMax: 2 });
  t.teardown(() => h.close());
  const node = h.node(1);
  await h.createTopic('gone');
  await h.createTopic('kept');
  await h.service.appender.append('gone', recordsOf('x'));
  for (const pair of [
    ['a', 'b'],
    ['c', 'd'],
    ['e', 'f'],
  ])
    await h.service.appender.append('kept', recordsOf(...pair));
  await until('three seals', () => h.log.state.topics.get('kept')!.segments.length === 4);
  t.true(fs.existsSync(node.topicDir('gone')));
  // The leader's metadata moved on while this node was away; it arrives as one snapshot.
  const leader = MetadataState.fromSnapshot(h.log.state.toSnapshot());
  let index = leader.appliedIndex;
  leader.apply(++index, { type: 'deleteTopic', name: 'gone' });
  leader.apply(++index, {
    type: 'createTopic',
    name: 'fresh',
    retention: { retentionMs: null, retentionBytes: null },
    createdAtMs: h.clock.now,
    leaderNodeId: 1,
  });
  leader.apply(++index, { type: 'dropSegments', topic: 'kept', segmentIds: [1, 2] });
  h.log.installSnapshot(leader.toSnapshot());
  t.is(
    await codeOf(() => h.service.appender.append('fresh', recordsOf('y'))),
    'TOPIC_NOT_FOUND',
    'before reconcile: defect 5',
  );
  await h.service.reconciler.reconcile();
  t.false(fs.existsSync(node.topicDir('gone')));
  t.deepEqual(node.wal.topics(), ['kept']);
  t.is(
    await codeOf(() =>
      h.service.reader.read('gone', 0, { recordCountMax: 1, byteCountMax: 1024, waitMs: 0 }),
    ),
    'TOPIC_NOT_FOUND',
  );
  const appended = await h.service.appender.append('fresh', recordsOf('y'));
  t.is(appended.firstOffset, 0);
  t.deepEqual((await readToEnd(h.service, 'fresh')).map(text), ['y']);
  t.deepEqual(
    node.wal.segments('kept').map((s) => s.id),
    [3],
  );
  for (const id of [1, 2])
    for (const file of node.segmentFiles('kept', id)) t.false(fs.existsSync(file), file);
  t.deepEqual((await readToEnd(h.service, 'kept', 4)).map(text), ['e', 'f']);
  t.is((await h.service.appender.append('kept', recordsOf('g'))).firstOffset, 6);
});

test('onApply(dropSegments) deletes the files below the new start', async (t) => {
  const h = await TopicHarness.start({ nodeIds: [1, 2], segmentEntryCountMax: 2 });
  t.teardown(() => h.close());
  await h.createTopic('t', 1);
  for (let i = 0; i < 4; i++) {
    const leader = h.log.state.topics.get('t')!.segments.at(-1)!.leaderNodeId;
    await h.node(leader).service.appender.append('t', recordsOf(`${i}a`, `${i}b`));
    await until('the seal', () => h.log.state.topics.get('t')!.segments.length === i + 2);
  }
  // Segments 1, 3 on node 1 and 2, 4 on node 2; the drop takes 1-3.
  await h.log.propose({ type: 'dropSegments', topic: 't', segmentIds: [1, 2, 3] });
  await until(
    'the files to go',
    () => h.node(1).wal.segments('t').length === 0 && h.node(2).wal.segments('t').length === 1,
  );
  t.deepEqual(
    h
      .node(2)
      .wal.segments('t')
      .map((s) => s.id),
    [4],
  );
  for (const id of [1, 3]) for (const file of h.node(1).segmentFiles('t', id)) t.false(fs.existsSync(file));
  for (const file of h.node(2).segmentFiles('t', 2)) t.false(fs.existsSync(file));
  t.deepEqual(
    (
      await h.node(2).service.reader.read('t', 6, { recordCountMax: 10, byteCountMax: 1024, waitMs: 0 })
    ).records.map(text),
    ['3a', '3b'],
  );
});

test('deleteTopic then create of the same name starts an empty topic', async (t) => {
  const h = await TopicHarness.start({ segmentEntryCountMax: 2 });
  t.teardown(() => h.close());
  const admin = h.service.admin;
  t.true((await admin.create('t')).created);
  await h.service.appender.append('t', recordsOf('old1', 'old2'));
  await h.service.appender.append('t', recordsOf('old3'));
  t.true(await admin.delete('t'));
  t.false(fs.existsSync(h.node(1).topicDir('t')));
  t.false(await admin.delete('t'));
  const created = await admin.create('t');
  t.true(created.created);
  t.is(created.topic.endOffset, 0);
  t.is((await h.service.appender.append('t', recordsOf('new'))).firstOffset, 0);
  t.deepEqual((await readToEnd(h.service, 't')).map(text), ['new']);
  await h.node(1).restart();
  t.deepEqual((await readToEnd(h.service, 't')).map(text), ['new']);
});

test('reconcile() after a snapshot install serves the new topics at once, before its file deletions end', async (t) => {
  // Found by the whole-node simulator: a node that installed a snapshot answered TOPIC_NOT_FOUND
  // for a topic the snapshot holds while the reconciliation was still deleting files.
  const h = await TopicHarness.start();
  t.teardown(() => h.close());
  await h.createTopic('gone');
  await h.service.appender.append('gone', recordsOf('a'));
  const leader = MetadataState.fromSnapshot(h.log.state.toSnapshot());
  let index = leader.appliedIndex;
  leader.apply(++index, { type: 'deleteTopic', name: 'gone' });
  leader.apply(++index, {
    type: 'createTopic',
    name: 'fresh',
    retention: { retentionMs: null, retentionBytes: null },
    createdAtMs: h.clock.now,
    leaderNodeId: 1,
  });
  h.log.installSnapshot(leader.toSnapshot());
  const reconciling = h.service.reconciler.reconcile(); // as onRestore starts it, not awaited
  const appended = await h.service.appender.append('fresh', recordsOf('y'));
  t.is(appended.firstOffset, 0);
  await reconciling;
  t.deepEqual(h.node(1).wal.topics(), ['fresh']);
});
