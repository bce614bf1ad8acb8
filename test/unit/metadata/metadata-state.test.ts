/**
 * The metadata's record of who the members are: each member's incarnation, fixed from its first
 * registration until it is unregistered; the cluster id, set once; both through snapshots, and
 * snapshots and log entries from before they existed.
 */
import test from 'ava';
import { type MetaCommand, MetadataState } from '../../../node/metadata/metadata-state.js';
import { newIdentityId } from '../../../node/metadata/raft-identity.js';

function applyAll(state: MetadataState, commands: readonly MetaCommand[]): void {
  for (const c of commands) state.apply(state.appliedIndex + 1, c);
}

const addrs = { raftAddr: '127.0.0.1:7001', clientAddr: '127.0.0.1:9001' };

test("a member's incarnation is fixed by its registration until it is unregistered", (t) => {
  const state = new MetadataState();
  const first = newIdentityId();
  const wiped = newIdentityId();
  applyAll(state, [{ type: 'registerNode', node: { nodeId: 3, ...addrs, incarnation: first } }]);
  t.is(state.nodes.get(3)?.incarnation, first);
  // A new address under the same identity is taken.
  applyAll(state, [
    {
      type: 'registerNode',
      node: { nodeId: 3, raftAddr: '10.0.0.3:7001', clientAddr: '10.0.0.3:9001', incarnation: first },
    },
  ]);
  t.is(state.nodes.get(3)?.raftAddr, '10.0.0.3:7001');
  // Another identity under the same id is not: the member must be removed first.
  applyAll(state, [{ type: 'registerNode', node: { nodeId: 3, ...addrs, incarnation: wiped } }]);
  t.deepEqual(state.nodes.get(3), {
    nodeId: 3,
    raftAddr: '10.0.0.3:7001',
    clientAddr: '10.0.0.3:9001',
    incarnation: first,
  });
  applyAll(state, [
    { type: 'unregisterNode', nodeId: 3 },
    { type: 'registerNode', node: { nodeId: 3, ...addrs, incarnation: wiped } },
  ]);
  t.is(state.nodes.get(3)?.incarnation, wiped);
});

test('upgrade: registrations without an incarnation keep the recorded one; a member without one takes the first', (t) => {
  const state = new MetadataState();
  // Entries written by an older version carry no incarnation.
  applyAll(state, [{ type: 'registerNode', node: { nodeId: 2, ...addrs } }]);
  t.is(state.nodes.get(2)?.incarnation, undefined);
  const first = newIdentityId();
  applyAll(state, [
    { type: 'registerNode', node: { nodeId: 2, ...addrs, incarnation: first } },
    { type: 'registerNode', node: { nodeId: 2, ...addrs, incarnation: newIdentityId() } },
    { type: 'registerNode', node: { nodeId: 2, raftAddr: 'h:1', clientAddr: 'h:2' } },
  ]);
  t.deepEqual(state.nodes.get(2), { nodeId: 2, raftAddr: 'h:1', clientAddr: 'h:2', incarnation: first });
});

test('the cluster id is set once; a malformed one is ignored', (t) => {
  const state = new MetadataState();
  t.is(state.clusterId, null);
  const id = newIdentityId();
  applyAll(state, [
    { type: 'setClusterId', clusterId: 'nonsense' },
    { type: 'setClusterId', clusterId: id },
    { type: 'setClusterId', clusterId: newIdentityId() },
  ]);
  t.is(state.clusterId, id);
  t.is(state.appliedIndex, 3);
});

test('snapshots carry incarnations and the cluster id; older snapshots restore without them', (t) => {
  const state = new MetadataState();
  const clusterId = newIdentityId();
  const incarnation = newIdentityId();
  applyAll(state, [
    { type: 'setClusterId', clusterId },
    { type: 'registerNode', node: { nodeId: 1, ...addrs, incarnation } },
    { type: 'registerNode', node: { nodeId: 2, raftAddr: 'b:1', clientAddr: 'b:2' } },
  ]);
  const snap = JSON.parse(JSON.stringify(state.toSnapshot()));
  const restored = new MetadataState();
  restored.restore(snap);
  t.is(restored.clusterId, clusterId);
  t.is(restored.nodes.get(1)?.incarnation, incarnation);
  t.is(restored.nodes.get(2)?.incarnation, undefined);
  t.deepEqual(restored.toSnapshot(), state.toSnapshot());
  // A snapshot written before identities existed.
  const old = new MetadataState();
  old.clusterId = clusterId;
  old.restore({ appliedIndex: 7, nodes: [{ nodeId: 1, ...addrs }], topics: [] });
  t.is(old.clusterId as string | null, null, 'restore replaces the cluster id');
  t.is(old.nodes.get(1)?.incarnation, undefined);
  t.is(MetadataState.fromSnapshot({ appliedIndex: 1, topics: [] }).clusterId, null);
});
