/**
 * Segment fence epochs on real files: raised durably and never lowered, kept across reopen with
 * or without data of the segment or topic, a garbage epoch file survived, deleted with their
 * segments and topics, bounded, and old-or-new after a crash at any point of a raise.
 */
import fs from 'node:fs';
import path from 'node:path';
import test from 'ava';
import type { WalLogger } from '../../../node/wal/index.js';
import { WalError } from '../../../node/wal/index.js';
import { CrashFileIo } from './crash-io.js';
import { openWal, payload, removeDir, tempDir } from './helpers.js';

function code(error: unknown): string | undefined {
  return error instanceof WalError ? error.code : undefined;
}

function epochFile(rootDir: string, topic: string, segmentId: number): string {
  return path.join(rootDir, 'topics', topic, `${String(segmentId).padStart(20, '0')}.epoch`);
}

/** A logger that keeps the messages of errors and warnings. */
function recordingLogger(): { logger: WalLogger; messages: string[] } {
  const messages: string[] = [];
  const keep = (_fields: unknown, message?: string): void => {
    messages.push(message ?? '');
  };
  return { logger: { info() {}, debug() {}, warn: keep, error: keep }, messages };
}

test('an epoch is raised durably, never lowered, and kept across reopen', async (t) => {
  const dir = tempDir('epochs');
  t.teardown(() => removeDir(dir));
  const wal = await openWal(dir);
  await wal.createSegment('t', 1, 0);
  t.is(wal.segmentEpoch('t', 1), 0);
  t.is(await wal.raiseSegmentEpoch('t', 1, 3), 3);
  t.true(fs.existsSync(epochFile(dir, 't', 1)));
  t.is(await wal.raiseSegmentEpoch('t', 1, 2), 3, 'never lower');
  t.is(await wal.raiseSegmentEpoch('t', 1, 3), 3);
  t.is(await wal.raiseSegmentEpoch('t', 1, 7), 7);
  t.is(wal.segmentEpoch('t', 1), 7);
  t.is(wal.segmentEpoch('t', 2), 0, 'per segment');
  t.is(await wal.raiseSegmentEpoch('t', 2, 1), 1);
  await wal.append('t', [{ value: payload(0, 5) }]);
  await wal.close();
  const again = await openWal(dir);
  t.is(again.segmentEpoch('t', 1), 7);
  t.is(again.segmentEpoch('t', 2), 1);
  t.deepEqual(
    again.segments('t').map((s) => [s.id, s.endOffset]),
    [[1, 1]],
    'epoch files are not segments',
  );
  t.is(await again.raiseSegmentEpoch('t', 1, 5), 7);
  await again.close();
});

test('a replica fenced before it holds any data of the topic keeps the epoch; a segment may follow', async (t) => {
  const dir = tempDir('epochs-no-data');
  t.teardown(() => removeDir(dir));
  const wal = await openWal(dir);
  t.is(await wal.raiseSegmentEpoch('fresh', 4, 2), 2);
  t.deepEqual(wal.topics(), [], 'no segments: not a topic with data');
  await wal.close();
  const again = await openWal(dir);
  t.is(again.segmentEpoch('fresh', 4), 2);
  t.true(fs.existsSync(epochFile(dir, 'fresh', 4)), 'recovery keeps a directory holding only epochs');
  await again.createSegment('fresh', 4, 100);
  t.is((await again.append('fresh', [{ value: payload(0, 5) }])).firstOffset, 100);
  await again.close();
  const third = await openWal(dir);
  t.is(third.segmentEpoch('fresh', 4), 2);
  t.is(third.endOffset('fresh'), 101);
  await third.close();
});

for (const damage of ['garbage', 'torn', 'empty', 'other segment']) {
  test(`a damaged epoch file (${damage}) is logged and read as 0, never a crash`, async (t) => {
    const dir = tempDir('epochs-garbage');
    t.teardown(() => removeDir(dir));
    const wal = await openWal(dir);
    await wal.createSegment('t', 1, 0);
    await wal.raiseSegmentEpoch('t', 1, 9);
    await wal.raiseSegmentEpoch('t', 2, 4);
    await wal.close();
    const file = epochFile(dir, 't', 1);
    const bytes = fs.readFileSync(file);
    if (damage === 'garbage') fs.writeFileSync(file, Buffer.from(bytes.map((b, i) => b ^ (i * 37 + 1))));
    if (damage === 'torn') fs.writeFileSync(file, bytes.subarray(0, 20));
    if (damage === 'empty') fs.writeFileSync(file, Buffer.alloc(0));
    if (damage === 'other segment') fs.copyFileSync(epochFile(dir, 't', 2), file);
    // A leftover temp file of an interrupted raise is no epoch either.
    fs.writeFileSync(`${epochFile(dir, 't', 3)}.tmp`, bytes);
    const { logger, messages } = recordingLogger();
    const again = await openWal(dir, { logger });
    t.is(again.segmentEpoch('t', 1), 0);
    t.is(again.segmentEpoch('t', 2), 4, 'the other epochs are intact');
    t.is(again.segmentEpoch('t', 3), 0);
    t.false(fs.existsSync(`${epochFile(dir, 't', 3)}.tmp`));
    t.true(
      messages.some((m) => m.includes('epoch file is corrupt')),
      messages.join('; '),
    );
    t.is(again.segments('t').length, 1);
    t.is(await again.raiseSegmentEpoch('t', 1, 5), 5);
    await again.close();
    const third = await openWal(dir);
    t.is(third.segmentEpoch('t', 1), 5);
    await third.close();
  });
}

test('deleteTopic removes the epochs with the segments, also of a topic with epochs only', async (t) => {
  const dir = tempDir('epochs-delete-topic');
  t.teardown(() => removeDir(dir));
  const wal = await openWal(dir);
  await wal.createSegment('a', 1, 0);
  await wal.raiseSegmentEpoch('a', 1, 3);
  await wal.raiseSegmentEpoch('a', 2, 3);
  await wal.raiseSegmentEpoch('b', 1, 8);
  await wal.deleteTopic('a');
  await wal.deleteTopic('b');
  t.is(wal.segmentEpoch('a', 1), 0);
  t.is(wal.segmentEpoch('a', 2), 0);
  t.is(wal.segmentEpoch('b', 1), 0);
  t.false(fs.existsSync(path.join(dir, 'topics', 'a')));
  t.false(fs.existsSync(path.join(dir, 'topics', 'b')));
  await wal.close();
  const again = await openWal(dir);
  t.is(again.segmentEpoch('a', 1), 0);
  t.is(again.segmentEpoch('b', 1), 0);
  t.is(await again.raiseSegmentEpoch('a', 1, 1), 1, 'a new topic of that name starts from 0');
  await again.close();
});

test('deleteSegmentsBelow removes the epochs of what it deletes (and of lower ids), keeps the others', async (t) => {
  const dir = tempDir('epochs-retention');
  t.teardown(() => removeDir(dir));
  const wal = await openWal(dir);
  await wal.raiseSegmentEpoch('t', 1, 2); // fenced, no data of segment 1 here
  for (let id = 2; id <= 4; id++) {
    await wal.createSegment('t', id, (id - 2) * 10);
    await wal.append(
      't',
      Array.from({ length: 10 }, (_, i) => ({ value: payload(i, 5) })),
    );
    await wal.raiseSegmentEpoch('t', id, id);
    if (id < 4) await wal.sealActive('t');
  }
  await wal.raiseSegmentEpoch('t', 9, 9); // fenced ahead of any data
  t.deepEqual(await wal.deleteSegmentsBelow('t', 20), [2, 3]);
  t.deepEqual(
    [1, 2, 3, 4, 9].map((id) => wal.segmentEpoch('t', id)),
    [0, 0, 0, 4, 9],
  );
  t.false(fs.existsSync(epochFile(dir, 't', 2)));
  t.false(fs.existsSync(epochFile(dir, 't', 1)));
  t.true(fs.existsSync(epochFile(dir, 't', 4)));
  await wal.close();
  const again = await openWal(dir);
  t.deepEqual(
    [1, 2, 3, 4, 9].map((id) => again.segmentEpoch('t', id)),
    [0, 0, 0, 4, 9],
  );
  // Sealing and deleting the last segment leaves the epoch of segment 9, and its directory.
  await again.sealActive('t');
  t.deepEqual(await again.deleteSegmentsBelow('t', 30), [4]);
  t.deepEqual(again.topics(), []);
  t.is(again.segmentEpoch('t', 9), 9);
  await again.close();
  const third = await openWal(dir);
  t.is(third.segmentEpoch('t', 9), 9);
  t.is(third.segmentEpoch('t', 4), 0);
  await third.close();
});

test('the number of epochs held is bounded by segmentEpochCountMax', async (t) => {
  const dir = tempDir('epochs-limit');
  t.teardown(() => removeDir(dir));
  const wal = await openWal(dir, { segmentEpochCountMax: 2 });
  await wal.raiseSegmentEpoch('a', 1, 1);
  await wal.raiseSegmentEpoch('b', 1, 1);
  t.is(code(await wal.raiseSegmentEpoch('c', 1, 1).catch((e) => e)), 'UNAVAILABLE');
  t.false(fs.existsSync(path.join(dir, 'topics', 'c')), 'nothing written');
  t.is(wal.segmentEpoch('c', 1), 0);
  t.is(await wal.raiseSegmentEpoch('a', 1, 5), 5, 'raising a held epoch needs no new entry');
  await wal.deleteTopic('b');
  t.is(await wal.raiseSegmentEpoch('c', 1, 1), 1, 'room again');
  await wal.close();
});

test('bad epochs and segment ids are refused with BAD_REQUEST', async (t) => {
  const dir = tempDir('epochs-bad');
  t.teardown(() => removeDir(dir));
  const wal = await openWal(dir);
  for (const [id, epoch] of [
    [1, -1],
    [1, 1.5],
    [1, Number.NaN],
    [0, 1],
    [2.5, 1],
  ] as const) {
    t.is(code(await wal.raiseSegmentEpoch('t', id, epoch).catch((e) => e)), 'BAD_REQUEST', `${id} ${epoch}`);
  }
  t.is(await wal.raiseSegmentEpoch('t', 1, 0), 0);
  t.false(fs.existsSync(path.join(dir, 'topics', 't', `${String(1).padStart(20, '0')}.epoch`)));
  await wal.close();
  t.is(code(await wal.raiseSegmentEpoch('t', 1, 1).catch((e) => e)), 'UNAVAILABLE');
});

test('a crash at every point of a raise leaves the old or the new epoch; once resolved, the new one', async (t) => {
  const base = tempDir('epochs-crash');
  t.teardown(() => removeDir(base));
  const fixture = path.join(base, 'fixture');
  const setup = await openWal(fixture);
  await setup.createSegment('t', 1, 0);
  await setup.raiseSegmentEpoch('t', 1, 3);
  await setup.close();
  for (const topic of ['t', 'fresh']) {
    const before = topic === 't' ? 3 : 0;
    const probeDir = path.join(base, `probe-${topic}`);
    fs.cpSync(fixture, probeDir, { recursive: true });
    const probe = new CrashFileIo();
    const probeWal = await openWal(probeDir, { fileIo: probe });
    probe.countCalls();
    await probeWal.raiseSegmentEpoch(topic, 1, 8);
    const callCount = probe.callCount;
    await probeWal.close();
    t.true(callCount >= 5, `a raise makes ${callCount} mutating calls`);
    const seen = new Set<number>();
    let run = 0;
    for (let point = 0; point <= callCount; point++) {
      for (let keep = -1; ; keep++) {
        const dir = path.join(base, `run-${topic}-${run++}`);
        fs.cpSync(fixture, dir, { recursive: true });
        const io = new CrashFileIo();
        const wal = await openWal(dir, { fileIo: io });
        io.crashAt(point);
        const resolved = await wal.raiseSegmentEpoch(topic, 1, 8).then(
          () => true,
          () => false,
        );
        t.is(resolved, point === callCount, `raise of ${topic} with a crash at call ${point}`);
        const unsynced = io.unsyncedCount();
        if (keep >= 0) io.loseUnsynced(keep);
        else io.kill();
        const again = await openWal(dir);
        const epoch = again.segmentEpoch(topic, 1);
        const label = `${topic}: crash at call ${point}, keep ${keep} of ${unsynced}: epoch ${epoch}`;
        t.true(epoch === before || epoch === 8, label);
        if (resolved) t.is(epoch, 8, label);
        seen.add(epoch);
        if (topic === 't') t.is(again.endOffset('t'), 0, label);
        await again.close();
        removeDir(dir);
        if (keep >= unsynced) break;
      }
    }
    t.deepEqual(
      [...seen].sort((a, b) => a - b),
      [before, 8],
      `${topic}: both outcomes occur`,
    );
  }
});
