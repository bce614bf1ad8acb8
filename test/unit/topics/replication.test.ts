/**
 * Segment replication in process (node/topics/segment-replicator.ts, replica-service.ts,
 * segment-recovery.ts) on real WALs and one metadata log: a quorum acknowledges, every replica
 * holds the records, a stopped follower catches up, a dead leader's segment is recovered with every
 * acknowledged record and the topic writable again elsewhere, a fenced leader acknowledges nothing
 * more, and a restarted leader recovers its own segment instead of appending to it.
 */
import fs from 'node:fs';
import test from 'ava';
import { activeSegment, epochOf, replicasOf } from '../../../node/metadata/metadata-state.js';
import {
  TopicHarness,
  codeOf,
  readAll,
  readToEnd,
  recordsOf,
  text,
  until,
} from '../../helpers/topic-harness.js';

async function threeNodes(t: { teardown(fn: () => Promise<void>): void }, segmentEntryCountMax = 1000) {
  const h = await TopicHarness.start({ nodeIds: [1, 2, 3], segmentEntryCountMax });
  t.teardown(() => h.close());
  await h.createTopic('t', 1, undefined, [1, 2, 3]);
  return h;
}

function localValues(h: TopicHarness, nodeId: number, topic: string): string[] {
  return h.node(nodeId).wal.read(topic, 0, readAll).map(text);
}

test('an append is acknowledged by a quorum and every replica ends up holding it', async (t) => {
  const h = await threeNodes(t);
  const leader = h.node(1).service;
  for (let i = 0; i < 20; i++) await leader.appender.append('t', recordsOf(`r${i}`));
  const expected = Array.from({ length: 20 }, (_, i) => `r${i}`);
  t.deepEqual((await readToEnd(leader, 't')).map(text), expected);
  await until('every replica holds every record', () =>
    [2, 3].every((id) => localValues(h, id, 't').length === 20),
  );
  for (const id of [2, 3]) t.deepEqual(localValues(h, id, 't'), expected);
});

test('with one follower down appends still reach a quorum; the follower catches up when back', async (t) => {
  const h = await threeNodes(t);
  const leader = h.node(1).service;
  await leader.appender.append('t', recordsOf('a'));
  await h.node(3).stop();
  for (let i = 0; i < 10; i++) await leader.appender.append('t', recordsOf(`b${i}`));
  await h.node(3).start();
  await leader.appender.append('t', recordsOf('c'));
  await until('the returning follower caught up', () => localValues(h, 3, 't').length === 12);
  t.deepEqual(localValues(h, 3, 't'), localValues(h, 1, 't'));
});

test('without a quorum an append is not acknowledged, and it is once a follower returns', async (t) => {
  const h = await threeNodes(t);
  const leader = h.node(1).service;
  await leader.appender.append('t', recordsOf('a'));
  await h.node(2).stop();
  await h.node(3).stop();
  let acknowledged = false;
  const pending = leader.appender.append('t', recordsOf('b')).then((r) => {
    acknowledged = true;
    return r;
  });
  // The leader alone holds it durable: readers must not see it (S4).
  await until('the leader wrote it', () => h.node(1).wal.endOffset('t') === 2);
  t.false(acknowledged);
  t.deepEqual((await readToEnd(leader, 't')).map(text), ['a']);
  await h.node(2).start();
  const answer = await pending;
  t.is(answer.firstOffset, 1);
  t.deepEqual((await readToEnd(leader, 't')).map(text), ['a', 'b']);
});

test('a dead leader’s segment is recovered: every acknowledged record kept, writes resume on a live node', async (t) => {
  const h = await threeNodes(t);
  for (let i = 0; i < 10; i++) await h.node(1).service.appender.append('t', recordsOf(`r${i}`));
  await h.node(1).stop();
  h.alive = [2, 3];
  const sealed = await h.node(2).service.recoverSegment('t', 1, 'test');
  t.true(sealed);
  const topic = h.log.state.topics.get('t')!;
  t.is(topic.segments[0]!.endOffset, 10);
  t.is(epochOf(topic.segments[0]!), 2);
  const active = activeSegment(topic);
  t.not(active.leaderNodeId, 1);
  t.false(replicasOf(active).includes(1), 'the dead node gets no copy of the new segment');
  const next = h.node(active.leaderNodeId).service;
  const answer = await next.appender.append('t', recordsOf('after'));
  t.is(answer.firstOffset, 10);
  // The sealed segment is read on a replica that holds it.
  t.deepEqual((await readToEnd(h.node(2).service, 't')).map(text), [
    ...Array.from({ length: 10 }, (_, i) => `r${i}`),
    'after',
  ]);
});

test('a fenced leader acknowledges nothing more; the seal settles what it was waiting on', async (t) => {
  const h = await threeNodes(t);
  const leader = h.node(1).service;
  await leader.appender.append('t', recordsOf('a'));
  // Followers away: the next append waits for a quorum it cannot get.
  await h.node(2).stop();
  await h.node(3).stop();
  const waiting = leader.appender.append('t', recordsOf('maybe')).then(
    (answer) => ({ acknowledgedAt: answer.firstOffset }),
    (error: { code?: string }) => ({ refused: error.code }),
  );
  await until('the leader wrote it', () => h.node(1).wal.endOffset('t') === 2);
  await h.node(2).start();
  await h.node(3).start();
  // Node 2 recovers while node 1 is alive (it was taken for dead): node 1 is fenced.
  h.alive = [2, 3];
  t.true(await h.node(2).service.recoverSegment('t', 1, 'test'));
  const first = h.log.state.topics.get('t')!.segments[0]!;
  t.true(first.endOffset! >= 1);
  // Either outcome is exact: in the log below the seal and acknowledged, or cut and refused FENCED.
  t.deepEqual(await waiting, first.endOffset === 2 ? { acknowledgedAt: 1 } : { refused: 'FENCED' });
  t.is(await codeOf(() => leader.appender.append('t', recordsOf('late'))), 'NOT_LEADER');
  await until('the old leader cut its copy to the seal', () => {
    const local = h
      .node(1)
      .wal.segments('t')
      .find((s) => s.id === 1);
    return local?.sealed === true && local.endOffset === first.endOffset;
  });
});

test('a restarted leader recovers its own segment rather than append to it', async (t) => {
  const h = await threeNodes(t);
  for (let i = 0; i < 5; i++) await h.node(1).service.appender.append('t', recordsOf(`r${i}`));
  await h.node(1).restart();
  await until('the segment was sealed', () => h.log.state.topics.get('t')!.segments[0]!.endOffset !== null);
  const topic = h.log.state.topics.get('t')!;
  t.is(topic.segments[0]!.endOffset, 5);
  const active = activeSegment(topic);
  const next = h.node(active.leaderNodeId).service;
  const answer = await next.appender.append('t', recordsOf('x'));
  t.is(answer.firstOffset, 5);
  t.deepEqual((await readToEnd(next, 't')).map(text), ['r0', 'r1', 'r2', 'r3', 'r4', 'x']);
});

test('a rollover seals only what a quorum holds and the next segment gets a replica set', async (t) => {
  const h = await threeNodes(t, 4);
  h.log.prepare = (command) => h.controller(1).prepareProposal(command);
  const leaderOf = () => h.node(activeSegment(h.log.state.topics.get('t')!).leaderNodeId).service;
  for (let i = 0; i < 10; i++) {
    // A rollover moves the active segment: the append goes to its new leader (as routing would).
    for (let attempt = 0; ; attempt++) {
      try {
        await leaderOf().appender.append('t', recordsOf(`r${i}`));
        break;
      } catch (error) {
        if (attempt > 5 || (error as { code?: string }).code !== 'NOT_LEADER') throw error;
      }
    }
  }
  const topic = h.log.state.topics.get('t')!;
  t.true(topic.segments.length >= 3);
  for (const s of topic.segments) t.is(replicasOf(s).length, 3);
  const all = await readToEnd(leaderOf(), 't');
  t.deepEqual(
    all.map(text),
    Array.from({ length: 10 }, (_, i) => `r${i}`),
  );
});

test('repair copies a sealed segment to another voter before the metadata lists it there', async (t) => {
  const h = await TopicHarness.start({ nodeIds: [1, 2, 3, 4], segmentEntryCountMax: 5 });
  t.teardown(() => h.close());
  await h.createTopic('t', 1, undefined, [1, 2, 3]);
  for (let i = 0; i < 5; i++) await h.node(1).service.appender.append('t', recordsOf(`r${i}`));
  await until('the first segment sealed', () => h.log.state.topics.get('t')!.segments[0]!.endOffset === 5);
  await h.node(3).stop();
  t.true(await h.node(1).service.repairSegment('t', 1, 3, 4));
  const first = h.log.state.topics.get('t')!.segments[0]!;
  t.deepEqual([...replicasOf(first)], [1, 2, 4]);
  const copy = h.node(4).wal.segmentInfo('t', 1);
  t.like(copy, { sealed: true, baseOffset: 0, endOffset: 5 });
  t.deepEqual(localValues(h, 4, 't').slice(0, 5), ['r0', 'r1', 'r2', 'r3', 'r4']);
  // The new copy serves reads while the node it replaced is gone.
  await h.node(1).stop();
  await h.node(2).stop();
  const page = await h.node(4).service.reader.read('t', 0, { ...readAll, waitMs: 0 });
  t.deepEqual(page.records.map(text), ['r0', 'r1', 'r2', 'r3', 'r4']);
});

test('a repair that cannot copy lists nothing new', async (t) => {
  const h = await TopicHarness.start({ nodeIds: [1, 2, 3, 4], segmentEntryCountMax: 5 });
  t.teardown(() => h.close());
  await h.createTopic('t', 1, undefined, [1, 2, 3]);
  for (let i = 0; i < 5; i++) await h.node(1).service.appender.append('t', recordsOf(`r${i}`));
  await until('the first segment sealed', () => h.log.state.topics.get('t')!.segments[0]!.endOffset === 5);
  await h.node(4).stop();
  t.is(await codeOf(() => h.node(1).service.repairSegment('t', 1, 3, 4)), 'UNAVAILABLE');
  t.deepEqual([...replicasOf(h.log.state.topics.get('t')!.segments[0]!)], [1, 2, 3]);
});

test('a copy with a corrupt record is never served and is replaced by a copy from its replicas', async (t) => {
  const h = await TopicHarness.start({ nodeIds: [1, 2, 3], segmentEntryCountMax: 5 });
  t.teardown(() => h.close());
  await h.createTopic('t', 1, undefined, [1, 2, 3]);
  for (let i = 0; i < 5; i++)
    await h.node(1).service.appender.append('t', recordsOf(`value-${i}-`.padEnd(64, 'x')));
  await until('node 2 holds the sealed copy', () => h.node(2).wal.segmentInfo('t', 1)?.sealed === true);
  // Flip a byte in the middle of node 2's data file: a record there fails its checksum.
  const [dataFile] = h.node(2).segmentFiles('t', 1);
  const size = h.node(2).wal.segmentInfo('t', 1)!.sizeBytes;
  const fd = fs.openSync(dataFile!, 'r+');
  const byte = Buffer.alloc(1);
  fs.readSync(fd, byte, 0, 1, Math.floor(size / 2));
  byte[0] = byte[0]! ^ 0xff;
  fs.writeSync(fd, byte, 0, 1, Math.floor(size / 2));
  fs.closeSync(fd);
  const reader = h.node(2).service.reader;
  const readFrom = async (offset: number) => reader.read('t', offset, { ...readAll, waitMs: 0 });
  let corruptSeen = false;
  for (let offset = 0; offset < 5 && !corruptSeen; ) {
    try {
      const page = await readFrom(offset);
      offset = page.nextOffset;
    } catch (error) {
      t.is((error as { code?: string }).code, 'CORRUPT_RECORD', 'never a silent gap');
      corruptSeen = true;
    }
  }
  t.true(corruptSeen, 'the flipped byte was found');
  await until('node 2 replaced its copy', () => {
    try {
      return h.node(2).wal.read('t', 0, readAll).length >= 5;
    } catch {
      return false;
    }
  });
  const values = h.node(2).wal.read('t', 0, readAll).slice(0, 5).map(text);
  t.deepEqual(
    values,
    Array.from({ length: 5 }, (_, i) => `value-${i}-`.padEnd(64, 'x')),
  );
});
