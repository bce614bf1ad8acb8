/**
 * Election scenarios from etcd-raft's raft_test.go: leader election with and without PreVote,
 * dueling candidates, CheckQuorum step-down and leases, disruptive followers.
 */
import test from 'ava';
import { makeNode, msg, Net, storageWithTerms } from './harness.js';
import { MessageType } from '../../../node/raft/index.js';

const shapes: [string, number[], number[], 'Leader' | 'Candidate' | 'PreCandidate', number][] = [
  // name, live node ids, voters, state of node 1 after campaigning, its term
  ['all up', [1, 2, 3], [1, 2, 3], 'Leader', 1],
  ['one down', [1, 2], [1, 2, 3], 'Leader', 1],
  ['two of three down', [1], [1, 2, 3], 'Candidate', 1],
  ['three of four down', [1, 4], [1, 2, 3, 4], 'Candidate', 1],
  ['two of five down', [1, 4, 5], [1, 2, 3, 4, 5], 'Leader', 1],
];
for (const preVote of [false, true]) {
  for (const [name, live, voters, want, term] of shapes) {
    test(`leader election${preVote ? ' with PreVote' : ''}: ${name}`, (t) => {
      const net = new Net(live.map((id) => makeNode(id, voters, { preVote })));
      net.campaign(1);
      const expect = preVote && want === 'Candidate' ? 'PreCandidate' : want;
      t.is(net.core(1).role, expect);
      // A failed pre-vote does not move the term.
      t.is(net.core(1).currentTerm, preVote && want === 'Candidate' ? 0 : term);
    });
  }
}

test('leader cycle: every node can win an election in turn', (t) => {
  for (const preVote of [false, true]) {
    const net = Net.of([1, 2, 3], { preVote });
    for (const id of [1, 2, 3]) {
      net.campaign(id);
      for (const other of [1, 2, 3]) t.is(net.core(other).role, other === id ? 'Leader' : 'Follower');
    }
  }
});

test('an older log cannot win against newer ones (overwrites stale follower entries)', (t) => {
  // Node 1 holds an entry of term 1 nobody else has; nodes 2 and 3 hold a term-2 entry.
  const voters = [1, 2, 3];
  const net = new Net([
    makeNode(1, voters, { storage: storageWithTerms(voters, [1]) }),
    makeNode(2, voters, { storage: storageWithTerms(voters, [2]) }),
    makeNode(3, voters, { storage: storageWithTerms(voters, [2]) }),
  ]);
  net.campaign(1);
  t.not(net.core(1).role, 'Leader');
  net.campaign(2);
  t.is(net.core(2).role, 'Leader');
  t.is(net.core(1).log.term(1), 2, 'the stale entry was overwritten');
});

test('dueling candidates: the one with the shorter log loses and the cluster recovers', (t) => {
  const net = Net.of([1, 2, 3]);
  net.cut(1, 3);
  net.campaign(1);
  net.campaign(3);
  t.is(net.core(1).role, 'Leader');
  t.is(net.core(3).role, 'Candidate');
  net.recover();
  // 3 campaigns at a higher term: its log lacks the leader's entry, so it loses, but its term
  // deposes the leader (no CheckQuorum here).
  net.campaign(3);
  t.is(net.core(3).role, 'Follower');
  t.is(net.core(1).role, 'Follower');
  t.is(net.core(1).currentTerm, 2);
  net.campaign(1);
  t.is(net.core(1).role, 'Leader');
});

test('dueling pre-candidates: PreVote keeps the leader and the term', (t) => {
  const net = Net.of([1, 2, 3], { preVote: true });
  net.cut(1, 3);
  net.campaign(1);
  net.campaign(3);
  t.is(net.core(1).role, 'Leader');
  // 2 rejects 3's pre-vote (3's log is behind) with term 1, so 3 reverts to follower at term 1.
  t.is(net.core(3).role, 'Follower');
  t.is(net.core(3).currentTerm, 1);
  net.recover();
  net.campaign(3);
  t.is(net.core(1).role, 'Leader');
  t.is(net.core(1).currentTerm, 1);
  t.is(net.core(3).currentTerm, 1);
  t.is(net.core(3).role, 'Follower');
});

test('candidate concedes to a leader of its term and catches up', (t) => {
  const net = Net.of([1, 2, 3]);
  net.isolate(1);
  net.campaign(1);
  net.campaign(3);
  net.recover();
  net.tick(3, 1); // heartbeat
  net.propose(3, 'force follower');
  t.is(net.core(1).role, 'Follower');
  t.is(net.core(1).currentTerm, 1);
  t.is(net.core(1).log.lastIndex(), net.core(3).log.lastIndex());
});

test('a single-node cluster elects itself and commits alone', (t) => {
  const net = Net.of([1]);
  net.campaign(1);
  t.is(net.core(1).role, 'Leader');
  net.propose(1, 'x');
  t.is(net.core(1).log.committed, 2);
});

test('proposals to a follower are refused with NOT_LEADER and a leader hint', (t) => {
  const net = Net.of([1, 2, 3]);
  net.campaign(1);
  const err = t.throws(() => net.core(2).propose(new Uint8Array([1])));
  t.is((err as { code?: string }).code, 'NOT_LEADER');
  t.is((err as { leaderId?: number }).leaderId, 1);
});

test('CheckQuorum: a leader that hears from a quorum stays leader', (t) => {
  const net = Net.of([1, 2, 3], { checkQuorum: true, electionTick: 10 });
  net.campaign(1);
  net.tickAll(25);
  t.is(net.core(1).role, 'Leader');
  t.is(net.core(1).currentTerm, 1);
});

test('CheckQuorum: a leader that lost its quorum steps down within an election timeout', (t) => {
  const net = Net.of([1, 2, 3], { checkQuorum: true, electionTick: 10 });
  net.campaign(1);
  net.isolate(1);
  net.tick(1, 10);
  t.is(net.core(1).role, 'Leader', 'one timeout has not passed with all of them silent yet');
  net.tick(1, 10);
  t.is(net.core(1).role, 'Follower');
  t.is(net.core(1).currentTerm, 1);
});

test('CheckQuorum lease: followers with a live leader ignore a vote, until the lease expires', (t) => {
  const net = Net.of([1, 2, 3], { checkQuorum: true, electionTick: 10 });
  net.campaign(1);
  net.cut(1, 3);
  net.campaign(3);
  t.is(net.core(3).role, 'Candidate');
  t.is(net.core(1).role, 'Leader', 'node 2 is in lease and ignored the vote');
  t.is(net.core(2).currentTerm, 1);
  // Once node 2 has not heard from the leader for an election timeout, 3 can win.
  net.isolate(1);
  net.tick(2, 10);
  net.recover();
  net.cut(1, 3);
  net.cut(1, 2);
  net.campaign(3);
  t.is(net.core(3).role, 'Leader');
});

test('CheckQuorum frees a stuck candidate: its higher term deposes the stale leader', (t) => {
  const net = Net.of([1, 2, 3], { checkQuorum: true, electionTick: 10 });
  net.campaign(1);
  net.isolate(1);
  net.cut(2, 3);
  net.recover();
  net.isolate(3);
  net.campaign(3);
  net.campaign(3);
  t.is(net.core(3).role, 'Candidate');
  t.is(net.core(3).currentTerm, 3);
  net.recover();
  net.tick(1, 1); // heartbeat reaches 3, which answers with its higher term
  t.is(net.core(1).role, 'Follower');
  t.is(net.core(1).currentTerm, 3);
});

test('PreVote: a partitioned follower does not inflate its term or disrupt on rejoin', (t) => {
  const net = Net.of([1, 2, 3], { preVote: true, checkQuorum: true, electionTick: 10 });
  net.campaign(1);
  net.propose(1, 'x');
  net.isolate(3);
  for (let k = 0; k < 5; k++) net.tick(3, 20);
  t.is(net.core(3).currentTerm, 1, 'pre-votes failed, the term stayed');
  net.recover();
  net.tickAll(3);
  t.is(net.core(1).role, 'Leader');
  t.is(net.core(1).currentTerm, 1);
});

test('without PreVote a rejoining follower with a higher term disrupts the leader (why PreVote exists)', (t) => {
  const net = Net.of([1, 2, 3], { electionTick: 10 });
  net.campaign(1);
  net.isolate(3);
  net.tick(3, 20);
  t.is(net.core(3).currentTerm, 2);
  net.recover();
  net.tick(1, 1);
  t.is(net.core(1).role, 'Follower');
  t.is(net.core(1).currentTerm, 2);
});

test('PreVote with a split vote still elects a leader after retries', (t) => {
  const net = Net.of([1, 2, 3, 4, 5], { preVote: true, electionTick: 10 });
  net.campaign(1);
  net.isolate(1);
  net.tickAll(60);
  const leaders = [2, 3, 4, 5].filter((id) => net.core(id).role === 'Leader');
  t.is(leaders.length, 1);
});

test('a vote request at a stale term is rejected with the current term', (t) => {
  const n = makeNode(1, [1, 2, 3], { storage: storageWithTerms([1, 2, 3], [], 5) });
  n.core.step(msg({ type: MessageType.Vote, from: 2, to: 1, term: 3 }));
  const out = n.core.ready()!.messages;
  t.deepEqual(
    out.map((m) => [m.type, m.term, m.reject]),
    [['VoteResp', 5, true]],
  );
});
