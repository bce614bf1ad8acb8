/**
 * Defect 6 of issue 12, with real processes: an append whose answer is lost after it was sent is
 * OUTCOME_UNKNOWN (may have been applied, not retryable), never the retryable UNAVAILABLE that
 * led clients to write duplicates.
 *
 * - Client and gateway: a fault-injecting TCP proxy in front of a real walrus-node forwards the
 *   append to the node, then cuts the connection as soon as the node answers (so the append was
 *   applied and its answer lost).
 * - The node's own forwarding: a Walrus text PUT to node 1 for a topic that node 2 leads, while
 *   node 2 is stopped (SIGSTOP) with the forwarded request in its socket, then killed (kill -9).
 *
 * Serial: the second test kills a node of its own cluster, and each test's timing should not be
 * shared with the other's.
 */
import { execFileSync } from 'node:child_process';
import net from 'node:net';
import test from 'ava';
import { createApp } from '../../../gateway/app.js';
import { WalrusClient } from '../../../node/client/walrus-client.js';
import { ErrorCode, WalrusError } from '../../../node/protocol/error-codes.js';
import { eventually } from '../../helpers/eventually.js';
import { startLocalCluster } from '../../helpers/local-cluster.js';
import { frame, rawExchange, splitFrames } from '../../helpers/raw-socket.js';

/** A TCP proxy that can cut the connection at the first byte of the server's answer. */
class CuttingProxy {
  /** When true, the next connection's first answer byte cuts it (then the proxy passes again). */
  cutAtNextAnswer = false;
  cutCount = 0;
  private readonly server: net.Server;
  private readonly sockets = new Set<net.Socket>();

  constructor(private readonly target: { host: string; port: number }) {
    this.server = net.createServer((client) => this.accept(client));
  }

  async listen(): Promise<number> {
    await new Promise<void>((resolve) => this.server.listen(0, '127.0.0.1', resolve));
    return (this.server.address() as net.AddressInfo).port;
  }

  private accept(client: net.Socket): void {
    const upstream = net.connect(this.target);
    for (const s of [client, upstream]) {
      this.sockets.add(s);
      s.on('close', () => this.sockets.delete(s));
      s.on('error', () => {});
    }
    client.on('data', (chunk) => upstream.write(chunk));
    upstream.on('data', (chunk) => {
      if (this.cutAtNextAnswer) {
        this.cutAtNextAnswer = false;
        this.cutCount += 1;
        client.destroy();
        upstream.destroy();
        return;
      }
      client.write(chunk);
    });
    client.on('close', () => upstream.destroy());
    upstream.on('close', () => client.destroy());
  }

  async close(): Promise<void> {
    for (const s of this.sockets) s.destroy();
    await new Promise((resolve) => this.server.close(resolve));
  }
}

async function rejection(p: Promise<unknown>): Promise<WalrusError> {
  try {
    await p;
  } catch (e) {
    if (e instanceof WalrusError) return e;
    throw e;
  }
  throw new Error('expected a rejection');
}

test.serial(
  'an append whose connection is cut after sending is OUTCOME_UNKNOWN at the client and 502 at the gateway',
  async (t) => {
    const cluster = await startLocalCluster({ nodeCount: 1, env: { WALRUS_LOG_LEVEL: 'warn' } });
    const direct = new WalrusClient({ nodes: cluster.clientAddrs });
    const [host, port] = cluster.clientAddrs[0]!.split(':') as [string, string];
    const proxy = new CuttingProxy({ host, port: Number(port) });
    const proxied = new WalrusClient({ nodes: [`127.0.0.1:${await proxy.listen()}`], retryBackoffMsMin: 5 });
    t.teardown(async () => {
      await proxied.close();
      await direct.close();
      await proxy.close();
      await cluster.destroy();
    });
    await proxied.createTopic('cut');

    // A plain append: applied by the node, answer lost: OUTCOME_UNKNOWN, sent once.
    proxy.cutAtNextAnswer = true;
    const err = await rejection(proxied.append('cut', [{ value: Buffer.from('a') }]));
    t.is(err.code, ErrorCode.OUTCOME_UNKNOWN, err.message);
    t.false(err.retryable);
    t.true(err.mayHaveBeenApplied);
    t.is(proxy.cutCount, 1);
    const afterPlain = await direct.read('cut', 0);
    t.deepEqual(
      afterPlain.records.map((r) => Buffer.from(r.value).toString()),
      ['a'],
      'it was applied once: following a retryable code would have written it twice',
    );

    // An idempotent producer's append is retried through the cut and deduplicated by the node.
    proxy.cutAtNextAnswer = true;
    const reply = await proxied.append('cut', [{ value: Buffer.from('b') }], {
      producerId: 'p',
      producerSeq: 0,
    });
    t.is(proxy.cutCount, 2);
    t.true(reply.duplicate, 'the retry found the first attempt applied');
    t.is(reply.firstOffset, 1);
    t.is((await direct.read('cut', 0)).records.length, 2);

    // The gateway over the same cut: 502 problem+json OUTCOME_UNKNOWN, no Retry-After.
    const gateway = createApp({ upstream: proxied, nodes: cluster.clientAddrs });
    t.teardown(() => gateway.close());
    proxy.cutAtNextAnswer = true;
    const res = await gateway.app.request('/v1/topics/cut/records', {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ records: [{ value: 'c' }] }),
    });
    t.is(res.status, 502);
    t.is(res.headers.get('content-type'), 'application/problem+json');
    t.is(res.headers.get('retry-after'), null, 'no invitation to retry');
    const problem = (await res.json()) as Record<string, unknown>;
    t.is(problem['code'], 'OUTCOME_UNKNOWN');
    t.is(problem['retryable'], false);
    t.is(problem['mayHaveBeenApplied'], true);
    t.is(proxy.cutCount, 3);
    t.is((await direct.read('cut', 0)).records.length, 3, 'applied once, not retried by the gateway');
  },
);

/** Bytes waiting unread in the sockets a process accepted on `port` (ss's Recv-Q). */
function receiveQueueBytes(port: number): number {
  const out = execFileSync('ss', ['-tnH', 'state', 'established', `( sport = :${port} )`], {
    encoding: 'utf8',
    timeout: 5_000,
  });
  let total = 0;
  for (const line of out.split('\n')) {
    const recvQ = Number(line.trim().split(/\s+/)[0]);
    if (Number.isFinite(recvQ)) total += recvQ;
  }
  return total;
}

test.serial(
  'a PUT forwarded to a segment leader that dies holding it is ERR OUTCOME_UNKNOWN, not UNAVAILABLE',
  async (t) => {
    const cluster = await startLocalCluster({ nodeCount: 2, env: { WALRUS_LOG_LEVEL: 'warn' } });
    const client = new WalrusClient({ nodes: cluster.clientAddrs });
    t.teardown(async () => {
      await client.close();
      await cluster.kill(1, 'SIGKILL').catch(() => {});
      await cluster.destroy();
    });
    // A topic whose active segment node 2 leads, with its only copy there (once node 2 is a voter,
    // placement gives it every other new topic).
    let attempt = 0;
    const topic = await eventually('a topic led by node 2', async () => {
      const name = `fwd-${attempt++}`;
      const created = await client.createTopic(name, { replicationFactor: 1 });
      return created.topic.leaderNodeId === 2 ? name : undefined;
    });
    // Small enough to sit whole in a loopback receive buffer (Raft heartbeats alone take far longer
    // than the wait to add as many bytes).
    const payload = 'x'.repeat(64 * 1024);
    const raftPort2 = cluster.nodes[1]!.spec.raftPort;
    const queuedBefore = receiveQueueBytes(raftPort2);

    await cluster.kill(1, 'SIGSTOP');
    const clientPort1 = cluster.nodes[0]!.spec.clientPort;
    const answer = rawExchange(clientPort1, [frame(`PUT ${topic} ${payload}`)], {
      quietMs: 60_000,
      expectFrames: 1,
    });
    // Node 1 forwarded the PUT: it sits unread in stopped node 2's socket.
    await eventually('the forwarded PUT in node 2 socket', async () =>
      receiveQueueBytes(raftPort2) >= queuedBefore + payload.length ? true : undefined,
    );
    await cluster.kill(1, 'SIGKILL');
    const reply = splitFrames((await answer).data)[0]?.toString('utf8') ?? '';
    t.regex(reply, /^ERR OUTCOME_UNKNOWN /, reply.slice(0, 200));
  },
);
