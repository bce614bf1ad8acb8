/**
 * `npm run bench -- gateway`: HTTP and SSE figures of the gateway, with a raw node:http server
 * measured in the same run as the baseline. The two take the single-append load in alternating
 * one-second slices (BENCH_DURATION_MS in all per side, after a warm-up of each): this machine's
 * speed drifts by half within a minute (other tenants), and a ratio of two runs one after the
 * other measured the drift as much as the servers.
 *
 * The single-append load comes from wrk (Debian's `wrk`), as when the target was set: a C load
 * generator costs a few µs per request, so the figures measure the servers. A Node load generator
 * (undici, in a child process: this file run with `--load`) needs about 35 µs of CPU per request,
 * a whole core at the raw server's rate, so on two cores it measures mostly itself; its figures are
 * printed too (`…UndiciLoad`), and stand in for wrk's when wrk is not installed. Batch appends and
 * SSE use the Node generator.
 *
 * A third target takes the same slices: the bare front, a node:http server in its own process
 * (this file run with `--bare-front`) that parses the body and appends through the same
 * WalrusClient and AppendCoalescer as the gateway, with no Hono, middleware, validation, metrics or
 * security headers. It is the ceiling of any HTTP layer over this client and node: what the
 * gateway could reach if its own HTTP work cost nothing (bareFrontRatio…; gatewayShareOfBareFront).
 *
 * Figures: rawHttpPostPerSec, gatewayAppendsPerSec (single 128-byte records, durable, keep-alive,
 * 50 connections), gatewayRatio, gatewayCpuUsPerAppend (the gateway process's CPU per append,
 * from /proc), nodeCpuUsPerAppend (the node's, same appends), gatewayAppendP99Ms, batchAppendMBPerSec, sseTailsHeld (tails one
 * gateway holds that all receive a record), sseDeliveryMsP99 (append → event at 1,000 tails).
 */
import { type ChildProcess, execFile, execFileSync, fork } from 'node:child_process';
import { once } from 'node:events';
import fs from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { Pool } from 'undici';
import { AppendCoalescer } from '../../gateway/append-coalescer.js';
import { GatewayMetrics } from '../../gateway/metrics.js';
import { WalrusClient } from '../../node/client/index.js';
import { GatewayProcess } from '../helpers/gateway-process.js';
import { startLocalCluster } from '../helpers/local-cluster.js';
import { processCpuMs } from './process-cpu.js';

const self = fileURLToPath(import.meta.url);
const connectionCount = 50;
const recordBytes = 128;
const latencySampleCountMax = 2_000_000;
const sseHoldTarget = Number(process.env['BENCH_SSE_TAILS'] ?? 10_000);
const sseLatencySubscriberCount = 1_000;
const sseLatencyMessageCount = 30;
const sseConnectBatchSize = 500;
const warmupMs = 1_500;
/** One slice of the alternating single-append load (wrk takes whole seconds). */
const wrkSliceMs = 1_000;

type LoadRequest =
  | {
      kind: 'http';
      origin: string;
      path: string;
      headers: Record<string, string>;
      body: string;
      connections: number;
      durationMs: number;
    }
  | {
      /** Single appends to each target in turn, `sliceCount` slices each (loadAlternate). */
      kind: 'alternate';
      targets: { origin: string; path: string }[];
      headers: Record<string, string>;
      body: string;
      connections: number;
      sliceMs: number;
      sliceCount: number;
    }
  | { kind: 'sse'; port: number; path: string; count: number };

interface HttpResult {
  count: number;
  errors: number;
  p50Ms: number;
  p99Ms: number;
  seconds: number;
}

function percentile(sorted: Float64Array | number[], p: number): number {
  if (sorted.length === 0) return Number.NaN;
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;
}

const round = (x: number, digits = 1) => Math.round(x * 10 ** digits) / 10 ** digits;

/** The order of `count` targets in round `round` of an alternating run: reversed every other round. */
function turnOrder(count: number, round: number): number[] {
  const order = Array.from({ length: count }, (_, i) => i);
  return round % 2 === 1 ? order.reverse() : order;
}

// ---- load generator (child process) ------------------------------------------------------------

/** `connections` closed loops of one POST each on `pool` for `durationMs`; latencies go to `latencies`. */
async function httpSlice(
  pool: Pool,
  target: { origin: string; path: string },
  req: { headers: Record<string, string>; body: string; connections: number },
  durationMs: number,
  latencies: number[] | null,
): Promise<{ count: number; errors: number; seconds: number }> {
  let count = 0;
  let errors = 0;
  const started = performance.now();
  const deadline = started + durationMs;
  await Promise.all(
    Array.from({ length: req.connections }, async () => {
      while (performance.now() < deadline) {
        const t0 = performance.now();
        try {
          const res = await pool.request({
            origin: target.origin,
            path: target.path,
            method: 'POST',
            headers: req.headers,
            body: req.body,
          });
          await res.body.dump();
          if (res.statusCode >= 300) errors++;
          else count++;
        } catch {
          errors++;
        }
        if (latencies !== null && latencies.length < latencySampleCountMax)
          latencies.push(performance.now() - t0);
      }
    }),
  );
  return { count, errors, seconds: (performance.now() - started) / 1000 };
}

function httpResult(
  totals: { count: number; errors: number; seconds: number },
  latencies: number[],
): HttpResult {
  latencies.sort((a, b) => a - b);
  return { ...totals, p50Ms: percentile(latencies, 50), p99Ms: percentile(latencies, 99) };
}

async function loadHttp(req: Extract<LoadRequest, { kind: 'http' }>): Promise<HttpResult> {
  const pool = new Pool(req.origin, { connections: req.connections, pipelining: 1 });
  const target = { origin: req.origin, path: req.path };
  // Warm-up (JIT, connections, the node's caches), the same for every server measured.
  await httpSlice(pool, target, req, warmupMs, null);
  const latencies: number[] = [];
  const totals = await httpSlice(pool, target, req, req.durationMs, latencies);
  await pool.close();
  return httpResult(totals, latencies);
}

/**
 * Warms every target up, says so (`{ type: 'warm' }`: the parent starts counting CPU), then runs
 * `sliceCount` slices on each target in turn, the order reversed every other round, and reports
 * one HttpResult per target (`{ type: 'result', results }`).
 */
async function loadAlternate(req: Extract<LoadRequest, { kind: 'alternate' }>): Promise<void> {
  const pools = req.targets.map((t) => new Pool(t.origin, { connections: req.connections, pipelining: 1 }));
  for (const [i, target] of req.targets.entries()) await httpSlice(pools[i]!, target, req, warmupMs, null);
  process.send!({ type: 'warm' });
  const totals = req.targets.map(() => ({ count: 0, errors: 0, seconds: 0 }));
  const latencies: number[][] = req.targets.map(() => []);
  for (let round = 0; round < req.sliceCount; round++) {
    for (const i of turnOrder(req.targets.length, round)) {
      const slice = await httpSlice(pools[i]!, req.targets[i]!, req, req.sliceMs, latencies[i]!);
      totals[i]!.count += slice.count;
      totals[i]!.errors += slice.errors;
      totals[i]!.seconds += slice.seconds;
    }
  }
  await Promise.all(pools.map((p) => p.close()));
  process.send!({ type: 'result', results: totals.map((t, i) => httpResult(t, latencies[i]!)) });
}

/** Opens `count` SSE tails on raw sockets; reports how many are open, then records what arrives. */
async function loadSse(req: Extract<LoadRequest, { kind: 'sse' }>): Promise<void> {
  const sockets: net.Socket[] = [];
  const delivered: number[] = [];
  const receivedBy = new Map<net.Socket, number>();
  let open = 0;
  const request = `GET ${req.path} HTTP/1.1\r\nHost: bench\r\nAccept: text/event-stream\r\n\r\n`;
  for (let i = 0; i < req.count; i += sseConnectBatchSize) {
    const batch = Array.from(
      { length: Math.min(sseConnectBatchSize, req.count - i) },
      () =>
        new Promise<void>((resolve) => {
          const socket = net.connect(req.port, '127.0.0.1');
          let opened = false;
          socket.setEncoding('utf8');
          socket.on('data', (chunk: string) => {
            if (!opened && chunk.includes('retry: 1000')) {
              opened = true;
              open++;
              resolve();
            }
            const now = performance.timeOrigin + performance.now();
            for (const m of chunk.matchAll(/"value":"t=([0-9.]+)"/g)) {
              delivered.push(now - Number(m[1]));
              receivedBy.set(socket, (receivedBy.get(socket) ?? 0) + 1);
            }
          });
          socket.on('error', () => resolve());
          socket.on('close', () => resolve());
          socket.write(request);
          sockets.push(socket);
        }),
    );
    await Promise.all(batch);
  }
  process.send!({ type: 'open', open });
  process.on('message', (msg: { type: string; expected: number }) => {
    if (msg.type !== 'report') return;
    const complete = sockets.filter((s) => (receivedBy.get(s) ?? 0) >= msg.expected).length;
    const sorted = [...delivered].sort((a, b) => a - b);
    process.send!({
      type: 'report',
      complete,
      p50Ms: percentile(sorted, 50),
      p99Ms: percentile(sorted, 99),
      samples: sorted.length,
    });
    for (const s of sockets) s.destroy();
    setTimeout(() => process.exit(0), 100);
  });
}

// ---- wrk (the single-append load) -------------------------------------------------------------

/** wrk's Lua hooks: one POST with `body`, and a JSON summary line when the run ends. */
function wrkScript(body: string, contentType: string): string {
  return `wrk.method = "POST"
wrk.body = ${JSON.stringify(body)}
wrk.headers["Content-Type"] = ${JSON.stringify(contentType)}
done = function(summary, latency, requests)
  io.write(string.format('WRK {"requests":%d,"durationUs":%d,"status":%d,"connect":%d,"read":%d,"write":%d,"timeout":%d,"p50Us":%d,"p99Us":%d}\\n',
    summary.requests, summary.duration, summary.errors.status, summary.errors.connect, summary.errors.read,
    summary.errors.write, summary.errors.timeout, latency:percentile(50), latency:percentile(99)))
end
`;
}

function wrkInstalled(): boolean {
  try {
    execFileSync('wrk', ['--version'], { stdio: 'ignore' });
    return true;
  } catch (error) {
    // wrk --version prints its banner and exits 1; only a missing binary is ENOENT.
    return (error as NodeJS.ErrnoException).code !== 'ENOENT';
  }
}

function runWrk(url: string, script: string, connections: number, durationMs: number): Promise<HttpResult> {
  const args = [
    '-t1',
    `-c${connections}`,
    `-d${Math.max(1, Math.round(durationMs / 1000))}s`,
    '-s',
    script,
    url,
  ];
  return new Promise((resolve, reject) => {
    execFile('wrk', args, { timeout: durationMs + 30_000 }, (error, stdout) => {
      const line = stdout.split('\n').find((l) => l.startsWith('WRK '));
      if (line === undefined) {
        reject(new Error(`wrk printed no summary: ${error?.message ?? stdout}`));
        return;
      }
      const r = JSON.parse(line.slice(4)) as Record<string, number>;
      const errors = r['status']! + r['connect']! + r['read']! + r['write']! + r['timeout']!;
      resolve({
        count: r['requests']! - r['status']!,
        errors,
        p50Ms: r['p50Us']! / 1000,
        p99Ms: r['p99Us']! / 1000,
        seconds: r['durationUs']! / 1e6,
      });
    });
  });
}

/**
 * wrk on each target in turn: a warm-up run each (JIT, connections, the node's caches), then
 * `onWarm`, then `sliceCount` one-second runs on each, the order reversed every other round. The
 * machine's speed drifts (other tenants): slices that alternate put the drift on both sides of a
 * ratio. p50 and p99 are the medians of the slices' own.
 */
async function wrkAlternate(
  targets: string[],
  body: string,
  sliceCount: number,
  onWarm: () => void,
): Promise<HttpResult[]> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'walrus-wrk-'));
  try {
    const script = path.join(dir, 'post.lua');
    fs.writeFileSync(script, wrkScript(body, 'application/json'));
    for (const url of targets) await runWrk(url, script, connectionCount, warmupMs);
    onWarm();
    const slices: HttpResult[][] = targets.map(() => []);
    for (let round = 0; round < sliceCount; round++) {
      for (const i of turnOrder(targets.length, round))
        slices[i]!.push(await runWrk(targets[i]!, script, connectionCount, wrkSliceMs));
    }
    const median = (values: number[]) =>
      percentile(
        [...values].sort((a, b) => a - b),
        50,
      );
    return slices.map((runs) => ({
      count: runs.reduce((sum, r) => sum + r.count, 0),
      errors: runs.reduce((sum, r) => sum + r.errors, 0),
      seconds: runs.reduce((sum, r) => sum + r.seconds, 0),
      p50Ms: median(runs.map((r) => r.p50Ms)),
      p99Ms: median(runs.map((r) => r.p99Ms)),
    }));
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

// ---- parent ------------------------------------------------------------------------------------

/** The request goes over IPC (a batch body is too large for argv). */
function startLoad(req: LoadRequest): ChildProcess {
  const child = fork(self, ['--load'], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
  child.send(req);
  return child;
}

async function runHttpLoad(req: Extract<LoadRequest, { kind: 'http' }>): Promise<HttpResult> {
  const child = startLoad(req);
  const [result] = (await once(child, 'message')) as [HttpResult];
  await once(child, 'exit');
  return result;
}

/** The undici generator on each target in turn (loadAlternate); `onWarm` once all are warm. */
async function undiciAlternate(
  req: Extract<LoadRequest, { kind: 'alternate' }>,
  onWarm: () => void,
): Promise<HttpResult[]> {
  const child = startLoad(req);
  const exited = once(child, 'exit');
  const results = await new Promise<HttpResult[]>((resolve) => {
    child.on('message', (msg: { type: 'warm' } | { type: 'result'; results: HttpResult[] }) => {
      if (msg.type === 'warm') onWarm();
      else resolve(msg.results);
    });
  });
  await exited;
  return results;
}

/** This file in its own process as a server (`--raw-server`, `--bare-front`); resolves with its port. */
function startServerChild(args: string[]): Promise<{ port: number; stop: () => void }> {
  const child = fork(self, args, { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
  return new Promise((resolve, reject) => {
    child.once('exit', (code) => reject(new Error(`${args[0]} exited with ${code} before listening`)));
    child.once('message', (msg: { port: number }) =>
      resolve({ port: msg.port, stop: () => child.kill('SIGTERM') }),
    );
  });
}

function rawServer(): void {
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const size = Buffer.concat(chunks).byteLength;
      res.writeHead(201, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ firstOffset: size, lastOffset: size, count: 1 }));
    });
  });
  listenAndSayPort(server);
}

/** A server child's listen on loopback: its port goes to the parent (startServerChild). */
function listenAndSayPort(server: http.Server): void {
  server.keepAliveTimeout = 5_000;
  server.listen(0, '127.0.0.1', () => process.send!({ port: (server.address() as net.AddressInfo).port }));
}

/**
 * The bare front: POST {records:[{value}]} appended to `topic` through the gateway's own client and
 * coalescer (so the node sees the same joined appends), answered with the gateway's JSON. Nothing
 * else: no routing, validation, auth, metrics or headers beyond the content type.
 */
function bareFront(nodes: string[], topic: string): void {
  const client = new WalrusClient({ nodes });
  const appends = new AppendCoalescer(client, new GatewayMetrics());
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      let records: { value: Buffer }[];
      try {
        const body = JSON.parse(Buffer.concat(chunks).toString()) as { records: { value: string }[] };
        records = body.records.map((r) => ({ value: Buffer.from(r.value) }));
      } catch (error) {
        res.writeHead(400, { 'content-type': 'text/plain' });
        res.end(String(error));
        return;
      }
      appends.append(topic, records, undefined).then(
        (reply) => {
          res.writeHead(201, { 'content-type': 'application/json' });
          res.end(
            JSON.stringify({
              firstOffset: reply.firstOffset,
              lastOffset: reply.lastOffset,
              count: records.length,
              timestamp: reply.timestampMs,
              duplicate: reply.duplicate,
              acks: reply.acks ?? 'quorum',
            }),
          );
        },
        (error: unknown) => {
          res.writeHead(503, { 'content-type': 'text/plain' });
          res.end(String(error));
        },
      );
    });
  });
  listenAndSayPort(server);
}

async function post(url: string, body: unknown): Promise<Response> {
  return fetch(url, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(body),
  });
}

async function sseRun(
  gateway: GatewayProcess,
  topic: string,
  count: number,
  messages: number,
  gapMs: number,
) {
  const child = startLoad({ kind: 'sse', port: gateway.port, path: `/v1/topics/${topic}/records`, count });
  const [opened] = (await once(child, 'message')) as [{ open: number }];
  await new Promise((r) => setTimeout(r, 500));
  for (let i = 0; i < messages; i++) {
    await post(`${gateway.url}/v1/topics/${topic}/records`, {
      records: [{ value: `t=${performance.timeOrigin + performance.now()}` }],
    });
    await new Promise((r) => setTimeout(r, gapMs));
  }
  await new Promise((r) => setTimeout(r, 1_000));
  child.send({ type: 'report', expected: messages });
  const [report] = (await once(child, 'message')) as [
    { complete: number; p50Ms: number; p99Ms: number; samples: number },
  ];
  await once(child, 'exit');
  return { open: opened.open, ...report };
}

export async function runGatewayBench(opts: {
  dir: string;
  durationMs: number;
}): Promise<Record<string, number | string>> {
  const value = 'x'.repeat(recordBytes);
  const single = JSON.stringify({ records: [{ value }] });
  const withWrk = wrkInstalled();
  if (!withWrk) console.error('# wrk is not installed (apt-get install wrk): the undici figures stand in');
  // The raw server and the gateway take the load in alternating slices (wrkAlternate): both stay up.
  const sliceCount = Math.max(2, Math.round(opts.durationMs / wrkSliceMs));
  const cluster = await startLocalCluster({
    nodeCount: 1,
    dataDir: opts.dir,
    // BENCH_NODE_FSYNC (e.g. `never`) shows what the durable append costs; the targets are for `always`.
    env: { WALRUS_LOG_LEVEL: 'warn', WALRUS_FSYNC: process.env['BENCH_NODE_FSYNC'] ?? 'always' },
  });
  const gateway = await GatewayProcess.start({ nodes: cluster.clientAddrs });
  let raw: { port: number; stop: () => void } | undefined;
  let bare: { port: number; stop: () => void } | undefined;
  try {
    raw = await startServerChild(['--raw-server']);
    bare = await startServerChild(['--bare-front', cluster.clientAddrs.join(','), 'bench-bare']);
    const rawOrigin = `http://127.0.0.1:${raw.port}`;
    const bareOrigin = `http://127.0.0.1:${bare.port}`;
    for (const name of ['bench', 'bench-batch', 'bench-sse', 'bench-hold', 'bench-bare'])
      await post(`${gateway.url}/v1/topics`, { name });
    // The gateway's own CPU per durable append (from /proc; it idles during the other targets'
    // slices): a regression in its per-request work shows here before the ratio moves, since the
    // ratio also waits on the node's fdatasync.
    const gatewayPid = gateway.child.pid;
    const nodePid = cluster.nodes[0]!.process!.pid;
    const cpu = () => ({ gateway: processCpuMs(gatewayPid), node: processCpuMs(nodePid) });
    let warm = cpu();
    const onWarm = () => {
      warm = cpu();
    };
    const gwPath = '/v1/topics/bench/records';
    let rawWrk: HttpResult | undefined;
    let gwWrk: HttpResult | undefined;
    let bareWrk: HttpResult | undefined;
    let wrkCpu = { gateway: 0, node: 0 };
    if (withWrk) {
      [rawWrk, gwWrk, bareWrk] = (await wrkAlternate(
        [rawOrigin + '/', gateway.url + gwPath, bareOrigin + '/'],
        single,
        sliceCount,
        onWarm,
      )) as [HttpResult, HttpResult, HttpResult];
      const after = cpu();
      wrkCpu = { gateway: after.gateway - warm.gateway, node: after.node - warm.node };
    }
    const [rawUndici, gwUndici, bareUndici] = (await undiciAlternate(
      {
        kind: 'alternate',
        targets: [
          { origin: rawOrigin, path: '/' },
          { origin: gateway.url, path: gwPath },
          { origin: bareOrigin, path: '/' },
        ],
        headers: { 'content-type': 'application/json' },
        body: single,
        connections: connectionCount,
        sliceMs: opts.durationMs / sliceCount,
        sliceCount,
      },
      onWarm,
    )) as [HttpResult, HttpResult, HttpResult];
    const afterUndici = cpu();
    const undiciCpu = { gateway: afterUndici.gateway - warm.gateway, node: afterUndici.node - warm.node };
    const cpuUsPer = (cpuMs: number, count: number) =>
      count > 0 ? round((cpuMs * 1000) / count, 1) : Number.NaN;
    const rawResult = rawWrk ?? rawUndici;
    const gw = gwWrk ?? gwUndici;
    const bareResult = bareWrk ?? bareUndici;
    const gwCpu = gwWrk === undefined ? undiciCpu : wrkCpu;

    const batchRecords = 1000;
    const batchValueBytes = 1024;
    const batchBody = JSON.stringify({
      records: Array.from({ length: batchRecords }, () => ({ value: 'y'.repeat(batchValueBytes) })),
    });
    const batch = await runHttpLoad({
      kind: 'http',
      origin: gateway.url,
      path: '/v1/topics/bench-batch/records',
      headers: { 'content-type': 'application/json' },
      body: batchBody,
      connections: 8,
      durationMs: opts.durationMs,
    });

    const latency = await sseRun(gateway, 'bench-sse', sseLatencySubscriberCount, sseLatencyMessageCount, 50);
    const hold = await sseRun(gateway, 'bench-hold', sseHoldTarget, 1, 0);

    const perSec = (r: HttpResult) => r.count / r.seconds;
    return {
      loadGenerator: withWrk ? 'wrk -t1 -c50' : 'undici (wrk not installed)',
      rawHttpPostPerSec: Math.round(perSec(rawResult)),
      rawHttpPostP99Ms: round(rawResult.p99Ms, 2),
      gatewayAppendsPerSec: Math.round(perSec(gw)),
      gatewayRatio: round(perSec(gw) / perSec(rawResult), 3),
      gatewayAppendP50Ms: round(gw.p50Ms, 2),
      gatewayAppendP99Ms: round(gw.p99Ms, 2),
      gatewayAppendErrors: gw.errors,
      gatewayCpuUsPerAppend: cpuUsPer(gwCpu.gateway, gw.count),
      gatewayCpuUsPerAppendUndiciLoad: cpuUsPer(undiciCpu.gateway, gwUndici.count),
      // The node's share of the same appends (the first load's): what the gateway sends it shows
      // here. The node takes the bare front's appends too, in the same slices: both count.
      nodeCpuUsPerAppend: cpuUsPer(gwCpu.node, gw.count + bareResult.count),
      rawHttpPostPerSecUndiciLoad: Math.round(perSec(rawUndici)),
      gatewayAppendsPerSecUndiciLoad: Math.round(perSec(gwUndici)),
      gatewayRatioUndiciLoad: round(perSec(gwUndici) / perSec(rawUndici), 3),
      bareFrontAppendsPerSec: Math.round(perSec(bareResult)),
      bareFrontRatio: round(perSec(bareResult) / perSec(rawResult), 3),
      bareFrontRatioUndiciLoad: round(perSec(bareUndici) / perSec(rawUndici), 3),
      gatewayShareOfBareFront: round(perSec(gw) / perSec(bareResult), 3),
      gatewayShareOfBareFrontUndiciLoad: round(perSec(gwUndici) / perSec(bareUndici), 3),
      batchAppendMBPerSec: round((batch.count * batchRecords * batchValueBytes) / batch.seconds / 1e6, 1),
      batchAppendP99Ms: round(batch.p99Ms, 1),
      sseDeliveryMsP50: round(latency.p50Ms, 1),
      sseDeliveryMsP99: round(latency.p99Ms, 1),
      sseDeliverySubscribers: latency.complete,
      sseTailsOpened: hold.open,
      sseTailsHeld: hold.complete,
    };
  } finally {
    raw?.stop();
    bare?.stop();
    await gateway.stop();
    await cluster.stop();
  }
}

if (process.argv[1] === self) {
  if (process.argv[2] === '--raw-server') rawServer();
  else if (process.argv[2] === '--bare-front') bareFront(process.argv[3]!.split(','), process.argv[4]!);
  else if (process.argv[2] === '--load') {
    process.once('message', (req: LoadRequest) => {
      if (req.kind === 'http') {
        void loadHttp(req).then((result) => {
          process.send!(result);
          process.disconnect();
        });
      } else if (req.kind === 'alternate') {
        void loadAlternate(req).then(() => process.disconnect());
      } else void loadSse(req);
    });
  }
}
