/**
 * The controller (node/controller/controller.ts) over the in-process harness: tick proposes
 * dropSegments only on the Raft leader, from the times and sizes logged at the seal (an injected
 * clock, no sleeping), and every node deletes its files when it applies the drop;
 * prepareProposal re-chooses the next segment leader from the voters the Raft leader hears from.
 */
import test from 'ava';
import { Controller } from '../../../node/controller/controller.js';
import { CapturingLogger, TopicHarness, recordsOf, until } from '../../helpers/topic-harness.js';
import { MetadataState, type MetaCommand } from '../../../node/metadata/metadata-state.js';

/** Fills `count` two-record segments of topic t, each written at a later time. */
async function fill(h: TopicHarness, count: number): Promise<void> {
  for (let i = 0; i < count; i++) {
    const leader = h.log.state.topics.get('t')!.segments.at(-1)!.leaderNodeId;
    const before = h.log.state.topics.get('t')!.segments.length;
    await h.node(leader).service.appender.append('t', recordsOf(`${i}a`, `${i}b`));
    await until('the seal', () => h.log.state.topics.get('t')!.segments.length === before + 1);
    h.clock.advance(1000);
  }
}

test('tick drops expired segments on the Raft leader only, and every node deletes their files', async (t) => {
  const h = await TopicHarness.start({ nodeIds: [1, 2], segmentEntryCountMax: 2 });
  t.teardown(() => h.close());
  await h.createTopic('t', 1, { retentionMs: 2500 });
  await fill(h, 4); // Segments 1-4 (leaders 1, 2, 1, 2) written at +0, +1000, +2000, +3000.
  const follower = h.controller(2);
  const leader = h.controller(1);
  await follower.tick();
  t.is(h.log.commands('dropSegments').length, 0, 'a follower proposes nothing');
  // Now +4000: segments last written at +0 and +1000 are older than 2500 ms.
  await leader.tick();
  t.deepEqual(h.log.commands('dropSegments'), [{ type: 'dropSegments', topic: 't', segmentIds: [1, 2] }]);
  t.is(h.log.state.topics.get('t')!.segments[0]!.id, 3);
  await until(
    'both nodes to delete their files',
    () =>
      !h
        .node(1)
        .wal.segments('t')
        .some((s) => s.id === 1) &&
      !h
        .node(2)
        .wal.segments('t')
        .some((s) => s.id === 2),
  );
  t.deepEqual(
    h
      .node(1)
      .wal.segments('t')
      .map((s) => s.id),
    [3],
  );
  t.deepEqual(
    h
      .node(2)
      .wal.segments('t')
      .map((s) => s.id),
    [4],
  );
  await leader.tick();
  t.is(h.log.commands('dropSegments').length, 1, 'nothing more has expired');
  h.clock.advance(2000);
  await leader.tick();
  t.deepEqual(h.log.commands('dropSegments')[1]!.segmentIds, [3, 4]);
});

test('tick by bytes uses the sizes logged at the seal', async (t) => {
  const h = await TopicHarness.start({ segmentEntryCountMax: 2 });
  t.teardown(() => h.close());
  await h.createTopic('t');
  await fill(h, 3);
  const size = h.log.state.topics.get('t')!.segments[0]!.sizeBytes!;
  t.true(size > 0);
  await h.log.propose({
    type: 'configureTopic',
    name: 't',
    retention: { retentionMs: null, retentionBytes: 2 * size },
  });
  await h.controller(1).tick();
  t.deepEqual(h.log.commands('dropSegments').at(-1)!.segmentIds, [1]);
});

test('tick stops when leadership is lost, and a failed proposal is logged, not thrown', async (t) => {
  const state = new MetadataState();
  let index = 0;
  for (const name of ['a', 'b']) {
    state.apply(++index, {
      type: 'createTopic',
      name,
      retention: { retentionMs: 1, retentionBytes: null },
      createdAtMs: 0,
      leaderNodeId: 1,
    });
    state.apply(++index, {
      type: 'sealSegment',
      topic: name,
      segmentId: 1,
      endOffset: 1,
      nextLeaderNodeId: 1,
      sizeBytes: 10,
      lastTimestampMs: 0,
    });
  }
  const proposed: MetaCommand[] = [];
  let leading = true;
  const logger = new CapturingLogger();
  const controller = new Controller({
    nodeId: 1,
    state,
    isRaftLeader: () => leading,
    voters: () => [1],
    aliveVoters: () => [1],
    propose: async (command) => {
      proposed.push(command);
      leading = false;
      throw new Error('lost leadership');
    },
    repairSegment: () => Promise.resolve(false),
    repairAfterMs: 60_000,
    delay: () => Promise.resolve(),
    ensureCopy: () => Promise.resolve(false),
    recoverSegment: () => Promise.resolve(false),
    nowMs: () => 1000,
    logger,
  });
  await controller.tick();
  t.is(proposed.length, 1);
  t.true(logger.has('Retention could not drop segments'));
});

test('prepareProposal re-chooses the next segment leader from the alive voters', async (t) => {
  const h = await TopicHarness.start({ nodeIds: [1, 2, 3], segmentEntryCountMax: 2 });
  t.teardown(() => h.close());
  await h.createTopic('t', 1);
  // Node 1 (a follower) still thinks node 2 is alive; the Raft leader (node 3) knows it is not.
  h.raftLeaderId = 3;
  h.alive = [1, 3];
  h.aliveViews.set(1, [1, 2, 3]);
  const controller = h.controller(3);
  h.log.prepare = (command) => controller.prepareProposal(command);
  await h.node(1).service.appender.append('t', recordsOf('a', 'b'));
  await until('the seal', () => h.log.state.topics.get('t')!.segments.length === 2);
  t.like(h.log.state.topics.get('t')!.segments[1], { leaderNodeId: 3 });
  // A new topic keeps its leader and gets a replica set: the leader, then the voters after it in
  // ring order, alive ones first.
  const create: MetaCommand = {
    type: 'createTopic',
    name: 'u',
    retention: { retentionMs: null, retentionBytes: null },
    createdAtMs: 0,
    leaderNodeId: 2,
  };
  t.like(controller.prepareProposal(create), { leaderNodeId: 2, replicas: [2, 3, 1] });
  t.like(controller.prepareProposal({ ...create, replicationFactor: 2 }), { replicas: [2, 3] });
  // Seals of a segment that is no longer active pass unchanged.
  const stale: MetaCommand = {
    type: 'sealSegment',
    topic: 't',
    segmentId: 1,
    endOffset: 2,
    nextLeaderNodeId: 2,
  };
  t.is(controller.prepareProposal(stale), stale);
  const current: MetaCommand = {
    type: 'sealSegment',
    topic: 't',
    segmentId: 2,
    endOffset: 4,
    nextLeaderNodeId: 3,
  };
  t.like(controller.prepareProposal(current), { nextLeaderNodeId: 1, nextReplicas: [1, 3, 2] });
  h.alive = [1, 2, 3];
  t.like(controller.prepareProposal(current), { nextLeaderNodeId: 1 });
  h.alive = [3];
  t.like(controller.prepareProposal(current), { nextLeaderNodeId: 3 });
});
