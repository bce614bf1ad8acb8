/**
 * Scripted remove-node scenarios on the whole-node simulator (real nodes, simulated disks and
 * network), driven only through client requests so that they ran unchanged against the removal
 * before its leaving mark moved into the metadata, and failed there:
 * - the Raft leader running a removal dies mid-way: the next leader must not place new segments on
 *   the node being removed, and must finish the removal (nobody retries it);
 * - two removals at once: the second is refused, retryable, naming the node being removed.
 */
import test from 'ava';
import { ErrorCode } from '../../../node/protocol/error-codes.js';
import { Opcode } from '../../../node/protocol/binary-header.js';
import { replicasOf } from '../../../node/metadata/metadata-state.js';
import { SimCluster } from './sim-cluster.js';
import {
  drive as driveFor,
  serving,
  scenarioSettings as settings,
  startCluster as startClusterFor,
  until as untilFor,
} from './scenario-steps.js';

/** Simulated ms a scripted step of these scenarios may take before the scenario fails. */
const stepMs = 60_000;
const until = (c: SimCluster, what: string, holds: () => boolean, ms = stepMs) =>
  untilFor(c, what, holds, ms);
const drive = <T>(c: SimCluster, what: string, work: Promise<T>) => driveFor(c, what, work, stepMs);
const startCluster = (c: SimCluster, ids: readonly number[]) => startClusterFor(c, ids, stepMs);

function raftLeader(c: SimCluster, ids: readonly number[]): number | undefined {
  return ids.find((id) => c.node(id).running?.raft?.isLeader === true && serving(c, id));
}

function votersOf(c: SimCluster, id: number): readonly number[] {
  return c.node(id).running?.raft?.status().voters ?? [];
}

/** Whether a peer request is the binary request `op` (a client request one node sends another). */
function isOp(payload: Uint8Array, op: number): boolean {
  return payload.length > 2 && payload[0] === 0xb1 && payload[2] === op;
}

/** Creates topics t1, t2, … until one's active segment is led by `leader`; returns its name. */
async function topicLedBy(c: SimCluster, ids: readonly number[], leader: number): Promise<string> {
  for (let i = 1; i <= 40; i++) {
    const created = await drive(
      c,
      'create',
      c.call<'createTopic'>(raftLeader(c, ids)!, { op: 'createTopic', topic: `t${i}` }, 5_000),
    );
    if (!created.ok) throw new Error(`create failed: ${created.code} ${created.message}`);
    if (created.response.topic.leaderNodeId === leader) return `t${i}`;
  }
  throw new Error(`no topic went to node ${leader}`);
}

test('a Raft leader change mid-removal: the new leader places nothing on the leaving node and finishes the removal', async (t) => {
  const c = new SimCluster(23, settings);
  const ids = [1, 2, 3, 4];
  await startCluster(c, ids);
  const first = raftLeader(c, ids)!;
  const leaving = ids.find((id) => id !== first)!;
  await topicLedBy(c, ids, leaving);
  // The removal gets as far as asking the leaving node to hand its segments off; the Raft leader
  // dies there, and nobody retries the removal (its client lost the answer with the leader).
  let handOffAsked = false;
  c.net.dropRequest = (from, to, payload) => {
    if (from === first && to === leaving && isOp(payload, Opcode.handOff)) handOffAsked = true;
    return false;
  };
  void c.call<'removeNode'>(first, { op: 'removeNode', nodeId: leaving }, 60_000);
  await until(c, 'the removal asks for the hand-off', () => handOffAsked);
  c.net.dropRequest = null;
  c.crash(first, true);
  const rest = ids.filter((id) => id !== first);
  await until(c, 'a new Raft leader', () => raftLeader(c, rest) !== undefined);
  // Placement on the new leader: new topics, while the removal is under way or done.
  const placed: { topic: string; replicas: readonly number[] }[] = [];
  for (let i = 1; i <= 6; i++) {
    const leader = raftLeader(c, rest);
    if (leader === undefined) {
      await until(c, 'a Raft leader', () => raftLeader(c, rest) !== undefined);
      continue;
    }
    const created = await drive(
      c,
      'create',
      c.call<'createTopic'>(leader, { op: 'createTopic', topic: `after${i}` }, 5_000),
    );
    if (!created.ok) continue;
    const state = c.node(leader).running!.state;
    const segment = state.topics.get(`after${i}`)?.segments.at(-1);
    if (segment !== undefined) placed.push({ topic: `after${i}`, replicas: replicasOf(segment) });
  }
  t.true(placed.length > 0, 'some topic was created after the leader change');
  for (const p of placed)
    t.false(
      p.replicas.includes(leaving),
      `${p.topic} was placed on node ${leaving}, which is being removed: ${p.replicas.join(',')}`,
    );
  // Nobody retries: the new leader finishes the removal itself.
  await until(c, `node ${leaving} leaves the configuration`, () => {
    const leader = raftLeader(c, rest);
    return leader !== undefined && !votersOf(c, leader).includes(leaving);
  });
  const leader = raftLeader(c, rest)!;
  await until(c, 'the removal is over (the node unregistered)', () => {
    const s = c.node(leader).running?.state;
    return s !== undefined && !s.nodes.has(leaving);
  });
  t.pass();
});

test('a second removal while one is under way is refused, retryable, naming the node being removed', async (t) => {
  const c = new SimCluster(29, settings);
  const ids = [1, 2, 3, 4, 5];
  await startCluster(c, ids);
  const leader = raftLeader(c, ids)!;
  const [a, b] = ids.filter((id) => id !== leader) as [number, number];
  await topicLedBy(c, ids, a);
  const both = await drive(
    c,
    'both removals answer',
    Promise.all([
      c.call<'removeNode'>(leader, { op: 'removeNode', nodeId: a }, 60_000),
      c.call<'removeNode'>(leader, { op: 'removeNode', nodeId: b }, 60_000),
    ]),
  );
  const [first, second] = both;
  t.true(
    first.ok && first.response.removed,
    `the first removal: ${first.ok ? 'not removed' : first.message}`,
  );
  if (second.ok) return t.fail(`node ${b} was removed while node ${a}'s removal was under way`);
  t.is(second.code, ErrorCode.UNAVAILABLE);
  t.regex(second.message, new RegExp(`node ${a} is being removed`));
  t.true(votersOf(c, leader).includes(b), `node ${b} is still a voter`);
  // Once the first has left, the second goes through (retried as the error says).
  await until(c, `node ${a} is unregistered`, () => !c.node(leader).running!.state.nodes.has(a));
  const retried = await drive(
    c,
    'the retried removal',
    c.call<'removeNode'>(leader, { op: 'removeNode', nodeId: b }, 60_000),
  );
  t.true(retried.ok && retried.response.removed, `retry: ${retried.ok ? 'not removed' : retried.message}`);
});
