/**
 * What segment replication needs of the WAL, on real files: appendAssigned (offsets known in the
 * same turn, errors thrown), appendReplicated resends (overlap skipped, gap refused with the
 * offset to resend from), segmentInfo, and corrupt records never served as a silent gap.
 */
import fs from 'node:fs';
import test from 'ava';
import { FaultInjectingFileIo, type FileIo, realFileIo } from '../../../node/storage-io/index.js';
import type { WalReplicatedRecord } from '../../../node/wal/index.js';
import { WalError } from '../../../node/wal/index.js';
import { openWal, payload, readAll, removeDir, segmentFile, tempDir } from './helpers.js';

function code(error: unknown): string | undefined {
  return error instanceof WalError ? error.code : undefined;
}

function replicated(first: number, count: number, timestampMs: number): WalReplicatedRecord[] {
  return Array.from({ length: count }, (_, i) => ({
    offset: first + i,
    timestampMs: timestampMs + i,
    value: payload(first + i, 10 + i),
  }));
}

test('appendAssigned with syncInPool fdatasyncs in the thread pool, leaving the event loop free; without it, inline', async (t) => {
  const dir = tempDir('pooled');
  t.teardown(() => removeDir(dir));
  const calls: string[] = [];
  const io: FileIo = {
    ...realFileIo,
    fdatasync: (fd) => {
      calls.push('inline');
      realFileIo.fdatasync(fd);
    },
    fdatasyncAsync: (fd) => {
      calls.push('pool');
      return realFileIo.fdatasyncAsync(fd);
    },
  };
  const wal = await openWal(dir, { fileIo: io });
  await wal.createSegment('t', 1, 0);
  calls.length = 0;
  await wal.appendAssigned('t', [{ value: payload(0, 5) }]).durable;
  t.deepEqual(calls, ['inline']);
  calls.length = 0;
  const pooled = wal.appendAssigned('t', [{ value: payload(1, 5) }], { syncInPool: true });
  let settled = false;
  void pooled.durable.then(() => {
    settled = true;
  });
  // The group commit runs in the next check phase; its fdatasync then runs on the pool, so the
  // loop comes back to this test (and to a leader's acknowledgements) before it is durable.
  await new Promise((resolve) => setImmediate(resolve));
  t.deepEqual(calls, ['pool']);
  t.false(settled);
  t.deepEqual(await pooled.durable, { firstOffset: 1, lastOffset: 1, timestampMs: pooled.timestampMs });
  t.deepEqual(
    readAll(wal, 't', 0).map((r) => r.offset),
    [0, 1],
  );
  await wal.close();
});

test('appendAssigned returns offsets and timestamp before the group commit; durable reports the same', async (t) => {
  const dir = tempDir('assigned');
  t.teardown(() => removeDir(dir));
  let now = 500;
  const wal = await openWal(dir, { nowMs: () => now });
  await wal.createSegment('t', 1, 10);
  const commitsBefore = wal.stats().groupCommitCount;
  const a = wal.appendAssigned('t', [{ value: payload(0, 5) }, { value: payload(1, 5) }]);
  now = 400; // the clock goes back: the timestamp does not
  const b = wal.appendAssigned('t', [{ value: payload(2, 5) }]);
  // Known in this turn; nothing written yet.
  t.deepEqual([a.firstOffset, a.lastOffset, a.timestampMs], [10, 11, 500]);
  t.deepEqual([b.firstOffset, b.lastOffset, b.timestampMs], [12, 12, 500]);
  t.is(wal.stats().groupCommitCount, commitsBefore);
  t.deepEqual(wal.read('t', 10, { recordCountMax: 10, byteCountMax: 1 << 20 }), []);
  t.is(wal.endOffset('t'), 13);
  const [da, db] = await Promise.all([a.durable, b.durable]);
  t.deepEqual(da, { firstOffset: a.firstOffset, lastOffset: a.lastOffset, timestampMs: a.timestampMs });
  t.deepEqual(db, { firstOffset: b.firstOffset, lastOffset: b.lastOffset, timestampMs: b.timestampMs });
  t.is(wal.stats().groupCommitCount, commitsBefore + 1, 'both went in one group commit');
  t.deepEqual(
    readAll(wal, 't', 10).map((r) => r.offset),
    [10, 11, 12],
  );
  // append is the same thing, without the synchronous part.
  t.deepEqual(await wal.append('t', [{ value: payload(3, 5) }]), {
    firstOffset: 13,
    lastOffset: 13,
    timestampMs: 500,
  });
  await wal.close();
});

test('appendAssigned throws what append rejects with, synchronously, and queues nothing', async (t) => {
  const dir = tempDir('assigned-errors');
  t.teardown(() => removeDir(dir));
  const wal = await openWal(dir, { recordSizeMaxBytes: 100, batchRecordCountMax: 3, batchSizeMaxBytes: 200 });
  await wal.createSegment('t', 1, 0);
  const cases: [string, () => unknown, string][] = [
    ['unknown topic', () => wal.appendAssigned('nope', [{ value: payload(0, 1) }]), 'TOPIC_NOT_FOUND'],
    ['record too large', () => wal.appendAssigned('t', [{ value: payload(0, 101) }]), 'RECORD_TOO_LARGE'],
    [
      'too many records',
      () =>
        wal.appendAssigned(
          't',
          Array.from({ length: 4 }, () => ({ value: payload(0, 1) })),
        ),
      'BATCH_TOO_LARGE',
    ],
    [
      'batch too large',
      () =>
        wal.appendAssigned(
          't',
          Array.from({ length: 3 }, () => ({ value: payload(0, 90) })),
        ),
      'BATCH_TOO_LARGE',
    ],
    ['empty', () => wal.appendAssigned('t', []), 'BAD_REQUEST'],
    ['not bytes', () => wal.appendAssigned('t', [{ value: 'x' as unknown as Uint8Array }]), 'BAD_REQUEST'],
  ];
  for (const [label, call, expected] of cases) {
    const error = t.throws(call, undefined, label);
    t.true(error instanceof WalError, label);
    t.is(code(error), expected, label);
  }
  t.is(wal.endOffset('t'), 0, 'nothing was queued');
  await wal.sealActive('t');
  t.is(code(t.throws(() => wal.appendAssigned('t', [{ value: payload(0, 1) }]))), 'UNAVAILABLE');
  await wal.close();
  t.is(code(t.throws(() => wal.appendAssigned('t', [{ value: payload(0, 1) }]))), 'UNAVAILABLE');
});

test('appendAssigned: a failed write rejects durable (DISK_FULL) and gives the offsets back', async (t) => {
  const dir = tempDir('assigned-full');
  t.teardown(() => removeDir(dir));
  const io = new FaultInjectingFileIo();
  const wal = await openWal(dir, { fileIo: io });
  await wal.createSegment('t', 1, 0);
  io.inject({ op: 'write', code: 'ENOSPC', pathIncludes: '.wal' });
  const a = wal.appendAssigned('t', [{ value: payload(0, 5) }]);
  t.is(a.firstOffset, 0);
  t.is(code(await a.durable.catch((e) => e)), 'DISK_FULL');
  const b = wal.appendAssigned('t', [{ value: payload(0, 5) }]);
  t.is(b.firstOffset, 0, 'the failed append gave its offset back');
  t.is((await b.durable).firstOffset, 0);
  await wal.close();
});

test('appendReplicated skips the records of a resend below the end and appends the rest', async (t) => {
  const dir = tempDir('resend');
  t.teardown(() => removeDir(dir));
  const wal = await openWal(dir);
  await wal.createSegment('t', 3, 50);
  t.deepEqual(await wal.appendReplicated('t', 3, replicated(50, 2, 100)), {
    firstOffset: 50,
    lastOffset: 51,
    timestampMs: 101,
  });
  const bytesBefore = fs.readFileSync(segmentFile(dir, 't', 3, 'wal'));
  // The leader resends 50..54: 50 and 51 are here already.
  t.deepEqual(await wal.appendReplicated('t', 3, replicated(50, 5, 100)), {
    firstOffset: 52,
    lastOffset: 54,
    timestampMs: 104,
  });
  const after = fs.readFileSync(segmentFile(dir, 't', 3, 'wal'));
  t.deepEqual(after.subarray(0, 64 + 40 + 41), bytesBefore.subarray(0, 64 + 40 + 41), 'kept as it was');
  const all = wal.read('t', 50, { recordCountMax: 10, byteCountMax: 1 << 20 });
  t.deepEqual(
    all.map((r) => [r.offset, r.timestampMs, r.value.length]),
    [
      [50, 100, 10],
      [51, 101, 11],
      [52, 102, 12],
      [53, 103, 13],
      [54, 104, 14],
    ],
  );
  // Entirely below the end: nothing written, resolves with the end.
  const statsBefore = wal.stats();
  t.deepEqual(await wal.appendReplicated('t', 3, replicated(51, 3, 101)), {
    firstOffset: 55,
    lastOffset: 54,
    timestampMs: 104,
  });
  t.is(wal.stats().bytesWritten, statsBefore.bytesWritten);
  t.is(wal.endOffset('t'), 55);
  await wal.close();
  const again = await openWal(dir);
  t.deepEqual(
    readAll(again, 't', 50).map((r) => r.offset),
    [50, 51, 52, 53, 54],
  );
  await again.close();
});

test('a resend entirely below the end resolves only once the appends queued before it are durable', async (t) => {
  const dir = tempDir('resend-wait');
  t.teardown(() => removeDir(dir));
  const wal = await openWal(dir);
  await wal.createSegment('t', 1, 0);
  const order: string[] = [];
  const first = wal.appendReplicated('t', 1, replicated(0, 3, 10)).then((r) => {
    order.push('first');
    return r;
  });
  // Same turn: 0..2 are assigned but not written; the resend has nothing new.
  const resend = wal.appendReplicated('t', 1, replicated(0, 2, 10)).then((r) => {
    order.push('resend');
    return r;
  });
  t.deepEqual(await resend, { firstOffset: 3, lastOffset: 2, timestampMs: 12 });
  await first;
  t.deepEqual(order, ['first', 'resend']);
  await wal.close();
});

test('a resend that waits for a failed append fails with it; resending then works', async (t) => {
  const dir = tempDir('resend-failed');
  t.teardown(() => removeDir(dir));
  const io = new FaultInjectingFileIo();
  const wal = await openWal(dir, { fileIo: io });
  await wal.createSegment('t', 1, 0);
  await wal.appendReplicated('t', 1, replicated(0, 1, 10));
  io.inject({ op: 'write', code: 'ENOSPC', pathIncludes: '.wal' });
  const failing = wal.appendReplicated('t', 1, replicated(1, 2, 11)).catch((e: unknown) => e);
  const resend = wal.appendReplicated('t', 1, replicated(1, 2, 11)).catch((e: unknown) => e);
  t.is(code(await failing), 'DISK_FULL');
  t.is(code(await resend), 'DISK_FULL', 'its records were not stored after all');
  t.is(wal.endOffset('t'), 1);
  t.deepEqual(await wal.appendReplicated('t', 1, replicated(0, 3, 10)), {
    firstOffset: 1,
    lastOffset: 2,
    timestampMs: 12,
  });
  await wal.close();
});

test('appendReplicated refuses a gap with BAD_REQUEST and expectedOffset; other bad batches without it', async (t) => {
  const dir = tempDir('gap');
  t.teardown(() => removeDir(dir));
  const wal = await openWal(dir);
  await wal.createSegment('t', 2, 20);
  await wal.appendReplicated('t', 2, replicated(20, 2, 5));
  const gap = await wal.appendReplicated('t', 2, replicated(25, 2, 9)).catch((e: unknown) => e);
  t.true(gap instanceof WalError);
  t.is(code(gap), 'BAD_REQUEST');
  t.is((gap as WalError).expectedOffset, 22);
  // Resending from there works.
  t.is((await wal.appendReplicated('t', 2, replicated(22, 4, 9))).lastOffset, 25);
  const unordered = [...replicated(26, 1, 20), ...replicated(28, 1, 21)];
  const bad: [string, readonly WalReplicatedRecord[], number][] = [
    ['offsets not consecutive', unordered, 2],
    ['timestamp goes back', replicated(26, 1, 3), 2],
    ['another segment', replicated(26, 1, 20), 1],
    ['empty', [], 2],
  ];
  for (const [label, records, segmentId] of bad) {
    const error = await wal.appendReplicated('t', segmentId, records).catch((e: unknown) => e);
    t.is(code(error), 'BAD_REQUEST', label);
    t.is((error as WalError).expectedOffset, undefined, label);
  }
  t.is(wal.endOffset('t'), 26);
  await wal.close();
});

test('a corrupt record is never skipped: reads stop before it, and reading it fails with CORRUPT_RECORD', async (t) => {
  const dir = tempDir('no-silent-gap');
  t.teardown(() => removeDir(dir));
  const wal = await openWal(dir, { indexIntervalBytes: 256 });
  await wal.createSegment('t', 1, 0);
  for (let i = 0; i < 20; i++) await wal.append('t', [{ value: payload(i, 60) }]);
  await wal.sealActive('t');
  await wal.createSegment('t', 2, 20);
  for (let i = 20; i < 25; i++) await wal.append('t', [{ value: payload(i, 60) }]);
  await wal.close();
  // Flip a value byte of record 13 (each record: 30 + 60 bytes); the checkpoint trusts it, so
  // recovery does not look: the read finds it.
  const file = segmentFile(dir, 't', 1, 'wal');
  const bytes = fs.readFileSync(file);
  const victim = 13;
  bytes[64 + victim * 90 + 50]! ^= 0x20;
  fs.writeFileSync(file, bytes);
  const again = await openWal(dir, { indexIntervalBytes: 256 });
  t.is(again.stats().corruptRecordCount, 0, 'not found yet');
  // A consumer reading page by page gets every record up to the bad one, then an error: never a
  // record after it (a silent gap) instead.
  const seen: number[] = [];
  let next = 0;
  let failure: unknown = null;
  while (next < again.endOffset('t')) {
    try {
      const page = again.read('t', next, { recordCountMax: 4, byteCountMax: 1 << 20 });
      for (const r of page) seen.push(r.offset);
      next = page[page.length - 1]!.offset + 1;
    } catch (error) {
      failure = error;
      break;
    }
  }
  t.deepEqual(
    seen,
    Array.from({ length: victim }, (_, i) => i),
  );
  t.true(failure instanceof WalError);
  t.is(code(failure), 'CORRUPT_RECORD');
  t.is(again.stats().corruptRecordCount, 1);
  // Any read that reaches it from before stops just before it.
  t.deepEqual(
    again.read('t', 10, { recordCountMax: 100, byteCountMax: 1 << 20 }).map((r) => r.offset),
    [10, 11, 12],
  );
  // After it, and across the segment boundary, records are served.
  t.deepEqual(
    again.read('t', victim + 1, { recordCountMax: 100, byteCountMax: 1 << 20 }).map((r) => r.offset),
    Array.from({ length: 25 - victim - 1 }, (_, i) => victim + 1 + i),
  );
  await again.close();
});

test('segmentInfo describes one local segment, or undefined', async (t) => {
  const dir = tempDir('segment-info');
  t.teardown(() => removeDir(dir));
  const wal = await openWal(dir, { nowMs: () => 77 });
  await wal.createSegment('t', 4, 40);
  await wal.append('t', [{ value: payload(0, 10) }]);
  t.deepEqual(wal.segmentInfo('t', 4), {
    topic: 't',
    id: 4,
    baseOffset: 40,
    endOffset: 41,
    sealed: false,
    sizeBytes: 64 + 40,
    firstTimestampMs: 77,
    lastTimestampMs: 77,
  });
  t.deepEqual(wal.segmentInfo('t', 4), wal.segments('t')[0]);
  t.is(wal.segmentInfo('t', 3), undefined);
  t.is(wal.segmentInfo('u', 4), undefined);
  await wal.close();
});
