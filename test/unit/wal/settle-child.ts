/**
 * Child process of the restart-cost test (scale.test.ts): opens the WAL in argv[2] (fsync
 * `always`, quiet segments settled every 20 ms), appends argv[3] records of 1 KiB to each of argv[4]
 * topics, waits (bounded) until every topic's active segment is settled, prints `settled`, and
 * waits to be killed with SIGKILL.
 */
import fs from 'node:fs';
import path from 'node:path';
import { Wal } from '../../../node/wal/index.js';
import { payload } from './helpers.js';

const [rootDir, recordText, topicText] = process.argv.slice(2);
if (rootDir === undefined) throw new Error('usage: settle-child <dir> <records> <topics>');
const recordCount = Number(recordText);
const topicCount = Number(topicText);
const settledWaitMsMax = 30_000;

const wal = await Wal.open({
  rootDir,
  fsyncPolicy: { kind: 'always' },
  segmentPreallocateBytes: 256 * 1024,
  segmentSettleIntervalMs: 20,
});
for (let t = 0; t < topicCount; t++) {
  await wal.createSegment(`t${t}`, 1, 0);
  // Batches of 50, so the background preallocation runs ahead as it does under load.
  for (let first = 0; first < recordCount; first += 50) {
    const records = Array.from({ length: Math.min(50, recordCount - first) }, (_, i) => ({
      value: payload(t * 1_000_000 + first + i, 1024),
    }));
    await wal.append(`t${t}`, records);
  }
}
// Settled: each file ends at its last record (the zeros ahead cut off). Printed after the bound
// anyway, so that a WAL that never settles fails the parent's checks rather than this wait.
const settled = (): boolean => {
  for (let t = 0; t < topicCount; t++) {
    const [segment] = wal.segments(`t${t}`);
    const file = path.join(rootDir, 'topics', `t${t}`, `${String(1).padStart(20, '0')}.wal`);
    if (segment === undefined || fs.statSync(file).size !== segment.sizeBytes) return false;
  }
  return true;
};
const deadline = Date.now() + settledWaitMsMax;
while (!settled() && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 20));
// (A settle writes the checkpoint before it cuts the zeros: a cut file has its checkpoint.)
process.stdout.write('settled\n');
setInterval(() => {}, 1000);
