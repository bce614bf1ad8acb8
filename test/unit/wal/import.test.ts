/**
 * Segment import (Wal.importSegment) on real files: into an empty WAL, below later segments and
 * an active one, over an incomplete or corrupt sealed copy (keeping its epoch), the placement and
 * offset rules, abort, leftovers never served, limits, injected I/O errors, retention and topic
 * deletion after an import, and a crash at every point of an import (the process dying, and a
 * power loss taking back any suffix of what was not durable): recovery yields the old or the new
 * state, never a partial one, and once `finish` resolved, always the new one. Also reads of a topic
 * whose local segments leave gaps between them.
 */
import fs from 'node:fs';
import path from 'node:path';
import test from 'ava';
import type { ExecutionContext } from 'ava';
import type { FileIo } from '../../../node/storage-io/index.js';
import { FaultInjectingFileIo, realFileIo } from '../../../node/storage-io/index.js';
import type { Wal, WalReplicatedRecord } from '../../../node/wal/index.js';
import { WalError, walLimits } from '../../../node/wal/index.js';
import { CrashFileIo } from './crash-io.js';
import { openWal, payload, removeDir, segmentFile, tempDir } from './helpers.js';

function code(error: unknown): string | undefined {
  return error instanceof WalError ? error.code : undefined;
}

function recordValue(offset: number): Uint8Array {
  return payload(offset, 20 + (offset % 37));
}

/** Records [from, to) as a leader holds them: value and timestamp derived from the offset. */
function records(from: number, to: number): WalReplicatedRecord[] {
  return Array.from({ length: to - from }, (_, i) => ({
    offset: from + i,
    timestampMs: 1000 + from + i,
    value: recordValue(from + i),
    headers: { n: String(from + i) },
  }));
}

/** Segment `id` holding [base, end) as a follower gets it; sealed unless `active`. */
async function replicaSegment(
  wal: Wal,
  id: number,
  base: number,
  end: number,
  active = false,
): Promise<void> {
  await wal.createSegment('t', id, base);
  if (end > base) await wal.appendReplicated('t', id, records(base, end));
  if (!active) await wal.sealActive('t');
}

async function importWhole(wal: Wal, topic: string, id: number, base: number, end: number, batch = 30) {
  const imp = await wal.importSegment(topic, id, base);
  for (let from = base; from < end; from += batch)
    await imp.append(records(from, Math.min(end, from + batch)));
  return imp.finish(end);
}

const big = { recordCountMax: 1000, byteCountMax: 1 << 24 };

/** Offsets [from, to) read in small pages: each page continues the last, values and headers intact. */
function checkRange(t: ExecutionContext, wal: Wal, from: number, to: number, label: string): void {
  let next = from;
  while (next < to) {
    const page = wal.read('t', next, { recordCountMax: 7, byteCountMax: 500 });
    t.true(page.length > 0, `${label}: offset ${next} reads`);
    for (const r of page) {
      if (next === to) break;
      if (r.offset !== next) {
        t.fail(`${label}: read ${r.offset}, expected ${next}`);
        return;
      }
      if (Buffer.compare(Buffer.from(r.value), Buffer.from(recordValue(r.offset))) !== 0) {
        t.fail(`${label}: the value of ${r.offset} differs`);
        return;
      }
      next += 1;
    }
  }
  t.is(next, to, label);
}

function outOfRange(wal: Wal, offset: number, topic = 't'): string | undefined {
  try {
    wal.read(topic, offset, big);
    return 'no error';
  } catch (error) {
    return code(error);
  }
}

function importDirs(rootDir: string, topic = 't'): string[] {
  const dir = path.join(rootDir, 'topics', topic);
  return fs.existsSync(dir) ? fs.readdirSync(dir).filter((name) => name.endsWith('.import')) : [];
}

function shape(wal: Wal, topic = 't'): [number, number, number, boolean][] {
  return wal.segments(topic).map((s) => [s.id, s.baseOffset, s.endOffset, s.sealed]);
}

test('an import into an empty WAL is invisible until finish, then a sealed segment that survives reopen', async (t) => {
  const dir = tempDir('import-empty');
  t.teardown(() => removeDir(dir));
  // A clock behind the imported timestamps: local appends must still never stamp below them.
  const options = { indexIntervalBytes: 256, nowMs: () => 500 };
  const wal = await openWal(dir, options);
  const imp = await wal.importSegment('t', 3, 200);
  t.deepEqual([imp.topic, imp.segmentId, imp.baseOffset, imp.endOffset], ['t', 3, 200, 200]);
  await imp.append(records(200, 260));
  // A resend that overlaps: the records below the end are skipped.
  await imp.append(records(250, 300));
  t.is(imp.endOffset, 300);
  t.deepEqual(wal.topics(), [], 'not visible before finish');
  t.deepEqual(wal.segments('t'), []);
  t.is(code(t.throws(() => wal.read('t', 200, big))), 'TOPIC_NOT_FOUND');
  t.deepEqual(importDirs(dir), ['00000000000000000003.import']);
  t.false(fs.existsSync(segmentFile(dir, 't', 3, 'wal')));
  const info = await imp.finish(300);
  t.deepEqual(
    [info.id, info.baseOffset, info.endOffset, info.sealed, info.firstTimestampMs, info.lastTimestampMs],
    [3, 200, 300, true, 1200, 1299],
  );
  t.deepEqual(wal.topics(), ['t']);
  t.deepEqual(wal.segments('t'), [info]);
  t.deepEqual(wal.segmentInfo('t', 3), info);
  t.deepEqual(importDirs(dir), [], 'the temporary directory is gone');
  t.is(fs.statSync(segmentFile(dir, 't', 3, 'wal')).size, info.sizeBytes);
  t.true(fs.existsSync(segmentFile(dir, 't', 3, 'seal')));
  t.is(wal.startOffset('t'), 200);
  t.is(wal.endOffset('t'), 300);
  checkRange(t, wal, 200, 300, 'after finish');
  t.deepEqual(wal.read('t', 300, big), [], 'the end of the last segment reads as nothing yet');
  t.is(outOfRange(wal, 199), 'OFFSET_OUT_OF_RANGE');
  t.is(wal.offsetForTimestamp('t', 1250), 250);
  t.deepEqual(wal.read('t', 242, { recordCountMax: 1, byteCountMax: 1 })[0]!.headers, { n: '242' });
  t.is(code(await imp.append(records(300, 301)).catch((e) => e)), 'BAD_REQUEST', 'finished');
  // The next segment follows it, and local appends never stamp below its records.
  await wal.createSegment('t', 4, 300);
  t.deepEqual(await wal.append('t', [{ value: recordValue(300) }]), {
    firstOffset: 300,
    lastOffset: 300,
    timestampMs: 1299,
  });
  await wal.close();
  const again = await openWal(dir, options);
  t.deepEqual(again.segmentInfo('t', 3), info);
  t.deepEqual(shape(again), [
    [3, 200, 300, true],
    [4, 300, 301, false],
  ]);
  checkRange(t, again, 200, 301, 'after reopen');
  t.deepEqual(await again.append('t', [{ value: recordValue(301) }]), {
    firstOffset: 301,
    lastOffset: 301,
    timestampMs: 1299,
  });
  t.is(again.stats().corruptRecordCount, 0);
  await again.close();
});

test('an import below later segments goes in id order; the active segment stays active meanwhile', async (t) => {
  const dir = tempDir('import-below');
  t.teardown(() => removeDir(dir));
  const wal = await openWal(dir);
  await replicaSegment(wal, 5, 300, 400);
  await replicaSegment(wal, 6, 400, 410, true);
  const imp = await wal.importSegment('t', 3, 200);
  await imp.append(records(200, 250));
  // The active segment takes appends while the import runs.
  t.deepEqual(await wal.appendReplicated('t', 6, records(410, 415)), {
    firstOffset: 410,
    lastOffset: 414,
    timestampMs: 1414,
  });
  t.is(outOfRange(wal, 220), 'OFFSET_OUT_OF_RANGE', 'the import is not served');
  await imp.append(records(250, 300));
  await imp.finish(300);
  t.deepEqual(shape(wal), [
    [3, 200, 300, true],
    [5, 300, 400, true],
    [6, 400, 415, false],
  ]);
  t.is(wal.startOffset('t'), 200);
  // Contiguous: one read crosses from the import into the later segments.
  t.deepEqual(
    wal.read('t', 295, { recordCountMax: 10, byteCountMax: 1 << 20 }).map((r) => r.offset),
    [295, 296, 297, 298, 299, 300, 301, 302, 303, 304],
  );
  checkRange(t, wal, 200, 415, 'after finish');
  t.is((await wal.appendReplicated('t', 6, records(415, 416))).firstOffset, 415, 'segment 6 is still active');
  await wal.close();
  const again = await openWal(dir);
  t.deepEqual(shape(again), [
    [3, 200, 300, true],
    [5, 300, 400, true],
    [6, 400, 416, false],
  ]);
  checkRange(t, again, 200, 416, 'after reopen');
  t.is((await again.appendReplicated('t', 6, records(416, 417))).firstOffset, 416);
  await again.close();
});

test('an import replaces an incomplete sealed copy of the segment and keeps its epoch', async (t) => {
  const dir = tempDir('import-replace');
  t.teardown(() => removeDir(dir));
  const wal = await openWal(dir);
  await replicaSegment(wal, 3, 200, 250);
  await replicaSegment(wal, 5, 300, 310, true);
  await wal.raiseSegmentEpoch('t', 3, 7);
  const old = wal.segmentInfo('t', 3)!;
  t.deepEqual([old.endOffset, old.sealed], [250, true]);
  t.is(outOfRange(wal, 250), 'OFFSET_OUT_OF_RANGE', 'the incomplete copy leaves a gap');
  const info = await importWhole(wal, 't', 3, 200, 300);
  t.deepEqual([info.endOffset, info.sealed], [300, true]);
  t.true(info.sizeBytes > old.sizeBytes);
  t.deepEqual(shape(wal), [
    [3, 200, 300, true],
    [5, 300, 310, false],
  ]);
  t.is(wal.segmentEpoch('t', 3), 7, 'the epoch is kept');
  t.is(
    fs.statSync(segmentFile(dir, 't', 3, 'wal')).size,
    info.sizeBytes,
    'the new data file replaced the old',
  );
  checkRange(t, wal, 200, 310, 'after the replacement');
  await wal.close();
  const again = await openWal(dir);
  t.deepEqual(again.segmentInfo('t', 3), info);
  t.is(again.segmentEpoch('t', 3), 7);
  checkRange(t, again, 200, 310, 'after reopen');
  await again.close();
});

test('an import replaces a sealed copy holding a corrupt record', async (t) => {
  const dir = tempDir('import-corrupt');
  t.teardown(() => removeDir(dir));
  const first = await openWal(dir);
  await replicaSegment(first, 3, 200, 300);
  await first.close();
  // Flip a bit inside record 240's value.
  const file = segmentFile(dir, 't', 3, 'wal');
  const bytes = fs.readFileSync(file);
  let pos = 64;
  for (let o = 200; o < 240; o++) pos += 8 + bytes.readUInt32LE(pos);
  t.is(bytes.readUInt32LE(pos + 8), 240, 'record 240 starts here');
  bytes[pos + 40]! ^= 0x10;
  fs.writeFileSync(file, bytes);
  const wal = await openWal(dir);
  t.is(code(t.throws(() => wal.read('t', 240, big))), 'CORRUPT_RECORD');
  t.is(wal.read('t', 230, big).length, 10, 'a read stops before the corrupt record');
  await importWhole(wal, 't', 3, 200, 300, 64);
  checkRange(t, wal, 200, 300, 'after the replacement');
  await wal.close();
  const again = await openWal(dir);
  checkRange(t, again, 200, 300, 'after reopen');
  t.is(again.stats().corruptRecordCount, 0);
  await again.close();
});

test('overlapping local segments, or not being below the active one, is refused with BAD_REQUEST', async (t) => {
  const dir = tempDir('import-overlap');
  t.teardown(() => removeDir(dir));
  const wal = await openWal(dir);
  await replicaSegment(wal, 1, 0, 100);
  await replicaSegment(wal, 5, 300, 400);
  await replicaSegment(wal, 6, 400, 410, true);
  for (const [id, base] of [
    [3, 50], // inside segment 1
    [3, 350], // inside segment 5
    [6, 400], // the active segment itself
    [7, 500], // after the active segment
    [0, 100], // not a segment id
    [3, -1],
    [3, 1.5],
  ] as const) {
    t.is(
      code(await wal.importSegment('t', id, base).catch((e) => e)),
      'BAD_REQUEST',
      `segment ${id} at ${base}`,
    );
  }
  const imp = await wal.importSegment('t', 3, 100);
  await imp.append(records(100, 290));
  // Crossing into segment 5 (base 300): refused, nothing written, the import goes on.
  t.is(code(await imp.append(records(290, 310)).catch((e) => e)), 'BAD_REQUEST');
  t.is(imp.endOffset, 290);
  await imp.append(records(290, 300));
  t.is((await imp.finish(300)).endOffset, 300);
  t.deepEqual(
    shape(wal).map((s) => s[0]),
    [1, 3, 5, 6],
  );
  checkRange(t, wal, 0, 410, 'contiguous after the import');
  await wal.close();
});

test('placement is checked again at finish: a refused finish leaves the import open', async (t) => {
  const dir = tempDir('import-finish-overlap');
  t.teardown(() => removeDir(dir));
  const wal = await openWal(dir);
  await replicaSegment(wal, 1, 0, 100);
  const imp = await wal.importSegment('t', 3, 100);
  await imp.append(records(100, 200));
  // Meanwhile a new active segment starts inside what the import holds.
  await wal.createSegment('t', 5, 150);
  t.is(code(await imp.finish(200).catch((e) => e)), 'BAD_REQUEST');
  t.deepEqual(importDirs(dir), ['00000000000000000003.import'], 'still open');
  t.deepEqual(
    shape(wal).map((s) => s[0]),
    [1, 5],
  );
  await imp.abort();
  t.deepEqual(importDirs(dir), []);
  // With no active segment, an id above every local one is fine: the next segment follows it.
  await wal.sealActive('t');
  await importWhole(wal, 't', 8, 150, 160);
  t.deepEqual(shape(wal), [
    [1, 0, 100, true],
    [5, 150, 150, true],
    [8, 150, 160, true],
  ]);
  await wal.createSegment('t', 9, 160);
  t.is((await wal.append('t', [{ value: recordValue(160) }])).firstOffset, 160);
  await wal.close();
});

test('append checks offsets, timestamps and limits; finish wants exactly the held range', async (t) => {
  const dir = tempDir('import-rules');
  t.teardown(() => removeDir(dir));
  const wal = await openWal(dir, { batchRecordCountMax: 50, recordSizeMaxBytes: 4096 });
  const imp = await wal.importSegment('t', 2, 1000);
  const gap = await imp.append(records(1005, 1010)).catch((e: unknown) => e);
  t.is(code(gap), 'BAD_REQUEST');
  t.is((gap as WalError).expectedOffset, 1000, 'a gap names the offset to resend from');
  const holes = records(1000, 1003);
  holes[2]!.offset = 1005;
  t.is(code(await imp.append(holes).catch((e) => e)), 'BAD_REQUEST', 'offsets must be consecutive');
  t.is(code(await imp.append([]).catch((e) => e)), 'BAD_REQUEST');
  const backwards = records(1000, 1003);
  backwards[2]!.timestampMs = 5;
  t.is(code(await imp.append(backwards).catch((e) => e)), 'BAD_REQUEST', 'timestamps may not go back');
  t.is(code(await imp.append(records(1000, 1051)).catch((e) => e)), 'BATCH_TOO_LARGE');
  const huge = records(1000, 1001);
  huge[0]!.value = new Uint8Array(5000);
  t.is(code(await imp.append(huge).catch((e) => e)), 'RECORD_TOO_LARGE');
  t.is(imp.endOffset, 1000, 'nothing was written');
  await imp.append(records(1000, 1040));
  t.is(
    code(await imp.append(records(1040, 1041).map((r) => ({ ...r, timestampMs: 1 }))).catch((e) => e)),
    'BAD_REQUEST',
  );
  for (const end of [1039, 1041, 1040.5]) {
    t.is(code(await imp.finish(end).catch((e) => e)), 'BAD_REQUEST', `finish(${end})`);
  }
  // The same segment cannot be imported twice at once.
  t.is(code(await wal.importSegment('t', 2, 1000).catch((e) => e)), 'UNAVAILABLE');
  t.is((await imp.finish(1040)).endOffset, 1040, 'still usable after every refusal');
  checkRange(t, wal, 1000, 1040, 'after finish');
  await wal.close();
});

test('concurrent imports are bounded by segmentImportCountMax', async (t) => {
  const dir = tempDir('import-limit');
  t.teardown(() => removeDir(dir));
  const wal = await openWal(dir);
  const imports = [];
  for (let i = 0; i < walLimits.segmentImportCountMax; i++) {
    imports.push(await wal.importSegment(`t${i}`, 1, 0));
  }
  t.is(code(await wal.importSegment('extra', 1, 0).catch((e) => e)), 'UNAVAILABLE');
  await imports[0]!.abort();
  const extra = await wal.importSegment('extra', 1, 0);
  await extra.append(records(0, 3));
  await extra.finish(3);
  t.deepEqual(wal.topics(), ['extra']);
  await wal.close();
  t.deepEqual(
    fs.readdirSync(path.join(dir, 'topics')),
    ['extra'],
    'close removed the files of the imports still running',
  );
  t.is(code(await imports[1]!.append(records(0, 1)).catch((e) => e)), 'UNAVAILABLE');
});

test('abort removes the temporary files; a topic directory made for the import goes too', async (t) => {
  const dir = tempDir('import-abort');
  t.teardown(() => removeDir(dir));
  const wal = await openWal(dir);
  const fresh = await wal.importSegment('fresh', 1, 0);
  await fresh.append(records(0, 10));
  t.true(fs.existsSync(path.join(dir, 'topics', 'fresh')));
  await fresh.abort();
  t.false(fs.existsSync(path.join(dir, 'topics', 'fresh')));
  t.deepEqual(wal.topics(), []);
  t.is(code(await fresh.append(records(10, 11)).catch((e) => e)), 'BAD_REQUEST');
  t.is(code(await fresh.finish(10).catch((e) => e)), 'BAD_REQUEST');
  await fresh.abort(); // a no-op
  // A topic directory holding fence epochs stays.
  await wal.raiseSegmentEpoch('fenced', 1, 3);
  const fenced = await wal.importSegment('fenced', 1, 0);
  await fenced.abort();
  t.true(fs.existsSync(path.join(dir, 'topics', 'fenced')));
  t.is(wal.segmentEpoch('fenced', 1), 3);
  await replicaSegment(wal, 5, 300, 310, true);
  await wal.raiseSegmentEpoch('t', 3, 2);
  const imp = await wal.importSegment('t', 3, 200);
  await imp.append(records(200, 220));
  await imp.abort();
  t.deepEqual(importDirs(dir), []);
  t.deepEqual(shape(wal), [[5, 300, 310, false]]);
  t.is(wal.segmentEpoch('t', 3), 2);
  // Importing it again starts from scratch.
  await importWhole(wal, 't', 3, 200, 300);
  checkRange(t, wal, 200, 310, 'after the second import');
  await wal.close();
});

test('the files of an unfinished import are removed at open and never served', async (t) => {
  const dir = tempDir('import-leftover');
  t.teardown(() => removeDir(dir));
  const wal = await openWal(dir);
  await replicaSegment(wal, 5, 300, 310, true);
  const imp = await wal.importSegment('t', 3, 200);
  await imp.append(records(200, 300));
  const fresh = await wal.importSegment('fresh', 1, 0);
  await fresh.append(records(0, 5));
  // The process dies here (nothing is closed): a new WAL opens the same directory.
  const again = await openWal(dir);
  t.deepEqual(importDirs(dir), []);
  t.false(fs.existsSync(path.join(dir, 'topics', 'fresh')), 'a topic holding only an import is removed');
  t.deepEqual(again.topics(), ['t']);
  t.deepEqual(shape(again), [[5, 300, 310, false]]);
  t.is(outOfRange(again, 250), 'OFFSET_OUT_OF_RANGE');
  await again.close();
});

test('retention and topic deletion treat an imported segment like any sealed one', async (t) => {
  const dir = tempDir('import-retention');
  t.teardown(() => removeDir(dir));
  const wal = await openWal(dir);
  await replicaSegment(wal, 5, 300, 400);
  await replicaSegment(wal, 6, 400, 410, true);
  await wal.raiseSegmentEpoch('t', 3, 1);
  await importWhole(wal, 't', 3, 200, 300);
  t.deepEqual(await wal.deleteSegmentsBelow('t', 299), [], 'segment 3 ends at 300: kept');
  t.deepEqual(await wal.deleteSegmentsBelow('t', 300), [3]);
  t.false(fs.existsSync(segmentFile(dir, 't', 3, 'wal')));
  t.is(wal.segmentEpoch('t', 3), 0, 'its epoch went with it');
  t.is(wal.startOffset('t'), 300);
  // An import below the start again, then the whole topic goes.
  await importWhole(wal, 't', 2, 100, 200);
  t.deepEqual(
    shape(wal).map((s) => s[0]),
    [2, 5, 6],
  );
  await wal.deleteTopic('t');
  t.deepEqual(wal.topics(), []);
  t.false(fs.existsSync(path.join(dir, 'topics', 't')));
  // Retention emptying a topic keeps the directory while an import of it runs.
  await replicaSegment(wal, 5, 300, 400);
  const imp = await wal.importSegment('t', 3, 200);
  await imp.append(records(200, 300));
  t.deepEqual(await wal.deleteSegmentsBelow('t', 400), [5]);
  t.deepEqual(wal.topics(), []);
  t.is((await imp.finish(300)).endOffset, 300);
  t.deepEqual(shape(wal), [[3, 200, 300, true]]);
  await wal.close();
  const again = await openWal(dir);
  t.deepEqual(shape(again), [[3, 200, 300, true]]);
  checkRange(t, again, 200, 300, 'after reopen');
  await again.close();
});

test('deleteTopic ends the imports of the topic, also of one with no local data', async (t) => {
  const dir = tempDir('import-delete-topic');
  t.teardown(() => removeDir(dir));
  const wal = await openWal(dir);
  await replicaSegment(wal, 5, 300, 310, true);
  const imp = await wal.importSegment('t', 3, 200);
  await imp.append(records(200, 250));
  const fresh = await wal.importSegment('fresh', 1, 0);
  await fresh.append(records(0, 5));
  const deleting = wal.deleteTopic('t');
  // Made after the delete (in the same turn): refused.
  const appending = imp.append(records(250, 260)).catch((e: unknown) => e);
  await deleting;
  t.is(code(await appending), 'UNAVAILABLE');
  await wal.deleteTopic('fresh');
  t.is(code(await imp.append(records(250, 260)).catch((e) => e)), 'UNAVAILABLE');
  t.is(code(await imp.finish(250).catch((e) => e)), 'UNAVAILABLE');
  t.is(code(await fresh.finish(5).catch((e) => e)), 'UNAVAILABLE');
  t.false(fs.existsSync(path.join(dir, 'topics', 't')));
  t.false(fs.existsSync(path.join(dir, 'topics', 'fresh')));
  t.deepEqual(wal.topics(), []);
  // A new import of the same segment works after the delete.
  await importWhole(wal, 't', 3, 200, 210);
  t.deepEqual(shape(wal), [[3, 200, 210, true]]);
  await wal.close();
});

test('close waits for the import call in flight, refuses later ones, then removes the files', async (t) => {
  const dir = tempDir('import-close-in-flight');
  t.teardown(() => removeDir(dir));
  let reached!: () => void;
  let release!: () => void;
  const atSync = new Promise<void>((resolve) => {
    reached = resolve;
  });
  const gate = new Promise<void>((resolve) => {
    release = resolve;
  });
  // The import's fdatasync (in the thread pool) waits for the test.
  const io: FileIo = {
    ...realFileIo,
    fdatasyncAsync: async (fd) => {
      reached();
      await gate;
      return realFileIo.fdatasyncAsync(fd);
    },
  };
  const wal = await openWal(dir, { fileIo: io });
  const imp = await wal.importSegment('t', 1, 0);
  const order: string[] = [];
  const appending = imp.append(records(0, 5)).then(
    () => order.push('append resolved'),
    (e: unknown) => order.push(`append ${code(e)}`),
  );
  await atSync;
  const closing = wal.close().then(() => order.push('close'));
  const later = imp.append(records(5, 6)).catch((e: unknown) => e);
  release();
  await Promise.all([appending, closing]);
  // Ended while it waited: its result is moot, and it settles before its descriptor is closed.
  t.deepEqual(order, ['append UNAVAILABLE', 'close']);
  t.is(code(await later), 'UNAVAILABLE');
  t.false(fs.existsSync(path.join(dir, 'topics', 't')));
});

test('reads across gaps between local segments: the gap is OFFSET_OUT_OF_RANGE, a read stops at the gap', async (t) => {
  const dir = tempDir('import-gaps');
  t.teardown(() => removeDir(dir));
  const wal = await openWal(dir);
  await replicaSegment(wal, 1, 0, 10);
  await replicaSegment(wal, 5, 50, 60);
  await replicaSegment(wal, 6, 60, 65, true);
  const offsets = (from: number): number[] => wal.read('t', from, big).map((r) => r.offset);
  t.deepEqual(offsets(5), [5, 6, 7, 8, 9], 'stops at the end of segment 1: 50 does not follow 9');
  for (const gap of [10, 30, 49]) t.is(outOfRange(wal, gap), 'OFFSET_OUT_OF_RANGE', `offset ${gap}`);
  t.deepEqual(
    offsets(50),
    Array.from({ length: 15 }, (_, i) => 50 + i),
    '5 and 6 are contiguous',
  );
  t.is(wal.offsetForTimestamp('t', 1030), 50, 'a timestamp in the gap finds the next held record');
  // Import 3 [10, 30): the gap narrows to [30, 50).
  await importWhole(wal, 't', 3, 10, 30);
  t.deepEqual(
    offsets(5),
    Array.from({ length: 25 }, (_, i) => 5 + i),
    '1 and 3 are contiguous, 3 ends at the gap',
  );
  t.is(outOfRange(wal, 30), 'OFFSET_OUT_OF_RANGE');
  t.is(outOfRange(wal, 45), 'OFFSET_OUT_OF_RANGE');
  // An empty segment 4 at 30 does not close the gap: offset 30 is still not held.
  await importWhole(wal, 't', 4, 30, 30);
  t.deepEqual(wal.segmentInfo('t', 4)!.endOffset, 30);
  t.deepEqual(offsets(25), [25, 26, 27, 28, 29]);
  t.is(outOfRange(wal, 30), 'OFFSET_OUT_OF_RANGE');
  // Replacing that empty copy with [30, 50) closes it: one read runs through all five segments.
  await importWhole(wal, 't', 4, 30, 50);
  t.deepEqual(
    offsets(0),
    Array.from({ length: 65 }, (_, i) => i),
  );
  checkRange(t, wal, 0, 65, 'no gap left');
  await wal.close();
  const again = await openWal(dir);
  t.deepEqual(
    shape(again).map((s) => [s[0], s[1], s[2]]),
    [
      [1, 0, 10],
      [3, 10, 30],
      [4, 30, 50],
      [5, 50, 60],
      [6, 60, 65],
    ],
  );
  await again.close();
});

test('I/O errors while appending: DISK_FULL is retried, EIO ends the import; the old copy stays', async (t) => {
  const dir = tempDir('import-append-faults');
  t.teardown(() => removeDir(dir));
  const io = new FaultInjectingFileIo();
  const wal = await openWal(dir, { fileIo: io });
  await replicaSegment(wal, 3, 200, 250);
  await replicaSegment(wal, 5, 300, 310, true);
  const imp = await wal.importSegment('t', 3, 200);
  io.inject({ op: 'write', code: 'ENOSPC', pathIncludes: '.import', partialBytes: 100 });
  t.is(code(await imp.append(records(200, 230)).catch((e) => e)), 'DISK_FULL');
  t.is(imp.endOffset, 200, 'the failed batch is rolled back');
  await imp.append(records(200, 230));
  t.is(imp.endOffset, 230);
  io.inject({ op: 'fdatasync', code: 'EIO', pathIncludes: '.import' });
  t.is(code(await imp.append(records(230, 260)).catch((e) => e)), 'UNAVAILABLE');
  t.is(imp.endOffset, 230);
  t.is(code(await imp.append(records(230, 260)).catch((e) => e)), 'UNAVAILABLE', 'never retried after EIO');
  t.is(code(await imp.finish(230).catch((e) => e)), 'UNAVAILABLE');
  await imp.abort();
  t.deepEqual(importDirs(dir), []);
  t.deepEqual(shape(wal), [
    [3, 200, 250, true],
    [5, 300, 310, false],
  ]);
  checkRange(t, wal, 200, 250, 'the old copy is served');
  await wal.close();
  const again = await openWal(dir);
  t.deepEqual(shape(again), [
    [3, 200, 250, true],
    [5, 300, 310, false],
  ]);
  await again.close();
});

test('a finish failing before its commit point changes nothing; after it, the next open completes it', async (t) => {
  const dir = tempDir('import-finish-faults');
  t.teardown(() => removeDir(dir));
  const io = new FaultInjectingFileIo();
  const wal = await openWal(dir, { fileIo: io });
  await replicaSegment(wal, 3, 200, 250);
  await replicaSegment(wal, 5, 300, 310, true);
  await wal.raiseSegmentEpoch('t', 3, 4);
  const old = wal.segmentInfo('t', 3)!;
  const base = '00000000000000000003';
  // The seal marker never reaches the import directory: not committed.
  const first = await wal.importSegment('t', 3, 200);
  await first.append(records(200, 300));
  io.inject({ op: 'rename', code: 'EIO', pathIncludes: `${base}.import${path.sep}${base}.seal` });
  t.is(code(await first.finish(300).catch((e) => e)), 'UNAVAILABLE');
  t.is(io.injectedCount, 1);
  t.deepEqual(importDirs(dir), [], 'a failed finish removes the import');
  t.deepEqual(wal.segmentInfo('t', 3), old);
  t.is(code(await first.finish(300).catch((e) => e)), 'UNAVAILABLE', 'the import ended');
  // Committed, but the seal marker is not moved into place: the segment waits for the next open.
  const second = await wal.importSegment('t', 3, 200);
  await second.append(records(200, 300));
  io.inject({ op: 'rename', code: 'EIO', pathIncludes: path.join('topics', 't', `${base}.seal`) });
  t.is(code(await second.finish(300).catch((e) => e)), 'UNAVAILABLE');
  t.is(io.injectedCount, 2);
  t.is(wal.segmentInfo('t', 3), undefined, 'neither the old copy (its files are replaced) nor the new one');
  t.is(outOfRange(wal, 220), 'OFFSET_OUT_OF_RANGE');
  t.is(code(await wal.importSegment('t', 3, 200).catch((e) => e)), 'UNAVAILABLE', 'until the next open');
  t.deepEqual(importDirs(dir), [`${base}.import`]);
  await wal.close();
  const again = await openWal(dir);
  t.deepEqual(importDirs(dir), []);
  t.deepEqual(shape(again), [
    [3, 200, 300, true],
    [5, 300, 310, false],
  ]);
  t.is(again.segmentEpoch('t', 3), 4);
  checkRange(t, again, 200, 310, 'after the open completed the import');
  t.is(again.stats().corruptRecordCount, 0);
  await again.close();
});

test('deleteTopic also removes an import that committed but waits for the next open', async (t) => {
  const dir = tempDir('import-unplaced-delete');
  t.teardown(() => removeDir(dir));
  const io = new FaultInjectingFileIo();
  const wal = await openWal(dir, { fileIo: io });
  const imp = await wal.importSegment('f', 1, 0);
  await imp.append(records(0, 10));
  io.inject({
    op: 'rename',
    code: 'EIO',
    pathIncludes: path.join('topics', 'f', '00000000000000000001.seal'),
  });
  t.is(code(await imp.finish(10).catch((e) => e)), 'UNAVAILABLE');
  t.deepEqual(wal.topics(), []);
  t.true(fs.existsSync(path.join(dir, 'topics', 'f')), 'kept for the next open');
  await wal.deleteTopic('f');
  t.false(fs.existsSync(path.join(dir, 'topics', 'f')));
  await wal.close();
  const again = await openWal(dir);
  t.deepEqual(again.topics(), [], 'not brought back by the next open');
  await again.close();
});

// ---- crashes ----

type Fixture = 'replace' | 'fresh';

/** replace: 3 [200, 250) sealed (incomplete, epoch 4), 5 [300, 400) sealed, 6 [400, 410) active. fresh: nothing. */
async function writeCrashFixture(dir: string, kind: Fixture): Promise<void> {
  const wal = await openWal(dir);
  if (kind === 'replace') {
    await replicaSegment(wal, 3, 200, 250);
    await replicaSegment(wal, 5, 300, 400);
    await replicaSegment(wal, 6, 400, 410, true);
    await wal.raiseSegmentEpoch('t', 3, 4);
  }
  await wal.close();
}

async function runImport(wal: Wal): Promise<void> {
  const imp = await wal.importSegment('t', 3, 200);
  for (let from = 200; from < 300; from += 25) await imp.append(records(from, from + 25));
  await imp.finish(300);
}

/** Opens the recovered directory: the old or the new state, whole, usable, and stable. */
async function checkRecovered(
  t: ExecutionContext,
  dir: string,
  kind: Fixture,
  label: string,
): Promise<'old' | 'new'> {
  const wal = await openWal(dir);
  t.deepEqual(importDirs(dir), [], `${label}: no import files left`);
  t.is(wal.stats().corruptRecordCount, 0, label);
  let outcome: 'old' | 'new';
  if (kind === 'fresh') {
    outcome = wal.topics().length === 0 ? 'old' : 'new';
    if (outcome === 'old') {
      t.false(fs.existsSync(path.join(dir, 'topics', 't')), `${label}: no topic directory left`);
    } else {
      t.deepEqual(shape(wal), [[3, 200, 300, true]], label);
      checkRange(t, wal, 200, 300, label);
    }
  } else {
    const segments = shape(wal);
    const end = segments[0]?.[2];
    t.true(end === 250 || end === 300, `${label}: segment 3 ends at ${end}`);
    outcome = end === 300 ? 'new' : 'old';
    t.deepEqual(
      segments,
      [
        [3, 200, outcome === 'new' ? 300 : 250, true],
        [5, 300, 400, true],
        [6, 400, 410, false],
      ],
      label,
    );
    checkRange(t, wal, 200, outcome === 'new' ? 300 : 250, label);
    checkRange(t, wal, 300, 410, label);
    if (outcome === 'old') t.is(outOfRange(wal, 250), 'OFFSET_OUT_OF_RANGE', label);
    t.is(wal.segmentEpoch('t', 3), 4, label);
    t.is((await wal.appendReplicated('t', 6, records(410, 411))).firstOffset, 410, label);
  }
  const segments = shape(wal);
  await wal.close();
  const again = await openWal(dir);
  t.deepEqual(shape(again), segments, `${label}: a second open agrees`);
  await again.close();
  return outcome;
}

for (const kind of ['replace', 'fresh'] as const) {
  test(`a crash at every point of an import (${kind}) recovers the old or the new state`, async (t) => {
    const base = tempDir(`import-crash-${kind}`);
    t.teardown(() => removeDir(base));
    const fixture = path.join(base, 'fixture');
    await writeCrashFixture(fixture, kind);
    // How many mutating file calls a whole import makes (start, four appends, finish).
    const probeDir = path.join(base, 'probe');
    fs.cpSync(fixture, probeDir, { recursive: true });
    const probe = new CrashFileIo();
    const probeWal = await openWal(probeDir, { fileIo: probe });
    probe.countCalls();
    await runImport(probeWal);
    const callCount = probe.callCount;
    await probeWal.close();
    t.true(callCount >= 30, `an import makes ${callCount} mutating calls`);
    const seen = new Set<string>();
    let runs = 0;
    for (let point = 0; point < callCount; point++) {
      // keep = -1: the process died (everything written stays); else a power loss keeping `keep`.
      for (let keep = -1; ; keep++) {
        const dir = path.join(base, `run-${runs++}`);
        fs.cpSync(fixture, dir, { recursive: true });
        const io = new CrashFileIo();
        const wal = await openWal(dir, { fileIo: io });
        io.crashAt(point);
        const error = await runImport(wal).then(
          () => null,
          (e: unknown) => e,
        );
        t.true(error instanceof WalError, `crash at call ${point} fails the import: ${String(error)}`);
        const unsynced = io.unsyncedCount();
        if (keep >= 0) io.loseUnsynced(keep);
        else io.kill();
        const label = `${kind}, crash at call ${point}, ${keep < 0 ? 'process died' : `power loss keeping ${keep} of ${unsynced}`}`;
        seen.add(await checkRecovered(t, dir, kind, label));
        removeDir(dir);
        if (keep >= unsynced) break;
      }
    }
    t.deepEqual([...seen].sort(), ['new', 'old'], 'both outcomes occur');
    // Once finish resolved, a power loss (whatever it keeps of what is not durable) changes nothing.
    for (let keep = 0; ; keep++) {
      const dir = path.join(base, `resolved-${keep}`);
      fs.cpSync(fixture, dir, { recursive: true });
      const io = new CrashFileIo();
      const wal = await openWal(dir, { fileIo: io });
      await runImport(wal);
      const unsynced = io.unsyncedCount();
      io.loseUnsynced(keep);
      t.is(await checkRecovered(t, dir, kind, `${kind}, power loss after finish resolved`), 'new');
      removeDir(dir);
      if (keep >= unsynced) break;
    }
    t.log(`${callCount} crash points, ${runs} crashed runs`);
  });
}
