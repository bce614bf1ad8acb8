/**
 * Scripted replication scenarios on the whole-node simulator: each drives real nodes on simulated
 * disks and network, step by step, to one situation the seeded runs reach only by chance, and
 * asserts what docs/replication.md promises there. Each test says which invariant it is about and
 * which defect the simulator found there (known-failures.ts, `knownDefects`).
 */
import test from 'ava';
import { epochOf, replicasOf } from '../../../node/metadata/metadata-state.js';
import { isReplicationPayload } from '../../../node/protocol/replication-codec.js';
import { SimCluster } from './sim-cluster.js';
import { drive, scenarioSettings as settings, serving, startCluster, until } from './scenario-steps.js';

function raftOf(c: SimCluster, id: number) {
  const raft = c.node(id).running?.raft;
  if (raft == null) throw new Error(`node ${id} is not running`);
  return raft;
}

function segmentOn(c: SimCluster, node: number, topic: string, segmentId: number) {
  return c
    .node(node)
    .running?.state.topics.get(topic)
    ?.segments.find((s) => s.id === segmentId);
}

function isolate(c: SimCluster, victim: number, others: readonly number[]): void {
  for (const o of others) {
    c.net.cutLink(victim, o);
    c.net.cutLink(o, victim);
  }
}

/** Creates topics t1, t2, … until one is led by a node that is not the Raft leader; returns it. */
async function topicNotLedByRaftLeader(c: SimCluster, ids: readonly number[]) {
  for (let i = 1; i <= 10; i++) {
    const raftLeader = ids.find((id) => raftOf(c, id).isLeader)!;
    const created = await drive(
      c,
      'create',
      c.call<'createTopic'>(raftLeader, { op: 'createTopic', topic: `t${i}` }, 5_000),
    );
    if (!created.ok) throw new Error(`create failed: ${created.code} ${created.message}`);
    const leader = created.response.topic.leaderNodeId;
    if (leader !== raftLeader) return { name: `t${i}`, leader, raftLeader };
  }
  throw new Error('every topic went to the Raft leader');
}

test('S1/S6: a segment leader cut off before its first append never appends under the epoch of the recovery that fences it', async (t) => {
  // Defect A (found by the simulator; quick seeds 100034, 100089, 100129, 100183, soak seeds 24, 36,
  // 41, 46, …; fixed on main by 5882bfe): a leader that had applied fenceSegment (epoch 2) but had
  // no WAL copy of the segment yet created it in Appender.ensureLocalSegment and started its
  // replicator with epochOf(active) = 2, the recovery's epoch; the replicas, fenced at 2, accepted
  // its appends, a quorum acknowledged them, and the recovery's seal at the end it had planned
  // cut them.
  const c = new SimCluster(7, settings);
  const ids = [1, 2, 3];
  await startCluster(c, ids);
  const { name, leader } = await topicNotLedByRaftLeader(c, ids);
  const others = ids.filter((id) => id !== leader);
  isolate(c, leader, others);
  await until(c, 'the controller fences the segment (epoch 2)', () => {
    const s = segmentOn(c, others[0]!, name, 1);
    return s !== undefined && epochOf(s) >= 2;
  });
  // Back before the recovery (waiting out its fence request to the leader) seals the segment.
  c.net.healAll();
  await until(c, 'the leader applies the fence', () => {
    const s = segmentOn(c, leader, name, 1);
    return s !== undefined && epochOf(s) >= 2;
  });
  const append = await drive(
    c,
    'append',
    c.call<'append'>(leader, { op: 'append', topic: name, records: [{ value: Buffer.from('late') }] }, 5_000),
  );
  await until(c, 'segment 1 is sealed', () => segmentOn(c, others[0]!, name, 1)?.endOffset != null);
  const sealedAt = segmentOn(c, others[0]!, name, 1)!.endOffset!;
  t.log(
    `append: ${append.ok ? `acknowledged at ${append.response.firstOffset}` : append.code}; sealed at ${sealedAt}`,
  );
  t.true(
    !append.ok || append.response.lastOffset < sealedAt,
    `acknowledged offset ${append.ok ? append.response.lastOffset : '-'} is at or past the seal at ${sealedAt}`,
  );
});

test('S9: a replica wiped, removed and re-added under its id does not count toward a recovery of records it lost', async (t) => {
  // Defect D (fixed on main by 15ac104: a copy that cannot move off a leaving node is dropped
  // from its set): replica sets name node ids, not incarnations, and nothing took a removed
  // follower out of its active segment. A follower wiped after acknowledging records, removed and
  // re-added under its old id, answered a fence with an empty copy; with the other follower
  // behind, the recovery's n − Qa + 1 answers were the two that lacked the acknowledged records,
  // and it sealed below them.
  const c = new SimCluster(19, settings);
  const ids = [1, 2, 3];
  await startCluster(c, ids);
  const { name, leader } = await topicNotLedByRaftLeader(c, ids);
  // The create was answered by the Raft leader: the segment leader applies it a moment later.
  await until(c, 'the segment leader applies the create', () => segmentOn(c, leader, name, 1) !== undefined);
  const info = segmentOn(c, leader, name, 1)!;
  const followers = replicasOf(info).filter((id) => id !== leader);
  t.is(followers.length, 2, 'three replicas');
  const [wiped, behind] = followers as [number, number];
  // The leader's replicated appends to `behind` are lost: acknowledgements come from {leader, wiped}.
  c.net.dropRequest = (from, to, payload) =>
    from === leader && to === behind && isReplicationPayload(payload);
  const values = ['a', 'b', 'c'];
  const append = await drive(
    c,
    'append',
    c.call<'append'>(
      leader,
      { op: 'append', topic: name, records: values.map((v) => ({ value: Buffer.from(v) })) },
      5_000,
    ),
  );
  if (!append.ok) return t.fail(`append failed: ${append.code} ${append.message}`);
  // The wiped node is refused (new identity), removed by the operator, emptied and started with --join.
  c.wipe(wiped);
  c.boot(wiped);
  await until(c, 'the wiped node is refused', () => c.node(wiped).refused !== null);
  const removed = await drive(
    c,
    'remove-node',
    c.call<'removeNode'>(leader, { op: 'removeNode', nodeId: wiped }, 20_000),
  );
  if (!removed.ok || !removed.response.removed)
    return t.fail(
      `remove-node refused: ${removed.ok ? 'not removed' : `${removed.code} ${removed.message}`}`,
    );
  c.decommission(wiped);
  // The operator starts it again once the cluster forgot its old identity (else it is refused again).
  await until(c, 'the removal is applied (the old identity forgotten)', () =>
    ids.every((id) => id === wiped || c.node(id).running?.state.nodes.has(wiped) === false),
  );
  c.readd(wiped);
  c.boot(wiped);
  await until(c, 'the re-added node is a voter again', () => {
    const s = raftOf(c, leader).status();
    return s.voters.includes(wiped) && serving(c, wiped);
  });
  // The segment leader dies; the controller recovers the segment from the replicas left.
  c.crash(leader, true);
  const survivor = behind;
  await until(c, 'segment 1 is sealed', () => segmentOn(c, survivor, name, 1)?.endOffset != null, 60_000);
  const sealedAt = segmentOn(c, survivor, name, 1)!.endOffset!;
  t.log(`acknowledged ${append.response.firstOffset}..${append.response.lastOffset}; sealed at ${sealedAt}`);
  t.true(sealedAt > append.response.lastOffset, `acknowledged records cut by the seal at ${sealedAt}`);
});
