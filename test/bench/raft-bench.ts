/**
 * Raft benchmarks on a real 3-node loopback cluster (default settings):
 * - failoverMsP50/P99: kill -9 of the Raft leader → the first metadata change committed by the
 *   survivors (a topic created through a surviving node), over ≥ 20 runs; the killed node is
 *   restarted and the cluster re-converges between runs.
 * - metadataCommitsPerSec: topic creations committed per second, 64 in flight through the leader.
 */
import { WalrusClient } from '../../node/client/walrus-client.js';
import { TextClient } from '../../node/client/text-client.js';
import { LocalCluster } from '../../infra/local/launcher.js';
import { nodeMetrics } from '../helpers/node-text.js';

const failoverRuns = Number(process.env['BENCH_FAILOVER_RUNS'] ?? 20);
const commitsInFlight = 64;

async function agreedLeader(cluster: LocalCluster, voterCount: number): Promise<number> {
  const deadline = Date.now() + 30_000;
  while (Date.now() < deadline) {
    const ms = await Promise.all(cluster.nodes.map((n) => nodeMetrics(n.clientAddr, 1000)));
    const leader = ms[0]?.current_leader ?? null;
    if (
      leader !== null &&
      ms.every(
        (m) => m !== null && m.current_leader === leader && m.membership_config.voters.length === voterCount,
      )
    ) {
      return leader;
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error('the cluster did not converge within 30 s');
}

function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] ?? 0;
}

async function measureCommits(cluster: LocalCluster, leader: number, durationMs: number): Promise<number> {
  const addr = cluster.nodes.find((n) => n.spec.nodeId === leader)!.clientAddr;
  const client = new WalrusClient({ nodes: [addr], inFlightMaxPerConnection: commitsInFlight });
  let n = 0;
  let stop = false;
  const t0 = performance.now();
  await Promise.all(
    Array.from({ length: commitsInFlight }, async (_, w) => {
      for (let i = 0; !stop; i++) {
        await client.createTopic(`bench-${w}-${i}`);
        n++;
        if (performance.now() - t0 > durationMs) stop = true;
      }
    }),
  );
  const rate = (n / (performance.now() - t0)) * 1000;
  await client.close();
  return Math.round(rate);
}

async function oneFailover(cluster: LocalCluster, run: number): Promise<number> {
  const leader = await agreedLeader(cluster, 3);
  const index = cluster.nodes.findIndex((n) => n.spec.nodeId === leader);
  const survivors = cluster.nodes.filter((n) => n.spec.nodeId !== leader);
  const t0 = performance.now();
  await cluster.kill(index, 'SIGKILL');
  let elapsed = -1;
  for (let attempt = 0; elapsed < 0; attempt++) {
    const addr = survivors[attempt % survivors.length]!.clientAddr;
    const c = new TextClient(addr, { timeoutMs: 2000 });
    try {
      if ((await c.send(`REGISTER failover-${run}`)) === 'OK') elapsed = performance.now() - t0;
    } catch {
      // no leader yet
    } finally {
      await c.close();
    }
    if (elapsed < 0) await new Promise((r) => setTimeout(r, 10));
    if (performance.now() - t0 > 30_000) throw new Error('no failover within 30 s');
  }
  await cluster.startNode(index);
  return elapsed;
}

export async function runRaftBench(opts: {
  dir: string;
  durationMs?: number;
}): Promise<Record<string, number>> {
  const cluster = await LocalCluster.start({
    nodeCount: 3,
    dataDir: opts.dir,
    env: { WALRUS_LOG_LEVEL: 'warn' },
  });
  try {
    const leader = await agreedLeader(cluster, 3);
    const metadataCommitsPerSec = await measureCommits(cluster, leader, opts.durationMs ?? 5000);
    const times: number[] = [];
    for (let run = 0; run < failoverRuns; run++) times.push(await oneFailover(cluster, run));
    times.sort((a, b) => a - b);
    return {
      failoverRuns: times.length,
      failoverMsP50: Math.round(percentile(times, 50)),
      failoverMsP99: Math.round(percentile(times, 99)),
      failoverMsMax: Math.round(times[times.length - 1] ?? 0),
      metadataCommitsPerSec,
    };
  } finally {
    await cluster.stop();
  }
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const fs = await import('node:fs');
  const os = await import('node:os');
  const path = await import('node:path');
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'walrus-raft-bench-'));
  const figures = await runRaftBench({ dir });
  fs.rmSync(dir, { recursive: true, force: true });
  console.log(JSON.stringify(figures));
}
