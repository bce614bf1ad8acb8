/**
 * Issue 11 §4: SIGTERM is graceful. A rolling restart of all three nodes (SIGTERM, wait for the
 * exit, start again, wait until the cluster is whole) under continuous appends from four writers
 * (the cluster client with its normal retries) fails no append and loses nothing: the history
 * (every attempt and its outcome) is judged by the campaign's checker (log-checker.ts) against
 * the topic read back whole, and through every node. Each stopped node exits 0 after handing its
 * Raft and segment leaderships over (its log says the hand-off completed).
 *
 * Before, SIGTERM closed the node's sockets at once: appends in flight there ended OUTCOME_UNKNOWN
 * and the topic's active segment waited for the controller's failover.
 */
import test from 'ava';
import { WalrusClient } from '../../node/client/walrus-client.js';
import { eventually } from '../helpers/eventually.js';
import { type AttemptRecord, classifyClientError } from '../helpers/history.js';
import { startLocalCluster, type TestCluster } from '../helpers/local-cluster.js';
import { checkLog, checkRange, compareReads } from '../helpers/log-checker.js';
import { nodeMetrics } from '../helpers/node-text.js';

const topic = 'rolling';
const writerCount = 4;
/** Pause between one writer's appends. */
const paceMs = 10;
/** Appends acknowledged between two steps of the restart: the writers are really running. */
const progressAppendCountMin = 40;
/** Bound of one graceful stop (hand-off and drain are bounded well within it). */
const stopTimeoutMs = 60_000;

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

/** Every node up, three voters, and one leader they all follow. */
function whole(cluster: TestCluster): Promise<number> {
  return eventually(
    'three voters following one leader',
    async () => {
      const ms = await Promise.all(cluster.nodes.map((n) => nodeMetrics(n.clientAddr)));
      const leader = ms[0]?.current_leader;
      return leader &&
        ms.every((m) => m?.current_leader === leader && m.membership_config.voters.length === 3)
        ? leader
        : undefined;
    },
    60_000,
  );
}

/** SIGTERM to one node by PID; resolves with its exit code (null: killed by a signal). */
async function stopGracefully(cluster: TestCluster, index: number): Promise<number | null> {
  const child = cluster.nodes[index]!.process!;
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  child.kill('SIGTERM');
  const timer = setTimeout(() => child.kill('SIGKILL'), stopTimeoutMs);
  const code = await exited;
  clearTimeout(timer);
  return code;
}

async function readWhole(client: WalrusClient): Promise<{ offset: number; value: string }[]> {
  const end = (await client.describeTopic(topic)).endOffset;
  const records: { offset: number; value: string }[] = [];
  for (let offset = 0; offset < end; ) {
    const page = await client.read(topic, offset, { recordCountMax: 1000 });
    for (const r of page.records) records.push({ offset: r.offset, value: Buffer.from(r.value).toString() });
    if (page.nextOffset <= offset) break;
    offset = page.nextOffset;
  }
  return records;
}

test.serial('a rolling restart under four writers fails no append and loses nothing', async (t) => {
  const cluster = await startLocalCluster({
    nodeCount: 3,
    // Small segments: rollovers run during the restart and spread segment leaders over the nodes.
    env: { WALRUS_LOG_LEVEL: 'info', WALRUS_MAX_SEGMENT_ENTRIES: '500' },
  });
  const clients: WalrusClient[] = [];
  const attempts: AttemptRecord[] = [];
  /** The whole message of each failed append, for the report. */
  const failures = new Map<string, string>();
  let stopping = false;
  let writers: Promise<void>[] = [];
  t.teardown(async () => {
    stopping = true;
    await Promise.race([Promise.all(writers), sleep(35_000)]);
    for (const c of clients) await c.close();
    await cluster.destroy();
  });
  const newClient = (nodes: string[], options: { retryCountMax?: number } = {}): WalrusClient => {
    const c = new WalrusClient({ nodes, ...options });
    clients.push(c);
    return c;
  };
  await whole(cluster);
  await newClient(cluster.clientAddrs).createTopic(topic);

  const writer = async (name: string): Promise<void> => {
    // The cluster client with its normal retries (defaults), as an application uses it.
    const c = newClient(cluster.clientAddrs);
    for (let seq = 0; !stopping; seq++) {
      const value = `${name}-${seq}`;
      const startMs = Date.now();
      try {
        const r = await c.append(topic, [{ value: Buffer.from(value) }]);
        attempts.push({
          writer: name,
          value,
          outcome: 'ack',
          offset: r.firstOffset,
          startMs,
          endMs: Date.now(),
        });
      } catch (error) {
        attempts.push({ writer: name, value, ...classifyClientError(error), startMs, endMs: Date.now() });
        failures.set(value, `${new Date(startMs).toISOString()} ${(error as Error).message}`);
      }
      await sleep(paceMs);
    }
  };
  writers = Array.from({ length: writerCount }, (_, i) => writer(`w${i}`));
  const acked = (): number => attempts.filter((a) => a.outcome === 'ack').length;
  const progress = async (what: string): Promise<void> => {
    const from = acked();
    await eventually(what, async () => (acked() >= from + progressAppendCountMin ? true : undefined), 60_000);
  };

  await progress('the writers running');
  const shutdownLogs: string[] = [];
  for (let index = 0; index < cluster.nodes.length; index++) {
    const node = cluster.nodes[index]!;
    const code = await stopGracefully(cluster, index);
    t.is(code, 0, `node ${node.spec.nodeId} exits 0 on SIGTERM\n${node.logTail.slice(-3000)}`);
    shutdownLogs.push(/.*"msg":"Shutdown: drained".*/.exec(node.logTail)?.[0] ?? '(no drain line)');
    await progress(`appends with node ${node.spec.nodeId} down`);
    await cluster.startNode(index);
    await whole(cluster);
    await progress(`appends with node ${node.spec.nodeId} back`);
  }
  stopping = true;
  await Promise.all(writers);

  const failed = attempts.filter((a) => a.outcome !== 'ack');
  if (failed.length > 0) {
    t.log(failed.map((a) => `${a.value}: ${failures.get(a.value)}`).join('\n'));
    for (const n of cluster.nodes)
      t.log(
        `node ${n.spec.nodeId}:\n${n.logTail
          .split('\n')
          .filter((l) => /"level":"(warn|error)"|Shutdown/.test(l))
          .slice(-40)
          .join('\n')}`,
      );
  }
  t.deepEqual(
    failed.map((a) => `${a.value}: ${a.outcome} ${a.error}`),
    [],
    'no append failed',
  );
  t.true(attempts.length >= 6 * progressAppendCountMin);

  const reader = newClient(cluster.clientAddrs);
  const records = await eventually('the whole topic read back', () => readWhole(reader), 60_000);
  const history = checkLog(
    attempts.map((a) => ({
      value: a.value,
      ...(a.offset === undefined ? {} : { offset: a.offset }),
      ...(a.error === undefined ? {} : { error: a.error }),
      definite: a.outcome === 'fail',
    })),
    records,
  );
  t.deepEqual(
    {
      lost: history.lost,
      misplaced: history.misplaced,
      duplicated: history.duplicated,
      unexpected: history.unexpected,
      holes: history.holes,
      failedPresent: history.failedPresent,
    },
    { lost: [], misplaced: [], duplicated: [], unexpected: [], holes: [], failedPresent: [] },
  );
  t.is(history.acknowledged, attempts.length);
  const end = (await reader.describeTopic(topic)).endOffset;
  t.deepEqual(checkRange(records, end), { missing: [], stray: [] });

  const reads = [];
  for (const n of cluster.nodes) {
    const pinned = newClient([n.clientAddr], { retryCountMax: 0 });
    reads.push({
      label: `node ${n.spec.nodeId}`,
      records: await eventually(`read via node ${n.spec.nodeId}`, () => readWhole(pinned)),
    });
  }
  t.deepEqual(compareReads(reads), [], 'every node serves the same sequence');

  for (const line of shutdownLogs)
    t.regex(line, /"completed":true/, 'the hand-off completed before the exit');
  t.log(`${attempts.length} appends, all acknowledged; ${records.length} records read back`);
});
