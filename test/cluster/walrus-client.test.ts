/**
 * A client written for real Walrus, unchanged, against a 3-node Walrus-TS cluster of real
 * walrus-node processes. It talks the way Walrus's own test scripts do: one framed command per
 * connection, the whole reply payload handed to JSON.parse for STATE and METRICS (no `OK ` to
 * strip), the leader found through `current_leader`, membership read from openraft's
 * `membership_config.membership.{configs,nodes}`, and catch-up read from `replication[id].index`
 * for every member, the leader included, against `last_log_index`.
 */
import net from 'node:net';
import test from 'ava';
import { eventually } from '../helpers/eventually.js';
import { startLocalCluster, type TestCluster } from '../helpers/local-cluster.js';
import { portOf } from '../helpers/raw-socket.js';

/** One command, one connection: a u32 LE length then the bytes, and the same back. */
function sendCommand(port: number, command: string, timeoutMs = 5_000): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = net.connect({ host: '127.0.0.1', port });
    let received = Buffer.alloc(0);
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new Error(`no reply to ${command} within ${timeoutMs} ms`));
    }, timeoutMs);
    socket.on('connect', () => {
      const body = Buffer.from(command, 'utf8');
      const length = Buffer.alloc(4);
      length.writeUInt32LE(body.length, 0);
      socket.write(Buffer.concat([length, body]));
    });
    socket.on('data', (chunk: Buffer) => {
      received = Buffer.concat([received, chunk]);
      if (received.length >= 4 && received.length >= 4 + received.readUInt32LE(0)) {
        clearTimeout(timer);
        socket.destroy();
        resolve(received.subarray(4, 4 + received.readUInt32LE(0)).toString('utf8'));
      }
    });
    socket.on('error', (error) => {
      clearTimeout(timer);
      reject(error);
    });
  });
}

/** The fields of openraft's RaftMetrics such a client reads. */
interface WalrusMetrics {
  running_state: { Ok?: null; Err?: unknown };
  state: string;
  millis_since_quorum_ack: number | null;
  heartbeat: Record<string, number | null> | null;
  current_leader: number | null;
  last_log_index: number | null;
  membership_config: { membership: { configs: number[][]; nodes: Record<string, unknown> } };
  replication: Record<string, { index: number } | null> | null;
}

/** A Walrus client's METRICS: the whole reply is the JSON document. */
async function metrics(port: number): Promise<WalrusMetrics> {
  return JSON.parse(await sendCommand(port, 'METRICS')) as WalrusMetrics;
}

function portsById(cluster: TestCluster): Map<number, number> {
  return new Map(cluster.nodes.map((n) => [n.spec.nodeId, portOf(n.clientAddr)]));
}

async function waitForLeader(ports: Map<number, number>): Promise<number> {
  return eventually('any node to report a leader', async () => {
    for (const port of ports.values()) {
      const leader = (await metrics(port)).current_leader;
      if (leader !== null && ports.has(leader)) return leader;
    }
    return undefined;
  });
}

/** The openraft way: some voter config holds every expected id, and `nodes` names them all. */
async function waitForMembership(port: number, expected: readonly number[]): Promise<number[][]> {
  return eventually(`membership ${expected}`, async () => {
    const { membership } = (await metrics(port)).membership_config;
    const nodeIds = new Set(Object.keys(membership.nodes).map(Number));
    const ready =
      expected.every((id) => nodeIds.has(id)) &&
      membership.configs.some((voters) => expected.every((id) => voters.includes(id)));
    return ready ? membership.configs : undefined;
  });
}

/** The openraft way: on the leader, every member's matched index has reached the last log index. */
async function waitForReplication(port: number, expected: readonly number[]): Promise<number> {
  return eventually(`replication to ${expected}`, async () => {
    const m = await metrics(port);
    const last = m.last_log_index ?? 0;
    const replication = m.replication ?? {};
    const caughtUp = expected.every((id) => (replication[String(id)]?.index ?? -1) >= last);
    return caughtUp && last > 0 ? last : undefined;
  });
}

test.serial(
  'a client written for Walrus waits for membership and replication, then uses STATE, unchanged',
  async (t) => {
    const cluster = await startLocalCluster({ nodeCount: 3 });
    try {
      const ports = portsById(cluster);
      const ids = [1, 2, 3];
      const leader = await waitForLeader(ports);
      const leaderPort = ports.get(leader)!;
      const configs = await waitForMembership(leaderPort, ids);
      t.deepEqual(configs, [ids]);
      // Every member, followers too, reports the same membership the openraft way.
      for (const port of ports.values()) await waitForMembership(port, ids);
      const before = await waitForReplication(leaderPort, ids);
      // A dashboard's view of the leader's health: running, and heard from by a quorum lately.
      const health = await eventually('the leader to report its quorum acks', async () => {
        const m = await metrics(leaderPort);
        return m.state === 'Leader' && m.millis_since_quorum_ack !== null ? m : undefined;
      });
      t.deepEqual(health.running_state, { Ok: null });
      t.true(health.millis_since_quorum_ack! < 5_000, `${health.millis_since_quorum_ack} ms`);
      t.deepEqual(Object.keys(health.heartbeat ?? {}).sort(), ['1', '2', '3']);

      // Metadata changes advance the Raft log; the client waits for every member to catch up.
      const port1 = ports.get(1)!;
      t.is(await sendCommand(port1, 'REGISTER compat-topic'), 'OK');
      t.is(await sendCommand(port1, 'PUT compat-topic hello from a walrus client'), 'OK');
      const leaderNow = await waitForLeader(ports);
      const after = await waitForReplication(ports.get(leaderNow)!, ids);
      t.true(after > before, `the log grew: ${before} → ${after}`);

      // STATE: the whole reply is the topic's JSON, from any node.
      for (const port of ports.values()) {
        const state = await eventually('the topic on every node', async () => {
          const text = await sendCommand(port, 'STATE compat-topic');
          return text.startsWith('{') ? (JSON.parse(text) as Record<string, unknown>) : undefined;
        });
        t.like(state, { current_segment: 1, last_sealed_entry_offset: 0, sealed_segments: {} });
        t.true(ids.includes(state['leader_node'] as number));
        t.deepEqual(state['segment_leaders'], { '1': state['leader_node'] });
      }
      t.is(await sendCommand(ports.get(2)!, 'GET compat-topic'), 'OK hello from a walrus client');
    } catch (error) {
      for (const n of cluster.nodes)
        t.log(`--- node ${n.spec.nodeId} log tail ---\n${n.logTail.slice(-3000)}`);
      throw error;
    } finally {
      await cluster.destroy();
    }
  },
);
