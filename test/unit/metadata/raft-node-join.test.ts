/**
 * Join and registration on a real single-voter RaftNode (real disk storage, real timers): a join
 * records the joiner's incarnation and answers the cluster id; the same node joining again is
 * idempotent; another incarnation under the id is refused IDENTITY_MISMATCH with the operator's
 * way out; a member registered by an older version gets its incarnation recorded once.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import test, { type ExecutionContext } from 'ava';
import { MetadataState } from '../../../node/metadata/metadata-state.js';
import { decodeRaftMessage, encodeRaftMessage } from '../../../node/metadata/raft-codec.js';
import { RaftDiskStorage } from '../../../node/metadata/raft-disk-storage.js';
import { newIdentityId } from '../../../node/metadata/raft-identity.js';
import { RaftNode } from '../../../node/metadata/raft-node.js';
import { ErrorCode, WalrusError } from '../../../node/protocol/error-codes.js';

const quiet = { info() {}, warn() {}, error() {} };

async function leaderNode(t: ExecutionContext, clusterId: string): Promise<RaftNode> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'walrus-join-'));
  const storage = RaftDiskStorage.open(dir, { voters: [1], learners: [] });
  const raft = new RaftNode({
    nodeId: 1,
    storage,
    peers: {
      send() {},
      request: () => Promise.reject(new Error('no peers here')),
      requestSnapshotChunk: () => Promise.reject(new Error('no peers here')),
    },
    codec: { encode: encodeRaftMessage, decode: decodeRaftMessage },
    state: new MetadataState(),
    tickMs: 5,
    electionTick: 10,
    heartbeatTick: 1,
    seed: 7,
    logger: quiet,
    localClusterId: () => clusterId,
  });
  t.teardown(() => {
    raft.stop();
    storage.close();
    fs.rmSync(dir, { recursive: true, force: true });
  });
  raft.start({ bootstrap: true });
  for (let i = 0; i < 400 && !raft.isLeader; i++) await new Promise((r) => setTimeout(r, 5));
  t.true(raft.isLeader, 'a single voter elects itself');
  return raft;
}

const addrs = { raftAddr: '127.0.0.1:7003', clientAddr: '127.0.0.1:9003' };

test('a join records the incarnation, adds a learner and answers the cluster id; repeating it is harmless', async (t) => {
  const clusterId = newIdentityId();
  const raft = await leaderNode(t, clusterId);
  const incarnation = newIdentityId();
  const reply = await raft.join({ nodeId: 3, ...addrs, incarnation });
  t.is(reply.leaderId, 1);
  t.is(reply.clusterId, clusterId, "the bootstrap node's id while the metadata has none");
  t.deepEqual(
    reply.nodes.find((n) => n.nodeId === 3),
    { nodeId: 3, ...addrs, incarnation },
  );
  t.deepEqual(raft.status().learners, [3]);
  const again = await raft.join({ nodeId: 3, ...addrs, incarnation });
  t.is(again.clusterId, clusterId);
  t.deepEqual(raft.status().learners, [3]);
  // Once the metadata holds a cluster id, that one is answered.
  const recorded = newIdentityId();
  await raft.propose({ type: 'setClusterId', clusterId: recorded });
  t.is((await raft.join({ nodeId: 3, ...addrs, incarnation })).clusterId, recorded);
});

test('a join under a member id with another incarnation is refused IDENTITY_MISMATCH, changing nothing', async (t) => {
  const raft = await leaderNode(t, newIdentityId());
  const first = newIdentityId();
  await raft.join({ nodeId: 3, ...addrs, incarnation: first });
  const applied = raft.state.appliedIndex;
  const wiped = newIdentityId();
  const error = await t.throwsAsync(raft.join({ nodeId: 3, ...addrs, incarnation: wiped }), {
    instanceOf: WalrusError,
  });
  t.is(error?.code, ErrorCode.IDENTITY_MISMATCH);
  t.regex(error?.message ?? '', /walrus-cli remove-node 3/);
  t.is(raft.state.nodes.get(3)?.incarnation, first);
  t.is(raft.state.appliedIndex, applied, 'nothing was proposed');
  // Through the peer request too, as a follower or the wiped node itself would send it.
  const asked = raft.handleRequest(
    3,
    Buffer.from(JSON.stringify({ type: 'join', nodeId: 3, ...addrs, incarnation: wiped })),
  );
  t.is((await t.throwsAsync(asked, { instanceOf: WalrusError }))?.code, ErrorCode.IDENTITY_MISMATCH);
  const anonymous = raft.handleRequest(3, Buffer.from(JSON.stringify({ type: 'join', nodeId: 3, ...addrs })));
  t.is((await t.throwsAsync(anonymous, { instanceOf: WalrusError }))?.code, ErrorCode.BAD_REQUEST);
  // After the member's removal and unregistration, the new incarnation joins.
  await raft.removeNode(3);
  await raft.propose({ type: 'unregisterNode', nodeId: 3 });
  await raft.join({ nodeId: 3, ...addrs, incarnation: wiped });
  t.is(raft.state.nodes.get(3)?.incarnation, wiped);
});

test('upgrade: a member registered without an incarnation gets it recorded by its join or its registration', async (t) => {
  const raft = await leaderNode(t, newIdentityId());
  await raft.propose({ type: 'registerNode', node: { nodeId: 2, ...addrs } });
  await raft.propose({ type: 'registerNode', node: { nodeId: 1, raftAddr: 'a:1', clientAddr: 'a:2' } });
  const two = newIdentityId();
  await raft.join({ nodeId: 2, ...addrs, incarnation: two });
  t.is(raft.state.nodes.get(2)?.incarnation, two);
  const one = newIdentityId();
  await raft.ensureRegistered({ nodeId: 1, raftAddr: 'a:1', clientAddr: 'a:2', incarnation: one });
  t.is(raft.state.nodes.get(1)?.incarnation, one);
});

test('concurrent membership changes wait for each other instead of failing CONF_CHANGE_PENDING', async (t) => {
  const raft = await leaderNode(t, newIdentityId());
  // One change at a time in the core: the second waits (bounded) until the first is applied.
  await Promise.all([
    raft.confChange({ type: 'addLearner', nodeId: 2 }),
    raft.confChange({ type: 'addLearner', nodeId: 3 }),
  ]);
  t.deepEqual([...raft.status().learners].sort(), [2, 3]);
});
