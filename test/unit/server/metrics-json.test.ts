/**
 * The METRICS JSON, built from given Raft figures: seed 002's fields and real Walrus's (openraft's
 * RaftMetrics serialisation) side by side, checked against the upstream fixture's shape.
 */
import test from 'ava';
import type { RaftStatusForMetrics } from '../../../node/metadata/raft-node.js';
import { metricsJson } from '../../../node/server/metrics-json.js';
import {
  metricsOursNullable,
  metricsTypeDifferences,
  shapeProblems,
  upstreamFixtures,
} from '../../helpers/walrus-upstream.js';

const nowMs = 1_700_000_000_000;
const pos = (index: number, term: number | null, leaderId: number | null) => ({ index, term, leaderId });

const addresses = {
  '1': { raftAddr: '127.0.0.1:6001', clientAddr: '127.0.0.1:9091' },
  '2': { raftAddr: '127.0.0.1:6002', clientAddr: '127.0.0.1:9092' },
  '3': { raftAddr: '127.0.0.1:6003', clientAddr: '127.0.0.1:9093' },
};

const leader: RaftStatusForMetrics = {
  state: 'Leader',
  term: 2,
  vote: 1,
  lastIndex: 42,
  applied: 42,
  leaderId: 1,
  voters: [3, 1, 2],
  learners: [],
  snapshot: { index: 40, term: 2, leaderId: 1 },
  membershipLogId: pos(7, 1, 1),
  addresses,
  progress: {
    '1': { match: 42, next: 43, matched: pos(42, 2, 1) },
    '2': { match: 42, next: 43, matched: pos(42, 2, 1) },
    '3': { match: 41, next: 42, matched: pos(41, 2, 1) },
  },
  ackedAtMs: { '1': nowMs, '2': nowMs - 12, '3': nowMs - 40 },
  quorumAckedAtMs: nowMs - 12,
  running: true,
};

const follower: RaftStatusForMetrics = {
  ...leader,
  state: 'Follower',
  vote: null,
  leaderId: 2,
  progress: {},
  ackedAtMs: null,
  quorumAckedAtMs: null,
};

const storage = { topics: 1 };

const metricsCase = upstreamFixtures().cases['METRICS']!;
const shapeOptions = {
  nullable: metricsCase.nullable,
  oursNullable: metricsOursNullable,
  differences: metricsTypeDifferences,
};

test("a leader's METRICS has upstream's shape, with seed 002's documented fields beside it", (t) => {
  const m = metricsJson(1, leader, storage, nowMs);
  t.deepEqual(shapeProblems(metricsCase.json, m, shapeOptions), []);
  // Seed 002's fields, with its types.
  t.like(m, {
    id: 1,
    state: 'Leader',
    current_term: 2,
    last_log_index: 42,
    last_applied: 42,
    current_leader: 1,
    vote: { term: 2, node_id: 1, committed: true },
    snapshot: { index: 40, term: 2 },
  });
  t.like(m['membership_config'], { nodes: [1, 2, 3], voters: [1, 2, 3], learners: [] });
  t.like(m['replication'], {
    '2': { match_index: 42, next_index: 43 },
    '3': { match_index: 41, next_index: 42 },
  });
  // What openraft's serialisation adds.
  t.deepEqual(m['running_state'], { Ok: null });
  t.deepEqual(m['membership_config'], {
    nodes: [1, 2, 3],
    voters: [1, 2, 3],
    learners: [],
    log_id: { leader_id: { term: 1, node_id: 1 }, index: 7 },
    membership: {
      configs: [[1, 2, 3]],
      nodes: {
        '1': { addr: '127.0.0.1:6001', client_addr: '127.0.0.1:9091' },
        '2': { addr: '127.0.0.1:6002', client_addr: '127.0.0.1:9092' },
        '3': { addr: '127.0.0.1:6003', client_addr: '127.0.0.1:9093' },
      },
    },
  });
  t.deepEqual(m['replication'], {
    '1': { match_index: 42, next_index: 43, leader_id: { term: 2, node_id: 1 }, index: 42 },
    '2': { match_index: 42, next_index: 43, leader_id: { term: 2, node_id: 1 }, index: 42 },
    '3': { match_index: 41, next_index: 42, leader_id: { term: 2, node_id: 1 }, index: 41 },
  });
  t.deepEqual(m['vote'], { term: 2, node_id: 1, committed: true, leader_id: { term: 2, node_id: 1 } });
  t.deepEqual(m['snapshot'], { index: 40, term: 2, leader_id: { term: 2, node_id: 1 } });
  t.deepEqual(m['purged'], { leader_id: { term: 2, node_id: 1 }, index: 40 });
  t.is(m['millis_since_quorum_ack'], 12);
  t.is(m['last_quorum_acked'], (nowMs - 12) * 1_000_000);
  t.deepEqual(m['heartbeat'], {
    '1': nowMs * 1_000_000,
    '2': (nowMs - 12) * 1_000_000,
    '3': (nowMs - 40) * 1_000_000,
  });
  t.deepEqual(m['storage'], storage);
  // The order openraft serialises RaftMetrics in, then our storage object.
  t.deepEqual(Object.keys(m), [
    'running_state',
    'id',
    'current_term',
    'vote',
    'last_log_index',
    'last_applied',
    'snapshot',
    'purged',
    'state',
    'current_leader',
    'millis_since_quorum_ack',
    'last_quorum_acked',
    'membership_config',
    'heartbeat',
    'replication',
    'storage',
  ]);
});

test("a follower: no replication, heartbeat or quorum figures; its vote is the leader's", (t) => {
  const m = metricsJson(1, follower, storage, nowMs);
  t.deepEqual(shapeProblems(metricsCase.json, m, shapeOptions), []);
  t.deepEqual(m['replication'], {}, "seed 002's object type, empty (upstream: null)");
  t.is(m['heartbeat'], null);
  t.is(m['millis_since_quorum_ack'], null);
  t.is(m['last_quorum_acked'], null);
  t.deepEqual(m['vote'], { term: 2, node_id: 2, committed: true, leader_id: { term: 2, node_id: 2 } });
  t.is(m['state'], 'Follower');
});

test('a node that knows no leader and cast no vote; a joiner with no configuration yet', (t) => {
  const m = metricsJson(
    4,
    {
      ...follower,
      state: 'PreCandidate',
      leaderId: null,
      voters: [],
      learners: [],
      snapshot: null,
      membershipLogId: null,
      addresses: {},
    },
    storage,
    nowMs,
  );
  t.is(m['state'], 'Candidate');
  t.is(m['current_leader'], null);
  t.deepEqual(m['vote'], { term: 2, node_id: 0, committed: false, leader_id: { term: 2, node_id: 0 } });
  t.is(m['snapshot'], null);
  t.is(m['purged'], null);
  t.deepEqual(m['membership_config'], {
    nodes: [],
    voters: [],
    learners: [],
    log_id: null,
    membership: { configs: [], nodes: {} },
  });
});

test('positions whose term or leader this node cannot tell, a member with no address yet, and a stopped node', (t) => {
  const m = metricsJson(
    1,
    {
      ...leader,
      learners: [4],
      snapshot: { index: 40, term: 1, leaderId: null },
      progress: {
        ...leader.progress,
        '3': { match: 0, next: 1, matched: null },
        '4': { match: 12, next: 13, matched: pos(12, null, null) },
      },
      running: false,
    },
    storage,
    nowMs,
  );
  t.deepEqual(shapeProblems(metricsCase.json, m, shapeOptions), [
    'running_state.Ok: missing', // a stopped openraft node sends {"Err": …} as well
    'membership_config.membership.nodes.*.addr: missing', // documented: no address until registered
  ]);
  t.deepEqual(m['running_state'], { Err: 'Stopped' });
  t.deepEqual(m['snapshot'], { index: 40, term: 1, leader_id: { term: 1, node_id: null } });
  t.like(m['replication'], {
    '3': { match_index: 0, next_index: 1, leader_id: null, index: 0 },
    '4': { match_index: 12, next_index: 13, leader_id: null, index: 12 },
  });
  t.like(m['membership_config'], {
    nodes: [1, 2, 3, 4],
    learners: [4],
    membership: { configs: [[1, 2, 3]] },
  });
  t.deepEqual(
    (m['membership_config'] as { membership: { nodes: Record<string, unknown> } }).membership.nodes['4'],
    {},
  );
});

test('the shape checker finds a missing field, a wrong type and an unexpected null', (t) => {
  const upstream = metricsCase.json!;
  const m = metricsJson(1, leader, storage, nowMs) as Record<string, unknown>;
  const { current_term: _, ...missing } = m;
  t.deepEqual(shapeProblems(upstream, missing, shapeOptions), ['current_term: missing']);
  t.deepEqual(shapeProblems(upstream, { ...m, state: 1 }, shapeOptions), [
    'state: number where upstream sends string',
  ]);
  t.deepEqual(shapeProblems(upstream, { ...m, vote: null }, shapeOptions), [
    'vote: null where upstream sends object',
  ]);
  t.deepEqual(shapeProblems(upstream, { ...m, last_applied: { index: 1 } }, shapeOptions), [
    'last_applied: expected our number, got object',
  ]);
});

test('removing: the node a remove-node is under way for, from the metadata; null when none', (t) => {
  const marked = metricsJson(1, leader, storage, nowMs, undefined, { nodeId: 3, byNodeId: 1, sinceMs: 5 });
  t.deepEqual(marked['removing'], { node_id: 3, by_node_id: 1, since_ms: 5 });
  t.is(metricsJson(1, leader, storage, nowMs, undefined, null)['removing'], null);
  t.false('removing' in metricsJson(1, leader, storage, nowMs), 'left out when the caller has no metadata');
});
