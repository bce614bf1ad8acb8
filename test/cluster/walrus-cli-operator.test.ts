/**
 * walrus-cli's operator commands, the real binary against a real 3-node cluster: `status`
 * (members, roles, leader, lag), `topics`, `tail` (records as they are appended), `transfer-leader`
 * (leadership moves to the named voter and status says so), `remove-node` and `help`, one-off and
 * in the shell. Exit codes: 0 ok, 1 an error answer, 2 bad usage.
 */
import test from 'ava';
import { WalrusClient } from '../../node/client/walrus-client.js';
import { eventually } from '../helpers/eventually.js';
import { runCli } from '../helpers/cli.js';
import { type TestCluster, startLocalCluster } from '../helpers/local-cluster.js';

const cli = runCli;

interface Status {
  leader: number | null;
  term: number | null;
  members: { nodeId: number; role: string; raftAddr: string; clientAddr: string; lag: number | null }[];
}

let cluster: TestCluster;
let addr: string;

test.before(async () => {
  cluster = await startLocalCluster({ nodeCount: 3 });
  addr = cluster.clientAddrs[1]!; // a follower or the leader: any node will do
});
test.after.always(async (t) => {
  if (t.passed === false)
    for (const n of cluster?.nodes ?? []) t.log(`node ${n.spec.nodeId}: ${n.logTail.slice(-2000)}`);
  await cluster?.destroy();
});

async function status(): Promise<Status> {
  const run = await cli(['--addr', addr, '--json', 'status']);
  if (run.code !== 0) throw new Error(`status exited ${run.code}: ${run.stderr}`);
  return JSON.parse(run.stdout) as Status;
}

test.serial('status lists the members with their roles, the leader and lag', async (t) => {
  const s = await eventually('3 voters, caught up', async () => {
    const now = await status();
    // A joiner is a learner until promoted: wait for three voters, not just three members.
    return now.members.length === 3 && now.members.every((m) => m.lag === 0 && m.role !== 'learner')
      ? now
      : undefined;
  });
  t.true(s.leader !== null && [1, 2, 3].includes(s.leader));
  t.deepEqual(s.members.map((m) => m.role).sort(), ['follower', 'follower', 'leader']);
  t.is(s.members.find((m) => m.role === 'leader')?.nodeId, s.leader!);
  for (const [i, m] of s.members.entries()) t.is(m.clientAddr, cluster.nodes[i]!.clientAddr);
  const text = await cli(['--addr', addr, 'status']);
  t.is(text.code, 0);
  t.regex(text.stdout, new RegExp(`^leader: node ${s.leader}  term: \\d+`));
  t.regex(text.stdout, /NODE\s+ROLE\s+RAFT\s+CLIENT\s+LAG/);
  t.is(text.stdout.match(/ (leader|follower) /g)?.length, 3);
});

test.serial(
  'topics shows offsets, segments, leaders and replicas; tail prints records as they arrive',
  async (t) => {
    const client = new WalrusClient({ nodes: cluster.clientAddrs });
    t.teardown(() => client.close());
    await client.createTopic('ops-logs', { retentionMs: 3_600_000 });
    await client.append('ops-logs', [{ value: Buffer.from('first') }, { value: Buffer.from('second') }]);

    const topics = await cli(['--addr', addr, 'topics']);
    t.is(topics.code, 0, topics.stderr);
    t.regex(
      topics.stdout,
      /TOPIC\s+OFFSETS\s+SEGMENTS\s+LEADER\s+REPLICAS\s+RF\s+UNDER-REPLICATED\s+RETENTION/,
    );
    t.regex(topics.stdout, /ops-logs\s+0-2\s+1\s+[123]\s+[123],[123],[123]\s+3\s+0\s+3600000ms/);
    const json = JSON.parse((await cli(['--addr', addr, '--json', 'topics'])).stdout) as {
      topics: { name: string; endOffset: number }[];
    };
    t.is(json.topics.find((x) => x.name === 'ops-logs')?.endOffset, 2);

    // From the start: the two records there, then one appended while it waits.
    let appended = false;
    const tail = cli(['--addr', addr, 'tail', 'ops-logs', '--from', 'start', '--count', '3'], '', (out) => {
      if (!appended && out.includes('1\tsecond')) {
        appended = true;
        void client.append('ops-logs', [{ value: Buffer.from('third, live') }]);
      }
    });
    const done = await tail;
    t.is(done.code, 0, done.stderr);
    t.is(done.stdout, '0\tfirst\n1\tsecond\n2\tthird, live\n');
    const missing = await cli(['--addr', addr, 'tail', 'no-such-topic', '--count', '1']);
    t.is(missing.code, 1);
    t.regex(missing.stderr, /^ERR TOPIC_NOT_FOUND/);
  },
);

test.serial('transfer-leader moves the Raft leadership to the named voter', async (t) => {
  const before = await status();
  const target = before.members.find((m) => m.role !== 'leader')!.nodeId;
  const run = await cli(['--addr', addr, 'transfer-leader', String(target)]);
  t.is(run.code, 0, run.stderr);
  t.is(run.stdout, `OK node ${target} is the Raft leader\n`);
  const after = await eventually('status shows the new leader', async () => {
    const s = await status();
    return s.leader === target ? s : undefined;
  });
  t.true((after.term ?? 0) > (before.term ?? 0), 'a new term');
  const notVoter = await cli(['--addr', addr, 'transfer-leader', '9']);
  t.is(notVoter.code, 1);
  t.regex(notVoter.stderr, /^ERR BAD_REQUEST node 9 is not a voter/);
  t.is((await cli(['--addr', addr, 'transfer-leader', 'x'])).code, 2);
});

/** The member the remove-node test removed: it answers no client afterwards. */
let removedNodeId = 0;

test.serial('remove-node removes a member; status then lists two', async (t) => {
  const s = await status();
  const leaving = s.members.find((m) => m.role !== 'leader')!.nodeId;
  removedNodeId = leaving;
  const run = await cli([
    '--addr',
    cluster.nodes.find((n) => n.spec.nodeId !== leaving)!.clientAddr,
    'remove-node',
    String(leaving),
  ]);
  t.is(run.code, 0, run.stderr);
  t.is(run.stdout, `OK node ${leaving} removed\n`);
  const other = cluster.nodes.find((n) => n.spec.nodeId !== leaving)!.clientAddr;
  const after = await eventually('two members', async () => {
    const r = await cli(['--addr', other, '--json', 'status']);
    const now = JSON.parse(r.stdout) as Status;
    return now.members.length === 2 ? now : undefined;
  });
  t.false(after.members.some((m) => m.nodeId === leaving));
  // The removed node, still running, refuses clients at once rather than serve stale metadata.
  const removed = cluster.nodes.find((n) => n.spec.nodeId === leaving)!.clientAddr;
  const refused = await eventually('the removed node refuses', async () => {
    const r = await cli(['--addr', removed, 'status']);
    return /removed from the cluster/.test(r.stdout + r.stderr) ? r : undefined;
  });
  t.not(refused.code, 0);
});

test.serial('help, one-off and in the shell, names every command', async (t) => {
  const help = await cli(['help']);
  t.is(help.code, 0);
  for (const command of ['status', 'topics', 'tail', 'transfer-leader', 'remove-node', 'help'])
    t.regex(help.stdout, new RegExp(`\\n  ${command}\\b`), command);
  const other = cluster.nodes.find((n) => n.spec.nodeId !== removedNodeId)!.clientAddr;
  const shell = await cli(['--addr', other], 'help\nstatus\nexit\n');
  t.is(shell.code, 0);
  t.regex(shell.stdout, /transfer-leader <id>/);
  t.regex(shell.stdout, /NODE\s+ROLE/);
  t.is((await cli(['--addr', other, 'status', 'extra'])).code, 2);
});
