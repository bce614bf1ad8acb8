/**
 * Costs that must not grow with the data (issue 12, "cost that does not grow with data"):
 * - a restart after kill -9 reads almost nothing of quiet active segments and fdatasyncs none of
 *   them (they were settled: checkpoint to the end, zeros cut; segment-settle.ts);
 * - the sparse indexes in memory stay within the pager's budget whatever the data, and an index
 *   dropped from memory comes back from its checkpoint, or by a scan when that is damaged.
 */
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import test from 'ava';
import type { FileIo } from '../../../node/storage-io/file-io.js';
import { realFileIo } from '../../../node/storage-io/file-io.js';
import { openWal, payload, prng, readAll, removeDir, tempDir } from './helpers.js';

/** The real filesystem, counting what a WAL asks of it. */
function countingIo(): { io: FileIo; counts: { syncs: number; readBytes: number } } {
  const counts = { syncs: 0, readBytes: 0 };
  const io: FileIo = {
    ...realFileIo,
    read: (fd, buf, bufOffset, length, position) => {
      const n = realFileIo.read(fd, buf, bufOffset, length, position);
      counts.readBytes += n;
      return n;
    },
    fdatasync: (fd) => {
      counts.syncs += 1;
      realFileIo.fdatasync(fd);
    },
    fsync: (fd) => {
      counts.syncs += 1;
      realFileIo.fsync(fd);
    },
  };
  return { io, counts };
}

function runChildUntilSettled(dir: string, recordCount: number, topicCount: number): Promise<void> {
  const child = spawn(
    process.execPath,
    [path.join(import.meta.dirname, 'settle-child.js'), dir, String(recordCount), String(topicCount)],
    { stdio: ['ignore', 'pipe', 'pipe'] },
  );
  let stderr = '';
  child.stderr.setEncoding('utf8');
  child.stderr.on('data', (chunk: string) => {
    if (stderr.length < 10_000) stderr += chunk;
  });
  child.stdout.setEncoding('utf8');
  child.stdout.on('data', (chunk: string) => {
    if (chunk.includes('settled')) child.kill('SIGKILL');
  });
  return new Promise((resolve, reject) => {
    const guard = setTimeout(() => child.kill('SIGKILL'), 120_000);
    child.on('exit', (exitCode, signal) => {
      clearTimeout(guard);
      if (signal === 'SIGKILL' && stderr === '') resolve();
      else reject(new Error(`child exited with ${exitCode ?? signal}: ${stderr}`));
    });
  });
}

test('a restart after kill -9 reads almost nothing of quiet active segments and fdatasyncs none', async (t) => {
  const dir = tempDir('settle');
  t.teardown(() => removeDir(dir));
  const recordCount = 200;
  const topicCount = 20;
  await runChildUntilSettled(dir, recordCount, topicCount);
  const dataBytes = recordCount * topicCount * 1024;
  const { io, counts } = countingIo();
  const wal = await openWal(dir, { fileIo: io });
  t.teardown(() => wal.close());
  // Before: every active segment was fdatasync'd (~1 ms each, even clean) and scanned from its
  // creation's checkpoint to the end of its preallocated zeros.
  t.is(counts.syncs, 0, 'no fdatasync at open');
  t.true(
    counts.readBytes < dataBytes / 10,
    `open read ${counts.readBytes} bytes of ${dataBytes} bytes of records`,
  );
  for (let i = 0; i < topicCount; i++) {
    const records = readAll(wal, `t${i}`, 0);
    t.is(records.length, recordCount);
    for (const r of [records[0]!, records[recordCount - 1]!])
      t.true(Buffer.from(r.value).equals(Buffer.from(payload(i * 1_000_000 + r.offset, 1024))));
  }
  // The zeros ahead were cut off: each file ends at its last record.
  const file = path.join(dir, 'topics', 't0', `${String(1).padStart(20, '0')}.wal`);
  t.is(fs.statSync(file).size, wal.segments('t0')[0]!.sizeBytes);
});

test('indexes in memory stay within the budget; dropped ones come back from their checkpoint or a scan', async (t) => {
  const dir = tempDir('pager');
  t.teardown(() => removeDir(dir));
  const budget = 256;
  const topicCount = 30;
  const recordCount = 300;
  const wal = await openWal(dir, {
    indexIntervalBytes: 256,
    indexEntryCountMaxLoaded: budget,
    segmentSettleIntervalMs: 60_000,
  });
  t.teardown(() => wal.close());
  for (let i = 0; i < topicCount; i++) {
    await wal.createSegment(`t${i}`, 1, 0);
    await wal.append(
      `t${i}`,
      Array.from({ length: recordCount }, (_, r) => ({ value: payload(i * 1000 + r, 200) })),
    );
    // A sealed segment's index is all in its checkpoint: it may be dropped.
    await wal.sealActive(`t${i}`);
  }
  // ~230 bytes a record and an entry every 256 bytes: ~300 entries a segment, 9,000 in all.
  const largestIndex = 512;
  const check = (): void => {
    const { indexEntriesLoaded } = wal.memoryStats();
    if (indexEntriesLoaded > budget + largestIndex)
      t.fail(`${indexEntriesLoaded} index entries loaded, budget ${budget}`);
  };
  check();
  t.true(wal.memoryStats().indexEvictionCount > 0);
  // A dropped index whose checkpoint is damaged is rebuilt by scanning.
  fs.writeFileSync(path.join(dir, 'topics', 't0', `${String(1).padStart(20, '0')}.idx`), 'junk');
  const random = prng(12);
  for (let n = 0; n < 500; n++) {
    const i = n < 5 ? 0 : Math.floor(random() * topicCount);
    const offset = Math.floor(random() * recordCount);
    const [record] = wal.read(`t${i}`, offset, { recordCountMax: 1, byteCountMax: 1 });
    t.is(record?.offset, offset);
    t.true(
      record !== undefined && Buffer.from(record.value).equals(Buffer.from(payload(i * 1000 + offset, 200))),
    );
    check();
  }
});
