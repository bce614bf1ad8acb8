/**
 * `npm run bench -- scale`: does a node's cost grow with the data it holds? One real walrus-node
 * (a one-voter cluster, so every topic has replication factor 1) is filled with BENCH_SCALE_GB of
 * records across BENCH_SCALE_TOPICS topics, then killed with SIGKILL and started again. Figures:
 *
 * - fill: pipelined binary appends of BENCH_SCALE_BATCH_RECORDS records of BENCH_SCALE_RECORD_BYTES
 *   each, over BENCH_SCALE_CONNECTIONS connections with BENCH_SCALE_IN_FLIGHT batches in flight on
 *   each, round-robin over the topics (they all grow together) → scaleFillMs, scaleFillMBPerSec.
 * - settle: the wait until the node is at rest, having settled its quiet segments (METRICS
 *   storage.segmentsUnsettled = 0: index checkpoints to the end, zeros ahead cut), and the disk used.
 * - RSS of the node (VmRSS from /proc): peak while filling, after the fill, once settled, after the
 *   restart, and after the random reads (scaleRssMB: the larger of the last two, the node holding
 *   the data at rest; the fill's figures show what its appends in flight cost) and its open file
 *   descriptors.
 * - METRICS latency: sequential calls on the filled node and on the restarted one.
 * - restart: the node at rest is killed with SIGKILL; from spawning the process again until it has
 *   answered METRICS and served a read of an old offset (polled every restartPollMs).
 * - random read open: on the restarted (cold) process, BENCH_SCALE_READS sequential reads of one
 *   record at a random offset of a random topic; each record's value is checked (it carries its
 *   topic and offset).
 *
 * Only the process is cold after the restart: the page cache keeps what the fill wrote (dropping it
 * needs root and hits everyone on a shared machine). Figures only, never pass or fail on time. The
 * node is stopped by PID and the data directory removed at the end, on an error and on
 * SIGINT/SIGTERM; every phase is bounded by BENCH_SCALE_DEADLINE_MS overall.
 */
import fs from 'node:fs';
import path from 'node:path';
import { LocalCluster, waitForPort } from '../../infra/local/launcher.js';
import { WalrusClient } from '../../node/client/walrus-client.js';

type Figures = Record<string, number | string | boolean>;

export const scaleTargets = {
  scaleRssMB: '<= 200',
  scaleRestartMs: '<= 2000',
  scaleRandomReadP99Ms: '<= 5',
} as const;

const bytesPerGB = 1e9;
const bytesPerMB = 1024 * 1024;
/** Topics created at once (each is one metadata Raft commit). */
const createInFlight = 64;
const metricsSampleCount = 200;
const restartPollMs = 5;
const restartTimeoutMs = 300_000;
const rssSampleMs = 250;
const settleWaitMsMax = 600_000;
const settlePollMs = 600;
/** Free disk space the fill needs beyond its data: preallocated zeros ahead of each segment, indexes. */
const diskSlackFactor = 1.5;

interface Knobs {
  dataGB: number;
  topicCount: number;
  recordBytes: number;
  batchRecords: number;
  connections: number;
  inFlight: number;
  readCount: number;
  fsync: string;
  segmentEntries: string | undefined;
  deadlineMs: number;
}

function envNumber(name: string, fallback: number): number {
  const text = process.env[name];
  if (text === undefined || text === '') return fallback;
  const value = Number(text);
  if (!Number.isFinite(value) || value <= 0)
    throw new Error(`${name} must be a positive number, got '${text}'`);
  return value;
}

function readKnobs(): Knobs {
  const knobs: Knobs = {
    dataGB: envNumber('BENCH_SCALE_GB', 10),
    topicCount: Math.round(envNumber('BENCH_SCALE_TOPICS', 10_000)),
    recordBytes: Math.round(envNumber('BENCH_SCALE_RECORD_BYTES', 1024)),
    batchRecords: Math.round(envNumber('BENCH_SCALE_BATCH_RECORDS', 1000)),
    connections: Math.round(envNumber('BENCH_SCALE_CONNECTIONS', 4)),
    inFlight: Math.round(envNumber('BENCH_SCALE_IN_FLIGHT', 4)),
    readCount: Math.round(envNumber('BENCH_SCALE_READS', 1000)),
    fsync: process.env['BENCH_SCALE_FSYNC'] ?? 'always',
    segmentEntries: process.env['BENCH_SCALE_SEGMENT_ENTRIES'],
    deadlineMs: envNumber('BENCH_SCALE_DEADLINE_MS', 3_600_000),
  };
  if (knobs.recordBytes < 16)
    throw new Error('BENCH_SCALE_RECORD_BYTES must be at least 16 (topic and offset stamp)');
  return knobs;
}

function percentile(sorted: readonly number[], p: number): number {
  if (sorted.length === 0) return Number.NaN;
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;
}

function round(value: number, digits = 2): number {
  return Number(value.toFixed(digits));
}

function topicName(index: number): string {
  return `scale-${String(index).padStart(5, '0')}`;
}

/** VmRSS of a process in MB, from /proc (NaN when it is gone). */
function rssMB(pid: number): number {
  try {
    const status = fs.readFileSync(`/proc/${pid}/status`, 'utf8');
    const match = /^VmRSS:\s+(\d+) kB/m.exec(status);
    return match === null ? Number.NaN : Number(match[1]) / 1024;
  } catch {
    return Number.NaN;
  }
}

/** Bytes the files under `dir` take on disk (allocated blocks: preallocated zeros count). */
function diskUsageBytes(dir: string): number {
  let total = 0;
  const walk = (at: string): void => {
    for (const entry of fs.readdirSync(at, { withFileTypes: true })) {
      const full = path.join(at, entry.name);
      if (entry.isDirectory()) walk(full);
      else if (entry.isFile()) total += fs.statSync(full).blocks * 512;
    }
  };
  walk(dir);
  return total;
}

function openFdCount(pid: number): number {
  try {
    return fs.readdirSync(`/proc/${pid}/fd`).length;
  } catch {
    return Number.NaN;
  }
}

/** Samples a process's RSS every rssSampleMs until stopped; returns the peak. */
function rssSampler(pid: number): { stop(): number } {
  let peak = rssMB(pid);
  const timer = setInterval(() => {
    const now = rssMB(pid);
    if (now > peak) peak = now;
  }, rssSampleMs);
  return {
    stop() {
      clearInterval(timer);
      return Math.max(peak, rssMB(pid));
    },
  };
}

/** A value whose first 16 bytes say which record it is: reads check what they get. */
function stampedValue(base: Buffer, topicIndex: number, offset: number): Buffer {
  const value = Buffer.allocUnsafe(base.length);
  base.copy(value);
  value.writeUInt32LE(topicIndex, 0);
  value.writeDoubleLE(offset, 4);
  value.writeUInt32LE(0x5ca1e, 12);
  return value;
}

function checkValue(value: Uint8Array, recordBytes: number, topicIndex: number, offset: number): void {
  const buf = Buffer.from(value.buffer, value.byteOffset, value.byteLength);
  if (
    buf.length !== recordBytes ||
    buf.readUInt32LE(0) !== topicIndex ||
    buf.readDoubleLE(4) !== offset ||
    buf.readUInt32LE(12) !== 0x5ca1e
  ) {
    throw new Error(`record ${offset} of ${topicName(topicIndex)} came back wrong`);
  }
}

class Deadline {
  private readonly atMs: number;
  constructor(ms: number) {
    this.atMs = Date.now() + ms;
  }
  check(phase: string): void {
    if (Date.now() > this.atMs)
      throw new Error(`the scale bench ran past BENCH_SCALE_DEADLINE_MS in ${phase}`);
  }
}

/** Runs `worker` for each index in [0, count) with `parallel` at a time. */
async function inParallel(
  count: number,
  parallel: number,
  worker: (i: number) => Promise<void>,
): Promise<void> {
  let next = 0;
  const lanes = Array.from({ length: Math.min(parallel, count) }, async () => {
    while (next < count) await worker(next++);
  });
  await Promise.all(lanes);
}

async function metricsLatencies(client: WalrusClient, count: number): Promise<number[]> {
  const out: number[] = [];
  for (let i = 0; i < count; i++) {
    const t0 = performance.now();
    await client.metrics();
    out.push(performance.now() - t0);
  }
  return out.sort((a, b) => a - b);
}

export async function runScaleBench(opts: { dir: string }): Promise<Figures> {
  const knobs = readKnobs();
  const deadline = new Deadline(knobs.deadlineMs);
  const recordsPerTopic = Math.max(
    1,
    Math.round((knobs.dataGB * bytesPerGB) / knobs.topicCount / knobs.recordBytes),
  );
  const dataBytes = recordsPerTopic * knobs.topicCount * knobs.recordBytes;
  const free = fs.statfsSync(opts.dir);
  const freeBytes = free.bavail * free.bsize;
  if (freeBytes < dataBytes * diskSlackFactor) {
    throw new Error(
      `the scale bench needs ${(dataBytes * diskSlackFactor) / bytesPerGB} GB free in ${opts.dir}, ` +
        `there are ${(freeBytes / bytesPerGB).toFixed(1)} GB (set BENCH_DIR or a smaller BENCH_SCALE_GB)`,
    );
  }
  console.log(
    `# ${knobs.topicCount} topics x ${recordsPerTopic} records x ${knobs.recordBytes} B = ` +
      `${(dataBytes / bytesPerGB).toFixed(2)} GB, fsync ${knobs.fsync}`,
  );
  const env: Record<string, string> = { WALRUS_LOG_LEVEL: 'warn', WALRUS_FSYNC: knobs.fsync };
  if (knobs.segmentEntries !== undefined) env['WALRUS_MAX_SEGMENT_ENTRIES'] = knobs.segmentEntries;
  const cluster = await LocalCluster.start({ nodeCount: 1, dataDir: opts.dir, env });
  const clients: WalrusClient[] = [];
  const newClient = (): WalrusClient => {
    const client = new WalrusClient({ nodes: cluster.clientAddrs, requestTimeoutMs: 120_000 });
    clients.push(client);
    return client;
  };
  const onSignal = (signal: NodeJS.Signals): void => {
    console.error(`# ${signal}: stopping the node and removing ${opts.dir}`);
    void cluster.stop().finally(() => {
      fs.rmSync(opts.dir, { recursive: true, force: true });
      process.exit(130);
    });
  };
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  const pid = (): number => cluster.nodes[0]!.process!.pid!;
  try {
    const lanes = Array.from({ length: knobs.connections }, newClient);
    const admin = lanes[0]!;

    // Topics.
    const createStart = performance.now();
    await inParallel(knobs.topicCount, createInFlight, async (i) => {
      if (i % 1000 === 0) deadline.check('topic creation');
      await lanes[i % lanes.length]!.createTopic(topicName(i));
    });
    const createMs = performance.now() - createStart;
    console.log(`# ${knobs.topicCount} topics created in ${Math.round(createMs)} ms`);

    // Fill: batch b of every topic before batch b + 1 of any.
    const base = Buffer.alloc(knobs.recordBytes);
    for (let i = 0; i < base.length; i++) base[i] = (i * 131 + 7) & 0xff;
    const batchesPerTopic = Math.ceil(recordsPerTopic / knobs.batchRecords);
    const taskCount = batchesPerTopic * knobs.topicCount;
    const fillRss = rssSampler(pid());
    const fillStart = performance.now();
    let appendedBytes = 0;
    let lastReportMs = fillStart;
    await inParallel(taskCount, knobs.connections * knobs.inFlight, async (task) => {
      const topicIndex = task % knobs.topicCount;
      const batch = Math.floor(task / knobs.topicCount);
      const first = batch * knobs.batchRecords;
      const count = Math.min(knobs.batchRecords, recordsPerTopic - first);
      const records = Array.from({ length: count }, (_, i) => ({
        value: stampedValue(base, topicIndex, first + i),
      }));
      const result = await lanes[task % lanes.length]!.append(topicName(topicIndex), records);
      if (result.firstOffset !== first) {
        throw new Error(
          `${topicName(topicIndex)}: batch ${batch} got offset ${result.firstOffset}, not ${first}`,
        );
      }
      appendedBytes += count * knobs.recordBytes;
      const now = performance.now();
      if (now - lastReportMs > 10_000) {
        lastReportMs = now;
        deadline.check('fill');
        console.log(
          `#   ${(appendedBytes / bytesPerGB).toFixed(2)} GB in ${Math.round((now - fillStart) / 1000)} s, ` +
            `node RSS ${Math.round(rssMB(pid()))} MB`,
        );
      }
    });
    const fillMs = performance.now() - fillStart;
    const rssFillPeakMB = fillRss.stop();
    const rssFilledMB = rssMB(pid());
    const fdsFilled = openFdCount(pid());
    const metricsFilled = await metricsLatencies(admin, metricsSampleCount);
    console.log(`# filled in ${Math.round(fillMs)} ms; RSS ${Math.round(rssFilledMB)} MB, ${fdsFilled} fds`);

    // The node at rest: wait until it has settled every quiet segment (index checkpoint to the end,
    // preallocated zeros cut: METRICS storage.segmentsUnsettled is 0 in two readings a while apart).
    const settleStart = performance.now();
    let settledReadings = 0;
    while (settledReadings < 2) {
      if (performance.now() - settleStart > settleWaitMsMax) {
        throw new Error(`the node did not settle its segments within ${settleWaitMsMax} ms`);
      }
      const storage = ((await admin.metrics()) as { storage?: { segmentsUnsettled?: number } }).storage;
      // A node without the figure (before settling existed) is taken as it is.
      const unsettled = storage?.segmentsUnsettled ?? 0;
      settledReadings = unsettled === 0 ? settledReadings + 1 : 0;
      await new Promise((r) => setTimeout(r, settlePollMs));
    }
    const settleMs = performance.now() - settleStart;
    const rssSettledMB = rssMB(pid());
    const diskBytes = diskUsageBytes(opts.dir);
    console.log(`# settled in ${Math.round(settleMs)} ms; RSS ${Math.round(rssSettledMB)} MB`);

    // kill -9, then time the restart until METRICS and a read of an old offset are served.
    await Promise.all(clients.splice(0).map((c) => c.close()));
    deadline.check('restart');
    await cluster.kill(0, 'SIGKILL');
    const restartStart = performance.now();
    // The launcher gives up waiting after 15 s, but the node keeps starting (and is stopped by PID
    // at the end): a slow restart is a figure here, not an error.
    const started = cluster.startNode(0).then(
      () => null,
      (error: unknown) => error,
    );
    const exited = (): boolean => {
      const child = cluster.nodes[0]!.process;
      return child === null || child.exitCode !== null || child.signalCode !== null;
    };
    // The port is polled with plain connects first: a client that failed to connect backs off (50 ms
    // doubling to 2 s), which counted up to 2 s of its own wait into the restart figure.
    const clientPort = Number(cluster.clientAddrs[0]!.split(':').pop());
    await waitForPort(clientPort, restartTimeoutMs, () => !exited(), restartPollMs);
    const probe = new WalrusClient({
      nodes: cluster.clientAddrs,
      retryCountMax: 0,
      connectTimeoutMs: 1_000,
      requestTimeoutMs: 10_000,
    });
    let restartMetricsMs = Number.NaN;
    for (;;) {
      try {
        await probe.metrics();
        restartMetricsMs = performance.now() - restartStart;
        break;
      } catch {
        if (exited()) throw new Error(`the node exited while restarting:\n${cluster.nodes[0]!.logTail}`);
        if (performance.now() - restartStart > restartTimeoutMs)
          throw new Error('the node did not restart in time');
        await new Promise((r) => setTimeout(r, restartPollMs));
      }
    }
    const oldTopic = Math.floor(Math.random() * knobs.topicCount);
    for (;;) {
      try {
        const reply = await probe.read(topicName(oldTopic), 0, { recordCountMax: 1 });
        const record = reply.records[0];
        if (record !== undefined) {
          checkValue(record.value, knobs.recordBytes, oldTopic, 0);
          break;
        }
      } catch (error) {
        if (performance.now() - restartStart > restartTimeoutMs) throw error;
      }
      await new Promise((r) => setTimeout(r, restartPollMs));
    }
    const restartMs = performance.now() - restartStart;
    await probe.close();
    await started;
    const rssRestartedMB = rssMB(pid());
    const fdsRestarted = openFdCount(pid());
    console.log(`# restarted in ${Math.round(restartMs)} ms (METRICS at ${Math.round(restartMetricsMs)} ms)`);

    // Random reads on the cold process, one at a time, with METRICS calls among them.
    const reader = newClient();
    const readMs: number[] = [];
    const metricsColdMs: number[] = [];
    const metricsEvery = Math.max(1, Math.floor(knobs.readCount / metricsSampleCount));
    for (let i = 0; i < knobs.readCount; i++) {
      if (i % 100 === 0) deadline.check('random reads');
      const topicIndex = Math.floor(Math.random() * knobs.topicCount);
      const offset = Math.floor(Math.random() * recordsPerTopic);
      const t0 = performance.now();
      const reply = await reader.read(topicName(topicIndex), offset, { recordCountMax: 1 });
      readMs.push(performance.now() - t0);
      const record = reply.records[0];
      if (reply.records.length !== 1 || record === undefined || record.offset !== offset) {
        throw new Error(
          `read of ${topicName(topicIndex)} at ${offset} returned ${reply.records.length} records`,
        );
      }
      checkValue(record.value, knobs.recordBytes, topicIndex, offset);
      if (i % metricsEvery === 0) {
        const m0 = performance.now();
        await reader.metrics();
        metricsColdMs.push(performance.now() - m0);
      }
    }
    readMs.sort((a, b) => a - b);
    metricsColdMs.sort((a, b) => a - b);
    const rssReadMB = rssMB(pid());
    const metricsAll = [...metricsFilled, ...metricsColdMs].sort((a, b) => a - b);

    return {
      scaleDataGB: round(dataBytes / bytesPerGB),
      scaleTopics: knobs.topicCount,
      scaleRecordsPerTopic: recordsPerTopic,
      // The node holding the data, at rest: what grows with the data shows here. The fill's own
      // buffers (appends in flight, the heap they grew) are in scaleRssFillPeakMB and …FilledMB.
      scaleRssMB: Math.round(Math.max(rssRestartedMB, rssReadMB)),
      scaleRestartMs: Math.round(restartMs),
      scaleRandomReadP50Ms: round(percentile(readMs, 50), 3),
      scaleRandomReadP99Ms: round(percentile(readMs, 99), 3),
      scaleRandomReadMaxMs: round(readMs[readMs.length - 1] ?? Number.NaN, 3),
      scaleMetricsMsP50: round(percentile(metricsAll, 50), 3),
      scaleMetricsMsP99: round(percentile(metricsAll, 99), 3),
      scaleMetricsFilledMsP99: round(percentile(metricsFilled, 99), 3),
      scaleMetricsColdMsP99: round(percentile(metricsColdMs, 99), 3),
      scaleRestartMetricsMs: Math.round(restartMetricsMs),
      scaleRssFillPeakMB: Math.round(rssFillPeakMB),
      scaleRssFilledMB: Math.round(rssFilledMB),
      scaleRssSettledMB: Math.round(rssSettledMB),
      scaleSettleMs: Math.round(settleMs),
      scaleDiskGB: round(diskBytes / bytesPerGB),
      scaleRssRestartedMB: Math.round(rssRestartedMB),
      scaleRssAfterReadsMB: Math.round(rssReadMB),
      scaleOpenFdsFilled: fdsFilled,
      scaleOpenFdsRestarted: fdsRestarted,
      scaleCreateTopicsMs: Math.round(createMs),
      scaleFillMs: Math.round(fillMs),
      scaleFillMBPerSec: round(dataBytes / bytesPerMB / (fillMs / 1000), 1),
      scaleFsync: knobs.fsync,
    };
  } finally {
    process.removeListener('SIGINT', onSignal);
    process.removeListener('SIGTERM', onSignal);
    await Promise.all(clients.map((c) => c.close()));
    await cluster.stop();
  }
}
