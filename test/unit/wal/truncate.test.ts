/**
 * truncateSegment on real files: active and sealed segments, the index and seal marker it
 * rewrites, what it waits for and refuses, reopen, and crashes at every point of it (the process
 * dying there, and a power loss taking back any suffix of what was not yet durable): recovery
 * yields the old or the new segment, never the new end with old records behind it, and once the
 * call resolved, always the new one.
 */
import fs from 'node:fs';
import path from 'node:path';
import test from 'ava';
import type { ExecutionContext } from 'ava';
import type { Wal } from '../../../node/wal/index.js';
import { WalError } from '../../../node/wal/index.js';
import { CrashFileIo } from './crash-io.js';
import { openWal, payload, readAll, removeDir, segmentFile, tempDir } from './helpers.js';

function code(error: unknown): string | undefined {
  return error instanceof WalError ? error.code : undefined;
}

const recordCount = 12;
const batchSize = 4;
/** Small index interval: the cut drops index entries and the checkpoint must stay consistent. */
const options = { indexIntervalBytes: 256 };

function recordValue(offset: number): Uint8Array {
  return payload(offset, 40 + offset * 7);
}

/** Segment 1 of topic 't' with `recordCount` records in batches of `batchSize`, timestamps 1000 + batch. */
async function writeFixture(dir: string, sealed: boolean): Promise<void> {
  let now = 1000;
  const wal = await openWal(dir, { ...options, nowMs: () => now });
  await wal.createSegment('t', 1, 0);
  for (let first = 0; first < recordCount; first += batchSize) {
    await wal.append(
      't',
      Array.from({ length: batchSize }, (_, i) => ({
        value: recordValue(first + i),
        headers: { n: `${first + i}` },
      })),
    );
    now += 1;
  }
  if (sealed) await wal.sealActive('t');
  await wal.close();
}

/** Every record below the end reads back with its bytes; nothing at or beyond it. */
function checkRecords(t: ExecutionContext, wal: Wal, end: number, label: string): void {
  const all = readAll(wal, 't', 0);
  t.deepEqual(
    all.map((r) => r.offset),
    Array.from({ length: end }, (_, i) => i),
    label,
  );
  for (const r of all) t.deepEqual(Buffer.from(r.value), Buffer.from(recordValue(r.offset)), label);
  t.deepEqual(wal.read('t', end, { recordCountMax: 10, byteCountMax: 1 << 20 }), [], label);
  t.is(
    code(t.throws(() => wal.read('t', end + 1, { recordCountMax: 1, byteCountMax: 1 }))),
    'OFFSET_OUT_OF_RANGE',
  );
  t.is(wal.stats().corruptRecordCount, 0, label);
}

test('truncating the active segment drops the records from the cut; appends continue there, also after reopen', async (t) => {
  const dir = tempDir('trunc-active');
  t.teardown(() => removeDir(dir));
  await writeFixture(dir, false);
  const wal = await openWal(dir, options);
  const before = wal.segmentInfo('t', 1)!;
  t.is(before.endOffset, recordCount);
  const info = await wal.truncateSegment('t', 1, 6);
  t.deepEqual([info.id, info.baseOffset, info.endOffset, info.sealed], [1, 0, 6, false]);
  t.deepEqual(wal.segmentInfo('t', 1), info);
  t.is(info.lastTimestampMs, 1001, 'the last timestamp is that of record 5 (second batch)');
  t.is(info.firstTimestampMs, 1000);
  t.true(info.sizeBytes < before.sizeBytes);
  t.is(fs.statSync(segmentFile(dir, 't', 1, 'wal')).size, info.sizeBytes, 'the data file is cut');
  t.is(wal.endOffset('t'), 6);
  checkRecords(t, wal, 6, 'after the cut');
  // Appends continue at the cut, with a timestamp that never goes back.
  const next = await wal.append('t', [{ value: recordValue(6) }, { value: recordValue(7) }]);
  t.deepEqual([next.firstOffset, next.lastOffset], [6, 7]);
  t.true(next.timestampMs >= 1002);
  checkRecords(t, wal, 8, 'after appending past the cut');
  await wal.close();
  const again = await openWal(dir, options);
  checkRecords(t, again, 8, 'after reopen');
  t.deepEqual(
    again.segments('t').map((s) => [s.id, s.endOffset, s.sealed]),
    [[1, 8, false]],
  );
  // The sparse index still lands on record boundaries for every offset.
  for (let o = 0; o < 8; o++) t.is(again.read('t', o, { recordCountMax: 1, byteCountMax: 1 })[0]!.offset, o);
  await again.close();
});

test('truncating a sealed segment rewrites its seal marker; the next segment may start at the cut', async (t) => {
  const dir = tempDir('trunc-sealed');
  t.teardown(() => removeDir(dir));
  await writeFixture(dir, true);
  const wal = await openWal(dir, options);
  const sealBefore = fs.readFileSync(segmentFile(dir, 't', 1, 'seal'));
  const info = await wal.truncateSegment('t', 1, 5);
  t.deepEqual([info.endOffset, info.sealed, info.lastTimestampMs], [5, true, 1001]);
  t.notDeepEqual(fs.readFileSync(segmentFile(dir, 't', 1, 'seal')), sealBefore, 'seal marker rewritten');
  t.is(fs.statSync(segmentFile(dir, 't', 1, 'wal')).size, info.sizeBytes);
  checkRecords(t, wal, 5, 'after the cut');
  // createSegment asserts the base is at or above the previous end: the new end counts.
  await wal.createSegment('t', 2, 5);
  t.is((await wal.append('t', [{ value: recordValue(5) }])).firstOffset, 5);
  await wal.close();
  const again = await openWal(dir, options);
  t.deepEqual(
    again
      .segments('t')
      .map((s) => [s.id, s.baseOffset, s.endOffset, s.sealed, s.sizeBytes === info.sizeBytes]),
    [
      [1, 0, 5, true, true],
      [2, 5, 6, false, false],
    ],
  );
  checkRecords(t, again, 6, 'after reopen');
  await again.close();
});

test('an active segment truncated, sealed, then followed by a segment at the cut', async (t) => {
  const dir = tempDir('trunc-then-seal');
  t.teardown(() => removeDir(dir));
  await writeFixture(dir, false);
  const wal = await openWal(dir, options);
  await wal.truncateSegment('t', 1, 9);
  const sealed = await wal.sealActive('t');
  t.deepEqual([sealed.endOffset, sealed.sealed], [9, true]);
  await wal.createSegment('t', 2, 9);
  t.is((await wal.append('t', [{ value: recordValue(9) }])).firstOffset, 9);
  await wal.close();
  const again = await openWal(dir, options);
  checkRecords(t, again, 10, 'after reopen');
  await again.close();
});

test('truncating to the base empties the segment; to the end changes nothing on disk', async (t) => {
  const dir = tempDir('trunc-bounds');
  t.teardown(() => removeDir(dir));
  await writeFixture(dir, false);
  const wal = await openWal(dir, options);
  const files = ['wal', 'idx'].map((ext) => segmentFile(dir, 't', 1, ext as 'wal' | 'idx'));
  const bytes = files.map((f) => fs.readFileSync(f));
  const same = await wal.truncateSegment('t', 1, recordCount);
  t.is(same.endOffset, recordCount);
  t.deepEqual(
    files.map((f) => fs.readFileSync(f)),
    bytes,
    'a cut at the end is a no-op',
  );
  const empty = await wal.truncateSegment('t', 1, 0);
  t.deepEqual(
    [empty.endOffset, empty.sizeBytes, empty.firstTimestampMs, empty.lastTimestampMs],
    [0, 64, null, null],
  );
  t.deepEqual(wal.read('t', 0, { recordCountMax: 10, byteCountMax: 1 << 20 }), []);
  t.is((await wal.append('t', [{ value: recordValue(0) }])).firstOffset, 0);
  await wal.close();
  const again = await openWal(dir, options);
  checkRecords(t, again, 1, 'after reopen');
  await again.close();
});

test('bad truncations are refused with BAD_REQUEST / TOPIC_NOT_FOUND and change nothing', async (t) => {
  const dir = tempDir('trunc-bad');
  t.teardown(() => removeDir(dir));
  const wal = await openWal(dir, options);
  await wal.createSegment('t', 3, 100);
  await wal.append('t', [{ value: recordValue(0) }, { value: recordValue(1) }]);
  for (const [id, end, expected] of [
    [3, 99, 'BAD_REQUEST'],
    [3, 103, 'BAD_REQUEST'],
    [3, 100.5, 'BAD_REQUEST'],
    [3, Number.NaN, 'BAD_REQUEST'],
    [2, 100, 'BAD_REQUEST'],
  ] as const) {
    t.is(code(await wal.truncateSegment('t', id, end).catch((e) => e)), expected, `segment ${id} at ${end}`);
  }
  t.is(code(await wal.truncateSegment('nope', 1, 0).catch((e) => e)), 'TOPIC_NOT_FOUND');
  t.is(wal.endOffset('t'), 102);
  t.is(wal.segmentInfo('t', 2), undefined);
  t.is(wal.segmentInfo('nope', 3), undefined);
  await wal.close();
  t.is(code(await wal.truncateSegment('t', 3, 100).catch((e) => e)), 'UNAVAILABLE');
});

test('truncateSegment waits for the appends already queued, refuses new ones meanwhile, then cuts', async (t) => {
  const dir = tempDir('trunc-queued');
  t.teardown(() => removeDir(dir));
  const wal = await openWal(dir, options);
  await wal.createSegment('t', 1, 0);
  await wal.append('t', [{ value: recordValue(0) }, { value: recordValue(1) }]);
  const settled: string[] = [];
  // Queued in this turn, not yet written: the cut may reach into them (offset 3 of [2, 5)).
  const queued = wal.append('t', [
    { value: recordValue(2) },
    { value: recordValue(3) },
    { value: recordValue(4) },
  ]);
  void queued.then(() => settled.push('append'));
  const truncating = wal.truncateSegment('t', 1, 3).then((info) => {
    settled.push('truncate');
    return info;
  });
  // In the same turn (the drain it waits for may finish within microtasks):
  t.is(code(t.throws(() => wal.appendAssigned('t', [{ value: recordValue(9) }]))), 'UNAVAILABLE');
  const sealing = wal.sealActive('t').catch((e: unknown) => e);
  const second = wal.truncateSegment('t', 1, 2).catch((e: unknown) => e);
  t.is(code(await sealing), 'UNAVAILABLE');
  t.is(code(await second), 'UNAVAILABLE');
  t.is((await queued).firstOffset, 2);
  const info = await truncating;
  t.deepEqual(settled, ['append', 'truncate']);
  t.is(info.endOffset, 3);
  checkRecords(t, wal, 3, 'after the cut');
  t.is((await wal.append('t', [{ value: recordValue(3) }])).firstOffset, 3);
  await wal.close();
});

test('a cut inside corrupt records is refused with CORRUPT_RECORD; at their edges it works', async (t) => {
  const dir = tempDir('trunc-corrupt');
  t.teardown(() => removeDir(dir));
  await writeFixture(dir, true);
  // Damage records 4 and 5 (the checkpoint trusts them: the read or the cut finds it).
  const file = segmentFile(dir, 't', 1, 'wal');
  const bytes = fs.readFileSync(file);
  let pos = 64;
  const starts: number[] = [];
  for (let o = 0; o < recordCount; o++) {
    starts.push(pos);
    t.is(bytes.readUInt32LE(pos + 8), o, 'a record starts here');
    pos += 8 + bytes.readUInt32LE(pos);
  }
  bytes[starts[4]! + 20]! ^= 0x04;
  bytes[starts[5]! + 20]! ^= 0x04;
  fs.writeFileSync(file, bytes);
  const wal = await openWal(dir, options);
  t.is(code(await wal.truncateSegment('t', 1, 5).catch((e) => e)), 'CORRUPT_RECORD');
  t.is(wal.segmentInfo('t', 1)!.endOffset, recordCount, 'nothing changed');
  const info = await wal.truncateSegment('t', 1, 6);
  t.is(info.endOffset, 6);
  t.is(code(t.throws(() => wal.read('t', 4, { recordCountMax: 1, byteCountMax: 1 }))), 'CORRUPT_RECORD');
  t.deepEqual(
    wal.read('t', 0, { recordCountMax: 100, byteCountMax: 1 << 20 }).map((r) => r.offset),
    [0, 1, 2, 3],
  );
  t.is((await wal.truncateSegment('t', 1, 4)).endOffset, 4);
  await wal.close();
  const again = await openWal(dir, options);
  checkRecords(t, again, 4, 'after reopen');
  await again.close();
});

// ---- crashes ----

interface Outcome {
  end: number;
}

/** After recovery: the old segment (end = recordCount) or the new one (end = cut), whole, and usable. */
async function checkRecovered(
  t: ExecutionContext,
  dir: string,
  sealed: boolean,
  cut: number,
  label: string,
): Promise<Outcome> {
  const wal = await openWal(dir, options);
  const segments = wal.segments('t');
  t.is(segments.length, 1, label);
  const s = segments[0]!;
  t.true(s.endOffset === cut || s.endOffset === recordCount, `${label}: end ${s.endOffset} is old or new`);
  t.is(s.sealed, sealed, label);
  checkRecords(t, wal, s.endOffset, label);
  if (sealed) {
    t.is(
      fs.statSync(segmentFile(dir, 't', 1, 'wal')).size,
      s.sizeBytes,
      `${label}: the sealed file ends at its end`,
    );
    await wal.createSegment('t', 2, s.endOffset);
  }
  t.is((await wal.append('t', [{ value: recordValue(s.endOffset) }])).firstOffset, s.endOffset, label);
  await wal.close();
  // Stable: a second recovery agrees.
  const again = await openWal(dir, options);
  checkRecords(t, again, s.endOffset + 1, `${label}, reopened`);
  await again.close();
  return { end: s.endOffset };
}

for (const sealed of [false, true]) {
  const kind = sealed ? 'sealed' : 'active';
  test(`a crash at every point of truncating an ${kind} segment recovers the old or the new segment`, async (t) => {
    const base = tempDir(`trunc-crash-${kind}`);
    t.teardown(() => removeDir(base));
    const fixture = path.join(base, 'fixture');
    await writeFixture(fixture, sealed);
    const cut = 6;
    // How many mutating file calls a whole truncation makes.
    const probeDir = path.join(base, 'probe');
    fs.cpSync(fixture, probeDir, { recursive: true });
    const probe = new CrashFileIo();
    const probeWal = await openWal(probeDir, { ...options, fileIo: probe });
    probe.countCalls();
    await probeWal.truncateSegment('t', 1, cut);
    const callCount = probe.callCount;
    await probeWal.close();
    t.true(callCount >= (sealed ? 10 : 5), `a truncation makes ${callCount} mutating calls`);
    const seen = new Set<number>();
    let runs = 0;
    for (let point = 0; point < callCount; point++) {
      // keep = -1: the process died (everything written stays); else a power loss keeping `keep`.
      for (let keep = -1; ; keep++) {
        const dir = path.join(base, `run-${runs++}`);
        fs.cpSync(fixture, dir, { recursive: true });
        const io = new CrashFileIo();
        const wal = await openWal(dir, { ...options, fileIo: io });
        io.crashAt(point);
        const error = await wal.truncateSegment('t', 1, cut).catch((e: unknown) => e);
        t.true(error instanceof WalError, `crash at call ${point} fails the truncation`);
        const unsynced = io.unsyncedCount();
        if (keep >= 0) io.loseUnsynced(keep);
        else io.kill();
        const label = `${kind}, crash at call ${point}, ${keep < 0 ? 'process died' : `power loss keeping ${keep} of ${unsynced}`}`;
        seen.add((await checkRecovered(t, dir, sealed, cut, label)).end);
        removeDir(dir);
        if (keep >= unsynced) break;
      }
    }
    t.deepEqual(
      [...seen].sort((a, b) => a - b),
      [cut, recordCount],
      'both outcomes occur',
    );
    // Once it resolved, a power loss (whatever it keeps of what is not durable) changes nothing.
    for (let keep = 0; ; keep++) {
      const dir = path.join(base, `resolved-${keep}`);
      fs.cpSync(fixture, dir, { recursive: true });
      const io = new CrashFileIo();
      const wal = await openWal(dir, { ...options, fileIo: io });
      await wal.truncateSegment('t', 1, cut);
      const unsynced = io.unsyncedCount();
      io.loseUnsynced(keep);
      const { end } = await checkRecovered(t, dir, sealed, cut, `${kind}, power loss after it resolved`);
      t.is(end, cut);
      if (keep >= unsynced) break;
    }
    t.log(`${callCount} crash points, ${runs} crashed runs`);
  });
}

test('after a cut, a follower takes the new leader records stamped below the truncated ones', async (t) => {
  const dir = tempDir('trunc-follower');
  t.teardown(() => removeDir(dir));
  const wal = await openWal(dir, options);
  await wal.createSegment('t', 1, 0);
  const stamp = (offset: number): number => (offset < 6 ? 1000 + offset : 2000 + offset);
  await wal.appendReplicated(
    't',
    1,
    Array.from({ length: recordCount }, (_, o) => ({
      offset: o,
      timestampMs: stamp(o),
      value: recordValue(o),
    })),
  );
  // The old leader's records from 6 on were never committed: the new leader's 6 is stamped 1500.
  await wal.truncateSegment('t', 1, 6);
  const r = await wal.appendReplicated('t', 1, [{ offset: 6, timestampMs: 1500, value: recordValue(6) }]);
  t.deepEqual(r, { firstOffset: 6, lastOffset: 6, timestampMs: 1500 });
  t.is(
    code(
      await wal
        .appendReplicated('t', 1, [{ offset: 7, timestampMs: 1499, value: recordValue(7) }])
        .catch((e) => e),
    ),
    'BAD_REQUEST',
    'but never below the last record it holds',
  );
  t.is(wal.offsetForTimestamp('t', 1006), 6);
  // Its own appends (were it to lead) never go below anything it ever handed out.
  const own = await wal.append('t', [{ value: recordValue(7) }]);
  t.true(own.timestampMs >= 2011);
  await wal.close();
});
