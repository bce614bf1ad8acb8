/**
 * Recovery from damaged files of a stopped WAL: a torn last record at every byte boundary, a bit
 * flip in a middle record (served never, counted, later records readable), and zero-filled or
 * garbage tails (no phantom records).
 */
import fs from 'node:fs';
import path from 'node:path';
import test from 'ava';
import type { Wal } from '../../../node/wal/index.js';
import { WalError } from '../../../node/wal/index.js';
import { openWal, payload, prng, readAll, removeDir, segmentFile, tempDir } from './helpers.js';

const recordCount = 12;

function code(error: unknown): string | undefined {
  return error instanceof WalError ? error.code : undefined;
}

/** A stopped WAL with `recordCount` records, each its own group commit; returns record byte ranges. */
async function writeFixture(dir: string, oneBatch = false): Promise<{ start: number; end: number }[]> {
  const wal = await openWal(dir);
  await wal.createSegment('t', 1, 0);
  if (oneBatch) {
    await wal.append(
      't',
      Array.from({ length: recordCount }, (_, i) => ({ value: payload(i, 20 + i) })),
    );
  } else {
    for (let i = 0; i < recordCount; i++) await wal.append('t', [{ value: payload(i, 20 + i) }]);
  }
  await wal.close();
  // Record boundaries: the 64-byte file header, then 30 + value bytes per record.
  const ranges: { start: number; end: number }[] = [];
  let pos = 64;
  for (let i = 0; i < recordCount; i++) {
    ranges.push({ start: pos, end: pos + 30 + 20 + i });
    pos += 30 + 20 + i;
  }
  return ranges;
}

function copyDir(from: string, to: string): void {
  fs.cpSync(from, to, { recursive: true });
}

function checkPrefix(t: import('ava').ExecutionContext, wal: Wal, count: number): void {
  const all = readAll(wal, 't', 0);
  t.deepEqual(
    all.map((r) => r.offset),
    Array.from({ length: count }, (_, i) => i),
  );
  for (const r of all) t.deepEqual(Buffer.from(r.value), Buffer.from(payload(r.offset, 20 + r.offset)));
}

test('a torn last record, cut at every byte boundary, is dropped and nothing else', async (t) => {
  const base = tempDir('torn');
  t.teardown(() => removeDir(base));
  const fixture = path.join(base, 'fixture');
  const ranges = await writeFixture(fixture);
  const last = ranges[ranges.length - 1]!;
  for (let cut = last.start; cut < last.end; cut++) {
    for (const mode of ['truncate', 'zero'] as const) {
      const dir = path.join(base, `cut-${cut}-${mode}`);
      copyDir(fixture, dir);
      // A crash leaves no index checkpoint of the tail: it is written at close only.
      fs.rmSync(segmentFile(dir, 't', 1, 'idx'));
      const file = segmentFile(dir, 't', 1, 'wal');
      if (mode === 'truncate') {
        fs.truncateSync(file, cut);
      } else {
        const fd = fs.openSync(file, 'r+');
        fs.writeSync(fd, Buffer.alloc(last.end - cut), 0, last.end - cut, cut);
        fs.closeSync(fd);
      }
      const wal = await openWal(dir);
      t.is(wal.endOffset('t'), recordCount - 1, `cut at ${cut} (${mode})`);
      t.is(wal.stats().corruptRecordCount, 0);
      checkPrefix(t, wal, recordCount - 1);
      const next = await wal.append('t', [{ value: payload(recordCount - 1, 20 + recordCount - 1) }]);
      t.is(next.firstOffset, recordCount - 1);
      await wal.close();
      const again = await openWal(dir);
      checkPrefix(t, again, recordCount);
      await again.close();
      removeDir(dir);
    }
  }
});

for (const withIndex of [true, false]) {
  test(`a bit flip in a middle record is never served, is counted, and later records stay readable (${withIndex ? 'found by a read' : 'found by the recovery scan'})`, async (t) => {
    const base = tempDir('flip');
    t.teardown(() => removeDir(base));
    const fixture = path.join(base, 'fixture');
    const ranges = await writeFixture(fixture);
    const victim = 5;
    const range = ranges[victim]!;
    const random = prng(withIndex ? 7 : 11);
    // Flip bits in the length, crc, offset, timestamp and value fields.
    for (const within of [0, 2, 5, 9, 18, 31, range.end - range.start - 1]) {
      const dir = path.join(base, `flip-${within}`);
      copyDir(fixture, dir);
      if (!withIndex) fs.rmSync(segmentFile(dir, 't', 1, 'idx'));
      const file = segmentFile(dir, 't', 1, 'wal');
      const bytes = fs.readFileSync(file);
      bytes[range.start + within]! ^= 1 << Math.floor(random() * 8);
      fs.writeFileSync(file, bytes);
      const wal = await openWal(dir);
      t.is(wal.endOffset('t'), recordCount, `flip at +${within}`);
      const error = t.throws(() => wal.read('t', victim, { recordCountMax: 10, byteCountMax: 1 << 20 }));
      t.is(code(error), 'CORRUPT_RECORD');
      t.is(wal.stats().corruptRecordCount, 1);
      const before = wal.read('t', 0, { recordCountMax: 100, byteCountMax: 1 << 20 });
      t.deepEqual(
        before.map((r) => r.offset),
        [0, 1, 2, 3, 4],
      );
      const after = readAll(wal, 't', victim + 1);
      t.deepEqual(
        after.map((r) => r.offset),
        Array.from({ length: recordCount - victim - 1 }, (_, i) => victim + 1 + i),
      );
      for (const r of after) t.deepEqual(Buffer.from(r.value), Buffer.from(payload(r.offset, 20 + r.offset)));
      t.is((await wal.append('t', [{ value: payload(99, 3) }])).firstOffset, recordCount);
      await wal.close();
      removeDir(dir);
    }
  });
}

test('a bad record inside the last batch with no checkpoint is a torn tail: the whole unfinished batch is dropped', async (t) => {
  const base = tempDir('torn-batch');
  t.teardown(() => removeDir(base));
  const ranges = await writeFixture(base, true);
  fs.rmSync(segmentFile(base, 't', 1, 'idx'));
  const file = segmentFile(base, 't', 1, 'wal');
  const bytes = fs.readFileSync(file);
  bytes[ranges[4]!.start + 20]! ^= 0x10;
  fs.writeFileSync(file, bytes);
  const wal = await openWal(base);
  // Every record of that batch claims only what was durable before it: nothing. So the failing
  // record may be an interrupted write; the records before it are whole, but their batch is not,
  // and it was never acknowledged: a batch is all or nothing, so none of it is kept.
  t.is(wal.endOffset('t'), 0);
  t.is(wal.stats().corruptRecordCount, 0);
  checkPrefix(t, wal, 0);
  const tail = fs.readFileSync(file).subarray(ranges[0]!.start);
  t.true(
    tail.every((b) => b === 0),
    'the dropped batch is zeroed',
  );
  await wal.close();
});

test('a crash inside a batch, cut at every byte, keeps the batches before it whole and none of it', async (t) => {
  const base = tempDir('batch-cut');
  t.teardown(() => removeDir(base));
  const fixture = path.join(base, 'fixture');
  const wal = await openWal(fixture);
  await wal.createSegment('t', 1, 0);
  const first = Array.from({ length: 3 }, (_, i) => ({ value: payload(i, 20 + i) }));
  const second = Array.from({ length: 4 }, (_, i) => ({ value: payload(3 + i, 23 + i) }));
  await wal.append('t', first);
  await wal.append('t', second);
  await wal.close();
  fs.rmSync(segmentFile(fixture, 't', 1, 'idx')); // the crash came before any checkpoint
  const secondStart = 64 + [20, 21, 22].reduce((sum, n) => sum + 30 + n, 0);
  const secondEnd = secondStart + [23, 24, 25, 26].reduce((sum, n) => sum + 30 + n, 0);
  const original = fs.readFileSync(segmentFile(fixture, 't', 1, 'wal'));
  for (let cut = secondStart; cut <= secondEnd; cut++) {
    const dir = path.join(base, `cut-${cut}`);
    copyDir(fixture, dir);
    const bytes = Buffer.from(original);
    bytes.fill(0, cut, secondEnd); // what reached the disk ends at `cut`
    fs.writeFileSync(segmentFile(dir, 't', 1, 'wal'), bytes);
    const again = await openWal(dir);
    const expected = cut === secondEnd ? 7 : 3;
    t.is(again.endOffset('t'), expected, `cut at byte ${cut}`);
    t.is(again.stats().corruptRecordCount, 0);
    t.deepEqual(
      readAll(again, 't', 0).map((r) => r.offset),
      Array.from({ length: expected }, (_, i) => i),
    );
    // The next append starts where the whole batches end, and survives a reopen.
    await again.append('t', [{ value: payload(99, 10) }]);
    await again.close();
    const reopened = await openWal(dir);
    t.is(reopened.endOffset('t'), expected + 1, `cut at byte ${cut}, after one more append`);
    await reopened.close();
    removeDir(dir);
  }
});

test('a zero-filled or garbage tail after the last record yields no phantom record', async (t) => {
  const base = tempDir('tail');
  t.teardown(() => removeDir(base));
  const fixture = path.join(base, 'fixture');
  const ranges = await writeFixture(fixture);
  const end = ranges[ranges.length - 1]!.end;
  const random = prng(3);
  for (const kind of ['zeros', 'garbage', 'garbage-no-index', 'extended-zeros']) {
    const dir = path.join(base, kind);
    copyDir(fixture, dir);
    const file = segmentFile(dir, 't', 1, 'wal');
    if (kind !== 'zeros') {
      const junk =
        kind === 'extended-zeros'
          ? Buffer.alloc(100_000)
          : Buffer.from(Array.from({ length: 5000 }, () => random() * 256));
      const fd = fs.openSync(file, 'r+');
      fs.writeSync(fd, junk, 0, junk.length, kind === 'extended-zeros' ? fs.fstatSync(fd).size : end);
      fs.closeSync(fd);
    }
    if (kind === 'garbage-no-index') fs.rmSync(segmentFile(dir, 't', 1, 'idx'));
    const wal = await openWal(dir);
    t.is(wal.endOffset('t'), recordCount, kind);
    checkPrefix(t, wal, recordCount);
    t.is(wal.stats().corruptRecordCount, 0);
    await wal.append('t', [{ value: payload(recordCount, 20 + recordCount) }]);
    await wal.close();
    const again = await openWal(dir);
    checkPrefix(t, again, recordCount + 1);
    await again.close();
  }
});

test('a lost or damaged index checkpoint is rebuilt by scanning', async (t) => {
  const dir = tempDir('index');
  t.teardown(() => removeDir(dir));
  const wal = await openWal(dir, { indexIntervalBytes: 256 });
  await wal.createSegment('t', 1, 0);
  for (let i = 0; i < 200; i++) await wal.append('t', [{ value: payload(i, 20 + (i % 40)) }]);
  await wal.sealActive('t');
  await wal.createSegment('t', 2, 200);
  await wal.append('t', [{ value: payload(200, 20) }]);
  await wal.close();
  const idx = segmentFile(dir, 't', 1, 'idx');
  const bytes = fs.readFileSync(idx);
  bytes[100]! ^= 0xff;
  fs.writeFileSync(idx, bytes);
  const again = await openWal(dir, { indexIntervalBytes: 256 });
  t.deepEqual(
    again.segments('t').map((s) => [s.id, s.baseOffset, s.endOffset, s.sealed]),
    [
      [1, 0, 200, true],
      [2, 200, 201, false],
    ],
  );
  const all = readAll(again, 't', 0);
  t.is(all.length, 201);
  for (const r of all.slice(0, 200))
    t.deepEqual(Buffer.from(r.value), Buffer.from(payload(r.offset, 20 + (r.offset % 40))));
  t.is(again.read('t', 150, { recordCountMax: 1, byteCountMax: 1 })[0]!.offset, 150);
  await again.close();
});

test('a crash between sealing and the next segment leaves a sealed segment; an unsealed older one gets sealed', async (t) => {
  const dir = tempDir('seal-crash');
  t.teardown(() => removeDir(dir));
  const wal = await openWal(dir);
  await wal.createSegment('t', 1, 0);
  await wal.append('t', [{ value: payload(0, 5) }, { value: payload(1, 5) }]);
  await wal.sealActive('t');
  await wal.createSegment('t', 2, 2);
  await wal.append('t', [{ value: payload(2, 5) }]);
  await wal.close();
  fs.rmSync(segmentFile(dir, 't', 1, 'seal'));
  const again = await openWal(dir);
  t.deepEqual(
    again.segments('t').map((s) => [s.id, s.endOffset, s.sealed]),
    [
      [1, 2, true],
      [2, 3, false],
    ],
  );
  t.true(fs.existsSync(segmentFile(dir, 't', 1, 'seal')));
  t.is((await again.append('t', [{ value: payload(3, 5) }])).firstOffset, 3);
  await again.close();
});

test('lowering recordSizeMaxBytes never makes stored larger records look corrupt', async (t) => {
  const dir = tempDir('lower-limit');
  t.teardown(() => removeDir(dir));
  const wal = await openWal(dir);
  await wal.createSegment('t', 1, 0);
  for (let i = 0; i < 3; i++) await wal.append('t', [{ value: payload(i, 5000) }]);
  await wal.close();
  fs.rmSync(segmentFile(dir, 't', 1, 'idx'));
  const again = await openWal(dir, { recordSizeMaxBytes: 100 });
  t.is(again.endOffset('t'), 3);
  t.is(again.stats().corruptRecordCount, 0);
  const all = readAll(again, 't', 0);
  t.deepEqual(Buffer.from(all[2]!.value), Buffer.from(payload(2, 5000)));
  t.is(code(await again.append('t', [{ value: payload(3, 5000) }]).catch((e) => e)), 'RECORD_TOO_LARGE');
  await again.close();
});

test('in a sealed segment every failing record is corruption, never a torn tail', async (t) => {
  const base = tempDir('sealed-damage');
  t.teardown(() => removeDir(base));
  const fixture = path.join(base, 'fixture');
  const wal = await openWal(fixture);
  await wal.createSegment('t', 1, 0);
  // One group commit: in an active segment a flip here would count as a torn tail.
  await wal.append(
    't',
    Array.from({ length: recordCount }, (_, i) => ({ value: payload(i, 20 + i) })),
  );
  await wal.sealActive('t');
  await wal.createSegment('t', 2, recordCount);
  await wal.close();
  const start = (i: number): number =>
    64 + Array.from({ length: i }, (_, k) => 30 + 20 + k).reduce((a, b) => a + b, 0);
  // A bit flip in record 7 with the index lost: the scan finds it; 7 is corrupt, 8.. readable.
  const flip = path.join(base, 'flip');
  copyDir(fixture, flip);
  fs.rmSync(segmentFile(flip, 't', 1, 'idx'));
  const file = segmentFile(flip, 't', 1, 'wal');
  const bytes = fs.readFileSync(file);
  bytes[start(7) + 40]! ^= 0x01;
  fs.writeFileSync(file, bytes);
  const a = await openWal(flip);
  t.is(a.stats().corruptRecordCount, 1);
  t.deepEqual(
    a.segments('t').map((s) => [s.id, s.endOffset, s.sealed]),
    [
      [1, recordCount, true],
      [2, recordCount, false],
    ],
  );
  t.is(code(t.throws(() => a.read('t', 7, { recordCountMax: 1, byteCountMax: 1 }))), 'CORRUPT_RECORD');
  t.deepEqual(
    readAll(a, 't', 8).map((r) => r.offset),
    Array.from({ length: recordCount - 8 }, (_, i) => 8 + i),
  );
  await a.close();
  // A sealed file cut short: the lost records are corruption, the seal's end stays.
  const cut = path.join(base, 'cut');
  copyDir(fixture, cut);
  fs.rmSync(segmentFile(cut, 't', 1, 'idx'));
  fs.truncateSync(segmentFile(cut, 't', 1, 'wal'), start(10) + 5);
  const b = await openWal(cut);
  t.is(b.stats().corruptRecordCount, 2);
  t.is(b.segments('t')[0]!.endOffset, recordCount);
  t.is(b.read('t', 9, { recordCountMax: 10, byteCountMax: 1 << 20 }).length, 1);
  t.is(code(t.throws(() => b.read('t', 10, { recordCountMax: 1, byteCountMax: 1 }))), 'CORRUPT_RECORD');
  await b.close();
});
