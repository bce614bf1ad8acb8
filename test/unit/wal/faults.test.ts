/**
 * Disk faults: a full disk fails a whole group commit cleanly (nothing written, nothing
 * acknowledged, later appends work), for real on a tiny tmpfs when the kernel lets us mount one,
 * and through the fault-injecting FileIo; an EIO on fdatasync fails the segment for good.
 */
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import test from 'ava';
import { WalError } from '../../../node/wal/index.js';
import { FaultInjectingFileIo } from '../../../node/storage-io/index.js';
import { openWal, payload, readAll, removeDir, segmentFile, tempDir } from './helpers.js';

function code(error: unknown): string | undefined {
  return error instanceof WalError ? error.code : undefined;
}

for (const op of ['write', 'fdatasync'] as const) {
  test(`ENOSPC on ${op} fails every append of the group commit, writes nothing, and appends work again`, async (t) => {
    const dir = tempDir(`enospc-${op}`);
    t.teardown(() => removeDir(dir));
    const io = new FaultInjectingFileIo();
    const wal = await openWal(dir, { fileIo: io });
    await wal.createSegment('t', 1, 0);
    await wal.append('t', [{ value: payload(0, 50) }, { value: payload(1, 50) }]);
    const file = segmentFile(dir, 't', 1, 'wal');
    io.inject({ op, code: 'ENOSPC', pathIncludes: '.wal', partialBytes: 120 });
    const results = await Promise.allSettled(
      Array.from({ length: 5 }, (_, i) => wal.append('t', [{ value: payload(100 + i, 50) }])),
    );
    t.is(io.injectedCount, 1);
    t.deepEqual(
      results.map((r) => (r.status === 'rejected' ? code(r.reason) : 'ok')),
      ['DISK_FULL', 'DISK_FULL', 'DISK_FULL', 'DISK_FULL', 'DISK_FULL'],
    );
    t.is(wal.endOffset('t'), 2);
    t.is(readAll(wal, 't', 0).length, 2);
    // Cut back to the pre-batch length: the partial write's complete records are gone.
    t.is(fs.statSync(file).size, 64 + 2 * 80);
    const next = await wal.append('t', [{ value: payload(2, 50) }]);
    t.is(next.firstOffset, 2);
    await wal.close();
    const again = await openWal(dir);
    const all = readAll(again, 't', 0);
    t.deepEqual(
      all.map((r) => r.offset),
      [0, 1, 2],
    );
    for (const r of all) t.deepEqual(Buffer.from(r.value), Buffer.from(payload(r.offset, 50)));
    await again.close();
  });
}

test('EIO on fdatasync is not retried: the batch fails UNAVAILABLE and the segment takes no more appends', async (t) => {
  const dir = tempDir('eio');
  t.teardown(() => removeDir(dir));
  const io = new FaultInjectingFileIo();
  const wal = await openWal(dir, { fileIo: io });
  await wal.createSegment('bad', 1, 0);
  await wal.createSegment('good', 1, 0);
  await wal.append('bad', [{ value: payload(0, 10) }]);
  io.inject({ op: 'fdatasync', code: 'EIO', pathIncludes: `${path.sep}bad${path.sep}` });
  const [bad, good] = await Promise.allSettled([
    wal.append('bad', [{ value: payload(1, 10) }]),
    wal.append('good', [{ value: payload(0, 10) }]),
  ]);
  t.is(bad.status === 'rejected' ? code(bad.reason) : 'ok', 'UNAVAILABLE');
  t.is(good.status, 'fulfilled');
  t.is(code(await wal.append('bad', [{ value: payload(2, 10) }]).catch((e) => e)), 'UNAVAILABLE');
  t.is(code(await wal.sealActive('bad').catch((e) => e)), 'UNAVAILABLE');
  t.is(wal.endOffset('bad'), 1);
  t.is(readAll(wal, 'bad', 0).length, 1);
  await wal.close();
  const again = await openWal(dir);
  t.is(again.endOffset('bad'), 1);
  t.is((await again.append('bad', [{ value: payload(1, 10) }])).firstOffset, 1);
  await again.close();
});

test('a full disk during background preallocation leaves appends working: the file grows instead', async (t) => {
  const dir = tempDir('prealloc-full');
  t.teardown(() => removeDir(dir));
  const io = new FaultInjectingFileIo();
  const wal = await openWal(dir, { fileIo: io, segmentPreallocateBytes: 64 * 1024 });
  await wal.createSegment('t', 1, 0);
  io.inject({ op: 'zeros', code: 'ENOSPC', pathIncludes: '.wal' });
  // More than half of the first 64 KiB: the background zero fill starts, and fails.
  t.is((await wal.append('t', [{ value: payload(0, 40 * 1024) }])).firstOffset, 0);
  for (let i = 0; i < 200 && io.injectedCount === 0; i++)
    await new Promise((resolve) => setTimeout(resolve, 1));
  t.is(io.injectedCount, 1);
  t.is((await wal.append('t', [{ value: payload(1, 100 * 1024) }])).firstOffset, 1);
  await wal.close();
  const again = await openWal(dir);
  const all = readAll(again, 't', 0);
  t.is(all.length, 2);
  t.deepEqual(Buffer.from(all[1]!.value), Buffer.from(payload(1, 100 * 1024)));
  await again.close();
});

function canMountTmpfs(): boolean {
  try {
    execFileSync('unshare', ['-m', 'sh', '-c', 'd=$(mktemp -d) && mount -t tmpfs -o size=64k tmpfs "$d"'], {
      stdio: 'ignore',
      timeout: 10_000,
    });
    return true;
  } catch {
    return false;
  }
}

test('a real full disk (tiny tmpfs in a private mount namespace) fails appends with DISK_FULL, then recovers', async (t) => {
  const child = path.join(import.meta.dirname, 'enospc-child.js');
  if (!canMountTmpfs()) {
    // No mount namespace here: the same behaviour is asserted through the fault-injecting FileIo above.
    t.log('unshare/mount not permitted here; covered by the injected ENOSPC tests');
    const io = new FaultInjectingFileIo();
    const dir = tempDir('enospc-fallback');
    t.teardown(() => removeDir(dir));
    const wal = await openWal(dir, { fileIo: io });
    await wal.createSegment('t', 1, 0);
    io.inject({ op: 'write', code: 'ENOSPC', pathIncludes: '.wal' });
    t.is(code(await wal.append('t', [{ value: payload(0, 10) }]).catch((e) => e)), 'DISK_FULL');
    t.is((await wal.append('t', [{ value: payload(0, 10) }])).firstOffset, 0);
    await wal.close();
    return;
  }
  const script = [
    'set -e',
    'd=$(mktemp -d)',
    'mount -t tmpfs -o size=1m tmpfs "$d"',
    `exec "${process.execPath}" "${child}" "$d"`,
  ].join('\n');
  const out = execFileSync('unshare', ['-m', 'sh', '-c', script], { encoding: 'utf8', timeout: 60_000 });
  const result = JSON.parse(out.trim().split('\n').pop()!) as {
    acknowledged: number;
    diskFullCount: number;
    otherError: string;
    endAfterFull: number;
    afterOffset: number;
    intact: boolean;
  };
  t.is(result.otherError, '');
  t.is(result.diskFullCount, 4, 'the whole group commit failed together');
  t.true(result.acknowledged > 10);
  t.is(result.endAfterFull, result.acknowledged - 1, 'no offset was consumed by the failed batch');
  t.is(result.afterOffset, result.acknowledged - 1);
  t.true(result.intact, 'every acknowledged record reads back after reopen');
});

test('ENOSPC on one file of a parallel group commit fails only its appends (and those queued behind them)', async (t) => {
  const dir = tempDir('enospc-parallel');
  t.teardown(() => removeDir(dir));
  const io = new FaultInjectingFileIo();
  const wal = await openWal(dir, { fileIo: io });
  await wal.createSegment('full', 1, 0);
  await wal.createSegment('fine', 1, 0);
  io.inject({ op: 'fdatasync', code: 'ENOSPC', pathIncludes: `${path.sep}full${path.sep}` });
  const first = [
    wal.append('full', [{ value: payload(0, 10) }]),
    wal.append('fine', [{ value: payload(0, 10) }]),
  ];
  // Queued while the first group commit's fdatasyncs run; its offset follows the failing batch.
  const behind = await new Promise<Promise<unknown>>((resolve) =>
    setImmediate(() => resolve(wal.append('full', [{ value: payload(1, 10) }]).catch((e: unknown) => e))),
  );
  const settled = await Promise.allSettled(first);
  t.deepEqual(
    settled.map((r) => (r.status === 'rejected' ? code(r.reason) : 'ok')),
    ['DISK_FULL', 'ok'],
  );
  t.is(code(await behind), 'DISK_FULL');
  t.is(wal.endOffset('full'), 0);
  t.is((await wal.append('full', [{ value: payload(0, 10) }])).firstOffset, 0);
  await wal.close();
  const again = await openWal(dir);
  t.is(again.endOffset('full'), 1);
  t.is(again.endOffset('fine'), 1);
  await again.close();
});

test('a full disk while creating a segment fails with DISK_FULL and leaves no half topic', async (t) => {
  const dir = tempDir('create-full');
  t.teardown(() => removeDir(dir));
  const io = new FaultInjectingFileIo();
  const wal = await openWal(dir, { fileIo: io });
  io.inject({ op: 'write', code: 'ENOSPC', pathIncludes: '.wal' });
  t.is(code(await wal.createSegment('t', 1, 0).catch((e) => e)), 'DISK_FULL');
  t.deepEqual(wal.topics(), []);
  t.is(wal.endOffset('t'), 0);
  t.is(code(await wal.append('t', [{ value: payload(0, 1) }]).catch((e) => e)), 'TOPIC_NOT_FOUND');
  await wal.createSegment('t', 1, 0);
  t.is((await wal.append('t', [{ value: payload(0, 1) }])).firstOffset, 0);
  await wal.close();
  const again = await openWal(dir);
  t.deepEqual(again.topics(), ['t']);
  await again.close();
});

test('policy interval: an EIO on the timer fdatasync marks the segment failed', async (t) => {
  const dir = tempDir('interval-eio');
  t.teardown(() => removeDir(dir));
  const io = new FaultInjectingFileIo();
  const wal = await openWal(dir, { fileIo: io, fsyncPolicy: { kind: 'interval', intervalMs: 2 } });
  await wal.createSegment('t', 1, 0);
  io.inject({ op: 'fdatasync', code: 'EIO', pathIncludes: '.wal' });
  t.is((await wal.append('t', [{ value: payload(0, 10) }])).firstOffset, 0);
  let rejected: string | undefined;
  for (let i = 0; i < 500 && rejected === undefined; i++) {
    await new Promise((resolve) => setTimeout(resolve, 2));
    rejected = code(await wal.append('t', [{ value: payload(1, 10) }]).catch((e) => e));
  }
  t.is(io.injectedCount, 1);
  t.is(rejected, 'UNAVAILABLE');
  await wal.close();
});
