/**
 * `npm run bench -- replication`: Walrus-TS segment replication measured side by side with NATS
 * JetStream in one run on one machine, 128-byte records. This file owns the replication figures and
 * how they are taken; test/helpers/nats-cluster.ts owns the nats-server processes.
 *
 * Ours: 3 real walrus-node processes (`--fsync always`), a topic per phase with replication factor 3,
 * every append acknowledged once a quorum of the segment's replicas hold it. Theirs: 3 nats-server
 * processes with routes between them, JetStream on, an R3 file stream per phase (default sync, then
 * `sync_interval: always`: nats-server >= 2.10, Debian trixie's package when the machine's is older,
 * see test/helpers/nats-cluster.ts). Everything listens on 127.0.0.1.
 *
 * Phases (both clusters are up; only one system is under load at any time; each compared phase runs
 * in rounds, ours-theirs then theirs-ours, …, so a drift in the shared machine's load hits both):
 * - pipelined: single-record appends / async publishes, 256 in flight over BENCH_CONNECTIONS
 *   connections to the leader, for BENCH_SECONDS (bounded by a record count) → records/s.
 * - sync: one append / publish at a time → latency p50/p99 in µs. Then the same at equal
 *   durability: 3 more walrus-node processes with `--fsync never` (JetStream's default never
 *   fsyncs an append) against the same JetStream → `syncNoFsyncP50Us`, `syncNoFsyncP50Ratio`.
 * - consume: a topic / stream filled with BENCH_CONSUME_RECORDS in big pipelined batches, then read
 *   from offset 0 / sequence 1 in batches of 10,000 (ours: read by offset; theirs: an ordered pull
 *   consumer) → records/s.
 * - at equal durability: 3 nats-server processes with `sync_interval: always` (an fsync per write,
 *   like ours), pipelined and sync again, alternating with ours → `pipelinedRatioSyncAlways`,
 *   `syncP50RatioSyncAlways`.
 * - segment-leader failover (ours only), BENCH_FAILOVER_RUNS runs: SIGKILL the node leading the
 *   topic's active segment, time from the kill to the first acknowledged append of a writer that
 *   retries every 20 ms through the leader-aware client, bounded by BENCH_FAILOVER_BOUND_MS (a run
 *   that reaches it counts as the bound and as a timeout); then restart the node and wait until the
 *   cluster is whole (3 voters agree on a Raft leader and the topic takes an append) again.
 *
 * Figures only: targets are printed beside them and the bench never fails on them. Every process
 * started here is stopped by PID at the end, on an error, and on SIGINT/SIGTERM.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { createRequire } from 'node:module';
import { spawnSync } from 'node:child_process';
import { connect, DeliverPolicy, type NatsConnection, StorageType } from 'nats';
import { LocalCluster } from '../../infra/local/launcher.js';
import { type AppendOptions, WalrusClient } from '../../node/client/walrus-client.js';
import { WalrusError } from '../../node/protocol/error-codes.js';
import { protocolLimits } from '../../node/protocol/limits.js';
import {
  checkNatsConfig,
  ensureNatsServerWithSyncInterval,
  NatsCluster,
  NatsConfigRejected,
  type NatsServerBinary,
} from '../helpers/nats-cluster.js';
import { nodeMetrics } from '../helpers/node-text.js';

type Figures = Record<string, number | string | boolean>;

// ---- fixed settings -----------------------------------------------------------------------------

const recordSizeBytes = 128;
const nodeCount = 3;
/** Copies of each segment; every append waits for a quorum of them (the default, asked explicitly). */
const replicationFactor = 3;
const quorumAcks = { acks: 'quorum' } as const satisfies AppendOptions;
const inFlightCount = 256;
/** Each pipelined slice first runs this long unmeasured (connections, routes, JIT, stream leader). */
const warmupMs = 500;
const syncWarmupCount = 200;
/** Upper bounds per system and phase, whatever BENCH_SECONDS says. */
const pipelinedRecordCountMax = 5_000_000;
const syncSampleCountMax = 100_000;
/** Filling the consume topic: batches of this many records, this many batches in flight. */
const walrusFillBatchRecordCount = 1_000;
const walrusFillBatchesInFlight = 8;
/** Filling the consume stream: single-message publishes with this many acks outstanding. */
const natsFillInFlight = 1_024;
const fillDurationMaxMs = 900_000;
/** Read batches: the protocol's largest read reply; the JetStream consumer pulls as many. */
const readBatchRecordCount = protocolLimits.batchRecordCountMax;
const readBatchSizeBytes = protocolLimits.batchSizeMaxBytes;
const consumeDurationMaxMs = 300_000;
const failoverRetryIntervalMs = 20;
const failoverAttemptTimeoutMs = 1_000;
const clusterWholeTimeoutMs = 60_000;
/** A 2.10 server takes part in placement only once all three report in (slow under load). */
const jetstreamReadyTimeoutMs = 60_000;
const pollIntervalMs = 50;
/**
 * Pipelined and sync phases run in this many rounds a side, alternating ours-theirs, theirs-ours, …
 * (each round gets BENCH_SECONDS / rounds); consume in fewer, since each round reads everything.
 */
const alternationRoundCount = 4;
const consumeRoundCount = 2;
const metricsTimeoutMs = 1_000;
const natsPublishTimeoutMs = 10_000;

/** Printed beside the figures (here and by run.ts, which lists the same); the bench never fails on them. */
export const replicationTargets: Record<string, string> = {
  pipelinedRatio: '>= 1.5',
  syncP50Ratio: '<= 1.0',
  consumeRatio: '>= 2',
  segmentFailoverMsP99: '<= 5000',
};

// ---- settings from the environment -------------------------------------------------------------

interface Settings {
  readonly quick: boolean;
  /** Measured seconds per system in the pipelined and in the sync phase. */
  readonly benchSeconds: number;
  readonly consumeRecordCount: number;
  readonly failoverRunCount: number;
  readonly failoverBoundMs: number;
  /** Connections (walrus clients / NATS connections) the 256 in-flight requests are spread over. */
  readonly connectionCount: number;
}

function envInt(name: string, fallback: number): number {
  const text = process.env[name];
  if (text === undefined || text === '') return fallback;
  const value = Number(text);
  if (!Number.isSafeInteger(value) || value <= 0)
    throw new Error(`${name} must be a positive integer, got '${text}'`);
  return value;
}

/** BENCH_QUICK=1: a smoke run of a minute or two; any knob set explicitly still wins. */
export function settingsFromEnv(): Settings {
  const quick = process.env['BENCH_QUICK'] === '1';
  return {
    quick,
    benchSeconds: envInt('BENCH_SECONDS', quick ? 2 : 10),
    consumeRecordCount: envInt('BENCH_CONSUME_RECORDS', quick ? 20_000 : 1_000_000),
    failoverRunCount: envInt('BENCH_FAILOVER_RUNS', quick ? 2 : 20),
    failoverBoundMs: envInt('BENCH_FAILOVER_BOUND_MS', quick ? 5_000 : 30_000),
    connectionCount: envInt('BENCH_CONNECTIONS', 4),
  };
}

// ---- small tools --------------------------------------------------------------------------------

const payload = new Uint8Array(recordSizeBytes).fill(0x61);

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** Nearest-rank percentile of ascending values. */
function percentile(sorted: readonly number[], p: number): number {
  if (sorted.length === 0) return Number.NaN;
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))]!;
}

function mean(values: readonly number[]): number {
  return values.length === 0 ? Number.NaN : values.reduce((sum, v) => sum + v, 0) / values.length;
}

function round(value: number, digits = 0): number {
  return Number(value.toFixed(digits));
}

function errorText(error: unknown): string {
  if (error instanceof WalrusError) return `${error.code}: ${error.message}`;
  return error instanceof Error ? error.message : String(error);
}

/** Runs ours and theirs one after the other, `roundCount` times, in the order AB BA AB BA …. */
async function alternate<T>(
  roundCount: number,
  ours: () => Promise<T>,
  theirs: () => Promise<T>,
): Promise<{ ours: T[]; theirs: T[] }> {
  const out: { ours: T[]; theirs: T[] } = { ours: [], theirs: [] };
  for (let r = 0; r < roundCount; r++) {
    if (r % 2 === 0) {
      out.ours.push(await ours());
      out.theirs.push(await theirs());
    } else {
      out.theirs.push(await theirs());
      out.ours.push(await ours());
    }
  }
  return out;
}

interface Slice {
  readonly count: number;
  readonly elapsedMs: number;
  /** CPU of this bench process (the client side) and of the servers over the measured time. */
  readonly clientCpuMs?: number;
  readonly serverCpuMs?: number;
}

/** Clock ticks per second of /proc/<pid>/stat times (USER_HZ; 100 on Linux unless getconf says else). */
const clockTicksPerSec = ((): number => {
  const out = spawnSync('getconf', ['CLK_TCK'], { encoding: 'utf8' });
  const value = Number(out.stdout?.trim());
  return Number.isSafeInteger(value) && value > 0 ? value : 100;
})();

/** User + system CPU of the processes, in ms, from /proc (NaN where /proc cannot tell). */
function processCpuMs(pids: readonly number[]): number {
  let ticks = 0;
  for (const pid of pids) {
    try {
      const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
      // Fields after the parenthesised command name: state is field 3, utime 14, stime 15.
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      ticks += Number(fields[11]) + Number(fields[12]);
    } catch {
      return Number.NaN;
    }
  }
  return (ticks * 1000) / clockTicksPerSec;
}

/** CPU of the measured slices: the client's share of one core in %, and the servers' µs per record. */
function cpuFigures(slices: readonly Slice[]): { clientCpuPct: number; serverCpuUsPerRecord: number } {
  const sum = (pick: (s: Slice) => number): number => slices.reduce((total, s) => total + pick(s), 0);
  const elapsedMs = sum((s) => s.elapsedMs);
  const count = sum((s) => s.count);
  return {
    clientCpuPct: round((sum((s) => s.clientCpuMs ?? Number.NaN) / elapsedMs) * 100),
    serverCpuUsPerRecord: round((sum((s) => s.serverCpuMs ?? Number.NaN) * 1000) / count, 1),
  };
}

function ratePerSec(slices: readonly Slice[]): number {
  const count = slices.reduce((sum, s) => sum + s.count, 0);
  const elapsedMs = slices.reduce((sum, s) => sum + s.elapsedMs, 0);
  return elapsedMs > 0 ? (count / elapsedMs) * 1000 : Number.NaN;
}

/**
 * `inFlightCount` workers, worker i sending on lane i % laneCount, each awaiting one request at a
 * time: warmupMs unmeasured, then counted until durationMs or countMax acknowledgements.
 */
async function pipelinedSlice(
  send: (lane: number) => Promise<unknown>,
  laneCount: number,
  durationMs: number,
  countMax: number,
  serverPids: readonly number[],
): Promise<Slice> {
  let measuring = false;
  let stopping = false;
  let count = 0;
  let failure: unknown = null;
  let endMeasure: () => void = () => {};
  const measureEnded = new Promise<void>((resolve) => {
    endMeasure = resolve;
  });
  const worker = async (lane: number): Promise<void> => {
    while (!stopping) {
      try {
        await send(lane);
      } catch (error) {
        failure ??= error;
        stopping = true;
        endMeasure();
        return;
      }
      if (measuring) {
        count += 1;
        if (count >= countMax) endMeasure();
      }
    }
  };
  const workers = Array.from({ length: inFlightCount }, (_, i) => worker(i % laneCount));
  await Promise.race([sleep(warmupMs), measureEnded]);
  measuring = true;
  const t0 = performance.now();
  const clientCpu0 = process.cpuUsage();
  const serverCpu0Ms = processCpuMs(serverPids);
  const timer = setTimeout(endMeasure, durationMs);
  await measureEnded;
  clearTimeout(timer);
  const elapsedMs = performance.now() - t0;
  const clientCpu = process.cpuUsage(clientCpu0);
  const serverCpuMs = processCpuMs(serverPids) - serverCpu0Ms;
  measuring = false;
  const measured = count;
  stopping = true;
  await Promise.all(workers);
  if (failure !== null) throw failure;
  return { count: measured, elapsedMs, clientCpuMs: (clientCpu.user + clientCpu.system) / 1000, serverCpuMs };
}

/** One request at a time after a warm-up; the latency of each in µs, for durationMs (bounded). */
async function syncLatenciesUs(send: () => Promise<unknown>, durationMs: number): Promise<number[]> {
  for (let i = 0; i < syncWarmupCount; i++) await send();
  const latenciesUs: number[] = [];
  const endMs = performance.now() + durationMs;
  while (latenciesUs.length < syncSampleCountMax && performance.now() < endMs) {
    const t0 = performance.now();
    await send();
    latenciesUs.push((performance.now() - t0) * 1000);
  }
  return latenciesUs;
}

/** `inFlight` workers call `send(count)` with batches of up to batchSize until `total` records are sent. */
async function fill(
  total: number,
  batchSize: number,
  inFlight: number,
  send: (count: number) => Promise<unknown>,
  what: string,
): Promise<number> {
  const t0 = performance.now();
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < total) {
      if (performance.now() - t0 > fillDurationMaxMs) {
        throw new Error(`${what}: filling ${total} records took over ${fillDurationMaxMs} ms`);
      }
      const count = Math.min(batchSize, total - next);
      next += count;
      await send(count);
    }
  };
  await Promise.all(Array.from({ length: inFlight }, () => worker()));
  return performance.now() - t0;
}

// ---- Walrus-TS side -----------------------------------------------------------------------------

/** Creates a topic whose segments have `replicationFactor` copies, and checks the node says so. */
async function createWalrusTopic(client: WalrusClient, topic: string): Promise<void> {
  const { topic: info } = await client.createTopic(topic, { replicationFactor });
  if (info.replicationFactor !== replicationFactor) {
    throw new Error(
      `topic ${topic} has replication factor ${info.replicationFactor}, not ${replicationFactor}`,
    );
  }
}

function walrusClient(
  cluster: LocalCluster,
  extra: Partial<ConstructorParameters<typeof WalrusClient>[0]> = {},
) {
  return new WalrusClient({ nodes: cluster.clientAddrs, inFlightMaxPerConnection: inFlightCount, ...extra });
}

/**
 * Waits (bounded) until every node answers METRICS, all agree on one Raft leader with `nodeCount`
 * voters, and, given a topic, `writer` gets an append to it acknowledged and the topic has no
 * under-replicated segment. Returns the Raft leader. (describeTopic does not say whether a replica
 * has caught up; the failover topic holds only a few records a run, so a restarted node's catch-up
 * is short.)
 */
async function waitClusterWhole(
  cluster: LocalCluster,
  writer: WalrusClient | null,
  topic: string | null,
): Promise<number> {
  const deadline = Date.now() + clusterWholeTimeoutMs;
  let lastProblem = 'no METRICS yet';
  while (Date.now() < deadline) {
    const metrics = await Promise.all(cluster.nodes.map((n) => nodeMetrics(n.clientAddr, metricsTimeoutMs)));
    const leader = metrics[0]?.current_leader ?? null;
    const agreed =
      leader !== null &&
      metrics.every(
        (m) => m !== null && m.current_leader === leader && m.membership_config.voters.length === nodeCount,
      );
    if (agreed && (writer === null || topic === null)) return leader;
    if (agreed && writer !== null && topic !== null) {
      try {
        await writer.append(topic, [{ value: payload }], {
          ...quorumAcks,
          timeoutMs: failoverAttemptTimeoutMs,
        });
        const info = await writer.describeTopic(topic, { timeoutMs: failoverAttemptTimeoutMs });
        if (info.underReplicatedSegmentCount === 0) return leader;
        lastProblem = `${info.underReplicatedSegmentCount} under-replicated segments`;
      } catch (error) {
        lastProblem = `probe append or describe: ${errorText(error)}`;
      }
    } else {
      lastProblem = `nodes disagree: ${metrics.map((m) => (m === null ? 'down' : `${m.id}→${m.current_leader}/${m.membership_config.voters.length}v`)).join(', ')}`;
    }
    await sleep(pollIntervalMs);
  }
  throw new Error(`the cluster was not whole within ${clusterWholeTimeoutMs} ms (${lastProblem})`);
}

async function walrusPipelined(
  cluster: LocalCluster,
  topic: string,
  s: Settings,
  durationMs: number,
  countMax: number,
) {
  const clients = Array.from({ length: s.connectionCount }, () => walrusClient(cluster));
  const records = [{ value: payload }];
  try {
    return await pipelinedSlice(
      (lane) => clients[lane]!.append(topic, records, quorumAcks),
      s.connectionCount,
      durationMs,
      countMax,
      walrusPids(cluster),
    );
  } finally {
    await Promise.all(clients.map((c) => c.close()));
  }
}

async function walrusSync(cluster: LocalCluster, topic: string, durationMs: number): Promise<number[]> {
  const client = walrusClient(cluster);
  const records = [{ value: payload }];
  try {
    return await syncLatenciesUs(() => client.append(topic, records, quorumAcks), durationMs);
  } finally {
    await client.close();
  }
}

async function walrusFill(cluster: LocalCluster, topic: string, recordCount: number): Promise<number> {
  const client = walrusClient(cluster);
  const batch = Array.from({ length: walrusFillBatchRecordCount }, () => ({ value: payload }));
  try {
    const fillMs = await fill(
      recordCount,
      walrusFillBatchRecordCount,
      walrusFillBatchesInFlight,
      (count) => client.append(topic, count === batch.length ? batch : batch.slice(0, count), quorumAcks),
      'walrus',
    );
    const info = await client.describeTopic(topic);
    if (info.endOffset !== recordCount) {
      throw new Error(`walrus topic ${topic} holds ${info.endOffset} records after filling ${recordCount}`);
    }
    return fillMs;
  } finally {
    await client.close();
  }
}

/** Reads the whole topic from offset 0, one batch of up to 10,000 records at a time. */
async function walrusConsume(cluster: LocalCluster, topic: string, recordCount: number): Promise<Slice> {
  const client = walrusClient(cluster);
  try {
    await client.read(topic, 0, { recordCountMax: 1 }); // connection and route, outside the clock
    const t0 = performance.now();
    let offset = 0;
    let count = 0;
    while (offset < recordCount) {
      if (performance.now() - t0 > consumeDurationMaxMs) {
        throw new Error(`walrus consume: ${count} of ${recordCount} records in ${consumeDurationMaxMs} ms`);
      }
      const reply = await client.read(topic, offset, {
        recordCountMax: readBatchRecordCount,
        byteCountMax: readBatchSizeBytes,
      });
      if (reply.records.length === 0) {
        throw new Error(`walrus read at offset ${offset} returned no record (endOffset ${reply.endOffset})`);
      }
      count += reply.records.length;
      offset = reply.nextOffset;
    }
    return { count, elapsedMs: performance.now() - t0 };
  } finally {
    await client.close();
  }
}

interface FailoverOutcome {
  readonly timesMs: number[];
  readonly timeoutCount: number;
  readonly raftLeaderKillCount: number;
  readonly errorCounts: Map<string, number>;
  readonly error: string | null;
}

/** The segment-leader failover runs; a failure to make the cluster whole ends them early (reported). */
async function walrusFailover(
  cluster: LocalCluster,
  topic: string,
  s: Settings,
  log: (line: string) => void,
): Promise<FailoverOutcome> {
  // No client-side retries: the loop below is the writer's retry, every failoverRetryIntervalMs.
  const writer = walrusClient(cluster, {
    requestTimeoutMs: failoverAttemptTimeoutMs,
    connectTimeoutMs: failoverAttemptTimeoutMs,
    retryCountMax: 0,
  });
  const timesMs: number[] = [];
  const errorCounts = new Map<string, number>();
  let timeoutCount = 0;
  let raftLeaderKillCount = 0;
  const records = [{ value: payload }];
  const attemptCountMax = Math.ceil(s.failoverBoundMs / failoverRetryIntervalMs) + 1;
  try {
    for (let run = 0; run < s.failoverRunCount; run++) {
      const raftLeader = await waitClusterWhole(cluster, writer, topic);
      const info = await writer.describeTopic(topic);
      const active = info.segments.find((seg) => !seg.sealed) ?? info.segments[info.segments.length - 1];
      const segmentLeader = active?.leaderNodeId ?? info.leaderNodeId;
      const index = cluster.nodes.findIndex((n) => n.spec.nodeId === segmentLeader);
      if (index < 0)
        throw new Error(`the topic's segment leader ${segmentLeader} is not a node of this cluster`);
      if (segmentLeader === raftLeader) raftLeaderKillCount += 1;
      const t0 = performance.now();
      await cluster.kill(index, 'SIGKILL');
      let ackedMs: number | null = null;
      for (let attempt = 0; attempt < attemptCountMax; attempt++) {
        const remainingMs = s.failoverBoundMs - (performance.now() - t0);
        if (remainingMs <= 0) break;
        try {
          await writer.append(topic, records, {
            ...quorumAcks,
            timeoutMs: Math.min(failoverAttemptTimeoutMs, remainingMs),
          });
          ackedMs = performance.now() - t0;
          break;
        } catch (error) {
          const key = error instanceof WalrusError ? error.code : 'other';
          errorCounts.set(key, (errorCounts.get(key) ?? 0) + 1);
        }
        await sleep(
          Math.min(failoverRetryIntervalMs, Math.max(0, s.failoverBoundMs - (performance.now() - t0))),
        );
      }
      if (ackedMs === null) timeoutCount += 1;
      timesMs.push(ackedMs ?? s.failoverBoundMs);
      log(
        `#   failover run ${run + 1}/${s.failoverRunCount}: killed node ${segmentLeader}` +
          `${segmentLeader === raftLeader ? ' (also the Raft leader)' : ''}, leading segment ` +
          `${active?.id} (replicas ${active?.replicas.join(',')}, epoch ${active?.epoch}, ` +
          `${info.underReplicatedSegmentCount} under-replicated): ` +
          (ackedMs === null
            ? `no ack within the ${s.failoverBoundMs} ms bound`
            : `first ack after ${round(ackedMs)} ms`),
      );
      await cluster.startNode(index);
    }
    await waitClusterWhole(cluster, writer, topic);
    return { timesMs, timeoutCount, raftLeaderKillCount, errorCounts, error: null };
  } catch (error) {
    return { timesMs, timeoutCount, raftLeaderKillCount, errorCounts, error: errorText(error) };
  } finally {
    await writer.close();
  }
}

// ---- NATS JetStream side ------------------------------------------------------------------------

function natsConnect(url: string): Promise<NatsConnection> {
  return connect({ servers: [url], noRandomize: true, reconnect: false, name: 'walrus-replication-bench' });
}

/**
 * Creates an R3 file stream (retrying, bounded, while JetStream elects its meta leader) and waits
 * until it has a leader and every replica is current. Returns the leader's client URL: the bench's
 * connections go there, as ours go to the segment leader.
 */
async function natsCreateStream(cluster: NatsCluster, stream: string, subject: string): Promise<string> {
  const nc = await connect({
    servers: cluster.clientUrls,
    reconnect: false,
    name: 'walrus-replication-bench-admin',
  });
  try {
    const deadline = Date.now() + jetstreamReadyTimeoutMs;
    let lastProblem = '';
    for (;;) {
      try {
        const jsm = await nc.jetstreamManager();
        await jsm.streams.add({
          name: stream,
          subjects: [subject],
          storage: StorageType.File,
          num_replicas: 3,
        });
        break;
      } catch (error) {
        lastProblem = errorText(error);
      }
      if (Date.now() > deadline) throw new Error(`JetStream stream ${stream} not created: ${lastProblem}`);
      await sleep(pollIntervalMs);
    }
    const jsm = await nc.jetstreamManager();
    for (;;) {
      const info = await jsm.streams.info(stream);
      const leader = info.cluster?.leader;
      const replicas = info.cluster?.replicas ?? [];
      const server = cluster.servers.find((s) => s.name === leader);
      if (server !== undefined && replicas.length === 2 && replicas.every((r) => r.current && !r.offline)) {
        return server.clientUrl;
      }
      if (Date.now() > deadline)
        throw new Error(`JetStream stream ${stream} has no leader with current replicas`);
      await sleep(pollIntervalMs);
    }
  } finally {
    await nc.close();
  }
}

async function natsPipelined(
  cluster: NatsCluster,
  leaderUrl: string,
  subject: string,
  s: Settings,
  durationMs: number,
  countMax: number,
) {
  const connections = await Promise.all(
    Array.from({ length: s.connectionCount }, () => natsConnect(leaderUrl)),
  );
  const streams = connections.map((nc) => nc.jetstream({ timeout: natsPublishTimeoutMs }));
  try {
    return await pipelinedSlice(
      (lane) => streams[lane]!.publish(subject, payload),
      s.connectionCount,
      durationMs,
      countMax,
      cluster.pids(),
    );
  } finally {
    await Promise.all(connections.map((nc) => nc.close()));
  }
}

async function natsSync(leaderUrl: string, subject: string, durationMs: number): Promise<number[]> {
  const nc = await natsConnect(leaderUrl);
  const js = nc.jetstream({ timeout: natsPublishTimeoutMs });
  try {
    return await syncLatenciesUs(() => js.publish(subject, payload), durationMs);
  } finally {
    await nc.close();
  }
}

async function natsFill(
  leaderUrl: string,
  stream: string,
  subject: string,
  s: Settings,
  recordCount: number,
) {
  const connections = await Promise.all(
    Array.from({ length: s.connectionCount }, () => natsConnect(leaderUrl)),
  );
  const streams = connections.map((nc) => nc.jetstream({ timeout: natsPublishTimeoutMs }));
  let lane = 0;
  try {
    const fillMs = await fill(
      recordCount,
      1,
      natsFillInFlight,
      () => streams[lane++ % streams.length]!.publish(subject, payload),
      'jetstream',
    );
    const info = await (await connections[0]!.jetstreamManager()).streams.info(stream);
    if (info.state.messages !== recordCount) {
      throw new Error(
        `JetStream stream ${stream} holds ${info.state.messages} messages after filling ${recordCount}`,
      );
    }
    return fillMs;
  } finally {
    await Promise.all(connections.map((nc) => nc.close()));
  }
}

/** Reads the whole stream from sequence 1 with an ordered pull consumer, 10,000 messages a pull. */
async function natsConsume(leaderUrl: string, stream: string, recordCount: number): Promise<Slice> {
  const nc = await natsConnect(leaderUrl);
  try {
    const consumer = await nc
      .jetstream()
      .consumers.get(stream, { deliver_policy: DeliverPolicy.StartSequence, opt_start_seq: 1 });
    const t0 = performance.now();
    const messages = await consumer.consume({ max_messages: readBatchRecordCount });
    const timer = setTimeout(() => void messages.close(), consumeDurationMaxMs);
    let count = 0;
    try {
      for await (const message of messages) {
        count += 1;
        if (message.seq !== count)
          throw new Error(`JetStream consumer: seq ${message.seq} where ${count} was due`);
        if (count >= recordCount) break;
      }
    } finally {
      clearTimeout(timer);
    }
    const elapsedMs = performance.now() - t0;
    await messages.close();
    if (count < recordCount) {
      throw new Error(
        `JetStream consume: ${count} of ${recordCount} messages within ${consumeDurationMaxMs} ms`,
      );
    }
    return { count, elapsedMs };
  } finally {
    await nc.close();
  }
}

/** Whether this nats-server accepts `sync_interval: always`, asked of the binary with `-t`. */
function syncAlwaysSupport(
  binary: NatsServerBinary,
  dir: string,
): { supported: true } | { supported: false; why: string } {
  fs.mkdirSync(dir, { recursive: true });
  const probe = path.join(dir, 'sync-always-probe.conf');
  fs.writeFileSync(
    probe,
    `listen: "127.0.0.1:0"\njetstream {\n  store_dir: "${path.join(dir, 'store')}"\n  sync_interval: always\n}\n`,
  );
  const check = checkNatsConfig(binary, probe);
  if (check.accepted) return { supported: true };
  if (/unknown field "?sync_interval"?/.test(check.message)) {
    return {
      supported: false,
      why: `unsupported by nats-server ${binary.version} (sync_interval exists from 2.10.0)`,
    };
  }
  return { supported: false, why: `rejected by nats-server ${binary.version}: ${check.message}` };
}

// ---- the run ------------------------------------------------------------------------------------

/** Kills every tracked process by PID at once and removes the data, on SIGINT/SIGTERM. */
function installSignalCleanup(pids: () => number[], dir: string): () => void {
  const onSignal = (signal: NodeJS.Signals): void => {
    const killed = pids();
    for (const pid of killed) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        // already gone
      }
    }
    fs.rmSync(dir, { recursive: true, force: true });
    console.error(
      `# ${signal}: killed ${killed.length} bench processes by PID (${killed.join(', ')}), removed ${dir}`,
    );
    process.exit(128 + (os.constants.signals[signal] ?? 0));
  };
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  return () => {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
  };
}

/**
 * PIDs of this process's children, from /proc: the servers a cluster is still starting are not
 * tracked by their cluster object yet, but they are children of this process all the same.
 */
function childPids(): number[] {
  const out: number[] = [];
  try {
    for (const entry of fs.readdirSync('/proc')) {
      if (!/^\d+$/.test(entry)) continue;
      try {
        const stat = fs.readFileSync(`/proc/${entry}/stat`, 'utf8');
        // Fields after the parenthesised command name: state, then the parent's PID.
        const parentPid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
        if (parentPid === process.pid) out.push(Number(entry));
      } catch {
        // exited meanwhile
      }
    }
  } catch {
    // no /proc: the tracked PIDs alone
  }
  return out;
}

function walrusPids(cluster: LocalCluster | null): number[] {
  return (cluster?.nodes ?? []).flatMap((n) =>
    n.process?.pid !== undefined && n.process.exitCode === null && n.process.signalCode === null
      ? [n.process.pid]
      : [],
  );
}

function natsClientVersion(): string {
  try {
    return (createRequire(import.meta.url)('nats/package.json') as { version: string }).version;
  } catch {
    return 'unknown';
  }
}

export async function runReplicationBench(opts: { dir: string }): Promise<Figures> {
  const s = settingsFromEnv();
  const log = (line: string): void => console.log(line);
  const sliceMs = (s.benchSeconds * 1000) / alternationRoundCount;
  const sliceCountMax = Math.ceil(pipelinedRecordCountMax / alternationRoundCount);
  const loadAvg1mStart = os.loadavg()[0]!;
  const running: { walrus: LocalCluster | null; nats: NatsCluster | null } = { walrus: null, nats: null };
  const uninstall = installSignalCleanup(
    () => [...new Set([...walrusPids(running.walrus), ...(running.nats?.pids() ?? []), ...childPids()])],
    opts.dir,
  );
  const topics = { append: 'repl-append', consume: 'repl-consume', failover: 'repl-failover' };
  const natsStreams = {
    append: { stream: 'REPL_APPEND', subject: 'repl.append' },
    consume: { stream: 'REPL_CONSUME', subject: 'repl.consume' },
  };
  try {
    const binary = await ensureNatsServerWithSyncInterval(log);
    const syncAlways = syncAlwaysSupport(binary, path.join(opts.dir, 'nats-probe'));
    log(
      `# ${os.cpus().length} cores; ${s.benchSeconds} s a phase, ${s.consumeRecordCount} records to consume, ` +
        `${s.failoverRunCount} failover runs bounded at ${s.failoverBoundMs} ms${s.quick ? ' (quick mode)' : ''}`,
    );
    log(`# nats-server ${binary.version} (${binary.path}), nats client ${natsClientVersion()}`);

    log('# starting 3 walrus-node processes (--fsync always)');
    running.walrus = await LocalCluster.start({
      nodeCount,
      dataDir: path.join(opts.dir, 'walrus'),
      env: { WALRUS_LOG_LEVEL: 'warn' },
      extraArgs: ['--fsync', 'always'],
    });
    const walrus = running.walrus;
    await waitClusterWhole(walrus, null, null);
    const admin = walrusClient(walrus);
    try {
      for (const topic of Object.values(topics)) await createWalrusTopic(admin, topic);
    } finally {
      await admin.close();
    }

    log('# starting 3 nats-server processes (JetStream, R3 file streams)');
    running.nats = await NatsCluster.start({
      binary,
      dir: path.join(opts.dir, 'nats'),
      serverCount: nodeCount,
    });
    const nats = running.nats;
    const appendLeaderUrl = await natsCreateStream(
      nats,
      natsStreams.append.stream,
      natsStreams.append.subject,
    );
    const consumeLeaderUrl = await natsCreateStream(
      nats,
      natsStreams.consume.stream,
      natsStreams.consume.subject,
    );
    const subject = natsStreams.append.subject;

    log(
      `# pipelined: ${inFlightCount} in flight over ${s.connectionCount} connections, ` +
        `${alternationRoundCount} rounds of ${round(sliceMs)} ms a side`,
    );
    const pipe = await alternate(
      alternationRoundCount,
      () => walrusPipelined(walrus, topics.append, s, sliceMs, sliceCountMax),
      () => natsPipelined(nats, appendLeaderUrl, subject, s, sliceMs, sliceCountMax),
    );

    log(`# sync: one at a time, ${alternationRoundCount} rounds of ${round(sliceMs)} ms a side`);
    const sync = await alternate(
      alternationRoundCount,
      () => walrusSync(walrus, topics.append, sliceMs),
      () => natsSync(appendLeaderUrl, subject, sliceMs),
    );
    const walrusSyncUs = sync.ours.flat().sort((a, b) => a - b);
    const natsSyncUs = sync.theirs.flat().sort((a, b) => a - b);

    // The same phase at JetStream's own durability: its default never fsyncs an append, and the
    // nats-server here cannot be told to (sync_interval needs 2.10). Ours with `--fsync never`
    // (the OS writes back; seal and close still fdatasync) shows what our path costs apart from
    // the fdatasync that only our side pays above.
    log('# sync at equal durability: 3 more walrus-node processes with --fsync never');
    const noFsync = await LocalCluster.start({
      nodeCount,
      dataDir: path.join(opts.dir, 'walrus-fsync-never'),
      env: { WALRUS_LOG_LEVEL: 'warn' },
      extraArgs: ['--fsync', 'never'],
    });
    let syncNoFsync: { ours: number[][]; theirs: number[][] };
    try {
      await waitClusterWhole(noFsync, null, null);
      const noFsyncAdmin = walrusClient(noFsync);
      try {
        await createWalrusTopic(noFsyncAdmin, topics.append);
      } finally {
        await noFsyncAdmin.close();
      }
      syncNoFsync = await alternate(
        alternationRoundCount,
        () => walrusSync(noFsync, topics.append, sliceMs),
        () => natsSync(appendLeaderUrl, subject, sliceMs),
      );
    } finally {
      await noFsync.stop();
    }
    const walrusNoFsyncUs = syncNoFsync.ours.flat().sort((a, b) => a - b);
    const natsNoFsyncUs = syncNoFsync.theirs.flat().sort((a, b) => a - b);

    log(`# consume: filling ${s.consumeRecordCount} records on each side`);
    const walrusFillMs = await walrusFill(walrus, topics.consume, s.consumeRecordCount);
    const natsFillMs = await natsFill(
      consumeLeaderUrl,
      natsStreams.consume.stream,
      natsStreams.consume.subject,
      s,
      s.consumeRecordCount,
    );
    log(
      `#   filled in ${round(walrusFillMs)} ms (ours, batches of ${walrusFillBatchRecordCount}) / ${round(natsFillMs)} ms (theirs, single publishes)`,
    );
    log(`# consume: from the start, ${consumeRoundCount} rounds`);
    const read = await alternate(
      consumeRoundCount,
      () => walrusConsume(walrus, topics.consume, s.consumeRecordCount),
      () => natsConsume(consumeLeaderUrl, natsStreams.consume.stream, s.consumeRecordCount),
    );

    await nats.stop();
    running.nats = null;

    const always: Figures = {};
    if (syncAlways.supported) {
      log('# JetStream with sync_interval: always');
      try {
        running.nats = await NatsCluster.start({
          binary,
          dir: path.join(opts.dir, 'nats-sync-always'),
          serverCount: nodeCount,
          syncAlways: true,
        });
        const syncAlwaysNats = running.nats;
        const leaderUrl = await natsCreateStream(syncAlwaysNats, natsStreams.append.stream, subject);
        // Side by side with ours again (same rounds as above), so the ratios at equal durability
        // come from one stretch of the machine's load.
        const pipeAlways = await alternate(
          alternationRoundCount,
          () => walrusPipelined(walrus, topics.append, s, sliceMs, sliceCountMax),
          () => natsPipelined(syncAlwaysNats, leaderUrl, subject, s, sliceMs, sliceCountMax),
        );
        const syncAlways = await alternate(
          alternationRoundCount,
          () => walrusSync(walrus, topics.append, sliceMs),
          () => natsSync(leaderUrl, subject, sliceMs),
        );
        const oursUs = syncAlways.ours.flat().sort((a, b) => a - b);
        const theirsUs = syncAlways.theirs.flat().sort((a, b) => a - b);
        const oursPerSec = ratePerSec(pipeAlways.ours);
        const theirsPerSec = ratePerSec(pipeAlways.theirs);
        always['jetstreamSyncAlways'] = 'measured (sync_interval: always)';
        always['replicatedAppendsPerSecBesideSyncAlways'] = round(oursPerSec);
        always['jetstreamSyncAlwaysAsyncPerSec'] = round(theirsPerSec);
        always['pipelinedRatioSyncAlways'] = round(oursPerSec / theirsPerSec, 3);
        always['syncP50UsBesideSyncAlways'] = round(percentile(oursUs, 50));
        always['jetstreamSyncAlwaysSyncP50Us'] = round(percentile(theirsUs, 50));
        always['jetstreamSyncAlwaysSyncP99Us'] = round(percentile(theirsUs, 99));
        always['syncP50RatioSyncAlways'] = round(percentile(oursUs, 50) / percentile(theirsUs, 50), 3);
      } catch (error) {
        always['jetstreamSyncAlways'] =
          error instanceof NatsConfigRejected
            ? `rejected by nats-server ${binary.version}: ${error.serverMessage}`
            : `failed: ${errorText(error)}`;
      } finally {
        await running.nats?.stop();
        running.nats = null;
      }
    } else {
      always['jetstreamSyncAlways'] = syncAlways.why;
    }

    log(`# segment-leader failover: ${s.failoverRunCount} runs, each bounded at ${s.failoverBoundMs} ms`);
    const failover = await walrusFailover(walrus, topics.failover, s, log);
    const failoverMs = [...failover.timesMs].sort((a, b) => a - b);

    const replicatedAppendsPerSec = ratePerSec(pipe.ours);
    const jetstreamAsyncPerSec = ratePerSec(pipe.theirs);
    const syncP50Us = percentile(walrusSyncUs, 50);
    const jetstreamSyncP50Us = percentile(natsSyncUs, 50);
    const consumePerSec = ratePerSec(read.ours);
    const walrusCpu = cpuFigures(pipe.ours);
    const natsCpu = cpuFigures(pipe.theirs);
    const jetstreamConsumePerSec = ratePerSec(read.theirs);
    const figures: Figures = {
      replicatedAppendsPerSec: round(replicatedAppendsPerSec),
      jetstreamAsyncPerSec: round(jetstreamAsyncPerSec),
      pipelinedRatio: round(replicatedAppendsPerSec / jetstreamAsyncPerSec, 3),
      pipelinedClientCpuPct: walrusCpu.clientCpuPct,
      jetstreamPipelinedClientCpuPct: natsCpu.clientCpuPct,
      pipelinedServerCpuUsPerRecord: walrusCpu.serverCpuUsPerRecord,
      jetstreamPipelinedServerCpuUsPerRecord: natsCpu.serverCpuUsPerRecord,
      syncP50Us: round(syncP50Us),
      syncP99Us: round(percentile(walrusSyncUs, 99)),
      jetstreamSyncP50Us: round(jetstreamSyncP50Us),
      jetstreamSyncP99Us: round(percentile(natsSyncUs, 99)),
      syncP50Ratio: round(syncP50Us / jetstreamSyncP50Us, 3),
      syncNoFsyncP50Us: round(percentile(walrusNoFsyncUs, 50)),
      syncNoFsyncP99Us: round(percentile(walrusNoFsyncUs, 99)),
      jetstreamSyncP50UsBeside: round(percentile(natsNoFsyncUs, 50)),
      syncNoFsyncP50Ratio: round(percentile(walrusNoFsyncUs, 50) / percentile(natsNoFsyncUs, 50), 3),
      syncMeanUs: round(mean(walrusSyncUs)),
      jetstreamSyncMeanUs: round(mean(natsSyncUs)),
      consumePerSec: round(consumePerSec),
      jetstreamConsumePerSec: round(jetstreamConsumePerSec),
      consumeRatio: round(consumePerSec / jetstreamConsumePerSec, 3),
      segmentFailoverMsP50: round(percentile(failoverMs, 50)),
      segmentFailoverMsP99: round(percentile(failoverMs, 99)),
      segmentFailoverMsMax: round(failoverMs[failoverMs.length - 1] ?? Number.NaN),
      segmentFailoverRuns: failoverMs.length,
      segmentFailoverTimeouts: failover.timeoutCount,
      segmentFailoverRaftLeaderKills: failover.raftLeaderKillCount,
      segmentFailoverErrors:
        [...failover.errorCounts].map(([code, count]) => `${code}x${count}`).join(' ') || 'none',
      ...(failover.error === null ? {} : { segmentFailoverAborted: failover.error }),
      ...always,
      syncSamples: walrusSyncUs.length,
      jetstreamSyncSamples: natsSyncUs.length,
      walrusFillMs: round(walrusFillMs),
      jetstreamFillMs: round(natsFillMs),
      cpuCount: os.cpus().length,
      loadAvg1mStart: round(loadAvg1mStart, 2),
      loadAvg1mEnd: round(os.loadavg()[0]!, 2),
      recordSizeBytes,
      inFlight: inFlightCount,
      connections: s.connectionCount,
      benchSeconds: s.benchSeconds,
      consumeRecords: s.consumeRecordCount,
      failoverRunsAsked: s.failoverRunCount,
      failoverBoundMs: s.failoverBoundMs,
      failoverRetryIntervalMs,
      quickMode: s.quick,
      walrusFsync: 'always',
      walrusReplicationFactor: replicationFactor,
      walrusAcks: quorumAcks.acks,
      jetstreamStream: 'R3 file, default sync',
      natsServerVersion: binary.version,
      natsClientVersion: natsClientVersion(),
      order: `alternating per phase (ours, theirs, theirs, ours, …: ${alternationRoundCount} rounds, consume ${consumeRoundCount}); one system loaded at a time`,
    };
    printTable(figures);
    return figures;
  } finally {
    await running.nats?.stop();
    await running.walrus?.stop();
    uninstall();
  }
}

function printTable(f: Figures): void {
  const t = replicationTargets;
  const cell = (v: unknown): string => (v === undefined ? '-' : String(v));
  const rows: [string, unknown, unknown, unknown, string][] = [
    [
      'pipelined records/s (256 in flight)',
      f['replicatedAppendsPerSec'],
      f['jetstreamAsyncPerSec'],
      f['pipelinedRatio'],
      t['pipelinedRatio']!,
    ],
    ['sync append p50 µs', f['syncP50Us'], f['jetstreamSyncP50Us'], f['syncP50Ratio'], t['syncP50Ratio']!],
    ['sync append p99 µs', f['syncP99Us'], f['jetstreamSyncP99Us'], undefined, ''],
    [
      'sync p50 µs, both without fsync',
      f['syncNoFsyncP50Us'],
      f['jetstreamSyncP50UsBeside'],
      f['syncNoFsyncP50Ratio'],
      'reported',
    ],
    [
      'consume records/s',
      f['consumePerSec'],
      f['jetstreamConsumePerSec'],
      f['consumeRatio'],
      t['consumeRatio']!,
    ],
    [
      'pipelined, JetStream fsync always',
      f['replicatedAppendsPerSecBesideSyncAlways'],
      f['jetstreamSyncAlwaysAsyncPerSec'],
      f['pipelinedRatioSyncAlways'],
      'reported',
    ],
    [
      'sync p50 µs, JetStream fsync always',
      f['syncP50UsBesideSyncAlways'],
      f['jetstreamSyncAlwaysSyncP50Us'],
      f['syncP50RatioSyncAlways'],
      'reported',
    ],
    ['segment failover p50 ms', f['segmentFailoverMsP50'], undefined, undefined, ''],
    [
      'segment failover p99 ms',
      f['segmentFailoverMsP99'],
      undefined,
      undefined,
      `${t['segmentFailoverMsP99']!} ms`,
    ],
  ];
  console.log('');
  console.log(
    `${'figure'.padEnd(38)}${'Walrus-TS'.padStart(12)}${'JetStream'.padStart(12)}${'ratio'.padStart(9)}   target`,
  );
  for (const [name, ours, theirs, ratio, target] of rows) {
    console.log(
      `${name.padEnd(38)}${cell(ours).padStart(12)}${cell(theirs).padStart(12)}${cell(ratio).padStart(9)}   ${target}`,
    );
  }
  console.log(
    `failover: ${f['segmentFailoverRuns']} runs, ${f['segmentFailoverTimeouts']} reached the ${f['failoverBoundMs']} ms bound (counted as the bound)`,
  );
  console.log(`JetStream sync_interval always: ${f['jetstreamSyncAlways']}`);
  console.log('');
}
