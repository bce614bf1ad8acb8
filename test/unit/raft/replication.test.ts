/**
 * Replication, flow control and snapshot scenarios (etcd-raft raft_test.go, raft_flow_control_test.go,
 * raft_snap_test.go and the probe/replicate/snapshot scripts), written for our API.
 */
import test from 'ava';
import { type Message, MessageType } from '../../../node/raft/index.js';
import {
  appliedData,
  drain,
  enc,
  makeConf,
  makeNode,
  msg,
  Net,
  persist,
  storageWithTerms,
  type TestNode,
} from './harness.js';

const apps = (ms: Message[], to: number) => ms.filter((m) => m.type === MessageType.App && m.to === to);

/** Leader 1 of [1, 2] with follower 2 in replicate state (driven by hand). */
function leaderWithReplicatingFollower(opts: Parameters<typeof makeNode>[2] = {}): TestNode {
  const n = makeNode(1, [1, 2], opts);
  n.core.campaign();
  drain(n);
  n.core.step(msg({ type: MessageType.VoteResp, from: 2, to: 1, term: 1 }));
  drain(n);
  n.core.step(msg({ type: MessageType.AppResp, from: 2, to: 1, term: 1, index: 1 }));
  drain(n);
  return n;
}

test('log replication: every node applies the same commands in the same order', (t) => {
  const net = Net.of([1, 2, 3]);
  net.campaign(1);
  net.propose(1, 'a');
  net.propose(1, 'b');
  net.campaign(2);
  net.propose(2, 'c');
  for (const id of [1, 2, 3]) t.deepEqual(appliedData(net.node(id)), ['a', 'b', 'c']);
});

test('a new leader cannot commit old-term entries without an entry of its own term', (t) => {
  const net = Net.of([1, 2, 3, 4, 5]);
  net.campaign(1);
  net.cut(1, 3);
  net.cut(1, 4);
  net.cut(1, 5);
  net.propose(1, 'p1');
  net.propose(1, 'p2');
  t.is(net.core(1).log.committed, 1);
  net.recover();
  net.ignored.add(MessageType.App); // the new leader cannot replicate anything yet
  net.campaign(2);
  t.is(net.core(2).role, 'Leader');
  t.is(net.core(2).log.committed, 1, 'the term-1 entries are not committed by counting');
  net.recover();
  net.tick(2, 1);
  t.is(net.core(2).log.committed, 4, 'the term-2 empty entry commits them');
  t.deepEqual(appliedData(net.node(2)), ['p1', 'p2']);
});

test('fast log back-tracking needs few round trips over a long divergent suffix', (t) => {
  const voters = [1, 2, 3];
  const leaderTerms = [1, 1, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 4, 4, 4, 4, 4, 4];
  const followerTerms = [1, 1, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3];
  const net = new Net([
    makeNode(1, voters, { storage: storageWithTerms(voters, leaderTerms, 4) }),
    makeNode(2, voters, { storage: storageWithTerms(voters, followerTerms, 4) }),
    makeNode(3, voters),
  ]);
  net.campaign(1);
  net.propose(1, 'x');
  const rejects = net.log.filter((m) => m.type === MessageType.AppResp && m.reject && m.from === 2);
  t.true(rejects.length <= 2, `${rejects.length} rejections`);
  t.is(net.core(2).log.lastIndex(), net.core(1).log.lastIndex());
  t.is(net.core(2).log.term(3), 2);
});

test('reordered and duplicated acks are harmless', (t) => {
  const n = leaderWithReplicatingFollower();
  n.core.propose(enc('a'));
  n.core.propose(enc('b'));
  drain(n);
  for (const index of [3, 2, 3, 1])
    n.core.step(msg({ type: MessageType.AppResp, from: 2, to: 1, term: 1, index }));
  drain(n);
  t.is(n.core.log.committed, 3);
  t.is(n.core.progressOf(2)?.match, 3);
});

test('flow control: at most inflightMsgCountMax Apps are in flight to a replicating follower', (t) => {
  const n = leaderWithReplicatingFollower({ inflightMsgCountMax: 3 });
  let sent = 0;
  for (let k = 0; k < 10; k++) {
    n.core.propose(enc(`p${k}`));
    sent += apps(drain(n), 2).length;
  }
  t.is(sent, 3);
  // An ack of the first frees one slot and the rest go out (batched).
  n.core.step(msg({ type: MessageType.AppResp, from: 2, to: 1, term: 1, index: 2 }));
  const more = apps(drain(n), 2);
  t.is(more.length, 1);
  t.is(more[0]!.entries.length, 7);
});

test('flow control: in-flight bytes are bounded too', (t) => {
  const entryBytes = 24 + 100;
  const n = leaderWithReplicatingFollower({ inflightBytesMax: 2 * entryBytes, appendBytesMax: entryBytes });
  let sent = 0;
  for (let k = 0; k < 10; k++) {
    n.core.propose(new Uint8Array(100));
    sent += apps(drain(n), 2).length;
  }
  t.is(sent, 2);
});

test('flow control: a heartbeat response lets one more App go to a full follower', (t) => {
  const n = leaderWithReplicatingFollower({ inflightMsgCountMax: 1 });
  n.core.propose(enc('a'));
  n.core.propose(enc('b'));
  t.is(apps(drain(n), 2).length, 1);
  n.core.step(msg({ type: MessageType.HeartbeatResp, from: 2, to: 1, term: 1 }));
  const out = apps(drain(n), 2);
  t.is(out.length, 1);
  t.deepEqual(
    out[0]!.entries.map((e) => e.index),
    [3],
  );
});

test('probe state sends one App at a time until the follower answers', (t) => {
  const n = makeNode(1, [1, 2]);
  n.core.campaign();
  drain(n);
  n.core.step(msg({ type: MessageType.VoteResp, from: 2, to: 1, term: 1 }));
  t.is(apps(drain(n), 2).length, 1);
  n.core.propose(enc('a'));
  n.core.propose(enc('b'));
  t.is(apps(drain(n), 2).length, 0, 'paused while probing');
  t.is(n.core.progressOf(2)?.state, 'probe');
  n.core.step(msg({ type: MessageType.AppResp, from: 2, to: 1, term: 1, index: 1 }));
  t.is(n.core.progressOf(2)?.state, 'replicate');
  t.true(apps(drain(n), 2).length >= 1);
});

/** Leader 1 whose log is compacted at 10 (with the configuration [1,2]) and a fresh node 2. */
function compactedLeaderNet(): Net {
  const voters = [1, 2];
  const s1 = storageWithTerms(voters, Array(10).fill(1), 1);
  s1.compact({ meta: { index: 10, term: 1, conf: makeConf(voters) }, data: enc('state@10') });
  s1.setHardState({ term: 1, vote: 0, commit: 10 });
  return new Net([makeNode(1, voters, { storage: s1 }), makeNode(2, voters)]);
}

test('a follower behind the compacted log gets an InstallSnapshot and restores from it', (t) => {
  const net = compactedLeaderNet();
  net.campaign(1);
  net.propose(1, 'after');
  const snaps = net.log.filter((m) => m.type === MessageType.Snap);
  t.is(snaps.length, 1);
  t.is(snaps[0]!.snapshot!.meta.index, 10);
  const f = net.node(2);
  t.is(f.storage.snapshot().meta.index, 10);
  t.is(new TextDecoder().decode(f.storage.snapshot().data), 'state@10');
  t.is(f.core.log.committed, net.core(1).log.committed);
  t.deepEqual(appliedData(f), ['after']);
  t.is(net.core(1).progressOf(2)?.state, 'replicate');
});

test('a pending snapshot pauses replication to that follower; a timeout retries it', (t) => {
  const net = compactedLeaderNet();
  net.ignored.add(MessageType.Snap);
  net.campaign(1);
  t.is(net.core(1).progressOf(2)?.state, 'snapshot');
  const before = net.log.length;
  net.core(1).propose(enc('x'));
  const out = drain(net.node(1));
  t.is(apps(out, 2).length, 0, 'nothing is sent while the snapshot is pending');
  t.is(net.log.length, before);
  // The snapshot is lost; after snapshotTimeoutTick the leader probes again and re-sends it.
  let snapsSent = 0;
  for (let k = 0; k < 40; k++) {
    net.core(1).tick();
    snapsSent += drain(net.node(1)).filter((m) => m.type === MessageType.Snap).length;
  }
  t.true(snapsSent >= 1);
  net.recover();
  net.tick(1, 40);
  t.is(net.node(2).storage.snapshot().meta.index, 10);
});

test('reportSnapshot(failure) moves the follower back to probe', (t) => {
  const net = compactedLeaderNet();
  net.ignored.add(MessageType.Snap);
  net.campaign(1);
  net.core(1).reportSnapshot(2, false);
  t.is(net.core(1).progressOf(2)?.state, 'probe');
});

test('a snapshot at or below the commit is ignored; a matching one only fast-forwards commit', (t) => {
  const n = makeNode(2, [1, 2], { storage: storageWithTerms([1, 2], [1, 1, 1], 1) });
  const snap = (index: number) => ({ meta: { index, term: 1, conf: makeConf([1, 2]) }, data: enc('s') });
  n.core.step(msg({ type: MessageType.Heartbeat, from: 1, to: 2, term: 1, commit: 2 }));
  drain(n);
  n.core.step(msg({ type: MessageType.Snap, from: 1, to: 2, term: 1, snapshot: snap(2) }));
  let rd = n.core.ready();
  t.is(rd?.snapshot, null);
  t.is(rd?.messages[0]?.index, 2);
  persist(n, rd!);
  n.core.advance(rd!);
  n.core.step(msg({ type: MessageType.Snap, from: 1, to: 2, term: 1, snapshot: snap(3) }));
  rd = n.core.ready();
  t.is(rd?.snapshot, null, 'the log already holds (3, 1): no restore');
  t.is(n.core.log.committed, 3);
  persist(n, rd!);
  n.core.advance(rd!);
});

test('compact() builds a snapshot of the applied prefix with the configuration in force', (t) => {
  const net = Net.of([1, 2, 3]);
  net.campaign(1);
  net.propose(1, 'a');
  const n = net.node(1);
  const err = t.throws(() => n.core.compact(n.core.log.applied + 1, enc('x')));
  t.is((err as { code?: string }).code, 'BAD_COMPACT_INDEX');
  const snap = n.core.compact(2, enc('state'));
  t.deepEqual(snap.meta, { index: 2, term: 1, conf: makeConf([1, 2, 3]) });
  n.storage.compact(snap);
  t.is(n.storage.firstIndex(), 3);
  const again = t.throws(() => n.core.compact(2, enc('x')));
  t.is((again as { code?: string }).code, 'BAD_COMPACT_INDEX');
  net.propose(1, 'b');
  t.deepEqual(appliedData(net.node(3)), ['a', 'b']);
});

test('restart restores term, vote, commit and configuration from storage', (t) => {
  const net = Net.of([1, 2, 3]);
  net.campaign(1);
  net.propose(1, 'a');
  net.core(1).proposeConfChange({ type: 'addLearner', nodeId: 4 });
  net.stabilize();
  const s = net.node(2).storage;
  const again = makeNode(2, [], { storage: s });
  const st = again.core.status();
  t.is(st.term, 1);
  t.is(st.commit, net.core(2).log.committed);
  t.deepEqual(st.learners, [4]);
  t.deepEqual(st.voters, [1, 2, 3]);
  // It re-applies from the snapshot (index 0) up to the commit.
  drain(again);
  t.deepEqual(appliedData(again), ['a']);
});

test('a leader commits only what it has itself persisted (CommittedIsDurable)', (t) => {
  const n = leaderWithReplicatingFollower();
  n.core.propose(enc('a'));
  // An ack arrives before the leader's own Ready was persisted: 2 voters need both copies.
  n.core.step(msg({ type: MessageType.AppResp, from: 2, to: 1, term: 1, index: 2 }));
  t.is(n.core.log.committed, 1);
  drain(n);
  t.is(n.core.log.committed, 2);
});
