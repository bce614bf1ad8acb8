/**
 * Membership changes (one at a time, effective when applied) and leader transfer, after etcd-raft's
 * TestAddLearner/TestLearnerPromotion/TestRemoveNode/confchange_v1_remove_leader and the
 * TestLeaderTransfer* family.
 */
import test from 'ava';
import {
  ConfChangeType,
  EntryKind,
  encodeConfEntry,
  MemoryStorage,
  MessageType,
} from '../../../node/raft/index.js';
import { appliedData, drain, makeNode, msg, Net, persist } from './harness.js';

const code = (f: () => unknown): string | undefined => {
  try {
    f();
  } catch (err) {
    return (err as { code?: string }).code;
  }
  return undefined;
};

/** A 3-voter cluster with leader 1 and a fresh node 4 (not yet a member). */
function clusterWithJoiner(opts: Parameters<typeof Net.of>[1] = {}): Net {
  const net = Net.of([1, 2, 3], opts);
  net.nodes.set(4, makeNode(4, [], { ...opts, storage: new MemoryStorage() }));
  net.campaign(1);
  net.propose(1, 'a');
  return net;
}

test('add a learner: it receives the log but neither votes in quorums nor campaigns', (t) => {
  const net = clusterWithJoiner();
  net.core(1).proposeConfChange({ type: ConfChangeType.AddLearner, nodeId: 4 });
  net.stabilize();
  t.deepEqual(net.core(1).status().learners, [4]);
  t.deepEqual(appliedData(net.node(4)), ['a']);
  t.deepEqual(net.core(4).status().learners, [4]);
  net.tick(4, 100);
  t.is(net.core(4).role, 'Follower');
  t.is(net.core(4).currentTerm, 1);
  // Learners do not count: with 2 and 3 cut off, nothing commits even though 4 acks.
  net.cut(1, 2);
  net.cut(1, 3);
  const before = net.core(1).log.committed;
  net.propose(1, 'b');
  t.is(net.core(4).log.lastIndex(), net.core(1).log.lastIndex());
  t.is(net.core(1).log.committed, before);
});

test('status().confIndex names the entry whose configuration is in effect (METRICS log_id)', (t) => {
  const net = clusterWithJoiner();
  t.is(net.core(1).status().confIndex, 0, 'the bootstrap configuration');
  net.core(1).proposeConfChange({ type: ConfChangeType.AddLearner, nodeId: 4 });
  const at = net.core(1).log.lastIndex();
  t.is(net.core(1).status().confIndex, 0, 'not in effect before it is applied');
  net.stabilize();
  for (const id of [2, 3, 4]) t.is(net.core(id).status().confIndex, at, `node ${id}`);
});

test('promote is refused until the learner holds every committed entry, then succeeds', (t) => {
  const net = clusterWithJoiner();
  net.cut(1, 4);
  net.core(1).proposeConfChange({ type: ConfChangeType.AddLearner, nodeId: 4 });
  net.stabilize();
  t.is(
    code(() => net.core(1).proposeConfChange({ type: ConfChangeType.Promote, nodeId: 4 })),
    'LEARNER_NOT_CAUGHT_UP',
  );
  net.recover();
  net.tick(1, 1);
  net.core(1).proposeConfChange({ type: ConfChangeType.Promote, nodeId: 4 });
  net.stabilize();
  t.deepEqual(net.core(1).status().voters, [1, 2, 3, 4]);
  t.deepEqual(net.core(4).status().voters, [1, 2, 3, 4]);
  // Now 4 counts: with 2 and 3 cut off, 1 and 4 are not a majority of 4; with 3 back they are.
  net.cut(1, 2);
  net.cut(1, 3);
  const c = net.core(1).log.committed;
  net.propose(1, 'b');
  t.is(net.core(1).log.committed, c);
  net.recover();
  net.cut(1, 2);
  net.tick(1, 1);
  t.true(net.core(1).log.committed > c);
});

test('at most one configuration change is uncommitted', (t) => {
  const net = clusterWithJoiner();
  net.cut(1, 2);
  net.cut(1, 3);
  net.core(1).proposeConfChange({ type: ConfChangeType.AddLearner, nodeId: 4 });
  t.is(
    code(() => net.core(1).proposeConfChange({ type: ConfChangeType.AddLearner, nodeId: 5 })),
    'CONF_CHANGE_PENDING',
  );
  net.recover();
  net.tick(1, 1);
  t.notThrows(() => net.core(1).proposeConfChange({ type: ConfChangeType.AddLearner, nodeId: 5 }));
});

test('a new leader accepts no configuration change until its first entry commits', (t) => {
  const net = Net.of([1, 2, 3]);
  net.ignored.add(MessageType.App);
  net.campaign(1);
  t.is(net.core(1).role, 'Leader');
  t.is(
    code(() => net.core(1).proposeConfChange({ type: ConfChangeType.AddLearner, nodeId: 4 })),
    'CONF_CHANGE_PENDING',
  );
  net.recover();
  net.tick(1, 1);
  t.notThrows(() => net.core(1).proposeConfChange({ type: ConfChangeType.AddLearner, nodeId: 4 }));
});

test('changes that do not apply are refused with BAD_CONF_CHANGE', (t) => {
  const net = Net.of([1, 2, 3]);
  net.campaign(1);
  net.tick(1, 1);
  const cases = [
    { type: ConfChangeType.AddLearner, nodeId: 2 },
    { type: ConfChangeType.Promote, nodeId: 2 },
    { type: ConfChangeType.Remove, nodeId: 9 },
    { type: ConfChangeType.AddLearner, nodeId: 0 },
    { type: ConfChangeType.AddLearner, nodeId: 1.5 },
    { type: 'rename' as ConfChangeType, nodeId: 4 },
  ];
  for (const c of cases)
    t.is(
      code(() => net.core(1).proposeConfChange(c)),
      'BAD_CONF_CHANGE',
      JSON.stringify(c),
    );
  const single = Net.of([1]);
  single.campaign(1);
  t.is(
    code(() => single.core(1).proposeConfChange({ type: ConfChangeType.Remove, nodeId: 1 })),
    'BAD_CONF_CHANGE',
  );
});

test('remove a follower: the rest commit without it', (t) => {
  const net = Net.of([1, 2, 3]);
  net.campaign(1);
  net.core(1).proposeConfChange({ type: ConfChangeType.Remove, nodeId: 3 });
  net.stabilize();
  t.deepEqual(net.core(1).status().voters, [1, 2]);
  net.isolate(3);
  net.propose(1, 'without 3');
  t.deepEqual(appliedData(net.node(2)), ['without 3']);
  t.is(net.core(1).status().progress[3], undefined);
  net.tick(3, 100);
  t.not(net.core(3).role, 'Leader');
});

test('remove the leader: it keeps leading until it applies the removal, then steps down and hands over', (t) => {
  const net = Net.of([1, 2, 3], { checkQuorum: true, preVote: true });
  net.campaign(1);
  net.core(1).proposeConfChange({ type: ConfChangeType.Remove, nodeId: 1 });
  t.is(net.core(1).role, 'Leader', 'still leading the cluster it is leaving');
  net.stabilize();
  t.is(net.core(1).role, 'Follower');
  t.false(net.core(1).isVoter(1));
  const leaders = [2, 3].filter((id) => net.core(id).role === 'Leader');
  t.is(leaders.length, 1, 'TimeoutNow made a caught-up voter leader at once');
  net.propose(leaders[0]!, 'after');
  for (const id of [2, 3]) t.deepEqual(appliedData(net.node(id)), ['after']);
  net.tick(1, 100);
  t.not(net.core(1).role, 'Leader', 'the removed node never campaigns');
});

test('a leader removing itself counts itself until the removal is applied (etcd), then steps down', (t) => {
  const net = Net.of([1, 2, 3]);
  net.campaign(1);
  net.cut(1, 2);
  net.cut(1, 3);
  net.core(1).proposeConfChange({ type: ConfChangeType.Remove, nodeId: 1 });
  net.stabilize();
  t.is(net.core(1).role, 'Leader');
  t.deepEqual(net.core(1).status().voters, [1, 2, 3], 'the removal is not in effect before it is applied');
  net.recover();
  net.cut(1, 3);
  net.tick(1, 1);
  // {1, 2} is a quorum of the configuration in effect, [1, 2, 3]: the removal commits and applies.
  t.true(net.core(1).log.committed >= 2);
  t.is(net.core(1).role, 'Follower');
  t.deepEqual(net.core(1).status().voters, [2, 3]);
  t.is(net.core(2).role, 'Leader', 'the caught-up voter got TimeoutNow');
});

test('an uncommitted configuration change that is overwritten never takes effect', (t) => {
  const n = makeNode(1, [1, 2, 3]);
  const conf = encodeConfEntry({
    change: { type: 'addLearner', nodeId: 4 },
    conf: { voters: [1, 2, 3], learners: [4] },
  });
  n.core.step(
    msg({
      type: MessageType.App,
      from: 2,
      to: 1,
      term: 1,
      entries: [{ term: 1, index: 1, kind: EntryKind.Conf, data: conf }],
    }),
  );
  drain(n);
  t.deepEqual(n.core.status().learners, []);
  n.core.step(
    msg({
      type: MessageType.App,
      from: 3,
      to: 1,
      term: 2,
      entries: [{ term: 2, index: 1, kind: EntryKind.Normal, data: new Uint8Array(0) }],
      commit: 1,
    }),
  );
  drain(n);
  t.is(n.core.log.applied, 1);
  t.deepEqual(n.core.status().learners, []);
});

test('a learner answers vote requests (it may be a voter in a configuration it has not seen)', (t) => {
  const n = makeNode(4, [1, 2, 3], { learners: [4] });
  n.core.step(msg({ type: MessageType.Vote, from: 1, to: 4, term: 2 }));
  const [m] = drain(n);
  t.is(m?.type, 'VoteResp');
  t.false(m?.reject);
});

// ------------------------------------------------------------------ leader transfer

test('transfer to an up-to-date follower', (t) => {
  const net = Net.of([1, 2, 3], { checkQuorum: true });
  net.campaign(1);
  net.core(1).transferLeadership(2);
  net.stabilize();
  t.is(net.core(2).role, 'Leader');
  t.is(net.core(2).currentTerm, 2);
  t.is(net.core(1).role, 'Follower');
});

test('transfer to a slow follower waits until it has caught up', (t) => {
  const net = Net.of([1, 2, 3]);
  net.campaign(1);
  net.isolate(3);
  net.propose(1, 'a');
  net.propose(1, 'b');
  net.recover();
  net.core(1).transferLeadership(3);
  net.stabilize();
  t.is(net.core(3).role, 'Leader');
  t.deepEqual(appliedData(net.node(3)).slice(0, 2), ['a', 'b']);
});

test('proposals are refused during a transfer; the transfer aborts after an election timeout', (t) => {
  const net = Net.of([1, 2, 3], { electionTick: 10 });
  net.campaign(1);
  net.isolate(3);
  net.core(1).transferLeadership(3);
  t.is(net.core(1).status().leadTransferee, 3);
  t.is(
    code(() => net.core(1).propose(new Uint8Array([1]))),
    'TRANSFER_IN_PROGRESS',
  );
  net.tick(1, 10);
  t.is(net.core(1).status().leadTransferee, 0);
  t.is(net.core(1).role, 'Leader');
  t.notThrows(() => net.core(1).propose(new Uint8Array([1])));
});

test('transfer to self is a no-op; to a learner or stranger is refused', (t) => {
  const net = clusterWithJoiner();
  net.core(1).proposeConfChange({ type: ConfChangeType.AddLearner, nodeId: 4 });
  net.stabilize();
  net.core(1).transferLeadership(1);
  t.is(net.core(1).status().leadTransferee, 0);
  t.is(
    code(() => net.core(1).transferLeadership(4)),
    'BAD_REQUEST',
  );
  t.is(
    code(() => net.core(1).transferLeadership(9)),
    'BAD_REQUEST',
  );
  t.is(
    code(() => net.core(2).transferLeadership(3)),
    'NOT_LEADER',
  );
});

test('configuration changes wait for a transfer to finish or abort', (t) => {
  const net = Net.of([1, 2, 3]);
  net.campaign(1);
  net.tick(1, 1);
  net.isolate(3);
  net.core(1).transferLeadership(3);
  // A transfer blocks configuration changes like any proposal, so the target cannot vanish
  // mid-transfer; once the transfer times out the removal goes through.
  t.is(
    code(() => net.core(1).proposeConfChange({ type: ConfChangeType.Remove, nodeId: 3 })),
    'TRANSFER_IN_PROGRESS',
  );
  net.tick(1, 20);
  net.core(1).proposeConfChange({ type: ConfChangeType.Remove, nodeId: 3 });
  t.is(net.core(1).status().leadTransferee, 0);
});

test('a transfer bypasses the leader lease of CheckQuorum', (t) => {
  const net = Net.of([1, 2, 3], { checkQuorum: true, preVote: true });
  net.campaign(1);
  net.propose(1, 'x');
  net.core(1).transferLeadership(3);
  net.stabilize();
  t.is(net.core(3).role, 'Leader');
  net.core(3).transferLeadership(1);
  net.stabilize();
  t.is(net.core(1).role, 'Leader', 'and it can be transferred back');
});

test('a node whose log ends in its own uncommitted removal is still a voter: it campaigns, commits the removal, then hands over', (t) => {
  // Node 3 holds the only copy of "remove 3" (uncommitted): the configuration in effect is [1,2,3].
  const voters = [1, 2, 3];
  const conf = encodeConfEntry({
    change: { type: 'remove', nodeId: 3 },
    conf: { voters: [1, 2], learners: [] },
  });
  const s3 = new MemoryStorage({ voters, learners: [] });
  s3.append([
    { term: 1, index: 1, kind: EntryKind.Normal, data: new Uint8Array(0) },
    { term: 1, index: 2, kind: EntryKind.Conf, data: conf },
  ]);
  s3.setHardState({ term: 1, vote: 0, commit: 1 });
  const net = new Net([makeNode(1, voters), makeNode(2, voters), makeNode(3, [], { storage: s3 })]);
  t.true(net.core(3).isVoter(3));
  net.campaign(3);
  // It won, committed and applied the removal and stepped down.
  t.is(net.core(3).role, 'Follower');
  t.is(net.core(1).log.term(2), 1);
  t.deepEqual(net.core(1).status().voters, [1, 2]);
  t.true(net.core(1).log.committed >= 2);
  const leaders = [1, 2].filter((id) => net.core(id).role === 'Leader');
  t.is(leaders.length, 1);
  net.tick(3, 50);
  t.is(net.core(3).role, 'Follower', 'once the removal is committed it never campaigns again');
});

test('transfer to a follower that needs a snapshot first', (t) => {
  const net = Net.of([1, 2, 3]);
  net.campaign(1);
  net.isolate(3);
  net.propose(1, 'a');
  net.propose(1, 'b');
  const n1 = net.node(1);
  n1.storage.compact(n1.core.compact(n1.core.log.applied, new Uint8Array(0)));
  net.recover();
  net.core(1).transferLeadership(3);
  net.stabilize();
  t.true(net.log.some((m) => m.type === MessageType.Snap && m.to === 3));
  t.is(net.core(3).role, 'Leader');
});

test('a second transfer to the same target is a no-op; to another target replaces it', (t) => {
  const net = Net.of([1, 2, 3]);
  net.campaign(1);
  net.isolate(3);
  net.isolate(2);
  net.core(1).transferLeadership(3);
  net.core(1).transferLeadership(3);
  net.send(drain(net.node(1))); // the TimeoutNow to 3 is lost in the partition
  t.is(net.core(1).status().leadTransferee, 3);
  net.core(1).transferLeadership(2);
  net.send(drain(net.node(1)));
  t.is(net.core(1).status().leadTransferee, 2);
  net.recover();
  net.tick(1, 1);
  t.is(net.core(2).role, 'Leader');
});

test('a transfer is abandoned when the leader learns of a higher term', (t) => {
  const net = Net.of([1, 2, 3]);
  net.campaign(1);
  net.isolate(3);
  net.core(1).transferLeadership(3);
  net.core(1).step(msg({ type: MessageType.Vote, from: 2, to: 1, term: 5, index: 9, logTerm: 1 }));
  t.is(net.core(1).role, 'Follower');
  t.is(net.core(1).status().leadTransferee, 0);
  t.is(net.core(1).currentTerm, 5);
});

test('a learner never campaigns, even on TimeoutNow', (t) => {
  const n = makeNode(4, [1, 2, 3], { learners: [4] });
  for (let k = 0; k < 100; k++) n.core.tick();
  n.core.step(msg({ type: MessageType.TimeoutNow, from: 1, to: 4, term: 1 }));
  t.is(n.core.role, 'Follower');
  t.deepEqual(
    drain(n).filter((m) => m.type === MessageType.Vote),
    [],
  );
});

test('CheckQuorum: a non-voter learner does not keep a leader alive', (t) => {
  const net = clusterWithJoiner({ checkQuorum: true, electionTick: 10 });
  net.core(1).proposeConfChange({ type: ConfChangeType.AddLearner, nodeId: 4 });
  net.stabilize();
  net.cut(1, 2);
  net.cut(1, 3);
  for (let k = 0; k < 20; k++) {
    net.core(1).tick();
    net.core(4).tick();
    net.stabilize();
  }
  t.is(net.core(1).role, 'Follower', 'only the learner answered: no quorum');
});

// ------------------------------------------------------------------ effective when applied

test('defect 6: an uncommitted promote on a cut-off leader cannot block elections when a voter dies', (t) => {
  // Voters {1,2,3}, learner 4; leader 2 appends "promote 4" that nobody else receives.
  const net = Net.of([1, 2, 3]);
  net.nodes.set(4, makeNode(4, [], { storage: new MemoryStorage() }));
  net.campaign(2);
  net.core(2).proposeConfChange({ type: ConfChangeType.AddLearner, nodeId: 4 });
  net.stabilize();
  net.propose(2, 'a');
  t.deepEqual(appliedData(net.node(4)), ['a']);
  net.isolate(2);
  net.core(2).proposeConfChange({ type: ConfChangeType.Promote, nodeId: 4 });
  net.stabilize();
  // Node 3 wins term 2 with node 1's vote; its first entry reaches learner 4 only; then 3 dies.
  net.recover();
  net.isolate(2);
  net.ignored.add(MessageType.App);
  net.campaign(3);
  t.is(net.core(3).role, 'Leader');
  net.recover();
  net.isolate(2);
  net.cut(3, 1);
  net.tick(3, 1);
  t.is(net.core(4).log.lastTerm(), 2, 'the learner holds an entry of term 2');
  t.is(net.core(2).log.lastTerm(), 1, 'node 2 ends in its term-1 promote');
  net.nodes.delete(3);
  net.recover();
  // Survivors 1, 2 and 4: some voter must win and commit.
  let leader: number | undefined;
  for (let round = 0; round < 200 && leader === undefined; round++) {
    net.tickAll(1);
    leader = [1, 2].find((id) => net.core(id).role === 'Leader');
  }
  if (leader === undefined) return t.fail('no leader elected in 200 ticks');
  net.propose(leader, 'b');
  t.deepEqual(appliedData(net.node(1)), ['a', 'b']);
  t.deepEqual(appliedData(net.node(2)), ['a', 'b']);
  // The promote, once committed and applied, makes 4 a voter: with 3 dead, 1, 2 and 4 commit.
  t.deepEqual(net.core(leader).status().voters, [1, 2, 3, 4]);
  net.propose(leader, 'c');
  t.deepEqual(appliedData(net.node(4)), ['a', 'b', 'c']);
});

test('a configuration change takes effect when applied, not when appended', (t) => {
  const n = makeNode(1, [1, 2, 3]);
  const conf = encodeConfEntry({
    change: { type: 'addLearner', nodeId: 4 },
    conf: { voters: [1, 2, 3], learners: [4] },
  });
  const entries = [{ term: 1, index: 1, kind: EntryKind.Conf, data: conf }];
  n.core.step(msg({ type: MessageType.App, from: 2, to: 1, term: 1, entries }));
  drain(n);
  t.deepEqual(n.core.status().learners, [], 'appended but not committed: no effect');
  n.core.step(msg({ type: MessageType.App, from: 2, to: 1, term: 1, index: 1, logTerm: 1, commit: 1 }));
  drain(n);
  t.is(n.core.log.applied, 1);
  t.deepEqual(n.core.status().learners, [4], 'applied: in effect');
});

test('restart: the configuration is rebuilt from the snapshot and the committed entries only', (t) => {
  const conf = encodeConfEntry({
    change: { type: 'remove', nodeId: 3 },
    conf: { voters: [1, 2], learners: [] },
  });
  const storage = (commit: number): MemoryStorage => {
    const s = new MemoryStorage({ voters: [1, 2, 3], learners: [] });
    s.append([
      { term: 1, index: 1, kind: EntryKind.Normal, data: new Uint8Array(0) },
      { term: 1, index: 2, kind: EntryKind.Conf, data: conf },
    ]);
    s.setHardState({ term: 1, vote: 0, commit });
    return s;
  };
  t.deepEqual(makeNode(3, [], { storage: storage(1) }).core.status().voters, [1, 2, 3]);
  t.deepEqual(makeNode(3, [], { storage: storage(2) }).core.status().voters, [1, 2]);
});

test('a node does not campaign while a committed configuration change is not applied yet', (t) => {
  // applyBytesMax 1: one entry per Ready, so commit can run ahead of applied.
  const n = makeNode(1, [1, 2], { applyBytesMax: 1 });
  const conf = encodeConfEntry({
    change: { type: 'addLearner', nodeId: 3 },
    conf: { voters: [1, 2], learners: [3] },
  });
  const entries = [
    { term: 1, index: 1, kind: EntryKind.Normal, data: new Uint8Array(0) },
    { term: 1, index: 2, kind: EntryKind.Conf, data: conf },
  ];
  n.core.step(msg({ type: MessageType.App, from: 2, to: 1, term: 1, entries, commit: 2 }));
  const rd = n.core.ready()!;
  t.is(rd.committedEntries.length, 1);
  persist(n, rd);
  n.core.advance(rd);
  t.is(n.core.log.applied, 1);
  n.core.campaign();
  t.is(n.core.role, 'Follower', 'the change at 2 is committed but not applied');
  drain(n);
  t.deepEqual(n.core.status().learners, [3]);
  n.core.campaign();
  t.not(n.core.role, 'Follower');
});

test('a TimeoutNow that arrives before a committed change is applied campaigns once it is', (t) => {
  // The driver may step several messages before it handles a Ready: the removed leader's commit
  // and its TimeoutNow arrive together, and the target may not campaign before it applies the
  // change (etcd's rule), so it campaigns right after.
  const n = makeNode(2, [1, 2, 3]);
  const conf = encodeConfEntry({
    change: { type: 'remove', nodeId: 1 },
    conf: { voters: [2, 3], learners: [] },
  });
  const entries = [
    { term: 1, index: 1, kind: EntryKind.Normal, data: new Uint8Array(0) },
    { term: 1, index: 2, kind: EntryKind.Conf, data: conf },
  ];
  n.core.step(msg({ type: MessageType.App, from: 1, to: 2, term: 1, entries, commit: 2 }));
  n.core.step(msg({ type: MessageType.TimeoutNow, from: 1, to: 2, term: 1 }));
  t.is(n.core.role, 'Follower', 'not before the removal is applied');
  const sent = drain(n);
  t.is(n.core.role, 'Candidate');
  t.deepEqual(n.core.status().voters, [2, 3]);
  const votes = sent.filter((m) => m.type === MessageType.Vote);
  t.deepEqual(
    votes.map((m) => [m.to, m.transfer]),
    [[3, true]],
  );
});
