/**
 * binaryAppendsPerSec: a real walrus-node (fsync `always`) over loopback, binary protocol,
 * 128-byte single-record appends with 256 in flight on one pipelined connection, measured for
 * durationMs after a warm-up. Also reports latency percentiles and the node's group-commit size.
 */
import { WalrusClient } from '../../node/client/walrus-client.js';
import { LocalCluster } from '../../infra/local/launcher.js';

const inFlight = 256;
/**
 * The 256 requests in flight are spread over this many connections (clients): with one connection
 * the client and the node work in lockstep (each idles while the other handles the same batch of
 * 256); several lanes let one batch be fsync'd while another is answered.
 */
const connectionCount = Number(process.env['BENCH_BINARY_CONNECTIONS'] ?? 4);
const recordSizeBytes = 128;

function percentile(sorted: Float64Array, p: number): number {
  if (sorted.length === 0) return 0;
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;
}

export async function runBinaryBench(opts: {
  dir: string;
  durationMs: number;
}): Promise<Record<string, number>> {
  const cluster = await LocalCluster.start({
    nodeCount: 1,
    dataDir: opts.dir,
    env: { WALRUS_LOG_LEVEL: 'warn' },
  });
  const clients = Array.from(
    { length: connectionCount },
    () => new WalrusClient({ nodes: cluster.clientAddrs, inFlightMaxPerConnection: inFlight }),
  );
  const client = clients[0]!;
  try {
    await client.createTopic('bench');
    const value = new Uint8Array(recordSizeBytes).fill(0x61);
    const records = [{ value }];
    let stop = false;
    let measuring = false;
    let count = 0;
    const latencies: number[] = [];
    const worker = async (lane: WalrusClient): Promise<void> => {
      while (!stop) {
        const t0 = performance.now();
        await lane.append('bench', records);
        if (measuring) {
          count++;
          if (latencies.length < 2_000_000) latencies.push(performance.now() - t0);
        }
      }
    };
    const workers = Array.from({ length: inFlight }, (_, i) => worker(clients[i % connectionCount]!));
    await new Promise((r) => setTimeout(r, Math.min(1000, opts.durationMs / 4)));
    const before = (await client.metrics()) as { storage: { groupCommitCount: number; appendCount: number } };
    measuring = true;
    const t0 = performance.now();
    await new Promise((r) => setTimeout(r, opts.durationMs));
    measuring = false;
    const elapsedMs = performance.now() - t0;
    const measured = count;
    stop = true;
    await Promise.all(workers);
    const after = (await client.metrics()) as { storage: { groupCommitCount: number; appendCount: number } };
    const sorted = Float64Array.from(latencies).sort();
    const commits = after.storage.groupCommitCount - before.storage.groupCommitCount;
    const appends = after.storage.appendCount - before.storage.appendCount;
    return {
      binaryAppendsPerSec: Math.round((measured / elapsedMs) * 1000),
      binaryAppendP50Ms: Number(percentile(sorted, 50).toFixed(3)),
      binaryAppendP99Ms: Number(percentile(sorted, 99).toFixed(3)),
      binaryGroupCommitRecordsAvg: commits > 0 ? Number((appends / commits).toFixed(1)) : 0,
      binaryConnections: connectionCount,
    };
  } finally {
    await Promise.all(clients.map((c) => c.close()));
    await cluster.stop();
  }
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const fs = await import('node:fs');
  const os = await import('node:os');
  const path = await import('node:path');
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'walrus-binary-bench-'));
  const figures = await runBinaryBench({ dir, durationMs: Number(process.env['BENCH_DURATION_MS'] ?? 5000) });
  fs.rmSync(dir, { recursive: true, force: true });
  console.log(JSON.stringify(figures));
}
