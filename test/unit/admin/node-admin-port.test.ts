/**
 * One real walrus-node with --admin-port: /ready turns 200, and a text PUT, a failing PUT and a
 * METRICS call show up where the hot-path hooks count them (requests by op and code, WAL fsync
 * and group-commit histograms, client-port bytes, log lines).
 */
import test from 'ava';
import { sendTextCommand } from '../../../node/client/index.js';
import { eventually } from '../../helpers/eventually.js';
import { freePort, withCluster } from '../../helpers/local-cluster.js';

function value(text: string, series: string): number {
  const line = text.split('\n').find((l) => l.startsWith(series));
  if (line === undefined) throw new Error(`no ${series} in\n${text.slice(0, 4000)}`);
  return Number(line.slice(line.lastIndexOf(' ') + 1));
}

test('a node with --admin-port serves /ready and counts what its hot paths do', async (t) => {
  const adminPort = await freePort();
  await withCluster(t, { nodeCount: 1, extraArgs: ['--admin-port', String(adminPort)] }, async (cluster) => {
    const base = `http://127.0.0.1:${adminPort}`;
    await eventually('ready', async () => ((await fetch(`${base}/ready`)).status === 200 ? true : undefined));
    const addr = cluster.clientAddrs[0]!;
    t.is(await sendTextCommand(addr, 'REGISTER am'), 'OK');
    t.is(await sendTextCommand(addr, 'PUT am hello'), 'OK');
    t.regex(await sendTextCommand(addr, 'PUT am-missing x'), /^ERR TOPIC_NOT_FOUND/);
    const text = await (await fetch(`${base}/metrics`)).text();
    t.is(value(text, 'walrus_requests_total{op="append"'), 2);
    t.is(value(text, 'walrus_request_errors_total{op="append",code="TOPIC_NOT_FOUND"'), 1);
    t.is(value(text, 'walrus_requests_total{op="createTopic"'), 1);
    t.true(value(text, 'walrus_wal_fsync_duration_seconds_count{') >= 1);
    t.true(value(text, 'walrus_wal_group_commit_appends_count{') >= 1);
    t.true(value(text, 'walrus_wal_group_commit_appends_sum{') >= 1);
    t.true(value(text, 'walrus_network_received_bytes_total{port="client"') > 0);
    t.true(value(text, 'walrus_network_sent_bytes_total{port="client"') > 0);
    t.true(value(text, 'walrus_network_received_bytes_total{port="admin"') > 0);
    t.true(value(text, 'walrus_log_lines_total{level="info"') > 0);
    t.is(value(text, 'walrus_topics{'), 1);
    t.is(value(text, 'walrus_topic_end_offset{topic="am"'), 1);
    t.is(value(text, 'walrus_node_ready{'), 1);
    t.true(value(text, 'walrus_node_process_resident_memory_bytes{') > 0);
  });
});
