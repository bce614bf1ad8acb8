/**
 * What topic administration tells clients of replication (node/topics/topic-admin.ts): a topic's
 * effective replication factor (its own, or min(3, voters)), each segment's replica set and epoch,
 * and the under-replicated count (fewer replicas than the factor, or a replica that is no longer a
 * voter); createTopic's replication factor is validated (1..7, at most the voters), reaches the
 * createTopic command, and counts as a setting of an existing topic. Through the request handler
 * as a binary request, too.
 */
import test from 'ava';
import { decodeReply, encodeRequest } from '../../../node/protocol/binary-codec.js';
import type { ResponseByOp } from '../../../node/protocol/messages.js';
import { TopicHarness, codeOf } from '../../helpers/topic-harness.js';

async function harness(t: import('ava').ExecutionContext, nodeIds: number[]): Promise<TopicHarness> {
  const h = await TopicHarness.start({ nodeIds });
  t.teardown(() => h.close());
  return h;
}

test('without a factor a topic follows the default min(3, voters), and the command carries none', async (t) => {
  const one = await harness(t, [1]);
  const created = await one.service.admin.create('solo');
  t.is(created.topic.replicationFactor, 1);
  t.is(created.topic.underReplicatedSegmentCount, 0);
  t.false('replicationFactor' in one.log.commands('createTopic')[0]!);
  t.is(one.log.state.topics.get('solo')!.replicationFactor, null);

  const five = await harness(t, [1, 2, 3, 4, 5]);
  const info = (await five.service.admin.create('wide')).topic;
  t.is(info.replicationFactor, 3);
  const leader = info.segments[0]!.leaderNodeId;
  t.deepEqual(info.segments[0]!.replicas, [leader], 'no placement of followers yet: the leader alone');
  t.is(info.segments[0]!.epoch, 1);
  t.is(info.underReplicatedSegmentCount, 1);
});

test('a factor reaches the createTopic command and the topic', async (t) => {
  const h = await harness(t, [1, 2, 3]);
  const info = (await h.service.admin.create('t', undefined, 2)).topic;
  t.is(h.log.commands('createTopic')[0]!.replicationFactor, 2);
  t.is(h.log.state.topics.get('t')!.replicationFactor, 2);
  t.is(info.replicationFactor, 2);
  t.is(info.underReplicatedSegmentCount, 1);
  t.is((await h.service.admin.create('zero', undefined, 0)).topic.replicationFactor, 3, '0 is the default');
  t.false('replicationFactor' in h.log.commands('createTopic')[1]!);
});

test('segments count as under-replicated when short of the factor or holding a node that is not a voter', async (t) => {
  const h = await harness(t, [1, 2, 3]);
  await h.service.admin.create('t', undefined, 2);
  const segment = () => h.log.state.topics.get('t')!.segments[0]!;
  const leader = segment().leaderNodeId;
  const other = [1, 2, 3].find((id) => id !== leader)!;
  await h.log.propose({
    type: 'setReplicas',
    topic: 't',
    segmentId: 1,
    replicas: [leader, other],
    expected: [leader],
  });
  let info = h.service.admin.describe('t');
  t.deepEqual(info.segments[0]!.replicas, [leader, other]);
  t.is(info.underReplicatedSegmentCount, 0);
  await h.log.propose({
    type: 'setReplicas',
    topic: 't',
    segmentId: 1,
    replicas: [leader, 9],
    expected: [leader, other],
  });
  info = h.service.admin.describe('t');
  t.deepEqual(info.segments[0]!.replicas, [leader, 9]);
  t.is(info.underReplicatedSegmentCount, 1, 'node 9 is not a voter');
  await h.log.propose({ type: 'fenceSegment', topic: 't', segmentId: 1, epoch: 2 });
  t.is(h.service.admin.describe('t').segments[0]!.epoch, 2);
  t.is(h.service.admin.list().find((x) => x.name === 't')!.underReplicatedSegmentCount, 1);
});

test('a factor outside 1..7 or above the voters is BAD_REQUEST; another factor for an existing topic is TOPIC_EXISTS', async (t) => {
  const h = await harness(t, [1, 2, 3]);
  for (const factor of [8, -1, 1.5])
    t.is(await codeOf(() => h.service.admin.create('x', undefined, factor)), 'BAD_REQUEST');
  const above = await h.service.admin.create('x', undefined, 4).catch((e: Error) => e.message);
  t.is(above, 'replicationFactor 4 is above the 3 voters of the cluster');
  t.false(h.log.state.topics.has('x'));
  t.is(h.log.commands('createTopic').length, 0);

  await h.service.admin.create('t');
  t.false((await h.service.admin.create('t', undefined, 3)).created, 'the default, 3, is the same setting');
  t.is(await codeOf(() => h.service.admin.create('t', undefined, 2)), 'TOPIC_EXISTS');
  t.is(await codeOf(() => h.service.admin.create('t', undefined, 4)), 'TOPIC_EXISTS');
});

test('a binary createTopic request passes its replication factor through the request handler', async (t) => {
  const h = await harness(t, [1, 2, 3]);
  const reply = decodeReply(
    await h
      .node(1)
      .handler.executeForwarded(encodeRequest(7, { op: 'createTopic', topic: 'bin', replicationFactor: 2 })),
  );
  t.is(reply.kind, 'response');
  const created = (reply as { response: ResponseByOp['createTopic'] }).response;
  t.true(created.created);
  t.is(created.topic.replicationFactor, 2);
  t.is(h.log.state.topics.get('bin')!.replicationFactor, 2);
  const refused = decodeReply(
    await h
      .node(1)
      .handler.executeForwarded(encodeRequest(8, { op: 'createTopic', topic: 'big', replicationFactor: 5 })),
  );
  t.like(refused, { kind: 'error', error: { code: 'BAD_REQUEST' } });
});
