/**
 * Ports of etcd-raft's raft_paper_test.go (Raft paper §5.1–§5.4), written for our API: each test
 * names the paper rule it checks.
 */
import test from 'ava';
import {
  EntryKind,
  type Message,
  MessageType,
  type RaftCore,
  type RaftState,
} from '../../../node/raft/index.js';
import { drain, ents, enc, makeNode, msg, Net, storageWithTerms, type TestNode } from './harness.js';

function logTerms(core: RaftCore): number[] {
  const last = core.log.lastIndex();
  const first = core.log.firstIndex();
  return last < first ? [] : core.log.slice(first, last + 1, Number.MAX_SAFE_INTEGER).map((e) => e.term);
}

/** Node 1 of `voters`, elected leader by granting it the votes of the others. */
function leaderOf(voters: number[], opts: Parameters<typeof makeNode>[2] = {}): TestNode {
  const n = makeNode(1, voters, opts);
  n.core.campaign();
  drain(n);
  for (const v of voters) {
    if (v === 1 || n.core.role === 'Leader') continue;
    n.core.step(msg({ type: MessageType.VoteResp, from: v, to: 1, term: n.core.currentTerm }));
  }
  drain(n);
  return n;
}

const sent = (ms: Message[], type: string) => ms.filter((m) => m.type === type);

// §5.1: if one server's current term is smaller, it updates to the larger value; a candidate or
// leader that discovers its term is out of date reverts to follower.
for (const role of ['Follower', 'Candidate', 'Leader'] as const) {
  test(`§5.1 ${role} updates its term from a message and becomes follower`, (t) => {
    const n = role === 'Leader' ? leaderOf([1, 2, 3]) : makeNode(1, [1, 2, 3]);
    if (role === 'Candidate') {
      n.core.campaign();
      drain(n);
    }
    t.is(n.core.role, role);
    n.core.step(msg({ type: MessageType.App, from: 2, to: 1, term: 5 }));
    t.is(n.core.currentTerm, 5);
    t.is(n.core.role, 'Follower');
    t.is(n.core.leaderId, 2);
  });
}

// §5.1: a request with a stale term is rejected: it changes nothing but earns our term back.
test('§5.1 a stale-term message is rejected without any state change', (t) => {
  const n = makeNode(1, [1, 2, 3], { storage: storageWithTerms([1, 2, 3], [1, 2], 2) });
  n.core.step(
    msg({ type: MessageType.App, from: 2, to: 1, term: 1, index: 0, logTerm: 0, entries: ents([1]) }),
  );
  t.is(n.core.currentTerm, 2);
  t.is(n.core.log.lastIndex(), 2);
  const out = drain(n);
  t.deepEqual(
    out.map((m) => [m.type, m.term, m.reject]),
    [['AppResp', 2, false]],
  );
  t.is(out[0]!.index, 0, 'the reply acknowledges nothing');
});

// §5.2: when servers start up, they begin as followers.
test('§5.2 a node starts as follower', (t) => {
  const n = makeNode(1, [1, 2, 3]);
  t.is(n.core.role, 'Follower');
  t.is(n.core.currentTerm, 0);
});

// §5.2: leaders send periodic heartbeats to all followers.
test('§5.2 the leader broadcasts heartbeats every heartbeatTick', (t) => {
  const n = leaderOf([1, 2, 3], { heartbeatTick: 2 });
  n.core.tick();
  t.deepEqual(sent(drain(n), 'Heartbeat'), []);
  n.core.tick();
  const hb = sent(drain(n), 'Heartbeat');
  t.deepEqual(hb.map((m) => m.to).sort(), [2, 3]);
  for (const m of hb) {
    t.is(m.term, 1);
    t.is(m.commit, 0, 'commit is capped at what the follower is known to hold');
  }
});

// §5.2: a follower that receives no communication over the election timeout starts an election:
// it increments its term, votes for itself and sends RequestVote to all the others.
for (const role of ['Follower', 'Candidate'] as const) {
  test(`§5.2 a ${role} that times out starts a new election`, (t) => {
    const n = makeNode(1, [1, 2, 3], { electionTick: 10 });
    if (role === 'Candidate') {
      n.core.campaign();
      drain(n);
    }
    const term = n.core.currentTerm;
    for (let k = 0; k < 20; k++) n.core.tick();
    const out = drain(n);
    t.is(n.core.role, 'Candidate');
    t.is(n.core.currentTerm, term + 1);
    t.is(n.core.votedFor, 1);
    t.deepEqual(
      sent(out, 'Vote').map((m) => [m.to, m.term]),
      [
        [2, term + 1],
        [3, term + 1],
      ],
    );
  });
}

// §5.2: a candidate wins with votes from a majority, loses on a majority of rejections,
// otherwise stays candidate.
const oneRound: [number, Record<number, boolean>, RaftState][] = [
  [1, {}, 'Leader'],
  [3, { 2: true, 3: true }, 'Leader'],
  [3, { 2: true }, 'Leader'],
  [5, { 2: true, 3: true, 4: true, 5: true }, 'Leader'],
  [5, { 2: true, 3: true, 4: true }, 'Leader'],
  [5, { 2: true, 3: true }, 'Leader'],
  [3, {}, 'Candidate'],
  [5, { 2: true }, 'Candidate'],
  [5, { 2: false, 3: false }, 'Candidate'],
  [5, {}, 'Candidate'],
  [3, { 2: false, 3: false }, 'Follower'],
  [5, { 2: false, 3: false, 4: false }, 'Follower'],
  [5, { 2: true, 3: false, 4: false, 5: false }, 'Follower'],
];
for (const [size, votes, want] of oneRound) {
  test(`§5.2 election in one round: ${size} voters, votes ${JSON.stringify(votes)} → ${want}`, (t) => {
    const voters = Array.from({ length: size }, (_, k) => k + 1);
    const n = makeNode(1, voters);
    n.core.campaign();
    drain(n);
    for (const [id, granted] of Object.entries(votes)) {
      n.core.step(msg({ type: MessageType.VoteResp, from: Number(id), to: 1, term: 1, reject: !granted }));
    }
    t.is(n.core.role, want);
    t.is(n.core.currentTerm, 1);
  });
}

// §5.2: each follower votes for at most one candidate per term, first come first served.
const followerVote: [number, number, boolean][] = [
  [0, 2, false],
  [0, 3, false],
  [2, 2, false],
  [3, 3, false],
  [2, 3, true],
  [3, 2, true],
];
for (const [vote, from, wantReject] of followerVote) {
  test(`§5.2 follower that voted ${vote} answers candidate ${from}: ${wantReject ? 'reject' : 'grant'}`, (t) => {
    const storage = storageWithTerms([1, 2, 3], []);
    storage.setHardState({ term: 1, vote, commit: 0 });
    const n = makeNode(1, [1, 2, 3], { storage });
    n.core.step(msg({ type: MessageType.Vote, from, to: 1, term: 1 }));
    const out = drain(n);
    t.deepEqual(
      out.map((m) => [m.type, m.to, m.term, m.reject]),
      [['VoteResp', from, 1, wantReject]],
    );
  });
}

// §5.2: a candidate that hears from a leader of a term >= its own returns to follower.
for (const term of [1, 2]) {
  test(`§5.2 candidate falls back to follower on an App of term ${term}`, (t) => {
    const n = makeNode(1, [1, 2, 3]);
    n.core.campaign();
    drain(n);
    n.core.step(msg({ type: MessageType.App, from: 2, to: 1, term }));
    t.is(n.core.role, 'Follower');
    t.is(n.core.currentTerm, term);
    t.is(n.core.leaderId, 2);
  });
}

// §5.2: election timeouts are chosen randomly in [electionTick, 2*electionTick).
for (const role of ['Follower', 'Candidate'] as const) {
  test(`§5.2 ${role} election timeouts are randomised in [et, 2et)`, (t) => {
    const et = 10;
    const seen = new Set<number>();
    for (let seed = 1; seed <= 200; seed++) {
      const n = makeNode(1, [1, 2, 3], { electionTick: et, seed });
      if (role === 'Candidate') {
        n.core.campaign();
        drain(n);
      }
      const term = n.core.currentTerm;
      let ticks = 0;
      while (n.core.currentTerm === term) {
        n.core.tick();
        ticks++;
        t.true(ticks < 2 * et, 'no timeout beyond 2*electionTick');
      }
      drain(n);
      t.true(ticks >= et, `timeout ${ticks} below electionTick`);
      seen.add(ticks);
    }
    t.is(seen.size, et, 'every timeout in [et, 2et) occurs');
  });
}

// §5.2: randomised timeouts make split votes rare: five followers rarely time out together.
test('§5.2 followers rarely time out in the same tick', (t) => {
  let conflicts = 0;
  const rounds = 200;
  for (let r = 0; r < rounds; r++) {
    const nodes = [1, 2, 3, 4, 5].map((id) => makeNode(id, [1, 2, 3, 4, 5], { seed: r * 10 + id }));
    let firstTick = -1;
    let timedOut = 0;
    for (let tick = 1; timedOut === 0; tick++) {
      for (const n of nodes) {
        n.core.tick();
        if (n.core.role !== 'Follower') {
          timedOut++;
          firstTick = tick;
        }
      }
    }
    if (timedOut > 1 && firstTick > 0) conflicts++;
  }
  t.true(conflicts / rounds <= 0.3, `conflict rate ${conflicts / rounds}`);
});

// §5.3: the leader appends the command to its log and sends AppendEntries to every follower.
test('§5.3 the leader starts replication of a proposal', (t) => {
  const net = Net.of([1, 2, 3]);
  net.campaign(1);
  const n = net.node(1);
  const li = n.core.log.lastIndex();
  n.core.propose(enc('some data'));
  const apps = sent(drain(n), 'App');
  t.deepEqual(apps.map((m) => m.to).sort(), [2, 3]);
  for (const m of apps) {
    t.is(m.index, li);
    t.is(m.logTerm, 1);
    t.deepEqual(
      m.entries.map((e) => [e.index, e.term]),
      [[li + 1, 1]],
    );
    t.is(m.commit, li);
  }
  t.is(n.core.log.lastIndex(), li + 1);
});

// §5.3: once a majority holds the entry the leader commits it and tells the followers.
test('§5.3 the leader commits an entry replicated on a majority and broadcasts the commit', (t) => {
  const net = Net.of([1, 2, 3]);
  net.campaign(1);
  net.propose(1, 'some data');
  const li = net.core(1).log.lastIndex();
  t.is(net.core(1).log.committed, li);
  for (const id of [2, 3]) t.is(net.core(id).log.committed, li);
  t.deepEqual(
    net.node(1).applied.map((e) => e.index),
    [1, 2],
  );
});

// §5.3: an entry is committed once the leader that created it has replicated it on a majority.
const ackCases: [number, number[], boolean][] = [
  [1, [], true],
  [3, [], false],
  [3, [2], true],
  [3, [2, 3], true],
  [5, [], false],
  [5, [2], false],
  [5, [2, 3], true],
  [5, [2, 3, 4], true],
  [5, [2, 3, 4, 5], true],
];
for (const [size, acceptors, wantCommit] of ackCases) {
  test(`§5.3 leader with ${size} voters and acks from [${acceptors}] commits: ${wantCommit}`, (t) => {
    const voters = Array.from({ length: size }, (_, k) => k + 1);
    const n = leaderOf(voters);
    // Commit the leader's empty entry first.
    for (const v of voters)
      if (v !== 1) n.core.step(msg({ type: MessageType.AppResp, from: v, to: 1, term: 1, index: 1 }));
    drain(n);
    const li = n.core.log.lastIndex();
    t.is(n.core.log.committed, li);
    n.core.propose(enc('some data'));
    drain(n);
    for (const a of acceptors)
      n.core.step(msg({ type: MessageType.AppResp, from: a, to: 1, term: 1, index: li + 1 }));
    drain(n);
    t.is(n.core.log.committed > li, wantCommit);
  });
}

// §5.3: committing an entry also commits all preceding entries, including older terms'.
test('§5.3 the leader commits preceding entries of older terms with its own', (t) => {
  const net = Net.of([1, 2, 3]);
  const old = makeNode(1, [1, 2, 3], { storage: storageWithTerms([1, 2, 3], [1, 2], 2) });
  net.nodes.set(1, old);
  net.campaign(1);
  t.is(old.core.role, 'Leader');
  net.propose(1, 'some data');
  t.deepEqual(
    old.applied.map((e) => [e.index, e.term]),
    [
      [1, 1],
      [2, 2],
      [3, 3],
      [4, 3],
    ],
  );
});

// §5.3: a follower applies entries once it learns they are committed.
test('§5.3 a follower commits what the leader says is committed', (t) => {
  const n = makeNode(1, [1, 2, 3]);
  n.core.step(
    msg({
      type: MessageType.App,
      from: 2,
      to: 1,
      term: 1,
      index: 0,
      logTerm: 0,
      entries: ents([1, 1]),
      commit: 1,
    }),
  );
  drain(n);
  t.is(n.core.log.committed, 1);
  t.deepEqual(
    n.applied.map((e) => e.index),
    [1],
  );
  n.core.step(msg({ type: MessageType.Heartbeat, from: 2, to: 1, term: 1, commit: 2 }));
  drain(n);
  t.is(n.core.log.committed, 2);
});

// §5.3: a follower refuses entries whose predecessor (index, term) it does not hold, with a hint.
const checkApp: [number, number, number, boolean, number][] = [
  // logTerm, index, want index, reject, want hint
  [0, 0, 1, false, 0],
  [1, 1, 1, false, 0],
  [2, 2, 2, false, 0],
  [1, 2, 2, true, 1],
  [3, 3, 3, true, 2],
];
for (const [logTerm, index, wantIndex, wantReject, wantHint] of checkApp) {
  test(`§5.3 follower checks App (index ${index}, logTerm ${logTerm})`, (t) => {
    const storage = storageWithTerms([1, 2, 3], [1, 2], 2);
    storage.setHardState({ term: 2, vote: 0, commit: 1 });
    const n = makeNode(1, [1, 2, 3], { storage });
    n.core.step(
      msg({ type: MessageType.App, from: 2, to: 1, term: Math.max(2, logTerm), index, logTerm, commit: 1 }),
    );
    const [m] = drain(n);
    t.is(m?.type, 'AppResp');
    t.is(m?.index, wantIndex);
    t.is(m?.reject, wantReject);
    t.is(m?.rejectHint, wantHint);
  });
}

// §5.3: conflicting entries (same index, other term) and all after them are replaced.
const appendCases: [number, number, [number, number][], number[]][] = [
  [2, 2, [[3, 3]], [1, 2, 3]],
  [
    1,
    1,
    [
      [2, 3],
      [3, 4],
    ],
    [1, 3, 4],
  ],
  [0, 0, [[1, 1]], [1, 2]],
  [0, 0, [[1, 3]], [3]],
];
for (const [index, logTerm, entries, want] of appendCases) {
  test(`§5.3 follower appends after (${index}, ${logTerm}) → terms [${want}]`, (t) => {
    const n = makeNode(1, [1, 2, 3], { storage: storageWithTerms([1, 2, 3], [1, 2], 2) });
    const es = entries.map(([i, term]) => ({
      index: i,
      term,
      kind: EntryKind.Normal,
      data: new Uint8Array(0),
    }));
    n.core.step(msg({ type: MessageType.App, from: 2, to: 1, term: 4, index, logTerm, entries: es }));
    drain(n);
    t.deepEqual(logTerms(n.core), want);
  });
}

// §5.3 Figure 7: the leader brings any follower log in line with its own.
const leaderLog = [1, 1, 1, 4, 4, 5, 5, 6, 6, 6];
const figure7: Record<string, number[]> = {
  a: [1, 1, 1, 4, 4, 5, 5, 6, 6],
  b: [1, 1, 1, 4],
  c: [1, 1, 1, 4, 4, 5, 5, 6, 6, 6, 6],
  d: [1, 1, 1, 4, 4, 5, 5, 6, 6, 6, 7, 7],
  e: [1, 1, 1, 4, 4, 4, 4],
  f: [1, 1, 1, 2, 2, 2, 3, 3, 3, 3, 3],
};
for (const [name, followerLog] of Object.entries(figure7)) {
  test(`§5.3 Figure 7 (${name}): the leader syncs the follower log`, (t) => {
    const voters = [1, 2, 3];
    const net = new Net([
      makeNode(1, voters, { storage: storageWithTerms(voters, leaderLog, 7) }),
      makeNode(2, voters, { storage: storageWithTerms(voters, followerLog) }),
      makeNode(3, voters),
    ]);
    net.campaign(1);
    t.is(net.core(1).role, 'Leader');
    t.is(net.core(1).currentTerm, 8);
    net.propose(1, 'x');
    t.deepEqual(logTerms(net.core(2)), logTerms(net.core(1)));
    t.deepEqual(logTerms(net.core(1)), [...leaderLog, 8, 8]);
  });
}

// §5.4.1: RequestVote carries the candidate's last log index and term.
test('§5.4.1 vote requests carry the last log index and term', (t) => {
  const n = makeNode(1, [1, 2, 3], { storage: storageWithTerms([1, 2, 3], [1, 2], 2) });
  n.core.campaign();
  const votes = sent(drain(n), 'Vote');
  t.deepEqual(
    votes.map((m) => [m.to, m.term, m.index, m.logTerm]),
    [
      [2, 3, 2, 2],
      [3, 3, 2, 2],
    ],
  );
});

// §5.4.1: a voter denies its vote if its own log is more up to date.
const voterCases: [number[], number, number, boolean][] = [
  [[1], 1, 1, false],
  [[1], 1, 2, false],
  [[1, 1], 1, 1, true],
  [[1], 2, 1, false],
  [[1], 2, 2, false],
  [[1, 1], 2, 1, false],
  [[2], 1, 1, true],
  [[2], 1, 2, true],
  [[2, 2], 1, 1, true],
];
for (const [terms, logTerm, index, wantReject] of voterCases) {
  test(`§5.4.1 voter with terms [${terms}] vs candidate (${index}, ${logTerm}): ${wantReject ? 'reject' : 'grant'}`, (t) => {
    const n = makeNode(1, [1, 2], { storage: storageWithTerms([1, 2], terms) });
    n.core.step(msg({ type: MessageType.Vote, from: 2, to: 1, term: 3, index, logTerm }));
    const [m] = drain(n);
    t.is(m?.type, 'VoteResp');
    t.is(m?.reject, wantReject);
  });
}

// §5.4.2: a leader commits only entries of its current term by counting replicas.
for (const [ackIndex, wantCommit] of [
  [1, 0],
  [2, 0],
  [3, 3],
] as const) {
  test(`§5.4.2 leader only commits its own term: ack ${ackIndex} → commit ${wantCommit}`, (t) => {
    const n = makeNode(1, [1, 2, 3], { storage: storageWithTerms([1, 2, 3], [1, 2], 2) });
    n.core.campaign();
    drain(n);
    n.core.step(msg({ type: MessageType.VoteResp, from: 2, to: 1, term: 3 }));
    drain(n);
    t.is(n.core.role, 'Leader');
    n.core.step(msg({ type: MessageType.AppResp, from: 2, to: 1, term: 3, index: ackIndex }));
    drain(n);
    t.is(n.core.log.committed, wantCommit);
  });
}
