/**
 * The monitoring stack end to end, with the real parts: Debian's `promtool` checks and unit-tests
 * infra/prometheus/alerts.yml; a real Prometheus (own temp dir, free port, 1 s scrape and rule
 * evaluation, bounded by `timeout`, stopped by PID) scrapes 3 real nodes' admin ports and the
 * gateway; every panel query of infra/grafana/walrus.json and every alert expression is evaluated
 * through Prometheus's HTTP API and must return data; a node killed with SIGKILL makes the
 * node-down expression and the Raft and replica lag expressions (warning and critical) return it.
 */
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import test from 'ava';
import { WalrusClient } from '../../node/client/index.js';
import { eventually } from '../helpers/eventually.js';
import { GatewayProcess } from '../helpers/gateway-process.js';
import { LocalCluster, freePort, repoRoot, tempDir, waitForPort } from '../helpers/local-cluster.js';

const alertsFile = path.join(repoRoot, 'infra/prometheus/alerts.yml');
const dashboardFile = path.join(repoRoot, 'infra/grafana/walrus.json');
/** What the dashboard's `$__rate_interval` stands for here: 30 scrapes at 1 s. */
const rateInterval = '30s';
/** Prometheus is killed by `timeout` after this long even if this process dies first. */
const prometheusLifetimeS = 900;
const waitMs = 90_000;

interface Rule {
  readonly alert: string;
  readonly expr: string;
}

let dir: string;
let cluster: LocalCluster;
let gateway: GatewayProcess;
let prometheus: ChildProcess | null = null;
let prometheusLog = '';
let promUrl: string;
let adminPorts: number[];
let client: WalrusClient;

function need(binary: string): string {
  const found = spawnSync('sh', ['-c', `command -v ${binary}`], { encoding: 'utf8' }).stdout.trim();
  if (found === '') throw new Error(`${binary} is not installed: apt-get install prometheus (.ci/run does)`);
  return found;
}

/** The alert rules of alerts.yml (a YAML subset we write ourselves: `- alert:` then `expr:`, maybe a block). */
function alertRules(): Rule[] {
  const lines = fs.readFileSync(alertsFile, 'utf8').split('\n');
  const rules: Rule[] = [];
  for (let i = 0; i < lines.length; i++) {
    const name = /^\s*- alert: (\S+)/.exec(lines[i]!)?.[1];
    if (name === undefined) continue;
    const exprLine = lines.slice(i + 1).find((l) => /^\s*expr:/.test(l))!;
    let expr = exprLine.replace(/^\s*expr:\s*/, '');
    if (expr === '|') {
      const start = lines.indexOf(exprLine) + 1;
      const indent = /^\s*/.exec(lines[start]!)![0].length;
      const block: string[] = [];
      for (
        let j = start;
        j < lines.length && /^\s*/.exec(lines[j]!)![0].length >= indent && lines[j]!.trim() !== '';
        j++
      )
        block.push(lines[j]!.trim());
      expr = block.join(' ');
    }
    rules.push({ alert: name, expr });
  }
  return rules;
}

interface Panel {
  readonly id: number;
  readonly type: string;
  readonly title: string;
  readonly gridPos?: { h: number; w: number; x: number; y: number };
  readonly targets?: { refId: string; expr: string }[];
}

function dashboardPanels(): Panel[] {
  return (JSON.parse(fs.readFileSync(dashboardFile, 'utf8')) as { panels: Panel[] }).panels;
}

/** Metric names an expression reads (PromQL functions and keywords are not followed by `{` or `[` alone). */
function seriesNames(expr: string): string[] {
  return [...new Set(expr.match(/\b(walrus_[a-z0-9_]+|up)\b/g) ?? [])];
}

interface PromResult {
  metric: Record<string, string>;
  value: [number, string];
}

async function query(promql: string): Promise<PromResult[]> {
  const res = await fetch(`${promUrl}/api/v1/query?query=${encodeURIComponent(promql)}`);
  const body = (await res.json()) as { status: string; error?: string; data?: { result: PromResult[] } };
  if (body.status !== 'success') throw new Error(`query failed: ${promql}: ${body.error}`);
  return body.data!.result;
}

/** Waits until `promql` returns at least one series (satisfying `accept`), and returns them. */
function someData(
  what: string,
  promql: string,
  accept: (r: PromResult[]) => boolean = () => true,
): Promise<PromResult[]> {
  return eventually(
    `${what}: ${promql}`,
    async () => {
      const r = await query(promql);
      return r.length > 0 && accept(r) ? r : undefined;
    },
    waitMs,
  );
}

async function startPrometheus(gatewayPort: number): Promise<void> {
  const bin = need('prometheus');
  const port = await freePort();
  const config = path.join(dir, 'prometheus.yml');
  fs.writeFileSync(
    config,
    [
      'global:',
      '  scrape_interval: 1s',
      '  scrape_timeout: 1s',
      '  evaluation_interval: 1s',
      'rule_files:',
      `  - ${JSON.stringify(alertsFile)}`,
      'scrape_configs:',
      '  - job_name: walrus-node',
      '    static_configs:',
      `      - targets: [${adminPorts.map((p) => `"127.0.0.1:${p}"`).join(', ')}]`,
      '  - job_name: walrus-gateway',
      '    static_configs:',
      `      - targets: ["127.0.0.1:${gatewayPort}"]`,
      '',
    ].join('\n'),
  );
  prometheus = spawn(
    'timeout',
    [
      '--kill-after=5',
      String(prometheusLifetimeS),
      bin,
      `--config.file=${config}`,
      `--storage.tsdb.path=${path.join(dir, 'tsdb')}`,
      `--web.listen-address=127.0.0.1:${port}`,
      '--storage.tsdb.retention.time=1h',
      '--log.level=warn',
    ],
    { stdio: ['ignore', 'pipe', 'pipe'] },
  );
  const keep = (chunk: Buffer): void => {
    prometheusLog = (prometheusLog + chunk.toString('utf8')).slice(-16_000);
  };
  prometheus.stdout!.on('data', keep);
  prometheus.stderr!.on('data', keep);
  promUrl = `http://127.0.0.1:${port}`;
  await waitForPort(port, 30_000, () => prometheus?.exitCode === null);
  await eventually('Prometheus ready', async () =>
    (await fetch(`${promUrl}/-/ready`)).ok ? true : undefined,
  );
}

async function stopPrometheus(): Promise<void> {
  const child = prometheus;
  if (child === null || child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise((resolve) => child.once('exit', resolve));
  child.kill('SIGTERM');
  const timer = setTimeout(() => child.kill('SIGKILL'), 10_000);
  await exited;
  clearTimeout(timer);
}

test.before(async () => {
  dir = tempDir('prometheus');
  adminPorts = [await freePort(), await freePort(), await freePort()];
  cluster = await LocalCluster.start({
    nodeCount: 3,
    dataDir: path.join(dir, 'data'),
    adminPorts,
    env: {
      WALRUS_LOG_LEVEL: 'info',
      // One segment holds the 1,100 records the lag check appends (a rollover would place the next
      // segment on the live nodes only); the monitor often enough to show its rounds.
      WALRUS_MAX_SEGMENT_ENTRIES: '5000',
      WALRUS_MONITOR_CHECK_MS: '200',
      // The killed node's replicas stay its own while the lag is measured.
      WALRUS_REPAIR_AFTER_MS: '600000',
    },
  });
  gateway = await GatewayProcess.start({ nodes: cluster.clientAddrs });
  client = new WalrusClient({ nodes: cluster.clientAddrs, requestTimeoutMs: 20_000 });
  await eventually('a 3-voter cluster', async () => {
    const m = (await client.metrics()) as {
      current_leader?: number;
      membership_config?: { voters?: number[] };
    };
    return m.current_leader && m.membership_config?.voters?.length === 3 ? true : undefined;
  });
  await startPrometheus(gateway.port);
});

test.after.always(async (t) => {
  if (t.passed === false) {
    for (const n of cluster?.nodes ?? []) t.log(`node ${n.spec.nodeId}: ${n.logTail.slice(-1500)}`);
    t.log(`prometheus: ${prometheusLog.slice(-3000)}`);
  }
  await client?.close();
  await stopPrometheus();
  await gateway?.stop();
  await cluster?.stop();
  if (dir) fs.rmSync(dir, { recursive: true, force: true });
});

test.serial('promtool: the rules and the example config check, and the rule unit tests pass', (t) => {
  const promtool = need('promtool');
  const cwd = path.join(repoRoot, 'infra/prometheus');
  for (const args of [
    ['check', 'rules', 'alerts.yml'],
    ['test', 'rules', 'alerts.test.yml'],
    ['check', 'config', 'prometheus.yml'],
  ]) {
    const run = spawnSync(promtool, args, { cwd, encoding: 'utf8', timeout: 60_000 });
    t.is(run.status, 0, `promtool ${args.join(' ')}:\n${run.stdout}\n${run.stderr}`);
  }
  // The unit tests cover every alert of alerts.yml.
  const tested = fs.readFileSync(path.join(cwd, 'alerts.test.yml'), 'utf8');
  for (const rule of alertRules())
    t.true(tested.includes(`alertname: ${rule.alert}`), `${rule.alert} untested`);
});

test.serial('every dashboard panel query and every alert expression returns data', async (t) => {
  // Traffic that gives every series a value: topics across rollovers, appends, reads, a lagging
  // consumer, a client error, a text-protocol PUT, and gateway requests.
  for (const name of ['prom-a', 'prom-b']) {
    await eventually(`create ${name}`, () => client.createTopic(name));
    for (let i = 0; i < 3; i++)
      await client.append(
        name,
        Array.from({ length: 40 }, (_, j) => ({ value: Buffer.from(`${name}-${i}-${j}`) })),
      );
    await client.read(name, 0);
    await client.consumerReadNext(name, 'dash', { recordCountMax: 10 });
  }
  await t.throwsAsync(client.append('prom-missing', [{ value: Buffer.from('x') }]), {
    message: /prom-missing/,
  });
  t.true((await fetch(`${gateway.url}/v1/topics`)).ok);

  const panels = dashboardPanels().filter((p) => p.type !== 'row');
  t.true(panels.length >= 20, `${panels.length} panels`);
  const ids = new Set<number>();
  for (const panel of panels) {
    t.false(ids.has(panel.id), `panel id ${panel.id} twice`);
    ids.add(panel.id);
    t.truthy(panel.gridPos, `${panel.title}: no gridPos`);
    t.true((panel.targets ?? []).length > 0, `${panel.title}: no query`);
    for (const target of panel.targets ?? []) {
      const promql = target.expr.replaceAll('$__rate_interval', rateInterval);
      await someData(`panel '${panel.title}' ${target.refId}`, promql);
    }
  }
  const rules = alertRules();
  t.true(rules.length >= 10, `${rules.length} rules`);
  for (const rule of rules) {
    await query(rule.expr); // evaluates without error (no data unless it fires)
    for (const name of seriesNames(rule.expr))
      await someData(
        `${rule.alert} reads ${name}`,
        `count(${name === 'up' ? 'up{job="walrus-node"}' : name})`,
      );
  }
  // The rules are loaded and evaluated by this Prometheus.
  const groups = (await (await fetch(`${promUrl}/api/v1/rules`)).json()) as {
    data: { groups: { rules: { name: string; health: string }[] }[] };
  };
  const loaded = groups.data.groups.flatMap((g) => g.rules);
  t.is(loaded.length, rules.length);
  await eventually(
    'every rule evaluated ok',
    async () => {
      const g = (await (await fetch(`${promUrl}/api/v1/rules`)).json()) as typeof groups;
      const bad = g.data.groups.flatMap((x) => x.rules).filter((r) => r.health !== 'ok');
      return bad.length === 0 ? true : undefined;
    },
    waitMs,
  );
});

test.serial('a node killed with SIGKILL fires the node-down and lag alert expressions', async (t) => {
  const rules = new Map(alertRules().map((r) => [r.alert, r.expr]));
  const raftLeader = Number(
    (await someData('the Raft leader', 'walrus_raft_is_leader == 1'))[0]!.metric['node_id'],
  );
  const topic = (
    await eventually('create prom-lag', () => client.createTopic('prom-lag', { replicationFactor: 3 }))
  ).topic;
  const victim = [1, 2, 3].find((id) => id !== raftLeader && id !== topic.leaderNodeId)!;
  const victimInstance = `127.0.0.1:${adminPorts[victim - 1]}`;
  await cluster.kill(victim - 1, 'SIGKILL');

  // Node down: Prometheus's own `up`, and the rule's pending alert.
  await someData('node down', rules.get('WalrusNodeDown')!, (r) =>
    r.some((s) => s.metric['instance'] === victimInstance),
  );
  await someData(
    'WalrusNodeDown pending or firing',
    `ALERTS{alertname="WalrusNodeDown",instance="${victimInstance}"}`,
  );

  // Segment replica lag: more than 1000 records appended while the victim holds a copy.
  for (let i = 0; i < 11; i++)
    await client.append(
      'prom-lag',
      Array.from({ length: 100 }, (_, j) => ({ value: Buffer.from(`lag-${i}-${j}`) })),
    );
  for (const alert of ['WalrusReplicaLagWarning', 'WalrusReplicaLagCritical'])
    await someData(alert, rules.get(alert)!);
  const lagging = await someData(
    'replica lag by follower',
    `walrus_replica_lag_records{follower="${victim}"} > 1000`,
  );
  t.is(lagging[0]!.metric['topic'], 'prom-lag');

  // Raft lag: more than 1000 metadata entries the victim does not get (consumer commits are Raft entries).
  const commits: Promise<unknown>[] = [];
  for (let offset = 1; offset <= 1050; offset++) {
    commits.push(client.consumerCommit('prom-lag', 'lag-maker', offset));
    if (commits.length === 16) await Promise.all(commits.splice(0));
  }
  await Promise.all(commits);
  for (const alert of ['WalrusRaftFollowerLagWarning', 'WalrusRaftFollowerLagCritical']) {
    const r = await someData(alert, rules.get(alert)!);
    t.true(
      r.some((s) => s.metric['follower'] === String(victim)),
      JSON.stringify(r),
    );
  }
  // The surviving nodes still have a leader and a quorum: the no-leader alert stays silent.
  t.deepEqual(await query(rules.get('WalrusNoRaftLeader')!), []);
});
