/**
 * binaryAppendsPerSec: a real walrus-node (fsync `always`) over loopback, binary protocol,
 * 128-byte single-record appends with 256 in flight spread over 4 pipelined connections (one
 * WalrusClient each). Also reports latency percentiles and the node's group-commit size.
 *
 * Its ceiling is the bare framed echo of the same shape (framed-echo.ts): `runBinaryBench` runs
 * both, in slices that alternate (the machine is shared and its load drifts; alternating puts the
 * drift on both sides), and reports `framedEchoPerSec` and `binaryRatio` = binary ÷ echo.
 *
 * `node dist/test/bench/binary-bench.js` prints one JSON line (BENCH_DURATION_MS per side).
 * Profiles: BENCH_NODE_CPU_PROF_DIR=dir makes the node write a CPU profile there when it stops;
 * `node --cpu-prof dist/test/bench/binary-bench.js` profiles the client side (and the echo client).
 */
import path from 'node:path';
import { WalrusClient } from '../../node/client/walrus-client.js';
import { LocalCluster } from '../../infra/local/launcher.js';
import { FramedEcho, framedEchoShape } from './framed-echo.js';
import { processCpuMs, selfCpuMs } from './process-cpu.js';

const inFlight = framedEchoShape.inFlight;
/**
 * The 256 requests in flight are spread over this many connections (clients): with one connection
 * the client and the node work in lockstep (each idles while the other handles the same batch of
 * 256); several lanes let one batch be fsync'd while another is answered.
 */
const connectionCount = Number(process.env['BENCH_BINARY_CONNECTIONS'] ?? framedEchoShape.connectionCount);
const recordSizeBytes = framedEchoShape.messageSizeBytes;
/** Each side runs in slices of this length, alternating with the other. */
const sliceMs = 500;
/** Latencies kept for the percentiles (the rest are not recorded). */
const latencyCountMax = 2_000_000;

function percentile(sorted: Float64Array, p: number): number {
  if (sorted.length === 0) return 0;
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;
}

interface StorageMetrics {
  storage: { groupCommitCount: number; recordCount: number };
}

/** 256 workers, each awaiting one append at a time; they run only during a slice. */
export class BinaryAppends {
  private running = false;
  private stopping = false;
  private count = 0;
  /** Whether this slice's latencies are kept. */
  private recording = false;
  private active = 0;
  private gate: Promise<void> = Promise.resolve();
  private openGate: () => void = () => {};
  private drained: (() => void) | undefined;
  readonly latencies: number[] = [];
  private workers: Promise<void>[] = [];

  private constructor(
    private readonly cluster: LocalCluster,
    private readonly clients: readonly WalrusClient[],
  ) {
    this.closeGate();
  }

  static async start(dir: string): Promise<BinaryAppends> {
    // BENCH_NODE_CPU_PROF_DIR=dir: the node writes a V8 CPU profile there when it stops.
    const profileDir = process.env['BENCH_NODE_CPU_PROF_DIR'];
    const cluster = await LocalCluster.start({
      nodeCount: 1,
      dataDir: dir,
      env: {
        WALRUS_LOG_LEVEL: 'warn',
        ...(profileDir === undefined
          ? {}
          : { NODE_OPTIONS: `--import ${path.join(import.meta.dirname, 'node-cpu-profile.js')}` }),
      },
    });
    const clients = Array.from(
      { length: connectionCount },
      () => new WalrusClient({ nodes: cluster.clientAddrs, inFlightMaxPerConnection: inFlight }),
    );
    const bench = new BinaryAppends(cluster, clients);
    await clients[0]!.createTopic('bench');
    bench.workers = Array.from({ length: inFlight }, (_, i) => bench.worker(clients[i % connectionCount]!));
    return bench;
  }

  /** The node process, for its CPU time. */
  get nodePid(): number | undefined {
    return this.cluster.nodes[0]!.process?.pid ?? undefined;
  }

  metrics(): Promise<StorageMetrics> {
    return this.clients[0]!.metrics() as Promise<StorageMetrics>;
  }

  /** Appends for `ms`; returns the appends completed within it and the time it took. */
  async runSlice(ms: number, record: boolean): Promise<{ count: number; elapsedMs: number }> {
    const before = this.count;
    const t0 = performance.now();
    this.recording = record;
    this.running = true;
    this.openGate();
    await new Promise((r) => setTimeout(r, ms));
    this.running = false;
    this.recording = false;
    const elapsedMs = performance.now() - t0;
    const count = this.count - before;
    this.closeGate();
    await this.drain();
    return { count, elapsedMs };
  }

  async stop(): Promise<void> {
    this.stopping = true;
    this.openGate();
    await Promise.all(this.workers);
    await Promise.all(this.clients.map((c) => c.close()));
    await this.cluster.stop();
  }

  private closeGate(): void {
    this.gate = new Promise((resolve) => {
      this.openGate = resolve;
    });
  }

  private drain(): Promise<void> {
    if (this.active === 0) return Promise.resolve();
    return new Promise((resolve) => {
      this.drained = resolve;
    });
  }

  private async worker(lane: WalrusClient): Promise<void> {
    const records = [{ value: new Uint8Array(recordSizeBytes).fill(0x61) }];
    for (;;) {
      if (!this.running) await this.gate;
      if (this.stopping) return;
      this.active += 1;
      const t0 = performance.now();
      await lane.append('bench', records);
      this.active -= 1;
      if (this.running) {
        this.count += 1;
        if (this.recording && this.latencies.length < latencyCountMax)
          this.latencies.push(performance.now() - t0);
      } else if (this.active === 0 && this.drained !== undefined) {
        const drained = this.drained;
        this.drained = undefined;
        drained();
      }
    }
  }
}

/** Operations, wall time and CPU time (client: this process; server: the other) of some slices. */
class SliceTotals {
  count = 0;
  elapsedMs = 0;
  clientCpuMs = 0;
  serverCpuMs = 0;

  async add(
    serverPid: number | undefined,
    run: () => Promise<{ count: number; elapsedMs: number }>,
  ): Promise<void> {
    const client0 = selfCpuMs();
    const server0 = processCpuMs(serverPid);
    const { count, elapsedMs } = await run();
    this.clientCpuMs += selfCpuMs() - client0;
    this.serverCpuMs += processCpuMs(serverPid) - server0;
    this.count += count;
    this.elapsedMs += elapsedMs;
  }

  perSec(): number {
    return Math.round((this.count / this.elapsedMs) * 1000);
  }

  /** CPU microseconds per operation, client and server together. */
  cpuUsPerOp(): number {
    return Number((((this.clientCpuMs + this.serverCpuMs) * 1000) / this.count).toFixed(2));
  }
}

/**
 * The binary appends and the framed echo, `durationMs` each, in alternating slices after a
 * warm-up of each. The two never run at once. Besides the rates, the CPU time per operation
 * (client and server processes together): on a slow or busy disk, fsync `always` makes the
 * appends wait for the disk rather than the CPU, and this figure still shows the protocol's cost.
 */
export async function runBinaryBench(opts: {
  dir: string;
  durationMs: number;
}): Promise<Record<string, number>> {
  const binary = await BinaryAppends.start(opts.dir);
  let echo: FramedEcho | undefined;
  try {
    echo = await FramedEcho.start();
    const warmUpMs = Math.min(1000, opts.durationMs / 4);
    await binary.runSlice(warmUpMs, false);
    await echo.runSlice(warmUpMs);
    const before = await binary.metrics();
    const b = new SliceTotals();
    const e = new SliceTotals();
    const sliceCount = Math.max(1, Math.round(opts.durationMs / sliceMs));
    for (let i = 0; i < sliceCount; i++) {
      await b.add(binary.nodePid, () => binary.runSlice(opts.durationMs / sliceCount, true));
      const echoSide = echo;
      await e.add(echo.serverPid, () => echoSide.runSlice(opts.durationMs / sliceCount));
    }
    const after = await binary.metrics();
    const sorted = Float64Array.from(binary.latencies).sort();
    const commits = after.storage.groupCommitCount - before.storage.groupCommitCount;
    // Records, not WAL appends: the node joins the appends of one read chunk into one WAL append.
    const records = after.storage.recordCount - before.storage.recordCount;
    const binaryAppendsPerSec = b.perSec();
    const framedEchoPerSec = e.perSec();
    const binaryCpuUsPerAppend = b.cpuUsPerOp();
    const framedEchoCpuUsPerMessage = e.cpuUsPerOp();
    return {
      binaryAppendsPerSec,
      framedEchoPerSec,
      binaryRatio: Number((binaryAppendsPerSec / framedEchoPerSec).toFixed(3)),
      binaryCpuUsPerAppend,
      binaryNodeCpuUsPerAppend: Number(((b.serverCpuMs * 1000) / b.count).toFixed(2)),
      binaryClientCpuUsPerAppend: Number(((b.clientCpuMs * 1000) / b.count).toFixed(2)),
      framedEchoCpuUsPerMessage,
      binaryCpuRatio: Number((framedEchoCpuUsPerMessage / binaryCpuUsPerAppend).toFixed(3)),
      binaryAppendP50Ms: Number(percentile(sorted, 50).toFixed(3)),
      binaryAppendP99Ms: Number(percentile(sorted, 99).toFixed(3)),
      binaryGroupCommitRecordsAvg: commits > 0 ? Number((records / commits).toFixed(1)) : 0,
      binaryConnections: connectionCount,
    };
  } finally {
    await echo?.stop();
    await binary.stop();
  }
}

if (process.argv[1] === import.meta.filename) {
  const fs = await import('node:fs');
  const os = await import('node:os');
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'walrus-binary-bench-'));
  try {
    const figures = await runBinaryBench({
      dir,
      durationMs: Number(process.env['BENCH_DURATION_MS'] ?? 5000),
    });
    console.log(JSON.stringify(figures));
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}
