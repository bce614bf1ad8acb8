/**
 * The leaving mark (remove-node under way) in the metadata state machine: one node at a time, taken
 * over by a resuming leader without losing its start, cleared only by the leader running it or by
 * the member's unregistration; carried by snapshots, and absent from snapshots of older versions.
 * The controller of any leader reads it: a controller built on a state with the mark (as a new
 * Raft leader's is) passes the node over without having been told.
 */
import test from 'ava';
import { Controller } from '../../../node/controller/controller.js';
import {
  type MetaCommand,
  type MetadataSnapshot,
  MetadataState,
} from '../../../node/metadata/metadata-state.js';
import { CapturingLogger } from '../../helpers/topic-harness.js';

function applyAll(state: MetadataState, commands: readonly MetaCommand[]): void {
  for (const c of commands) state.apply(state.appliedIndex + 1, c);
}

test('one node is marked at a time; a mark on the same node is taken over and keeps its start', (t) => {
  const state = new MetadataState();
  applyAll(state, [{ type: 'markLeaving', nodeId: 3, byNodeId: 1, atMs: 1000 }]);
  t.deepEqual(state.leaving, { nodeId: 3, byNodeId: 1, sinceMs: 1000 });
  applyAll(state, [{ type: 'markLeaving', nodeId: 4, byNodeId: 1, atMs: 2000 }]);
  t.deepEqual(state.leaving, { nodeId: 3, byNodeId: 1, sinceMs: 1000 }, 'another node is not marked');
  applyAll(state, [{ type: 'markLeaving', nodeId: 3, byNodeId: 2, atMs: 3000 }]);
  t.deepEqual(state.leaving, { nodeId: 3, byNodeId: 2, sinceMs: 1000 }, 'taken over by node 2');
});

test('a clear applies only for the leader running the removal; unregisterNode ends the mark', (t) => {
  const state = new MetadataState();
  applyAll(state, [
    { type: 'markLeaving', nodeId: 3, byNodeId: 1, atMs: 1000 },
    { type: 'markLeaving', nodeId: 3, byNodeId: 2, atMs: 1500 },
    { type: 'clearLeaving', nodeId: 3, byNodeId: 1 },
  ]);
  t.is(state.leaving?.byNodeId, 2, 'the old leader lost the removal: its clear changes nothing');
  applyAll(state, [{ type: 'clearLeaving', nodeId: 3, byNodeId: 2 }]);
  t.is(state.leaving, null);
  applyAll(state, [
    { type: 'markLeaving', nodeId: 4, byNodeId: 2, atMs: 2000 },
    { type: 'unregisterNode', nodeId: 5 },
  ]);
  t.is(state.leaving?.nodeId, 4, 'unregistering another node leaves the mark');
  applyAll(state, [{ type: 'unregisterNode', nodeId: 4 }]);
  t.is(state.leaving, null);
});

test('malformed marks change nothing', (t) => {
  const state = new MetadataState();
  applyAll(state, [
    { type: 'markLeaving', nodeId: 0, byNodeId: 1, atMs: 1 },
    { type: 'markLeaving', nodeId: 3, byNodeId: -1, atMs: 1 },
    { type: 'markLeaving', nodeId: 1.5, byNodeId: 1, atMs: 1 },
  ]);
  t.is(state.leaving, null);
});

test('snapshots carry the mark; a snapshot without one (older versions) restores none', (t) => {
  const state = new MetadataState();
  applyAll(state, [{ type: 'markLeaving', nodeId: 3, byNodeId: 1, atMs: 1000 }]);
  const json = JSON.stringify(state.toSnapshot());
  const restored = new MetadataState();
  restored.restore(JSON.parse(json) as MetadataSnapshot);
  t.deepEqual(restored.leaving, { nodeId: 3, byNodeId: 1, sinceMs: 1000 });
  t.is(restored.appliedIndex, 1);
  // An older version's snapshot: no `leaving` field. Restoring it over a marked state clears the mark.
  const older = '{"appliedIndex":7,"nodes":[],"topics":[]}';
  restored.restore(JSON.parse(older) as MetadataSnapshot);
  t.is(restored.leaving, null);
  t.false('leaving' in new MetadataState().toSnapshot(), 'no field while nothing is marked');
  t.throws(() =>
    MetadataState.fromSnapshot({
      appliedIndex: 1,
      topics: [],
      leaving: { nodeId: 0, byNodeId: 1, sinceMs: 0 },
    }),
  );
});

test("a new leader's controller passes the marked node over without being told (placement and repair read the state)", (t) => {
  const state = new MetadataState();
  applyAll(state, [{ type: 'markLeaving', nodeId: 2, byNodeId: 1, atMs: 0 }]);
  // As on node 3, the new Raft leader: voters 1-4, all alive.
  const controller = new Controller({
    nodeId: 3,
    state,
    isRaftLeader: () => true,
    voters: () => [1, 2, 3, 4],
    aliveVoters: () => [1, 2, 3, 4],
    propose: () => Promise.resolve(0),
    recoverSegment: () => Promise.resolve(true),
    repairSegment: () => Promise.resolve(true),
    ensureCopy: () => Promise.resolve(true),
    delay: () => Promise.resolve(),
    repairAfterMs: 60_000,
    nowMs: () => 0,
    logger: new CapturingLogger(),
  });
  const created = controller.prepareProposal({
    type: 'createTopic',
    name: 't',
    retention: { retentionMs: null, retentionBytes: null },
    createdAtMs: 0,
    leaderNodeId: 2,
  });
  if (created.type !== 'createTopic') return t.fail();
  t.not(created.leaderNodeId, 2);
  t.false(created.replicas?.includes(2), `replicas ${created.replicas?.join(',')}`);
  t.is(created.replicas?.length, 3);
  applyAll(state, [{ ...created }]);
  const sealed = controller.prepareProposal({
    type: 'sealSegment',
    topic: 't',
    segmentId: 1,
    endOffset: 0,
    nextLeaderNodeId: 2,
  });
  if (sealed.type !== 'sealSegment') return t.fail();
  t.not(sealed.nextLeaderNodeId, 2);
  t.false(sealed.nextReplicas?.includes(2), `next replicas ${sealed.nextReplicas?.join(',')}`);
});
