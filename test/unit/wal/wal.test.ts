/**
 * The WAL's API on real files: offsets, reads and their limits, segment boundaries, reopen,
 * timestamps, retention, the size limits, and the fsync policies.
 */
import fs from 'node:fs';
import test from 'ava';
import type { FileIo } from '../../../node/storage-io/index.js';
import { parseFsyncPolicy, Wal, WalError } from '../../../node/wal/index.js';
import { realFileIo } from '../../../node/storage-io/index.js';
import { openWal, payload, readAll, removeDir, segmentFile, tempDir } from './helpers.js';

function code(error: unknown): string | undefined {
  return error instanceof WalError ? error.code : undefined;
}

test('appends get contiguous offsets and read back byte for byte', async (t) => {
  const dir = tempDir('basic');
  t.teardown(() => removeDir(dir));
  const wal = await openWal(dir);
  await wal.createSegment('orders', 1, 0);
  const a = await wal.append('orders', [
    { value: payload(0, 10) },
    { value: payload(1, 20), headers: { k: 'v' } },
  ]);
  const b = await wal.append('orders', [{ value: payload(2, 0) }]);
  t.deepEqual([a.firstOffset, a.lastOffset, b.firstOffset, b.lastOffset], [0, 1, 2, 2]);
  const records = wal.read('orders', 0, { recordCountMax: 100, byteCountMax: 1 << 20 });
  t.deepEqual(
    records.map((r) => r.offset),
    [0, 1, 2],
  );
  t.deepEqual(Buffer.from(records[1]!.value), Buffer.from(payload(1, 20)));
  t.deepEqual({ ...records[1]!.headers }, { k: 'v' });
  t.is(records[2]!.value.length, 0);
  t.deepEqual(wal.read('orders', 3, { recordCountMax: 10, byteCountMax: 100 }), []);
  t.is(wal.endOffset('orders'), 3);
  t.is(wal.startOffset('orders'), 0);
  t.deepEqual(wal.topics(), ['orders']);
  await wal.close();
});

test('appends in one event-loop turn share one write and one fdatasync', async (t) => {
  const dir = tempDir('group');
  t.teardown(() => removeDir(dir));
  const wal = await openWal(dir);
  await wal.createSegment('t', 1, 0);
  const before = wal.stats();
  const results = await Promise.all(
    Array.from({ length: 50 }, (_, i) => wal.append('t', [{ value: payload(i, 16) }])),
  );
  const after = wal.stats();
  t.deepEqual(
    results.map((r) => r.firstOffset),
    Array.from({ length: 50 }, (_, i) => i),
  );
  t.is(after.groupCommitCount - before.groupCommitCount, 1);
  t.is(after.fsyncCount - before.fsyncCount, 1);
  t.is(after.recordCount - before.recordCount, 50);
  t.is(after.appendCount - before.appendCount, 50);
  await wal.close();
});

test('read limits: record count, byte budget, and at least one record even when it is larger', async (t) => {
  const dir = tempDir('limits');
  t.teardown(() => removeDir(dir));
  const wal = await openWal(dir);
  await wal.createSegment('t', 1, 0);
  await wal.append(
    't',
    Array.from({ length: 20 }, (_, i) => ({ value: payload(i, 100) })),
  );
  t.is(wal.read('t', 0, { recordCountMax: 5, byteCountMax: 1 << 20 }).length, 5);
  t.is(wal.read('t', 0, { recordCountMax: 100, byteCountMax: 350 }).length, 3);
  const one = wal.read('t', 7, { recordCountMax: 100, byteCountMax: 1 });
  t.deepEqual(
    one.map((r) => r.offset),
    [7],
  );
  t.is(
    code(t.throws(() => wal.read('t', 21, { recordCountMax: 1, byteCountMax: 1 }))),
    'OFFSET_OUT_OF_RANGE',
  );
  t.is(
    code(t.throws(() => wal.read('t', -1, { recordCountMax: 1, byteCountMax: 1 }))),
    'OFFSET_OUT_OF_RANGE',
  );
  t.is(code(t.throws(() => wal.read('nope', 0, { recordCountMax: 1, byteCountMax: 1 }))), 'TOPIC_NOT_FOUND');
  await wal.close();
});

test('reads cross segment boundaries with no gap and no duplicate, also after reopen', async (t) => {
  const dir = tempDir('segments');
  t.teardown(() => removeDir(dir));
  let wal = await openWal(dir, { indexIntervalBytes: 256 });
  let offset = 0;
  for (let id = 1; id <= 4; id++) {
    await wal.createSegment('t', id, offset);
    const n = id === 3 ? 0 : 30 + id;
    for (let i = 0; i < n; i += 1) await wal.append('t', [{ value: payload(offset + i, (offset + i) % 50) }]);
    offset += n;
    if (id < 4) {
      const sealed = await wal.sealActive('t');
      t.true(sealed.sealed);
      t.is(sealed.endOffset, offset);
    }
  }
  const check = (w: Wal): void => {
    const all = readAll(w, 't', 0);
    t.deepEqual(
      all.map((r) => r.offset),
      Array.from({ length: offset }, (_, i) => i),
    );
    for (const r of all) t.deepEqual(Buffer.from(r.value), Buffer.from(payload(r.offset, r.offset % 50)));
  };
  check(wal);
  t.is((await wal.append('t', [{ value: payload(offset, offset % 50) }])).firstOffset, offset);
  offset += 1;
  await wal.close();
  wal = await openWal(dir, { indexIntervalBytes: 256 });
  check(wal);
  const infos = wal.segments('t');
  t.deepEqual(
    infos.map((s) => [s.id, s.baseOffset, s.endOffset, s.sealed]),
    [
      [1, 0, 31, true],
      [2, 31, 63, true],
      [3, 63, 63, true],
      [4, 63, offset, false],
    ],
  );
  t.is(wal.stats().corruptRecordCount, 0);
  const next = await wal.append('t', [{ value: payload(offset, offset % 50) }]);
  t.is(next.firstOffset, offset);
  await wal.close();
});

test('local segments need not be contiguous: a gap between them is out of range', async (t) => {
  const dir = tempDir('gap');
  t.teardown(() => removeDir(dir));
  const wal = await openWal(dir);
  await wal.createSegment('t', 2, 100);
  await wal.append(
    't',
    Array.from({ length: 10 }, (_, i) => ({ value: payload(i, 8) })),
  );
  await wal.sealActive('t');
  await wal.createSegment('t', 5, 300);
  await wal.append('t', [{ value: payload(0, 8) }]);
  t.is(wal.startOffset('t'), 100);
  t.is(wal.endOffset('t'), 301);
  const first = wal.read('t', 105, { recordCountMax: 100, byteCountMax: 1 << 20 });
  t.deepEqual(
    first.map((r) => r.offset),
    [105, 106, 107, 108, 109],
  );
  t.is(
    code(t.throws(() => wal.read('t', 200, { recordCountMax: 1, byteCountMax: 1 }))),
    'OFFSET_OUT_OF_RANGE',
  );
  t.is(
    code(t.throws(() => wal.read('t', 50, { recordCountMax: 1, byteCountMax: 1 }))),
    'OFFSET_OUT_OF_RANGE',
  );
  t.is(wal.read('t', 300, { recordCountMax: 5, byteCountMax: 100 })[0]!.offset, 300);
  await wal.close();
});

test('an over-limit record or batch is rejected and writes nothing', async (t) => {
  const dir = tempDir('toolarge');
  t.teardown(() => removeDir(dir));
  const wal = await openWal(dir, {
    recordSizeMaxBytes: 1000,
    batchRecordCountMax: 4,
    batchSizeMaxBytes: 2000,
  });
  await wal.createSegment('t', 1, 0);
  await wal.append('t', [{ value: payload(0, 10) }]);
  const file = segmentFile(dir, 't', 1, 'wal');
  const bytesBefore = fs.readFileSync(file);
  const statsBefore = wal.stats();
  t.is(code(await wal.append('t', [{ value: payload(1, 1001) }]).catch((e) => e)), 'RECORD_TOO_LARGE');
  t.is(
    code(await wal.append('t', [{ value: payload(1, 10), headers: { h: 'x'.repeat(995) } }]).catch((e) => e)),
    'RECORD_TOO_LARGE',
  );
  t.is(
    code(
      await wal
        .append(
          't',
          Array.from({ length: 5 }, () => ({ value: payload(1, 1) })),
        )
        .catch((e) => e),
    ),
    'BATCH_TOO_LARGE',
  );
  t.is(
    code(
      await wal
        .append(
          't',
          Array.from({ length: 3 }, () => ({ value: payload(1, 900) })),
        )
        .catch((e) => e),
    ),
    'BATCH_TOO_LARGE',
  );
  t.is(code(await wal.append('t', []).catch((e) => e)), 'BAD_REQUEST');
  t.is(
    code(await wal.append('t', [{ value: 'text' as unknown as Uint8Array }]).catch((e) => e)),
    'BAD_REQUEST',
  );
  t.is(code(await wal.append('nope', [{ value: payload(1, 1) }]).catch((e) => e)), 'TOPIC_NOT_FOUND');
  await new Promise((resolve) => setImmediate(resolve));
  t.deepEqual(fs.readFileSync(file), bytesBefore);
  t.is(wal.endOffset('t'), 1);
  t.is(wal.stats().bytesWritten, statsBefore.bytesWritten);
  const ok = await wal.append('t', [{ value: payload(2, 1000) }]);
  t.is(ok.firstOffset, 1);
  await wal.close();
});

test('timestamps come from the clock, never go back, and offsetForTimestamp finds the first at or after', async (t) => {
  const dir = tempDir('time');
  t.teardown(() => removeDir(dir));
  const clock = [1000, 2000, 1500, 3000, 3000, 5000];
  let i = 0;
  const wal = await openWal(dir, { nowMs: () => clock[Math.min(i++, clock.length - 1)]! });
  await wal.createSegment('t', 1, 0);
  const stamps: number[] = [];
  for (let k = 0; k < 3; k++) stamps.push((await wal.append('t', [{ value: payload(k, 4) }])).timestampMs);
  await wal.sealActive('t');
  await wal.createSegment('t', 2, 3);
  for (let k = 3; k < 6; k++) stamps.push((await wal.append('t', [{ value: payload(k, 4) }])).timestampMs);
  t.deepEqual(stamps, [1000, 2000, 2000, 3000, 3000, 5000]);
  t.deepEqual(
    wal.read('t', 0, { recordCountMax: 10, byteCountMax: 1 << 20 }).map((r) => r.timestampMs),
    stamps,
  );
  t.is(wal.offsetForTimestamp('t', 0), 0);
  t.is(wal.offsetForTimestamp('t', 1001), 1);
  t.is(wal.offsetForTimestamp('t', 2000), 1);
  t.is(wal.offsetForTimestamp('t', 2001), 3);
  t.is(wal.offsetForTimestamp('t', 4000), 5);
  t.is(wal.offsetForTimestamp('t', 9999), 6);
  await wal.close();
  const again = await openWal(dir, { nowMs: () => 10 });
  t.is(again.offsetForTimestamp('t', 2001), 3);
  t.is((await again.append('t', [{ value: payload(9, 1) }])).timestampMs, 5000);
  await again.close();
});

test('offsetForTimestamp uses the sparse index over many records', async (t) => {
  const dir = tempDir('time-index');
  t.teardown(() => removeDir(dir));
  let now = 0;
  const wal = await openWal(dir, { nowMs: () => now, indexIntervalBytes: 512 });
  await wal.createSegment('t', 1, 0);
  for (let k = 0; k < 400; k++) {
    now = k * 10;
    await wal.append('t', [{ value: payload(k, 40) }]);
  }
  for (const probe of [0, 5, 10, 1234, 3990, 3991]) {
    const expected = Math.min(400, Math.ceil(probe / 10));
    t.is(wal.offsetForTimestamp('t', probe), expected, `timestamp ${probe}`);
  }
  await wal.close();
});

test('retention deletes the leading sealed segments below the start it is given, never the active one', async (t) => {
  const dir = tempDir('retention');
  t.teardown(() => removeDir(dir));
  let now = 0;
  const wal = await openWal(dir, { nowMs: () => now });
  let offset = 0;
  for (let id = 1; id <= 4; id++) {
    await wal.createSegment('t', id, offset);
    now = id * 1000;
    await wal.append(
      't',
      Array.from({ length: 10 }, (_, i) => ({ value: payload(offset + i, 100) })),
    );
    offset += 10;
    if (id < 4) await wal.sealActive('t');
  }
  // Retention is decided from the metadata (controller/retention.ts); the WAL deletes what lies
  // below the start it is given: whole sealed segments, a leading run, never the active one.
  t.deepEqual(await wal.deleteSegmentsBelow('t', 5), [], 'segment 1 ends at 10: kept');
  t.deepEqual(await wal.deleteSegmentsBelow('t', 10), [1]);
  t.is(wal.startOffset('t'), 10);
  t.is(code(t.throws(() => wal.read('t', 5, { recordCountMax: 1, byteCountMax: 1 }))), 'OFFSET_OUT_OF_RANGE');
  t.false(fs.existsSync(segmentFile(dir, 't', 1, 'wal')));
  t.deepEqual(await wal.deleteSegmentsBelow('t', 25), [2]);
  // A start past every sealed segment deletes them all, never the active segment.
  t.deepEqual(await wal.deleteSegmentsBelow('t', 1e9), [3]);
  t.deepEqual(
    wal.segments('t').map((s) => s.id),
    [4],
  );
  await wal.close();
  const again = await openWal(dir);
  t.deepEqual(
    again.segments('t').map((s) => [s.id, s.baseOffset, s.endOffset]),
    [[4, 30, 40]],
  );
  t.deepEqual(
    readAll(again, 't', 30).map((r) => r.offset),
    Array.from({ length: 10 }, (_, i) => 30 + i),
  );
  await again.close();
});

test('deleteTopic removes every segment, durably', async (t) => {
  const dir = tempDir('delete');
  t.teardown(() => removeDir(dir));
  const wal = await openWal(dir);
  await wal.createSegment('a', 1, 0);
  await wal.createSegment('b', 1, 0);
  await wal.append('a', [{ value: payload(1, 5) }]);
  await wal.deleteTopic('a');
  t.deepEqual(wal.topics(), ['b']);
  t.deepEqual(wal.segments('a'), []);
  t.is(code(await wal.append('a', [{ value: payload(1, 5) }]).catch((e) => e)), 'TOPIC_NOT_FOUND');
  await wal.close();
  const again = await openWal(dir);
  t.deepEqual(again.topics(), ['b']);
  await again.createSegment('a', 1, 0);
  t.is((await again.append('a', [{ value: payload(1, 5) }])).firstOffset, 0);
  await again.close();
});

test('appendReplicated keeps given offsets and timestamps and refuses gaps', async (t) => {
  const dir = tempDir('replicated');
  t.teardown(() => removeDir(dir));
  const wal = await openWal(dir);
  await wal.createSegment('t', 3, 50);
  const r = await wal.appendReplicated('t', 3, [
    { offset: 50, timestampMs: 7, value: payload(50, 3) },
    { offset: 51, timestampMs: 9, value: payload(51, 3) },
  ]);
  t.deepEqual(r, { firstOffset: 50, lastOffset: 51, timestampMs: 9 });
  t.is(
    code(
      await wal
        .appendReplicated('t', 3, [{ offset: 53, timestampMs: 9, value: payload(1, 1) }])
        .catch((e) => e),
    ),
    'BAD_REQUEST',
  );
  t.is(
    code(
      await wal
        .appendReplicated('t', 3, [{ offset: 52, timestampMs: 8, value: payload(1, 1) }])
        .catch((e) => e),
    ),
    'BAD_REQUEST',
  );
  t.is(
    code(
      await wal
        .appendReplicated('t', 2, [{ offset: 52, timestampMs: 9, value: payload(1, 1) }])
        .catch((e) => e),
    ),
    'BAD_REQUEST',
  );
  t.deepEqual(
    wal.read('t', 50, { recordCountMax: 10, byteCountMax: 1 << 20 }).map((x) => [x.offset, x.timestampMs]),
    [
      [50, 7],
      [51, 9],
    ],
  );
  await wal.close();
});

test('sealActive waits for accepted appends, then the segment takes no more', async (t) => {
  const dir = tempDir('seal');
  t.teardown(() => removeDir(dir));
  const wal = await openWal(dir);
  await wal.createSegment('t', 1, 0);
  const pending = [wal.append('t', [{ value: payload(0, 5) }]), wal.append('t', [{ value: payload(1, 5) }])];
  const sealed = await wal.sealActive('t');
  t.is(sealed.endOffset, 2);
  t.deepEqual(
    (await Promise.all(pending)).map((r) => r.firstOffset),
    [0, 1],
  );
  t.is(code(await wal.append('t', [{ value: payload(2, 5) }]).catch((e) => e)), 'UNAVAILABLE');
  t.is(fs.statSync(segmentFile(dir, 't', 1, 'wal')).size, sealed.sizeBytes);
  t.true(fs.existsSync(segmentFile(dir, 't', 1, 'seal')));
  await wal.close();
  t.is(code(await wal.append('t', [{ value: payload(2, 5) }]).catch((e) => e)), 'UNAVAILABLE');
});

test('parseFsyncPolicy accepts the three policies and rejects junk with BAD_REQUEST', (t) => {
  t.deepEqual(parseFsyncPolicy('always'), { kind: 'always' });
  t.deepEqual(parseFsyncPolicy('never'), { kind: 'never' });
  t.deepEqual(parseFsyncPolicy('interval:250'), { kind: 'interval', intervalMs: 250 });
  t.deepEqual(parseFsyncPolicy('250ms'), { kind: 'interval', intervalMs: 250 });
  for (const junk of [
    '',
    'sometimes',
    'interval:',
    'interval:0',
    'interval:-5',
    'interval:1.5',
    'interval:99999999',
  ]) {
    t.is(code(t.throws(() => parseFsyncPolicy(junk))), 'BAD_REQUEST', junk);
  }
});

test('policies interval and never acknowledge after the write; interval fdatasyncs on its timer', async (t) => {
  const dir = tempDir('policies');
  t.teardown(() => removeDir(dir));
  const interval = await Wal.open({ rootDir: `${dir}/i`, fsyncPolicy: { kind: 'interval', intervalMs: 5 } });
  await interval.createSegment('t', 1, 0);
  const fsyncsBefore = interval.stats().fsyncCount;
  await interval.append('t', [{ value: payload(1, 10) }]);
  t.is(interval.stats().fsyncCount, fsyncsBefore);
  t.is(interval.read('t', 0, { recordCountMax: 1, byteCountMax: 100 }).length, 1);
  for (let i = 0; i < 200 && interval.stats().fsyncCount === fsyncsBefore; i++) {
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
  t.true(interval.stats().fsyncCount > fsyncsBefore);
  await interval.close();
  const never = await Wal.open({ rootDir: `${dir}/n`, fsyncPolicy: { kind: 'never' } });
  await never.createSegment('t', 1, 0);
  const before = never.stats().fsyncCount;
  await never.append('t', [{ value: payload(1, 10) }]);
  t.is(never.stats().fsyncCount, before);
  await never.close();
  const reopened = await Wal.open({ rootDir: `${dir}/n`, fsyncPolicy: { kind: 'never' } });
  t.is(reopened.endOffset('t'), 1);
  await reopened.close();
});

test('a group commit larger than the preallocation grows the file and stays readable', async (t) => {
  const dir = tempDir('prealloc');
  t.teardown(() => removeDir(dir));
  const wal = await openWal(dir, { segmentPreallocateBytes: 64 * 1024 });
  await wal.createSegment('t', 1, 0);
  const big = Array.from({ length: 40 }, (_, i) => ({ value: payload(i, 5000) }));
  await wal.append('t', big);
  await wal.append('t', big);
  t.true(fs.statSync(segmentFile(dir, 't', 1, 'wal')).size >= 80 * 5000);
  await wal.close();
  const again = await openWal(dir, { segmentPreallocateBytes: 64 * 1024 });
  const all = readAll(again, 't', 0);
  t.is(all.length, 80);
  t.deepEqual(Buffer.from(all[79]!.value), Buffer.from(payload(39, 5000)));
  await again.close();
});

test('a group commit over several files syncs them in parallel; appends arriving meanwhile go in the next one', async (t) => {
  const dir = tempDir('parallel');
  t.teardown(() => removeDir(dir));
  const wal = await openWal(dir);
  for (const topic of ['a', 'b', 'c']) await wal.createSegment(topic, 1, 0);
  const before = wal.stats();
  const first = ['a', 'b', 'c', 'a'].map((topic) => wal.append(topic, [{ value: payload(1, 10) }]));
  // Runs after the WAL's flush (scheduled first), while its fdatasyncs are in the thread pool.
  const second = await new Promise<Promise<{ firstOffset: number }>[]>((resolve) =>
    setImmediate(() => resolve(['a', 'b'].map((topic) => wal.append(topic, [{ value: payload(2, 10) }])))),
  );
  t.deepEqual(
    (await Promise.all(first)).map((r) => r.firstOffset),
    [0, 0, 0, 1],
  );
  t.deepEqual(
    (await Promise.all(second)).map((r) => r.firstOffset),
    [2, 1],
  );
  const after = wal.stats();
  t.is(after.groupCommitCount - before.groupCommitCount, 2);
  t.is(after.fsyncCount - before.fsyncCount, 5);
  t.deepEqual(
    readAll(wal, 'a', 0).map((r) => r.offset),
    [0, 1, 2],
  );
  await wal.close();
});

test('appends that would reach a background preallocation in flight wait for it, then commit in order', async (t) => {
  const dir = tempDir('extend');
  t.teardown(() => removeDir(dir));
  let open: () => void = () => {};
  const gate = new Promise<void>((resolve) => {
    open = resolve;
  });
  let started = 0;
  const io: FileIo = {
    ...realFileIo,
    writeZerosDurablyAsync: async (file, from, to) => {
      started += 1;
      await gate;
      return realFileIo.writeZerosDurablyAsync(file, from, to);
    },
  };
  const step = 64 * 1024;
  const wal = await openWal(dir, { fileIo: io, segmentPreallocateBytes: step });
  await wal.createSegment('t', 1, 0);
  // Use more than half of the preallocation: the background extension starts (and hangs).
  await wal.append('t', [{ value: payload(0, step / 2 + 5000) }]);
  t.is(started, 1);
  // This one does not fit below the preallocated end: it must wait, not write into the region.
  let settled = false;
  const waiting = wal.append('t', [{ value: payload(1, step / 2) }]).then((r) => {
    settled = true;
    return r;
  });
  for (let i = 0; i < 5; i++) await new Promise((resolve) => setImmediate(resolve));
  t.false(settled);
  open();
  t.is((await waiting).firstOffset, 1);
  const all = readAll(wal, 't', 0);
  t.deepEqual(Buffer.from(all[1]!.value), Buffer.from(payload(1, step / 2)));
  await wal.close();
  const again = await openWal(dir);
  t.is(again.endOffset('t'), 2);
  t.deepEqual(Buffer.from(readAll(again, 't', 0)[1]!.value), Buffer.from(payload(1, step / 2)));
  await again.close();
});

test('sealActive waits for a background preallocation, so the sealed file ends at its last record', async (t) => {
  const dir = tempDir('seal-extend');
  t.teardown(() => removeDir(dir));
  let open: () => void = () => {};
  const gate = new Promise<void>((resolve) => {
    open = resolve;
  });
  const io: FileIo = {
    ...realFileIo,
    writeZerosDurablyAsync: async (file, from, to) => {
      await gate;
      return realFileIo.writeZerosDurablyAsync(file, from, to);
    },
  };
  const step = 64 * 1024;
  const wal = await openWal(dir, { fileIo: io, segmentPreallocateBytes: step });
  await wal.createSegment('t', 1, 0);
  await wal.append('t', [{ value: payload(0, step / 2 + 5000) }]);
  let sealed = false;
  const sealing = wal.sealActive('t').then((info) => {
    sealed = true;
    return info;
  });
  t.is(code(await wal.append('t', [{ value: payload(1, 1) }]).catch((e) => e)), 'UNAVAILABLE');
  for (let i = 0; i < 5; i++) await new Promise((resolve) => setImmediate(resolve));
  t.false(sealed);
  open();
  const info = await sealing;
  t.is(fs.statSync(segmentFile(dir, 't', 1, 'wal')).size, info.sizeBytes);
  t.is(info.endOffset, 1);
  await wal.close();
});
