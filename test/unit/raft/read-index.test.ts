/**
 * ReadIndex (etcd-raft's ReadOnlySafe): a leader answers a read point only after a quorum of the
 * configuration in effect has acknowledged a heartbeat sent after the request, in its term.
 */
import test from 'ava';
import { ConfChangeType, MemoryStorage, MessageType } from '../../../node/raft/index.js';
import { drain, makeNode, Net, persist } from './harness.js';

const code = (f: () => unknown): string | undefined => {
  try {
    f();
  } catch (err) {
    return (err as { code?: string }).code;
  }
  return undefined;
};

function readNet(ids: readonly number[], opts: Parameters<typeof Net.of>[1] = {}): Net {
  const net = Net.of(ids, opts);
  net.campaign(1);
  net.stabilize();
  return net;
}

test('a read is confirmed by a quorum and carries the commit index at the time of the request', (t) => {
  const net = readNet([1, 2, 3]);
  net.propose(1, 'a');
  net.stabilize();
  const commit = net.core(1).log.committed;
  net.cut(1, 2);
  net.read(1, 7);
  t.deepEqual(net.node(1).reads, [{ index: commit, ctx: 7 }], 'node 3 with the leader is a quorum');
  net.stabilize();
  t.is(net.node(1).reads.length, 1, 'answered once');
});

test('the index is the commit index when asked, not the last index', (t) => {
  const net = readNet([1, 2, 3]);
  net.isolate(2);
  net.isolate(3);
  net.core(1).propose(new Uint8Array([1]));
  net.stabilize();
  const commit = net.core(1).log.committed;
  t.true(net.core(1).log.lastIndex() > commit);
  net.read(1, 1);
  t.deepEqual(net.node(1).reads, []);
  net.recover();
  net.tick(1, 1);
  net.stabilize();
  t.deepEqual(net.node(1).reads, [{ index: commit, ctx: 1 }]);
});

test('refused off the leader (with a hint) and on a leader without a committed entry of its term', (t) => {
  const net = readNet([1, 2, 3]);
  t.is(
    code(() => net.core(2).readIndex(1)),
    'NOT_LEADER',
  );
  const err = t.throws(() => net.core(2).readIndex(1)) as { leaderId?: number };
  t.is(err.leaderId, 1);
  net.ignored.add(MessageType.App);
  net.core(2).campaign();
  net.send(drain(net.node(2)));
  t.is(net.core(2).role, 'Leader');
  t.is(
    code(() => net.core(2).readIndex(1)),
    'READ_INDEX_NOT_READY',
  );
  net.recover();
  net.tick(2, 1);
  net.stabilize();
  t.notThrows(() => net.read(2, 2));
  t.is(net.node(2).reads.length, 1);
  t.is(
    code(() => net.core(2).readIndex(Number.NaN)),
    'BAD_REQUEST',
  );
});

test('a deposed leader never yields a read state, even once its heartbeats get through', (t) => {
  const net = readNet([1, 2, 3]);
  net.isolate(1);
  net.core(2).campaign();
  net.send(drain(net.node(2)));
  t.is(net.core(2).role, 'Leader');
  net.propose(2, 'new');
  net.stabilize();
  const committedByNew = net.core(2).log.committed;
  // Node 1 still believes it leads term 1 (no CheckQuorum here): its read must never be confirmed.
  t.is(net.core(1).role, 'Leader');
  net.read(1, 1);
  net.recover();
  net.tick(1, 3);
  net.stabilize();
  t.deepEqual(net.node(1).reads, []);
  t.is(net.core(1).role, 'Follower', 'the answers at term 2 deposed it');
  // The new leader's reads cover what it committed.
  net.read(2, 9);
  t.true(net.node(2).reads[0]!.index >= committedByNew);
});

test('learners do not count toward the read quorum', (t) => {
  const net = readNet([1, 2, 3]);
  net.nodes.set(4, makeNode(4, [], { storage: new MemoryStorage() }));
  net.core(1).proposeConfChange({ type: ConfChangeType.AddLearner, nodeId: 4 });
  net.stabilize();
  net.tick(1, 1);
  net.stabilize();
  t.deepEqual(net.core(1).status().learners, [4]);
  net.isolate(2);
  net.isolate(3);
  net.read(1, 1);
  net.tick(1, 2);
  t.true(net.log.some((m) => m.type === MessageType.HeartbeatResp && m.from === 4 && m.index > 0));
  t.deepEqual(net.node(1).reads, [], 'leader + learner are not a quorum of {1,2,3}');
});

test('a single voter answers at once', (t) => {
  const n = makeNode(1, [1]);
  n.core.campaign();
  drain(n);
  n.core.readIndex(new Uint8Array([5]));
  const rd = n.core.ready()!;
  t.deepEqual(rd.readStates, [{ index: 1, ctx: new Uint8Array([5]) }]);
  persist(n, rd);
  n.core.advance(rd);
});

test('an ack of an earlier round does not confirm a later read', (t) => {
  const net = readNet([1, 2, 3]);
  const n1 = net.node(1);
  n1.core.readIndex(1);
  const first = drain(n1).filter((m) => m.type === MessageType.Heartbeat);
  n1.core.readIndex(2);
  const second = drain(n1).filter((m) => m.type === MessageType.Heartbeat);
  net.send(first);
  t.deepEqual(
    net.node(1).reads.map((r) => r.ctx),
    [1],
  );
  net.send(second);
  t.deepEqual(
    net.node(1).reads.map((r) => r.ctx),
    [1, 2],
  );
});

test('pending reads are bounded (BUSY) and dropped when leadership ends', (t) => {
  const net = readNet([1, 2, 3], { pendingReadCountMax: 2 });
  net.isolate(1);
  net.read(1, 1);
  net.read(1, 2);
  t.is(
    code(() => net.core(1).readIndex(3)),
    'BUSY',
  );
  // A higher term deposes it; re-elected, the old requests do not come back.
  net.core(1).step({ ...net.log[0]!, type: MessageType.Vote, from: 2, to: 1, term: 5, index: 0, logTerm: 0 });
  drain(net.node(1));
  t.is(net.core(1).role, 'Follower');
  net.recover();
  net.campaign(1);
  net.stabilize();
  net.tick(1, 2);
  t.deepEqual(net.node(1).reads, []);
  net.read(1, 4);
  t.deepEqual(
    net.node(1).reads.map((r) => r.ctx),
    [4],
  );
});
