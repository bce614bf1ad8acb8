/**
 * routeOf (node/server/routing.ts): which node executes each request op, as a table over one
 * metadata state (a topic whose segments are led by nodes 1, 2 and 3), and for unknown topics.
 */
import test from 'ava';
import { MetadataState } from '../../../node/metadata/metadata-state.js';
import type { Request, RequestOp } from '../../../node/protocol/messages.js';
import { routeOf } from '../../../node/server/routing.js';

const self = 5;
const raftLeader = 4;

function state(): MetadataState {
  const s = new MetadataState();
  let i = 0;
  s.apply(++i, {
    type: 'createTopic',
    name: 't',
    retention: { retentionMs: null, retentionBytes: null },
    createdAtMs: 0,
    leaderNodeId: 1,
  });
  s.apply(++i, { type: 'sealSegment', topic: 't', segmentId: 1, endOffset: 10, nextLeaderNodeId: 2 });
  s.apply(++i, { type: 'sealSegment', topic: 't', segmentId: 2, endOffset: 20, nextLeaderNodeId: 3 });
  return s;
}

const read = (offset: number): Request => ({
  op: 'read',
  topic: 't',
  offset,
  recordCountMax: 1,
  byteCountMax: 1,
  waitMs: 0,
});

const table: readonly [string, Request, number][] = [
  ['ping', { op: 'ping' }, self],
  ['listTopics', { op: 'listTopics' }, self],
  ['metrics', { op: 'metrics' }, self],
  ['offsetForTimestamp', { op: 'offsetForTimestamp', topic: 't', timestampMs: 0 }, self],
  ['localOffsetForTimestamp', { op: 'localOffsetForTimestamp', topic: 't', timestampMs: 0 }, self],
  ['createTopic', { op: 'createTopic', topic: 'x' }, raftLeader],
  ['deleteTopic', { op: 'deleteTopic', topic: 't' }, raftLeader],
  ['configureTopic', { op: 'configureTopic', topic: 't', retention: {} }, raftLeader],
  [
    'consumerReadNext',
    {
      op: 'consumerReadNext',
      topic: 't',
      consumer: 'c',
      recordCountMax: 1,
      byteCountMax: 1,
      autoCommit: true,
    },
    raftLeader,
  ],
  ['consumerCommit', { op: 'consumerCommit', topic: 't', consumer: 'c', offset: 0 }, raftLeader],
  ['consumerGet', { op: 'consumerGet', topic: 't', consumer: 'c' }, raftLeader],
  ['consumerList', { op: 'consumerList', topic: 't' }, raftLeader],
  ['consumerDelete', { op: 'consumerDelete', topic: 't', consumer: 'c' }, raftLeader],
  ['removeNode', { op: 'removeNode', nodeId: 2 }, raftLeader],
  ['handOff', { op: 'handOff', nodeId: 1 }, self],
  ['transferLeader', { op: 'transferLeader', nodeId: 2 }, raftLeader],
  ['nodeStopping', { op: 'nodeStopping', nodeId: 2 }, raftLeader],
  ['authenticate', { op: 'authenticate', token: 'secret-token' }, self],
  ['append', { op: 'append', topic: 't', records: [] }, 3],
  ['describeTopic', { op: 'describeTopic', topic: 't' }, 3],
  ['state', { op: 'state', topic: 't' }, 3],
  ['stream get', { op: 'stream', topic: 't', action: { kind: 'get' } }, 3],
  ['stream delete', { op: 'stream', topic: 't', action: { kind: 'delete' } }, raftLeader],
  ['stream get of an unknown topic', { op: 'stream', topic: 'nope', action: { kind: 'get' } }, raftLeader],
  ['read in segment 1', read(0), 1],
  ['read at the end of segment 1', read(9), 1],
  ['read at the base of segment 2', read(10), 2],
  ['read in the active segment', read(20), 3],
  ['read beyond the end', read(1000), 3],
  ['append to an unknown topic', { op: 'append', topic: 'nope', records: [] }, self],
  [
    'read of an unknown topic',
    { op: 'read', topic: 'nope', offset: 0, recordCountMax: 1, byteCountMax: 1, waitMs: 0 },
    self,
  ],
  ['describe of an unknown topic', { op: 'describeTopic', topic: 'nope' }, self],
];

for (const [what, request, expected] of table) {
  test(`routeOf: ${what} → ${expected === self ? 'self' : expected === raftLeader ? 'the Raft leader' : `node ${expected}`}`, (t) => {
    t.is(routeOf(request, state(), self, raftLeader), expected);
  });
}

test('routeOf: Raft-leader requests run here while no leader is known', (t) => {
  t.is(routeOf({ op: 'consumerGet', topic: 't', consumer: 'c' }, state(), self, 0), self);
  t.is(routeOf({ op: 'createTopic', topic: 'x' }, state(), self, 0), self);
});

test('routeOf: a read below a dropped segment goes to the active segment leader', (t) => {
  const s = state();
  s.apply(s.appliedIndex + 1, { type: 'dropSegments', topic: 't', segmentIds: [1] });
  t.is(routeOf(read(3), s, self, raftLeader), 3);
});

test('routeOf: the table covers every request op', (t) => {
  const every: Record<RequestOp, true> = {
    ping: true,
    createTopic: true,
    describeTopic: true,
    stream: true,
    listTopics: true,
    deleteTopic: true,
    configureTopic: true,
    append: true,
    read: true,
    offsetForTimestamp: true,
    localOffsetForTimestamp: true,
    consumerReadNext: true,
    consumerCommit: true,
    consumerGet: true,
    consumerList: true,
    consumerDelete: true,
    metrics: true,
    state: true,
    authenticate: true,
    nodeStopping: true,
    removeNode: true,
    handOff: true,
    transferLeader: true,
  };
  t.deepEqual([...new Set(table.map(([, request]) => request.op))].sort(), Object.keys(every).sort());
});
