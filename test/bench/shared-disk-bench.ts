/**
 * `npm run bench -- shared-disk`: what durable copies cost when the replicas of a segment share one
 * disk, as the three nodes of the replication bench do on this machine. N processes (1, 2, 3), each
 * with its own preallocated file, write 128 bytes and fdatasync it at the same moment, once every
 * `periodUs` (the cadence of one-at-a-time appends, so the disk idles between rounds as it does
 * there). Per round, the time until the k-th copy is durable: k = 2 of 3 is the floor of an
 * `acks=quorum` append with fsync `always` and three replicas on this disk, before any network hop
 * or protocol work.
 *
 * Figures: sharedDiskFsyncP50Us{1,2,3} (the slowest copy of the round), sharedDiskQuorumP50Us
 * (2 of 3), and their p90s. Figures only; it fails on nothing.
 */
import { fork } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';

const recordSizeBytes = 128;
const fileSizeBytes = 16 * 1024 * 1024;
const roundCount = 2_000;
const periodUs = 1_000;
/** Children wait for each round by sleeping until this close to it, then spinning. */
const spinUs = 150;
const startDelayUs = 300_000;
const childTimeoutMs = 120_000;

/** Microseconds on a clock all processes share (the wall clock, at performance.now()'s resolution). */
function wallUs(): number {
  return (performance.timeOrigin + performance.now()) * 1000;
}

const sleeper = new Int32Array(new SharedArrayBuffer(4));

function waitUntil(atUs: number): void {
  const sleepMs = (atUs - wallUs() - spinUs) / 1000;
  if (sleepMs >= 1) Atomics.wait(sleeper, 0, 0, Math.floor(sleepMs));
  while (wallUs() < atUs) {
    // spin the last few µs
  }
}

interface Plan {
  readonly file: string;
  readonly startUs: number;
}

/** In a child: one durable write per round; sends each round's completion time (µs after its start). */
function runChild(): void {
  process.once('message', (plan: Plan) => {
    const fd = fs.openSync(plan.file, 'w+');
    fs.writeSync(fd, Buffer.alloc(fileSizeBytes));
    fs.fsyncSync(fd);
    const record = Buffer.alloc(recordSizeBytes, 0x61);
    const doneUs = new Float64Array(roundCount);
    for (let r = 0; r < roundCount; r++) {
      const atUs = plan.startUs + r * periodUs;
      waitUntil(atUs);
      fs.writeSync(fd, record, 0, recordSizeBytes, (r * recordSizeBytes) % fileSizeBytes);
      fs.fdatasyncSync(fd);
      doneUs[r] = wallUs() - atUs;
    }
    fs.closeSync(fd);
    fs.rmSync(plan.file, { force: true });
    process.send!([...doneUs], () => process.exit(0));
  });
}

function percentile(sorted: readonly number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor((sorted.length * p) / 100))]!;
}

/** N processes at once; per round the completion of each copy, sorted (copy 1 = first durable). */
async function rounds(dir: string, processCount: number): Promise<number[][]> {
  const self = new URL(import.meta.url).pathname;
  // The files are written before the first round: start late enough for that.
  const startUs = wallUs() + startDelayUs + processCount * 200_000;
  const children = Array.from({ length: processCount }, () => fork(self, ['--child']));
  try {
    const results = await Promise.all(
      children.map(
        (child, i) =>
          new Promise<number[]>((resolve, reject) => {
            const timer = setTimeout(() => reject(new Error('a child timed out')), childTimeoutMs);
            child.once('message', (done: number[]) => {
              clearTimeout(timer);
              resolve(done);
            });
            child.once('exit', (code) => code !== 0 && reject(new Error(`a child exited ${code}`)));
            child.send({ file: path.join(dir, `shared-disk-${i}.dat`), startUs } satisfies Plan);
          }),
      ),
    );
    return Array.from({ length: roundCount }, (_, r) =>
      results.map((done) => done[r]!).sort((a, b) => a - b),
    );
  } finally {
    for (const child of children) if (child.exitCode === null) child.kill('SIGKILL');
  }
}

export async function runSharedDiskBench(opts: { dir: string }): Promise<Record<string, number>> {
  const figures: Record<string, number> = {};
  for (const n of [1, 2, 3]) {
    const all = await rounds(opts.dir, n);
    const slowest = all.map((copies) => copies[n - 1]!).sort((a, b) => a - b);
    figures[`sharedDiskFsyncP50Us${n}`] = Math.round(percentile(slowest, 50));
    figures[`sharedDiskFsyncP90Us${n}`] = Math.round(percentile(slowest, 90));
    if (n === 3) {
      const quorum = all.map((copies) => copies[1]!).sort((a, b) => a - b);
      figures['sharedDiskQuorumP50Us'] = Math.round(percentile(quorum, 50));
      figures['sharedDiskQuorumP90Us'] = Math.round(percentile(quorum, 90));
    }
    console.log(
      `# ${n} process${n > 1 ? 'es' : ''} writing 128 B + fdatasync together every ${periodUs} µs: ` +
        `all durable p50 ${figures[`sharedDiskFsyncP50Us${n}`]} µs, p90 ${figures[`sharedDiskFsyncP90Us${n}`]} µs` +
        (n === 3 ? `; 2 of 3 durable p50 ${figures['sharedDiskQuorumP50Us']} µs` : ''),
    );
  }
  return figures;
}

if (process.argv[2] === '--child') runChild();
