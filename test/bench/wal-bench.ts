/**
 * WAL benchmark: durable appends per second against the raw fdatasync rate of the same disk.
 *
 * - rawFdatasyncPerSec: a loop of 128-byte fs.writeSync + fs.fdatasyncSync appending to one file in
 *   the same directory, run in 100 ms slices that alternate with the WAL's (the disk is shared and
 *   its load drifts; alternating puts the drift on both sides of the ratio).
 * - walAppendsPerSec: fsync `always`, 64 concurrent producers on one topic, each awaiting one
 *   single-record (128-byte) append at a time; walAppendsPerSecMultiTopic: the same over 8 topics.
 * - walSpeedup = walAppendsPerSec / rawFdatasyncPerSec (target >= 50), latency p50/p99 of one
 *   append, and the average records per group commit.
 *
 * `node dist/test/bench/wal-bench.js [durationMs]` prints the figures and one JSON line.
 * Figures only: benchmarks never pass or fail.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Wal } from '../../node/wal/index.js';

const recordSizeBytes = 128;
/** The figure: 64 producers, each awaiting one append at a time. */
const defaultProducerCount = 64;
/** A pipelined comparison: as if each of the 64 producers kept 4 appends in flight. */
const pipelinedProducerCount = 256;
const multiTopicCount = 8;

/** Slices of the raw loop and of the WAL alternate, so a change in the disk's load hits both alike. */
const sliceMs = 100;

/** The raw loop: 128-byte writes appended to one file, each followed by fdatasync. */
class RawLoop {
  private readonly fd: number;
  private position = 0;
  count = 0;
  elapsedMs = 0;
  private readonly buf = Buffer.alloc(recordSizeBytes, 0x5a);

  constructor(readonly file: string) {
    this.fd = fs.openSync(file, 'w+');
  }

  run(ms: number): void {
    const start = performance.now();
    while (performance.now() - start < ms) {
      fs.writeSync(this.fd, this.buf, 0, this.buf.length, this.position);
      fs.fdatasyncSync(this.fd);
      this.position += this.buf.length;
      this.count += 1;
    }
    this.elapsedMs += performance.now() - start;
  }

  close(): void {
    fs.closeSync(this.fd);
    fs.rmSync(this.file, { force: true });
  }
}

interface WalRun {
  appendsPerSec: number;
  rawFdatasyncPerSec: number;
  p50Ms: number;
  p99Ms: number;
  groupCommitRecordsAvg: number;
}

/**
 * 64 producers, each awaiting one single-record append at a time, over `topicCount` topics, for
 * `durationMs` of WAL time; after every WAL slice the producers park and the raw loop runs a slice.
 */
async function walRun(
  dir: string,
  durationMs: number,
  topicCount: number,
  producerCount = defaultProducerCount,
): Promise<WalRun> {
  fs.rmSync(dir, { recursive: true, force: true });
  const wal = await Wal.open({ rootDir: dir, fsyncPolicy: { kind: 'always' } });
  const topics = Array.from({ length: topicCount }, (_, i) => `bench-${i}`);
  for (const topic of topics) await wal.createSegment(topic, 1, 0);
  const raw = new RawLoop(path.join(dir, 'raw-fdatasync.bin'));
  const value = new Uint8Array(recordSizeBytes).fill(0x61);
  // Latencies go into a fixed histogram of 10 µs buckets up to 1 s: bounded memory.
  const bucketUs = 10;
  const buckets = new Float64Array(100_000);
  let count = 0;
  let sampled = 0;
  let stop = false;
  let paused = true;
  let parked = 0;
  let resume: () => void = () => {};
  let resumed = new Promise<void>((resolve) => {
    resume = resolve;
  });
  let allParked: () => void = () => {};
  const producer = async (topic: string): Promise<void> => {
    const records = [{ value }];
    while (!stop) {
      if (paused) {
        parked += 1;
        if (parked === producerCount) allParked();
        await resumed;
        parked -= 1;
        continue;
      }
      // Every 4th append is timed: the clock reads and the histogram would otherwise cost ~6% of
      // the CPU between two fdatasyncs, and a uniform 1-in-4 sample gives the same percentiles.
      if ((count & 3) === 3) {
        const t0 = performance.now();
        await wal.append(topic, records);
        const us = (performance.now() - t0) * 1000;
        buckets[Math.min(buckets.length - 1, Math.floor(us / bucketUs))]! += 1;
        sampled += 1;
      } else {
        await wal.append(topic, records);
      }
      count += 1;
    }
  };
  const producers = Array.from({ length: producerCount }, (_, i) => producer(topics[i % topics.length]!));
  const waitAllParked = (): Promise<void> =>
    new Promise((resolve) => {
      if (parked === producerCount) resolve();
      else allParked = resolve;
    });
  await waitAllParked();
  const before = wal.stats();
  let walMs = 0;
  while (walMs < durationMs) {
    raw.run(sliceMs);
    const start = performance.now();
    paused = false;
    const wake = resume;
    resumed = new Promise<void>((resolve) => {
      resume = resolve;
    });
    wake();
    await new Promise((resolve) => setTimeout(resolve, sliceMs));
    paused = true;
    await waitAllParked();
    walMs += performance.now() - start;
  }
  raw.run(sliceMs);
  const after = wal.stats();
  stop = true;
  resume();
  await Promise.all(producers);
  raw.close();
  await wal.close();
  fs.rmSync(dir, { recursive: true, force: true });
  const percentile = (q: number): number => {
    const target = Math.ceil(sampled * q);
    let seen = 0;
    for (let i = 0; i < buckets.length; i++) {
      seen += buckets[i]!;
      if (seen >= target) return ((i + 1) * bucketUs) / 1000;
    }
    return Number.NaN;
  };
  return {
    appendsPerSec: count / (walMs / 1000),
    rawFdatasyncPerSec: raw.count / (raw.elapsedMs / 1000),
    p50Ms: percentile(0.5),
    p99Ms: percentile(0.99),
    groupCommitRecordsAvg:
      (after.recordCount - before.recordCount) / (after.groupCommitCount - before.groupCommitCount),
  };
}

export async function runWalBench(opts: {
  dir: string;
  durationMs: number;
}): Promise<Record<string, number>> {
  const dir = path.join(opts.dir, 'wal-bench');
  fs.mkdirSync(dir, { recursive: true });
  // WAL time: two thirds single topic, one third multi-topic; raw slices come on top.
  const single = await walRun(path.join(dir, 'single'), Math.max(500, Math.floor(opts.durationMs / 3)), 1);
  const multi = await walRun(
    path.join(dir, 'multi'),
    Math.max(300, Math.floor(opts.durationMs / 6)),
    multiTopicCount,
  );
  const pipelined = await walRun(
    path.join(dir, 'pipelined'),
    Math.max(300, Math.floor(opts.durationMs / 6)),
    1,
    pipelinedProducerCount,
  );
  fs.rmSync(dir, { recursive: true, force: true });
  const round = (n: number, digits = 0): number => Number(n.toFixed(digits));
  return {
    rawFdatasyncPerSec: round(single.rawFdatasyncPerSec),
    walAppendsPerSec: round(single.appendsPerSec),
    walAppendsPerSecMultiTopic: round(multi.appendsPerSec),
    walSpeedup: round(single.appendsPerSec / single.rawFdatasyncPerSec, 2),
    walAppendP50Ms: round(single.p50Ms, 3),
    walAppendP99Ms: round(single.p99Ms, 3),
    walGroupCommitRecordsAvg: round(single.groupCommitRecordsAvg, 1),
    walMultiTopicSpeedup: round(multi.appendsPerSec / multi.rawFdatasyncPerSec, 2),
    walMultiTopicAppendP99Ms: round(multi.p99Ms, 3),
    walMultiTopicGroupCommitRecordsAvg: round(multi.groupCommitRecordsAvg, 1),
    walAppendsPerSec256InFlight: round(pipelined.appendsPerSec),
    walSpeedup256InFlight: round(pipelined.appendsPerSec / pipelined.rawFdatasyncPerSec, 2),
    walGroupCommitRecordsAvg256InFlight: round(pipelined.groupCommitRecordsAvg, 1),
  };
}

if (process.argv[1] !== undefined && path.resolve(process.argv[1]) === path.resolve(import.meta.filename)) {
  const durationMs = Number(process.argv[2] ?? 6000);
  const dir = fs.mkdtempSync(path.join(process.env['BENCH_DIR'] ?? os.tmpdir(), 'walrus-wal-bench-'));
  const figures = await runWalBench({ dir, durationMs });
  fs.rmSync(dir, { recursive: true, force: true });
  for (const [name, value] of Object.entries(figures)) console.log(`${name.padEnd(36)} ${value}`);
  console.log(JSON.stringify(figures));
}
