/**
 * The fault campaign's client side (campaign-cluster.ts starts it: in the client namespace in
 * netns mode, beside the test on loopback). Everything here reaches the cluster only as a user
 * does: the leader-aware binary WalrusClient, the HTTP gateway (a real `walrus-gateway` process it
 * starts), the Walrus text protocol (METRICS) and `walrus-cli`. It answers asks over IPC:
 * - `start`: creates the topic, starts the gateway, the writers (binary and HTTP: unique values,
 *   every attempt recorded with its outcome) and the consumer (read-next with auto-commit, or
 *   read then commit; every delivery and committed cursor recorded);
 * - `progress`, `acked`: how the writers are doing (for availability and failover checks);
 * - `metrics`, `describe`, `readAll` (through one pinned node, or leader-aware), `cli`;
 * - `stop`: stops the writers and the consumer and returns the history; `shutdown`: exits.
 */
import { spawn } from 'node:child_process';
import { WalrusClient } from '../../node/client/walrus-client.js';
import type { TopicInfo } from '../../node/protocol/messages.js';
import { cliBin } from '../../infra/local/launcher.js';
import { GatewayProcess } from './gateway-process.js';
import {
  type AttemptRecord,
  type ConsumerEvent,
  classifyClientError,
  classifyFetchError,
  classifyHttpError,
  type Unreadable,
} from './history.js';
import { nodeMetrics } from './node-text.js';

interface Ask {
  readonly id: number;
  readonly kind: string;
  readonly [key: string]: unknown;
}

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

const attempts: AttemptRecord[] = [];
const consumerEvents: ConsumerEvent[] = [];
let stopping = false;
let loops: Promise<void>[] = [];
let gateway: GatewayProcess | null = null;
const clients: WalrusClient[] = [];

function client(nodes: readonly string[], requestTimeoutMs = 3_000, retryCountMax = 3): WalrusClient {
  const c = new WalrusClient({ nodes: [...nodes], requestTimeoutMs, retryCountMax, connectTimeoutMs: 1_000 });
  clients.push(c);
  return c;
}

async function appendBinary(
  c: WalrusClient,
  topic: string,
  writer: string,
  value: string,
): Promise<AttemptRecord> {
  const startMs = Date.now();
  try {
    const r = await c.append(topic, [{ value: Buffer.from(value) }]);
    return { writer, value, outcome: 'ack', offset: r.firstOffset, startMs, endMs: Date.now() };
  } catch (error) {
    return { writer, value, ...classifyClientError(error), startMs, endMs: Date.now() };
  }
}

/**
 * A binary writer sends `burst` appends at once on its one client: they leave in one write and
 * reach the segment leader in one read chunk, which joins them into one append and splits the
 * offsets back (node/server/append-join.ts); the history check then sees that under faults. A
 * burst of 1 is the one-at-a-time writer.
 */
async function binaryWriter(
  nodes: readonly string[],
  topic: string,
  writer: string,
  paceMs: number,
  burst: number,
): Promise<void> {
  const c = client(nodes);
  for (let seq = 0; !stopping; seq += burst) {
    const sent = await Promise.all(
      Array.from({ length: burst }, (_, i) => appendBinary(c, topic, writer, `${writer}-${seq + i}`)),
    );
    attempts.push(...sent);
    await sleep(sent.every((a) => a.outcome === 'ack') ? paceMs : Math.max(paceMs, 50));
  }
}

/** Binary writers with an odd number send bursts of this many appends (see binaryWriter). */
const binaryBurstCount = 3;

/**
 * Appends sent together by one HTTP writer: the gateway joins the plain appends of one turn to
 * one topic into one upstream batch and splits the offsets back (gateway/append-coalescer.ts),
 * which the history check then sees under faults.
 */
const httpBurstCount = 3;

async function httpAppend(url: string, topic: string, writer: string, value: string): Promise<AttemptRecord> {
  const startMs = Date.now();
  try {
    const res = await fetch(`${url}/v1/topics/${topic}/records`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ records: [{ value }] }),
      // Longer than the gateway's upstream timeout (10 s), so the gateway answers first.
      signal: AbortSignal.timeout(12_000),
    });
    const body = await res.text();
    if (res.status === 201) {
      const offset = (JSON.parse(body) as { firstOffset: number }).firstOffset;
      return { writer, value, outcome: 'ack', offset, startMs, endMs: Date.now() };
    }
    return { writer, value, ...classifyHttpError(res.status, body), startMs, endMs: Date.now() };
  } catch (error) {
    return { writer, value, ...classifyFetchError(error), startMs, endMs: Date.now() };
  }
}

async function httpWriter(url: string, topic: string, writer: string, paceMs: number): Promise<void> {
  for (let seq = 0; !stopping; seq += httpBurstCount) {
    const burst = await Promise.all(
      Array.from({ length: httpBurstCount }, (_, i) =>
        httpAppend(url, topic, writer, `${writer}-${seq + i}`),
      ),
    );
    attempts.push(...burst);
    await sleep(burst.every((a) => a.outcome === 'ack') ? paceMs : Math.max(paceMs, 50));
  }
}

async function consumer(
  nodes: readonly string[],
  topic: string,
  name: string,
  paceMs: number,
): Promise<void> {
  const c = client(nodes);
  const failed = (op: 'readNext' | 'commit' | 'get', error: unknown): void => {
    consumerEvents.push({ kind: 'error', op, error: classifyClientError(error).error, atMs: Date.now() });
  };
  for (let round = 0; !stopping; round++) {
    const autoCommit = round % 2 === 0;
    let next: number | undefined;
    let readFrom = 0;
    try {
      const r = await c.consumerReadNext(topic, name, { recordCountMax: 50, autoCommit });
      const records = r.records.map((x) => ({
        offset: x.offset,
        value: Buffer.from(x.value).toString('utf8'),
      }));
      consumerEvents.push({
        kind: 'deliver',
        records,
        nextOffset: r.nextOffset,
        autoCommit,
        atMs: Date.now(),
      });
      if (autoCommit) {
        consumerEvents.push({ kind: 'cursor', offset: r.nextOffset, how: 'autoCommit', atMs: Date.now() });
      } else if (records.length > 0) {
        next = r.nextOffset;
        readFrom = records[0]!.offset;
      }
    } catch (error) {
      failed('readNext', error);
    }
    if (next !== undefined) {
      try {
        // Compare-and-set on the cursor read from: a commit that lands late (its reply was lost, the
        // forward that carried it was held up by a partition) must not move the cursor back.
        const info = await c.consumerCommit(topic, name, next, { expectedOffset: readFrom });
        consumerEvents.push({ kind: 'cursor', offset: info.offset, how: 'commit', atMs: Date.now() });
      } catch (error) {
        failed('commit', error);
      }
    }
    if (round % 4 === 3) {
      try {
        const info = await c.consumerGet(topic, name);
        consumerEvents.push({ kind: 'cursor', offset: info.offset, how: 'get', atMs: Date.now() });
      } catch (error) {
        failed('get', error);
      }
    }
    await sleep(paceMs);
  }
}

async function start(ask: Ask): Promise<{ gatewayPid: number | undefined; topic: TopicInfo }> {
  const nodes = ask['nodes'] as string[];
  const topic = ask['topic'] as string;
  const paceMs = ask['paceMs'] as number;
  const admin = client(nodes, 5_000, 5);
  const deadline = Date.now() + 30_000;
  let created: TopicInfo | undefined;
  for (;;) {
    try {
      created = (await admin.createTopic(topic)).topic;
      break;
    } catch (error) {
      if (Date.now() > deadline) throw error;
      await sleep(200);
    }
  }
  gateway = await GatewayProcess.start({ nodes, env: { WALRUS_LOG_LEVEL: 'warn' } });
  process.send?.({ pid: gateway.child.pid });
  stopping = false;
  loops = [];
  for (let w = 0; w < (ask['binaryWriters'] as number); w++)
    loops.push(binaryWriter(nodes, topic, `b${w}`, paceMs, w % 2 === 1 ? binaryBurstCount : 1));
  for (let w = 0; w < (ask['httpWriters'] as number); w++)
    loops.push(httpWriter(gateway.url, topic, `h${w}`, paceMs));
  if (ask['consumer'] === true) loops.push(consumer(nodes, topic, 'campaign', 100));
  return { gatewayPid: gateway.child.pid, topic: created };
}

function progress(ask: Ask): { ackedSince: number; acked: number; attempts: number } {
  const since = ask['sinceMs'] as number;
  let ackedSince = 0;
  let acked = 0;
  for (const a of attempts) {
    if (a.outcome !== 'ack') continue;
    acked += 1;
    if (a.startMs >= since) ackedSince += 1;
  }
  return { ackedSince, acked, attempts: attempts.length };
}

/**
 * Every record from offset 0 to the topic's end. Pinned: through the one node given, a fresh
 * client (no retries, so no leader hint moves it elsewhere) for each try; else leader-aware. A
 * segment that keeps failing for `segmentTimeoutMs` is skipped and reported as unreadable, so what
 * the other segments hold is still checked; past `timeoutMs` the rest is unreadable.
 */
async function readAll(ask: Ask): Promise<{
  records: { offset: number; value: string }[];
  endOffset: number;
  startOffset: number;
  unreadable: Unreadable[];
  /**
   * Set when only listTopics answered: its end offset is then a lower bound, and nothing from the
   * active segment's base offset on is known.
   */
  endUncertain: { from: number; why: string } | null;
}> {
  const nodes = ask['nodes'] as string[];
  const topic = ask['topic'] as string;
  const deadline = Date.now() + (ask['timeoutMs'] as number);
  const segmentTimeoutMs = (ask['segmentTimeoutMs'] as number | undefined) ?? 3_000;
  const pinned = ask['pinned'] === true;
  const fresh = (): WalrusClient =>
    new WalrusClient({
      nodes,
      retryCountMax: pinned ? 0 : 3,
      requestTimeoutMs: 3_000,
      connectTimeoutMs: 1_000,
    });
  let c = fresh();
  const describe = (error: unknown): string => {
    const e = error as { code?: string; message?: string };
    return `${e.code ?? ''} ${e.message ?? String(error)}`.trim();
  };
  const again = async (): Promise<void> => {
    await c.close();
    c = fresh();
    await sleep(200);
  };
  try {
    // describeTopic asks the active segment's leader; when that keeps failing, listTopics (any
    // node answers it from its metadata; its end offset may be a lower bound) still gives the segments.
    let info: TopicInfo | undefined;
    let endUncertain: { from: number; why: string } | null = null;
    let describeError = '';
    const describeSince = Date.now();
    while (info === undefined) {
      try {
        if (Date.now() - describeSince < segmentTimeoutMs) {
          info = await c.describeTopic(topic);
        } else {
          info = (await c.listTopics()).find((t) => t.name === topic);
          if (info === undefined) throw new Error(`listTopics has no topic ${topic}`);
          const active = info.segments.find((x) => !x.sealed);
          endUncertain = {
            from: Math.min(active?.baseOffset ?? info.endOffset, info.endOffset),
            why: `describeTopic failed (${describeError.slice(0, 200)}); listTopics says the end is at least ${info.endOffset}${active === undefined ? '' : `, active segment ${active.id} led by n${active.leaderNodeId} from offset ${active.baseOffset}`}`,
          };
        }
      } catch (error) {
        describeError = describe(error);
        if (Date.now() > deadline) throw new Error(`describeTopic and listTopics: ${describeError}`);
        await again();
      }
    }
    const records: { offset: number; value: string }[] = [];
    const unreadable: Unreadable[] = [];
    let failingSince: number | null = null;
    // Leaders whose segments this read already could not get: their next segments are skipped at once.
    const failedLeaders = new Set<number>();
    for (let offset = 0; offset < info.endOffset; ) {
      try {
        const page = await c.read(topic, offset, { recordCountMax: 1000, byteCountMax: 1 << 20 });
        failingSince = null;
        for (const r of page.records)
          records.push({ offset: r.offset, value: Buffer.from(r.value).toString('utf8') });
        if (page.nextOffset <= offset) break;
        offset = page.nextOffset;
      } catch (error) {
        const now = Date.now();
        failingSince ??= now;
        if (now > deadline) {
          unreadable.push({
            from: offset,
            to: info.endOffset,
            error: `read time limit; last: ${describe(error)}`,
          });
          break;
        }
        const segment = info.segments.find((s) => s.baseOffset <= offset && offset < s.endOffset);
        if (
          now - failingSince > segmentTimeoutMs ||
          (segment !== undefined && failedLeaders.has(segment.leaderNodeId))
        ) {
          if (segment !== undefined) failedLeaders.add(segment.leaderNodeId);
          const to =
            segment === undefined || segment.endOffset <= offset ? info.endOffset : segment.endOffset;
          unreadable.push({
            from: offset,
            to,
            error: `${segment === undefined ? '' : `segment ${segment.id} (led by n${segment.leaderNodeId}): `}${describe(error)}`,
          });
          offset = to;
          failingSince = null;
          continue;
        }
        await again();
      }
    }
    return { records, endOffset: info.endOffset, startOffset: info.startOffset, unreadable, endUncertain };
  } finally {
    await c.close();
  }
}

function cli(ask: Ask): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const args = ask['args'] as string[];
  const timeoutMs = ask['timeoutMs'] as number;
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [cliBin, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk: Buffer) => {
      stdout += chunk.toString('utf8');
    });
    child.stderr.on('data', (chunk: Buffer) => {
      stderr += chunk.toString('utf8');
    });
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.once('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout: stdout.trim(), stderr: stderr.trim() });
    });
  });
}

async function stop(): Promise<{ attempts: AttemptRecord[]; consumer: ConsumerEvent[]; httpJoined: number }> {
  stopping = true;
  await Promise.all(loops);
  loops = [];
  return { attempts, consumer: consumerEvents, httpJoined: await httpJoined() };
}

/** HTTP appends the gateway sent in a shared batch (its /metrics; 0 when it does not answer). */
async function httpJoined(): Promise<number> {
  if (gateway === null) return 0;
  try {
    const text = await (await fetch(`${gateway.url}/metrics`, { signal: AbortSignal.timeout(2_000) })).text();
    return Number(/^walrus_gateway_appends_joined_total (\d+)/m.exec(text)?.[1] ?? 0);
  } catch {
    return 0;
  }
}

async function shutdown(): Promise<void> {
  stopping = true;
  await Promise.race([Promise.all(loops), sleep(3_000)]);
  await Promise.all(clients.map((c) => c.close().catch(() => {})));
  if (gateway !== null) await gateway.kill();
  process.exit(0);
}

async function handle(ask: Ask): Promise<unknown> {
  switch (ask.kind) {
    case 'start':
      return start(ask);
    case 'progress':
      return progress(ask);
    case 'acked':
      return attempts.filter((a) => a.outcome === 'ack' && a.endMs < (ask['beforeMs'] as number));
    case 'metrics':
      return nodeMetrics(ask['addr'] as string, (ask['timeoutMs'] as number | undefined) ?? 1_500);
    case 'describe': {
      const c = new WalrusClient({
        nodes: ask['nodes'] as string[],
        retryCountMax: 2,
        requestTimeoutMs: 3_000,
      });
      try {
        return await c.describeTopic(ask['topic'] as string);
      } finally {
        await c.close();
      }
    }
    case 'readAll':
      return readAll(ask);
    case 'cli':
      return cli(ask);
    case 'stop':
      return stop();
    case 'shutdown':
      return shutdown();
    default:
      throw new Error(`unknown ask ${ask.kind}`);
  }
}

process.on('message', (ask: Ask) => {
  handle(ask).then(
    (value) => process.send?.({ id: ask.id, ok: true, value: value ?? null }),
    (error: unknown) =>
      process.send?.({ id: ask.id, ok: false, error: (error as Error)?.message ?? String(error) }),
  );
});
// The test went away: stop the gateway by PID and leave.
process.on('disconnect', () => void shutdown());
process.send?.({ ready: true });
