/**
 * One log shape on real processes (issue 11): every line a 3-node cluster and two gateways write is
 * a JSON object with `time` (ISO), `level` (a label), `msg`, `component` and, on nodes, `nodeId`;
 * the gateway's access log (off by default, on with --access-log) carries method, path, status,
 * duration, bytes and the request id; a killed peer's failed reconnects are one warn line per
 * interval, not one a second.
 */
import test from 'ava';
import { eventually } from '../helpers/eventually.js';
import { GatewayProcess } from '../helpers/gateway-process.js';
import { startLocalCluster, type TestCluster } from '../helpers/local-cluster.js';

const levels = new Set(['trace', 'debug', 'info', 'warn', 'error', 'fatal']);
const isoTime = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$/;

interface Line {
  readonly time: string;
  readonly level: string;
  readonly msg: string;
  readonly component: string;
  readonly nodeId?: number;
  readonly [field: string]: unknown;
}

/** The complete lines of a log tail (a full tail may start mid-line: that first piece is dropped). */
function linesOf(tail: string, tailIsFull: boolean): string[] {
  const lines = tail.split('\n').filter((l) => l.length > 0);
  return tailIsFull ? lines.slice(1) : lines;
}

function parseAll(t: import('ava').ExecutionContext, tail: string, who: string): Line[] {
  const out: Line[] = [];
  for (const text of linesOf(tail, tail.length >= 64 * 1024)) {
    let line: Line;
    try {
      line = JSON.parse(text) as Line;
    } catch {
      t.fail(`${who} wrote a line that is not JSON: ${text.slice(0, 200)}`);
      continue;
    }
    out.push(line);
  }
  return out;
}

function checkShape(t: import('ava').ExecutionContext, line: Line, component: string, nodeId?: number): void {
  const text = JSON.stringify(line).slice(0, 300);
  t.regex(line.time, isoTime, `time is ISO 8601: ${text}`);
  t.true(levels.has(line.level), `level is a label: ${text}`);
  t.is(typeof line.msg, 'string', `msg: ${text}`);
  t.is(line.component, component, `component: ${text}`);
  if (nodeId === undefined) t.false('nodeId' in line, `a gateway line has no nodeId: ${text}`);
  else t.is(line.nodeId, nodeId, `nodeId: ${text}`);
  t.false(
    'pid' in line || 'hostname' in line || 'name' in line || 'node_id' in line,
    `no other base fields: ${text}`,
  );
}

/** The keys of a JSON object's text at its top level, in order, repeats kept (JSON.parse drops them). */
function topLevelKeys(text: string): string[] {
  const keys: string[] = [];
  let depth = 0;
  for (let i = 0; i < text.length; i++) {
    const ch = text[i];
    if (ch === '"') {
      let j = i + 1;
      while (text[j] !== '"') j += text[j] === '\\' ? 2 : 1;
      if (depth === 1 && text[j + 1] === ':') keys.push(text.slice(i + 1, j));
      i = j;
    } else if (ch === '{' || ch === '[') depth++;
    else if (ch === '}' || ch === ']') depth--;
  }
  return keys;
}

let cluster: TestCluster;
let quiet: GatewayProcess;
let logged: GatewayProcess;

test.before(async () => {
  cluster = await startLocalCluster({ nodeCount: 3 });
  const env = { WALRUS_LOG_LEVEL: 'info' };
  quiet = await GatewayProcess.start({ nodes: cluster.clientAddrs, env });
  logged = await GatewayProcess.start({ nodes: cluster.clientAddrs, env, extraArgs: ['--access-log', 'on'] });
});

test.after.always(async (t) => {
  if (t.passed === false) {
    for (const n of cluster?.nodes ?? []) t.log(`node ${n.spec.nodeId}: ${n.logTail.slice(-2000)}`);
    t.log(`gateway: ${logged?.logTail.slice(-2000)}`);
  }
  await quiet?.stop();
  await logged?.stop();
  await cluster?.destroy();
});

test.serial(
  'nodes and gateways write one JSON shape; the access log is off by default and complete when on',
  async (t) => {
    await eventually('the cluster has a leader behind the gateway', async () => {
      const res = await fetch(`${logged.url}/v1/cluster`);
      const body = (await res.json()) as { metrics?: { current_leader?: number } };
      return res.ok && body.metrics?.current_leader ? true : undefined;
    });
    for (const gateway of [quiet, logged]) {
      const created = await fetch(`${gateway.url}/v1/topics`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', 'x-request-id': 'req-create-1' },
        body: '{"name":"shape"}',
      });
      t.true(created.ok);
      const missing = await fetch(`${gateway.url}/v1/topics/nope`, {
        headers: { 'x-request-id': 'req-missing-1' },
      });
      t.is(missing.status, 404);
      await missing.body?.cancel();
    }

    const requests = await eventually('the access log lines of both requests', async () => {
      const lines = parseAll(t, logged.logTail, 'the gateway').filter((l) => l.msg === 'http request');
      const ids = new Set(lines.map((l) => l['requestId']));
      return ids.has('req-create-1') && ids.has('req-missing-1') ? lines : undefined;
    });
    const create = requests.find((l) => l['requestId'] === 'req-create-1');
    const missing = requests.find((l) => l['requestId'] === 'req-missing-1');
    t.like(create, { method: 'POST', path: '/v1/topics', level: 'info', component: 'gateway' });
    t.true(create?.['status'] === 201 || create?.['status'] === 200);
    t.like(missing, { method: 'GET', path: '/v1/topics/nope', status: 404 });
    for (const line of [create, missing]) {
      t.true(typeof line?.['durationMs'] === 'number' && (line['durationMs'] as number) >= 0);
      t.true(typeof line?.['bytes'] === 'number' && (line['bytes'] as number) > 0, 'bytes sent');
    }
    const generated = await fetch(`${logged.url}/v1/health`);
    t.regex(
      generated.headers.get('x-request-id') ?? '',
      /^[0-9a-f-]{36}$/,
      'a request id is made when none is sent',
    );

    const quietLines = parseAll(t, quiet.logTail, 'the quiet gateway');
    t.true(
      quietLines.some((l) => l.msg === 'Gateway listening'),
      'the start-up line is a JSON event',
    );
    t.false(
      quietLines.some((l) => l.msg === 'http request'),
      'no access log by default',
    );
    for (const gateway of [quiet, logged])
      for (const line of parseAll(t, gateway.logTail, 'a gateway')) checkShape(t, line, 'gateway');
    for (const node of cluster.nodes) {
      const lines = parseAll(t, node.logTail, `node ${node.spec.nodeId}`);
      t.true(
        lines.some((l) => l.msg === 'Client listener bound'),
        'the seed operator lines are msg values',
      );
      for (const text of linesOf(node.logTail, node.logTail.length >= 64 * 1024)) {
        const keys = topLevelKeys(text);
        t.is(keys.length, new Set(keys).size, `no key twice in a line: ${text.slice(0, 300)}`);
      }
      for (const line of lines) checkShape(t, line, 'node', node.spec.nodeId);
    }
  },
);

test.serial(
  'a dead peer costs its peers one warn line per interval, not one per reconnect attempt',
  async (t) => {
    const dead = cluster.nodes[2]!;
    await cluster.kill(2);
    const failuresAbout = (index: number): Line[] =>
      parseAll(t, cluster.nodes[index]!.logTail, `node ${index + 1}`).filter(
        (l) => l.msg.startsWith('peer link attempt failed') && l['addr'] === dead.raftAddr,
      );
    await eventually('a survivor logs the failed link', async () =>
      failuresAbout(0).length + failuresAbout(1).length > 0 ? true : undefined,
    );
    // Attempts go on about once a second (the reconnect backoff's cap); give them five.
    const since = Date.now();
    await eventually('five seconds of reconnect attempts', async () =>
      Date.now() - since > 5_000 ? true : undefined,
    );
    for (const index of [0, 1]) {
      const lines = failuresAbout(index);
      t.true(lines.length <= 1, `node ${index + 1} logged ${lines.length} failure lines about the dead peer`);
      for (const line of lines) t.is(line.level, 'warn');
    }
  },
);
