/**
 * The node's Prometheus registry in-process, over a topic table of 10,000 topics: per-topic
 * families keep only the N largest and say how many they dropped, the totals cover every topic,
 * histograms expose cumulative buckets, log lines are counted by level, and every series the
 * node serves is documented in docs/metrics.md.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import test from 'ava';
import type { RaftStatusForMetrics } from '../../../node/metadata/raft-node.js';
import { FastCounter, FastHistogram } from '../../../node/fast-metrics.js';
import { NodeMetrics } from '../../../node/metrics/node-metrics.js';
import type { TopicService } from '../../../node/topics/topic-service.js';
import { silentLogger } from '../../../node/log.js';
import { Registry } from 'prom-client';

const raft: RaftStatusForMetrics = {
  state: 'Leader',
  term: 4,
  vote: 1,
  lastIndex: 1200,
  applied: 1200,
  leaderId: 1,
  voters: [1, 2, 3],
  learners: [],
  snapshot: { index: 1000, term: 3, leaderId: 1 },
  membershipLogId: null,
  addresses: {},
  progress: {
    '1': { match: 1200, next: 1201, matched: null },
    '2': { match: 1190, next: 1191, matched: null },
    '3': { match: 12, next: 13, matched: null },
  },
  ackedAtMs: { '1': Date.now(), '2': Date.now(), '3': Date.now() - 30_000 },
  quorumAckedAtMs: Date.now(),
  running: true,
};

/** A topic service shaped like the real one where the collectors read it: 10,000 topics led by node 1. */
function fakeTopics(count: number): TopicService {
  const topics = new Map<string, unknown>();
  for (let i = 0; i < count; i++) {
    const name = `t${i}`;
    topics.set(name, {
      name,
      segments: [
        { id: 1, baseOffset: 0, endOffset: 10, leaderNodeId: 2, replicas: [2, 1, 3] },
        { id: 2, baseOffset: 10, endOffset: null, leaderNodeId: 1, replicas: [1, 2, 3] },
      ],
      cursors: new Map([['c', 10]]),
    });
  }
  return {
    metadata: { topics },
    reader: { knownEnd: (topic: { name: string }) => 10 + Number(topic.name.slice(1)) },
    forEachReplicaLag: (visit: (topic: string, follower: number, lag: number) => void) => {
      for (let i = 0; i < count; i++) visit(`t${i}`, 3, i);
    },
  } as unknown as TopicService;
}

function metricsFor(topicCount: number, topicSeriesCountMax: number): NodeMetrics {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'walrus-metrics-'));
  return new NodeMetrics(
    {
      nodeId: 1,
      nodeDir: dir,
      raft: () => raft,
      aliveVoterCount: () => 2,
      storage: () => ({ appendCount: 5, fsyncCount: 3, disk_reserve_bytes: 1024, disk_full: false }),
      topics: () => fakeTopics(topicCount),
      connections: () => ({ count: 2, bufferedInputBytes: 0, bufferedInputRefusals: 0 }),
      ready: () => true,
    },
    { topicSeriesCountMax, processMetrics: false },
  );
}

function lines(text: string, family: string): string[] {
  return text.split('\n').filter((l) => l.startsWith(`${family}{`) || l.startsWith(`${family} `));
}

function value(text: string, series: string): number {
  const line = text.split('\n').find((l) => l.startsWith(series));
  if (line === undefined) throw new Error(`no ${series}`);
  return Number(line.slice(line.lastIndexOf(' ') + 1));
}

test('10,000 topics: per-topic families hold the N largest; totals cover all', async (t) => {
  const m = metricsFor(10_000, 50);
  const text = await m.scrape();
  t.is(lines(text, 'walrus_topic_end_offset').length, 50);
  t.is(lines(text, 'walrus_topic_active_segment_id').length, 50);
  t.is(lines(text, 'walrus_consumer_lag_records').length, 50);
  t.is(lines(text, 'walrus_replica_lag_records').length, 50);
  // The largest: topic t9999 has the largest end offset and replica lag.
  t.true(text.includes('walrus_topic_end_offset{topic="t9999",node_id="1"} 10009'));
  t.true(text.includes('walrus_replica_lag_records{topic="t9999",follower="3",node_id="1"} 9999'));
  t.false(text.includes('topic="t0"'));
  t.is(value(text, 'walrus_metrics_topic_series_dropped{family="topic"'), 9950);
  t.is(value(text, 'walrus_topics{'), 10_000);
  t.is(value(text, 'walrus_consumers{'), 10_000);
  t.is(value(text, 'walrus_consumer_max_lag_records{'), 9999);
  t.is(value(text, 'walrus_replica_max_lag_records{'), 9999);
  t.is(value(text, 'walrus_segments_led{state="active"'), 10_000);
  t.is(value(text, 'walrus_segments_led{state="sealed"'), 0);
  t.is(value(text, 'walrus_segment_replicas{'), 20_000);
  // The whole scrape stays small: no family grows with the topic count.
  t.true(text.split('\n').length < 1000, `${text.split('\n').length} lines`);
  m.close();
});

test('Raft figures: role, lag per follower, quorum; WAL counters and readiness', async (t) => {
  const m = metricsFor(0, 50);
  const text = await m.scrape();
  t.is(value(text, 'walrus_raft_state{state="Leader"'), 1);
  t.is(value(text, 'walrus_raft_state{state="Follower"'), 0);
  t.is(value(text, 'walrus_raft_is_leader{'), 1);
  t.is(value(text, 'walrus_raft_term{'), 4);
  t.is(value(text, 'walrus_raft_follower_lag_entries{follower="2"'), 10);
  t.is(value(text, 'walrus_raft_follower_lag_entries{follower="3"'), 1188);
  t.false(
    text.includes('walrus_raft_follower_lag_entries{follower="1"'),
    'the leader is not its own follower',
  );
  t.true(value(text, 'walrus_raft_follower_last_ack_age_seconds{follower="3"') >= 30);
  t.is(value(text, 'walrus_raft_quorum_ok{'), 1);
  t.is(value(text, 'walrus_raft_snapshot_index{'), 1000);
  t.is(value(text, 'walrus_wal_appends_total{'), 5);
  t.is(value(text, 'walrus_wal_fsyncs_total{'), 3);
  t.is(value(text, 'walrus_node_ready{'), 1);
  t.true(value(text, 'walrus_disk_total_bytes{') > 0);
  t.true(value(text, 'walrus_data_dir_bytes{') >= 0);
  m.close();
});

test('log lines are counted by level through the wrapped logger', async (t) => {
  const m = metricsFor(0, 50);
  const logger = m.logLines.wrap(silentLogger);
  logger.error({}, 'monitor tick failed');
  logger.error({}, 'monitor tick failed');
  logger.warn({}, 'w');
  const text = await m.scrape();
  t.is(value(text, 'walrus_log_lines_total{level="error"'), 2);
  t.is(value(text, 'walrus_log_lines_total{level="warn"'), 1);
  t.is(value(text, 'walrus_log_lines_total{level="info"'), 0);
  m.close();
});

test('requests and monitor tasks: counts, error codes, latency histogram', async (t) => {
  const m = metricsFor(0, 50);
  const started = performance.now();
  m.requests.requestDone('append', started, null);
  m.requests.requestDone('append', started, 'DISK_FULL');
  const failing = m.timed({
    name: 'topics',
    run: async () => {
      throw new Error('x');
    },
  });
  await t.throwsAsync(failing.run(), { message: 'x' });
  const text = await m.scrape();
  t.is(value(text, 'walrus_requests_total{op="append"'), 2);
  t.is(value(text, 'walrus_requests_total{op="read"'), 0);
  t.is(value(text, 'walrus_request_errors_total{op="append",code="DISK_FULL"'), 1);
  t.is(value(text, 'walrus_request_duration_seconds_count{op="append"'), 2);
  t.is(value(text, 'walrus_request_duration_seconds_bucket{op="append",le="+Inf"'), 2);
  t.is(value(text, 'walrus_monitor_task_failures_total{task="topics"'), 1);
  t.is(value(text, 'walrus_monitor_task_duration_seconds_count{task="topics"'), 1);
  m.close();
});

test('the fast histogram exposes cumulative buckets and refuses unbounded label values', async (t) => {
  const registry = new Registry();
  const h = new FastHistogram('x_seconds', 'test', ['op'], [0.1, 1], 2, registry);
  const a = h.child('a');
  for (const v of [0.05, 0.1, 0.5, 2]) a.observe(v);
  h.child('b');
  const text = await registry.metrics();
  t.true(text.includes('x_seconds_bucket{op="a",le="0.1"} 2'));
  t.true(text.includes('x_seconds_bucket{op="a",le="1"} 3'));
  t.true(text.includes('x_seconds_bucket{op="a",le="+Inf"} 4'));
  t.true(text.includes('x_seconds_sum{op="a"} 2.65'));
  t.true(text.includes('x_seconds_count{op="b"} 0'));
  t.throws(() => h.child('c'), { message: /more than 2 label values/ });
  t.throws(() => new FastHistogram('y', 'test', [], [1, 1]), { message: /ascend/ });
  t.throws(() => h.child('a', 'extra'), { message: /1 label values expected, got 2/ });
});

test('the fast counter and a two-label histogram expose one series per label-value tuple', async (t) => {
  const registry = new Registry();
  const c = new FastCounter('y_total', 'test', ['method', 'status'], 3, registry);
  const h = new FastHistogram('z_seconds', 'test', ['method', 'route'], [1], 4, registry);
  c.child('POST', '201').inc();
  c.child('POST', '201').inc(2);
  t.is(c.child('POST', '201'), c.child('POST', '201'), 'a tuple has one child');
  c.child('GET', '200');
  h.child('POST', '/a').observe(0.5);
  const text = await registry.metrics();
  t.true(text.includes('# TYPE y_total counter'));
  t.true(text.includes('y_total{method="POST",status="201"} 3'));
  t.true(text.includes('y_total{method="GET",status="200"} 0'));
  t.true(text.includes('z_seconds_bucket{method="POST",route="/a",le="1"} 1'));
  c.child('PUT', '204');
  t.throws(() => c.child('DELETE', '204'), { message: /more than 3 label values/ });
});

test('every series a node serves is documented in docs/metrics.md', async (t) => {
  const m = new NodeMetrics(
    {
      nodeId: 1,
      nodeDir: fs.mkdtempSync(path.join(os.tmpdir(), 'walrus-metrics-')),
      raft: () => raft,
      aliveVoterCount: () => 3,
      storage: () => ({}),
      topics: () => null,
      connections: () => null,
      ready: () => false,
    },
    { topicSeriesCountMax: 50, processMetrics: false },
  );
  const families = [...(await m.scrape()).matchAll(/^# TYPE (\S+) /gm)].map((match) => match[1]!);
  const docs = fs.readFileSync(path.join(import.meta.dirname, '../../../../docs/metrics.md'), 'utf8');
  const missing = families.filter((f) => !docs.includes(`\`${f}\``));
  t.deepEqual(missing, []);
  t.true(families.length > 40);
  m.close();
});
