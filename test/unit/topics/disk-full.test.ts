/**
 * The appender on a full disk (real WALs through the fault-injecting FileIo, the real metadata
 * log): DISK_FULL on every path an append takes (the WAL's reserve, the creation of a new
 * segment's file, the seal of a rollover, a sole replica's failed write), never UNAVAILABLE "cannot
 * roll over", appends again once space is back; a follower whose disk is full does not acknowledge,
 * the quorum comes from the others, and nothing acknowledged is lost.
 */
import test from 'ava';
import { FaultInjectingFileIo } from '../../../node/storage-io/index.js';
import { TopicHarness, codeOf, readToEnd, recordsOf, text, until } from '../../helpers/topic-harness.js';

const MiB = 1024 * 1024;
/** The default reserve of a 1 GiB file system is 1% of it (disk-space.ts). */
const diskSizeBytes = 1024 * MiB;

function fullDisk(): FaultInjectingFileIo {
  const io = new FaultInjectingFileIo();
  io.diskUsage = { freeBytes: MiB, sizeBytes: diskSizeBytes };
  return io;
}

/** Appends until one is accepted (the WAL re-reads statfs on its own interval), bounded in time. */
async function appendOnceSpaceIsBack(h: TopicHarness, topic: string, value: string): Promise<number> {
  const deadline = Date.now() + 10_000;
  for (;;) {
    try {
      return (await h.service.appender.append(topic, recordsOf(value))).firstOffset;
    } catch (error) {
      if (Date.now() > deadline) throw error;
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
  }
}

test("a new topic's first append on a full disk answers DISK_FULL, logs no error, and appends once space is back", async (t) => {
  const io = fullDisk();
  const h = await TopicHarness.start({ fileIo: () => io });
  t.teardown(() => h.close());
  await h.createTopic('df5');
  t.is(await codeOf(() => h.service.appender.append('df5', recordsOf('a'))), 'DISK_FULL');
  t.is(await codeOf(() => h.service.appender.append('df5', recordsOf('a'))), 'DISK_FULL');
  t.is(h.node(1).logger.count('could not create the WAL segment this node leads'), 0);
  io.diskUsage = { freeBytes: 512 * MiB, sizeBytes: diskSizeBytes };
  t.is(await appendOnceSpaceIsBack(h, 'df5', 'a'), 0);
  t.deepEqual((await readToEnd(h.service, 'df5')).map(text), ['a']);
});

test('a rollover whose seal hits a full disk answers DISK_FULL; the rollover completes once space is back', async (t) => {
  const io = new FaultInjectingFileIo();
  const h = await TopicHarness.start({ segmentEntryCountMax: 2, fileIo: () => io });
  t.teardown(() => h.close());
  await h.createTopic('t');
  // No room for the seal marker: the rollover the second record starts cannot seal.
  io.inject({ op: 'write', code: 'ENOSPC', pathIncludes: '.seal', count: 1_000_000 });
  await h.service.appender.append('t', recordsOf('0', '1'));
  t.is(await codeOf(() => h.service.appender.append('t', recordsOf('2'))), 'DISK_FULL');
  io.clear();
  t.is((await h.service.appender.append('t', recordsOf('2'))).firstOffset, 2);
  t.deepEqual((await readToEnd(h.service, 't')).map(text), ['0', '1', '2']);
});

test("a sole replica's write that hits ENOSPC answers DISK_FULL (nothing was written or sent)", async (t) => {
  const io = new FaultInjectingFileIo();
  const h = await TopicHarness.start({ fileIo: () => io });
  t.teardown(() => h.close());
  await h.createTopic('t');
  await h.service.appender.append('t', recordsOf('0'));
  io.inject({ op: 'write', code: 'ENOSPC', pathIncludes: '.wal' });
  t.is(await codeOf(() => h.service.appender.append('t', recordsOf('lost'))), 'DISK_FULL');
  t.deepEqual((await readToEnd(h.service, 't')).map(text), ['0']);
});

test('a follower on a full disk does not acknowledge: the quorum comes from the others and nothing acknowledged is lost', async (t) => {
  const full = fullDisk();
  const h = await TopicHarness.start({ nodeIds: [1, 2, 3], fileIo: (id) => (id === 3 ? full : undefined) });
  t.teardown(() => h.close());
  // Node 3 takes its copy of the segment while it has room; then its disk fills.
  full.diskUsage = { freeBytes: 512 * MiB, sizeBytes: diskSizeBytes };
  await h.createTopic('t', 1, undefined, [1, 2, 3]);
  await h.service.appender.append('t', recordsOf('first'));
  await until('node 3 holds the first record', () => h.node(3).wal.endOffset('t') === 1);
  full.diskUsage = { freeBytes: MiB, sizeBytes: diskSizeBytes };
  // It reads statfs again within diskCheckIntervalMs.
  await until('node 3 sees its disk full', () => h.node(3).wal.diskSpace().full);
  const values = Array.from({ length: 20 }, (_, i) => `r${i}`);
  for (const v of values) await h.service.appender.append('t', recordsOf(v));
  t.is(h.node(3).wal.endOffset('t'), 1, 'the full follower took none of them');
  t.true(h.node(3).logger.count('Disk full: appends and new segments refused') <= 1, 'one warning');
  t.is(h.node(2).wal.endOffset('t'), 21);
  t.deepEqual((await readToEnd(h.service, 't')).map(text), ['first', ...values]);
  // Space back: the follower catches up.
  full.diskUsage = { freeBytes: 512 * MiB, sizeBytes: diskSizeBytes };
  await until('node 3 catches up', () => h.node(3).wal.endOffset('t') === 21, 20_000);
  t.pass();
});
