/**
 * WAL benchmark: durable appends per second against the raw fdatasync rate of the same disk.
 *
 * - rawFdatasyncPerSec: a loop of 128-byte fs.writeSync + fs.fdatasyncSync appending to one file.
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
const producerCount = 64;
const multiTopicCount = 8;

function rawFdatasyncPerSec(dir: string, durationMs: number): number {
  const file = path.join(dir, 'raw-fdatasync.bin');
  const fd = fs.openSync(file, 'w+');
  const buf = Buffer.alloc(recordSizeBytes, 0x5a);
  let position = 0;
  let count = 0;
  const start = performance.now();
  try {
    while (performance.now() - start < durationMs) {
      fs.writeSync(fd, buf, 0, buf.length, position);
      fs.fdatasyncSync(fd);
      position += buf.length;
      count += 1;
    }
  } finally {
    fs.closeSync(fd);
    fs.rmSync(file, { force: true });
  }
  return count / ((performance.now() - start) / 1000);
}

interface WalRun {
  appendsPerSec: number;
  p50Ms: number;
  p99Ms: number;
  groupCommitRecordsAvg: number;
}

async function walRun(dir: string, durationMs: number, topicCount: number): Promise<WalRun> {
  fs.rmSync(dir, { recursive: true, force: true });
  const wal = await Wal.open({ rootDir: dir, fsyncPolicy: { kind: 'always' } });
  const topics = Array.from({ length: topicCount }, (_, i) => `bench-${i}`);
  for (const topic of topics) await wal.createSegment(topic, 1, 0);
  const value = new Uint8Array(recordSizeBytes).fill(0x61);
  // Latencies go into a fixed histogram of 10 µs buckets up to 1 s: bounded memory.
  const bucketUs = 10;
  const buckets = new Float64Array(100_000);
  let count = 0;
  let stop = false;
  const before = wal.stats();
  const start = performance.now();
  const producer = async (topic: string): Promise<void> => {
    const records = [{ value }];
    while (!stop) {
      const t0 = performance.now();
      await wal.append(topic, records);
      const us = (performance.now() - t0) * 1000;
      buckets[Math.min(buckets.length - 1, Math.floor(us / bucketUs))]! += 1;
      count += 1;
    }
  };
  const timer = setTimeout(() => {
    stop = true;
  }, durationMs);
  await Promise.all(Array.from({ length: producerCount }, (_, i) => producer(topics[i % topics.length]!)));
  clearTimeout(timer);
  const elapsedSec = (performance.now() - start) / 1000;
  const after = wal.stats();
  await wal.close();
  fs.rmSync(dir, { recursive: true, force: true });
  const percentile = (q: number): number => {
    const target = Math.ceil(count * q);
    let seen = 0;
    for (let i = 0; i < buckets.length; i++) {
      seen += buckets[i]!;
      if (seen >= target) return ((i + 1) * bucketUs) / 1000;
    }
    return Number.NaN;
  };
  return {
    appendsPerSec: count / elapsedSec,
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
  const phaseMs = Math.max(500, Math.floor(opts.durationMs / 3));
  const raw = rawFdatasyncPerSec(dir, phaseMs);
  const single = await walRun(path.join(dir, 'single'), phaseMs, 1);
  const multi = await walRun(path.join(dir, 'multi'), phaseMs, multiTopicCount);
  fs.rmSync(dir, { recursive: true, force: true });
  const round = (n: number, digits = 0): number => Number(n.toFixed(digits));
  return {
    rawFdatasyncPerSec: round(raw),
    walAppendsPerSec: round(single.appendsPerSec),
    walAppendsPerSecMultiTopic: round(multi.appendsPerSec),
    walSpeedup: round(single.appendsPerSec / raw, 2),
    walAppendP50Ms: round(single.p50Ms, 3),
    walAppendP99Ms: round(single.p99Ms, 3),
    walGroupCommitRecordsAvg: round(single.groupCommitRecordsAvg, 1),
    walMultiTopicAppendP99Ms: round(multi.p99Ms, 3),
    walMultiTopicGroupCommitRecordsAvg: round(multi.groupCommitRecordsAvg, 1),
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
