/**
 * Scripted whole-node scenarios: the same simulated nodes, disks and network as the seeded runs,
 * driven step by step to a situation a random run reaches only rarely, each a regression test of
 * a defect the simulator found.
 */
import test from 'ava';
import { SimCluster } from './sim-cluster.js';
import { drive, scenarioSettings as settings, serving, startCluster, until } from './scenario-steps.js';

function raftOf(c: SimCluster, id: number) {
  const raft = c.node(id).running?.raft;
  if (raft == null) throw new Error(`node ${id} is not running`);
  return raft;
}

test('a follower that has not applied a new leader’s registration still reaches it and catches up', async (t) => {
  // Found by the whole-node simulator: node 4 joined while node 3 was down, then led; node 3,
  // back, received node 4's appends but had no address to answer it with (its applied metadata
  // did not hold node 4 yet), so it never caught up: the cluster silently ran one voter short.
  const c = new SimCluster(11, settings);
  await startCluster(c, [1, 2, 3]);
  c.crash(3, false);
  c.addNode(4, true, 0);
  c.boot(4);
  await until(c, 'node 4 is a registered voter', () => {
    const s = raftOf(c, 1).status();
    return s.voters.includes(4) && raftOf(c, 1).state.nodes.has(4) && serving(c, 4);
  });
  const leader = [1, 2].find((id) => raftOf(c, id).isLeader)!;
  raftOf(c, leader).transferLeadership(4);
  await until(c, 'node 4 leads', () => raftOf(c, 4).isLeader);
  c.boot(3);
  await until(c, 'node 3 runs', () => serving(c, 3));
  t.false(c.node(3).running!.state.nodes.has(4), 'node 3 has not applied node 4 registration yet');
  const target = raftOf(c, 4).status().commit;
  await until(c, 'node 3 catches up with node 4', () => c.node(3).running!.state.appliedIndex >= target);
  t.pass();
});

test('a deposed leader that does not know it yet never answers TOPIC_NOT_FOUND for a topic created meanwhile', async (t) => {
  // Found by the whole-node simulator: an append to a topic just created through the new leader
  // reached the old one, isolated and still sure it led; it did not know the topic, and catching
  // up "with the leader" (itself) changed nothing, so it told the client the topic did not exist.
  const c = new SimCluster(3, settings);
  await startCluster(c, [1, 2, 3]);
  const old = [1, 2, 3].find((id) => raftOf(c, id).isLeader)!;
  const others = [1, 2, 3].filter((id) => id !== old);
  for (const other of others) {
    c.net.cutLink(old, other);
    c.net.cutLink(other, old);
  }
  await until(c, 'another node leads', () => others.some((id) => raftOf(c, id).isLeader));
  t.true(raftOf(c, old).isLeader, `node ${old} still believes it leads (precondition of the scenario)`);
  const created = await drive(
    c,
    'create',
    c.call<'createTopic'>(others[0]!, { op: 'createTopic', topic: 'fresh' }, 5_000),
  );
  t.true(created.ok, 'the topic is created through the new leader');
  const append = await drive(
    c,
    'append',
    c.call<'append'>(old, { op: 'append', topic: 'fresh', records: [{ value: Buffer.from('x') }] }, 5_000),
  );
  t.false(
    !append.ok && append.code === 'TOPIC_NOT_FOUND',
    `the old leader answered ${JSON.stringify(append)}`,
  );
});
