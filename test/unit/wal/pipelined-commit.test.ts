/**
 * Two group commits in flight on one segment (walLimits.groupCommitInFlightMax): the second batch
 * is written after the first and its fdatasync issued while the first's runs; they settle in
 * order, a failure of the first fails the second, and the second's records never claim the first
 * durable. The thread pool's fdatasyncs are held by the test (GatedIo) so the overlap is certain.
 */
import fs from 'node:fs';
import path from 'node:path';
import test, { type ExecutionContext } from 'ava';
import type { FileIo } from '../../../node/storage-io/file-io.js';
import { realFileIo } from '../../../node/storage-io/file-io.js';
import { type AssignedAppend, type Wal, WalErrorCode, walDefaults } from '../../../node/wal/index.js';
import { recordHeaderSizeBytes } from '../../../node/wal/limits.js';
import { recordSyncedDeltaAt } from '../../../node/wal/record-codec.js';
import { segmentFileHeaderBytes } from '../../../node/wal/segment-files.js';
import { openWal, payload, readAll, removeDir, segmentFile, tempDir } from './helpers.js';

/** Holds each pooled fdatasync until the test settles it (the real one runs first). */
class GatedIo {
  readonly held: { settle: (error?: string) => void }[] = [];
  readonly io: FileIo = {
    ...realFileIo,
    fdatasyncAsync: (fd) =>
      new Promise<void>((resolve, reject) => {
        this.held.push({
          settle: (code) => {
            if (code === undefined) {
              realFileIo.fdatasync(fd);
              resolve();
            } else reject(Object.assign(new Error(`${code}: held fdatasync failed`), { code }));
          },
        });
      }),
  };
}

const turn = () => new Promise((resolve) => setImmediate(resolve));

/** Records of `count` × `size` bytes; enough of them pass groupCommitOverlapBytesMin. */
function values(seed: number, count: number, size: number): { value: Uint8Array }[] {
  return Array.from({ length: count }, (_, i) => ({ value: payload(seed + i, size) }));
}

const overlapCount = Math.ceil(walDefaults.groupCommitOverlapBytesMin / 512) + 1;

/**
 * A WAL with `beforeCount` records of 100 bytes durable, then two group commits in flight on its
 * segment: `first` (`firstCount` records of 100 bytes) and `second` (overlapCount of 512).
 */
async function twoInFlight(
  t: ExecutionContext,
  label: string,
  beforeCount: number,
  firstCount: number,
): Promise<{ dir: string; gate: GatedIo; wal: Wal; first: AssignedAppend; second: AssignedAppend }> {
  const dir = tempDir(label);
  t.teardown(() => removeDir(dir));
  const gate = new GatedIo();
  const wal = await openWal(dir, { fileIo: gate.io });
  await wal.createSegment('t', 1, 0);
  const before = wal.appendAssigned('t', values(100, beforeCount, 100), { syncInPool: true });
  await turn();
  gate.held[0]!.settle();
  await before.durable;
  const first = wal.appendAssigned('t', values(0, firstCount, 100), { syncInPool: true });
  await turn();
  const second = wal.appendAssigned('t', values(10, overlapCount, 512), { syncInPool: true });
  await turn();
  t.is(gate.held.length, 3, 'two group commits in flight');
  return { dir, gate, wal, first, second };
}

test('a second group commit starts while the first fdatasync runs; both settle in order, readable only then', async (t) => {
  const dir = tempDir('pipelined');
  t.teardown(() => removeDir(dir));
  const gate = new GatedIo();
  const wal = await openWal(dir, { fileIo: gate.io });
  await wal.createSegment('t', 1, 0);
  const settled: string[] = [];
  const first = wal.appendAssigned('t', values(0, 1, 100), { syncInPool: true });
  void first.durable.then(() => settled.push('first'));
  await turn();
  t.is(gate.held.length, 1, 'the first group commit is in flight');
  // A small append waits for the one in flight: it would not pay for a commit of its own.
  const small = wal.appendAssigned('t', values(1, 1, 100), { syncInPool: true });
  void small.durable.then(() => settled.push('small'));
  await turn();
  t.is(gate.held.length, 1);
  const second = wal.appendAssigned('t', values(2, overlapCount, 512), { syncInPool: true });
  void second.durable.then(() => settled.push('second'));
  await turn();
  t.is(gate.held.length, 2, 'the second group commit is written and its fdatasync issued');
  t.is(wal.stats().groupCommitCount, 2);
  gate.held[1]!.settle();
  for (let i = 0; i < 5; i++) await turn();
  t.deepEqual(settled, [], 'the second waits for the first');
  t.deepEqual(wal.read('t', 0, { recordCountMax: 10, byteCountMax: 1 << 20 }), []);
  gate.held[0]!.settle();
  await Promise.all([first.durable, small.durable, second.durable]);
  t.deepEqual(settled, ['first', 'small', 'second']);
  t.deepEqual(
    readAll(wal, 't', 0).map((r) => r.offset),
    Array.from({ length: 2 + overlapCount }, (_, i) => i),
  );
  t.true(Buffer.from(readAll(wal, 't', 0)[2]!.value).equals(payload(2, 512)));
  await wal.close();
  // And after a restart.
  const again = await openWal(dir);
  t.is(readAll(again, 't', 0).length, 2 + overlapCount);
  await again.close();
});

test('an EIO on the first fdatasync fails the second group commit too, though its own fdatasync succeeded', async (t) => {
  const { dir, gate, wal, first, second } = await twoInFlight(t, 'pipelined-eio', 3, 1);
  const results = Promise.allSettled([first.durable, second.durable]);
  gate.held[2]!.settle();
  gate.held[1]!.settle('EIO');
  const [a, b] = await results;
  t.is(a.status, 'rejected');
  t.is(b.status, 'rejected');
  t.is((a as PromiseRejectedResult).reason.code, WalErrorCode.UNAVAILABLE);
  t.is((b as PromiseRejectedResult).reason.code, WalErrorCode.UNAVAILABLE);
  t.throws(() => wal.appendAssigned('t', values(2, 1, 10)), { message: /failed/ });
  t.deepEqual(
    readAll(wal, 't', 0).map((r) => r.offset),
    [0, 1, 2],
  );
  // Both batches were cut off the file: a restart finds the first three records and nothing after.
  const file = segmentFile(dir, 't', 1, 'wal');
  await wal.close();
  const again = await openWal(dir);
  t.deepEqual(
    readAll(again, 't', 0).map((r) => r.offset),
    [0, 1, 2],
  );
  t.is(again.stats().corruptRecordCount, 0);
  await again.close();
  t.true(fs.existsSync(file));
});

test('a full disk on the second fdatasync rejects only it (DISK_FULL); its offsets are handed out again', async (t) => {
  const dir = tempDir('pipelined-enospc');
  t.teardown(() => removeDir(dir));
  const gate = new GatedIo();
  const wal = await openWal(dir, { fileIo: gate.io, diskReserveBytes: 0 });
  await wal.createSegment('t', 1, 0);
  const first = wal.appendAssigned('t', values(0, 2, 100), { syncInPool: true });
  await turn();
  const second = wal.appendAssigned('t', values(10, overlapCount, 512), { syncInPool: true });
  await turn();
  t.is(gate.held.length, 2);
  const secondResult = second.durable.catch((error: { code: string }) => error.code);
  gate.held[1]!.settle('ENOSPC');
  gate.held[0]!.settle();
  t.deepEqual(await first.durable, { firstOffset: 0, lastOffset: 1, timestampMs: first.timestampMs });
  t.is(await secondResult, WalErrorCode.DISK_FULL);
  const next = wal.appendAssigned('t', values(50, 1, 100), { syncInPool: true });
  t.is(next.firstOffset, 2, 'the rejected offsets are handed out again');
  await turn();
  gate.held[2]!.settle();
  await next.durable;
  const read = readAll(wal, 't', 0);
  t.deepEqual(
    read.map((r) => r.offset),
    [0, 1, 2],
  );
  t.true(Buffer.from(read[2]!.value).equals(payload(50, 100)));
  await wal.close();
});

test('records written behind a group commit in flight do not claim it durable: a crash that tears it is a torn tail', async (t) => {
  const { dir, gate, wal, first, second } = await twoInFlight(t, 'pipelined-claim', 2, 4);
  void first.durable.catch(() => {});
  void second.durable.catch(() => {});
  // The file as a crash would leave it if the first batch's pages never reached the disk but the
  // second's did: a copy of the directory with the first batch's bytes zeroed.
  const crashed = `${dir}-crashed`;
  t.teardown(() => removeDir(crashed));
  fs.cpSync(dir, crashed, { recursive: true });
  const file = segmentFile(crashed, 't', 1, 'wal');
  const bytes = fs.readFileSync(file);
  // Records without headers take recordHeaderSizeBytes + their value: `before` 2 × 100, first 4 × 100.
  const recordBytes = recordHeaderSizeBytes + 100;
  const batchStart = segmentFileHeaderBytes + 2 * recordBytes;
  const batchEnd = batchStart + 4 * recordBytes;
  t.is(bytes.readUInt32LE(batchEnd) + 8, recordHeaderSizeBytes + 512, 'the second batch follows the first');
  // The second batch's first record claims nothing past what was durable when it was written.
  t.is(recordSyncedDeltaAt(bytes, batchEnd), 6 - 2);
  bytes.fill(0, batchStart, batchEnd);
  fs.writeFileSync(file, bytes);
  fs.rmSync(path.join(path.dirname(file), `${path.basename(file, '.wal')}.idx`), { force: true });
  const recovered = await openWal(crashed);
  t.deepEqual(
    readAll(recovered, 't', 0).map((r) => r.offset),
    [0, 1],
    'the torn first batch ends the segment; the second, never acknowledged, goes with it',
  );
  t.is(recovered.stats().corruptRecordCount, 0);
  await recovered.close();
  gate.held[1]!.settle();
  gate.held[2]!.settle();
  await Promise.all([first.durable, second.durable]);
  await wal.close();
});
