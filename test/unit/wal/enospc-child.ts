/**
 * Child process of the real-ENOSPC test, run inside a private mount namespace on a tiny tmpfs:
 * fills the disk through the WAL until an append fails with DISK_FULL, frees space, appends again,
 * reopens and checks every acknowledged record. Prints one JSON line with what it saw.
 */
import fs from 'node:fs';
import path from 'node:path';
import { Wal, WalError } from '../../../node/wal/index.js';
import { payload } from './helpers.js';

const dir = process.argv[2];
if (dir === undefined) throw new Error('usage: enospc-child <dir on a small filesystem>');
const appendCountMax = 100_000;
const ballast = path.join(dir, 'ballast');
fs.writeFileSync(ballast, Buffer.alloc(256 * 1024, 1));
const rootDir = path.join(dir, 'wal');
// No disk reserve: this child checks the group commit's own ENOSPC path (disk-full.test.ts and
// disk-space.test.ts check the reserve).
const options = {
  rootDir,
  fsyncPolicy: { kind: 'always' as const },
  segmentPreallocateBytes: 64 * 1024,
  diskReserveBytes: 0,
};
const wal = await Wal.open(options);
await wal.createSegment('t', 1, 0);
let acknowledged = 0;
let diskFullCount = 0;
let otherError = '';
for (let i = 0; i < appendCountMax; i++) {
  // Four concurrent appends per turn: the whole group commit must fail together.
  const results = await Promise.allSettled(
    Array.from({ length: 4 }, (_, k) => wal.append('t', [{ value: payload(acknowledged + k, 3000) }])),
  );
  const ok = results.filter((r) => r.status === 'fulfilled').length;
  for (const r of results) {
    if (r.status === 'rejected') {
      if (r.reason instanceof WalError && r.reason.code === 'DISK_FULL') diskFullCount += 1;
      else otherError = String(r.reason);
    }
  }
  if (ok === 4) {
    acknowledged += 4;
    continue;
  }
  break;
}
const endAfterFull = wal.endOffset('t');
fs.rmSync(ballast);
const after = await wal.append('t', [{ value: payload(acknowledged, 3000) }]);
acknowledged += 1;
await wal.close();
const again = await Wal.open(options);
let intact = again.endOffset('t') === acknowledged;
for (let offset = 0; offset < acknowledged && intact; offset++) {
  const [record] = again.read('t', offset, { recordCountMax: 1, byteCountMax: 1 });
  intact = record !== undefined && Buffer.from(record.value).equals(Buffer.from(payload(offset, 3000)));
}
await again.close();
console.log(
  JSON.stringify({
    acknowledged,
    diskFullCount,
    otherError,
    endAfterFull,
    afterOffset: after.firstOffset,
    intact,
  }),
);
