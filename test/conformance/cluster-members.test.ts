/**
 * GET /v1/cluster shows every member as it answers for itself (gateway/member-metrics.ts), through
 * a real walrus-gateway process over 3 real nodes: all reachable with their disks and a lag from
 * the Raft leader; then a follower is SIGKILLed and the same request, answered by a survivor,
 * shows that member unreachable with the reason while the others still answer.
 */
import test from 'ava';
import { eventually } from '../helpers/eventually.js';
import { GatewayProcess } from '../helpers/gateway-process.js';
import { startLocalCluster, type TestCluster } from '../helpers/local-cluster.js';
import { checkResponse } from '../helpers/spec-check.js';

interface Member {
  nodeId: number;
  role: string;
  reachable: boolean;
  error: string | null;
  state: string | null;
  lagEntries: number | null;
  diskFreeBytes: number | null;
  diskFull: boolean | null;
}

let cluster: TestCluster;
let gateway: GatewayProcess;

test.before(async () => {
  cluster = await startLocalCluster({ nodeCount: 3 });
  gateway = await GatewayProcess.start({ nodes: cluster.clientAddrs });
});

test.after.always(async () => {
  await gateway?.stop();
  await cluster?.destroy();
});

async function members(): Promise<Member[]> {
  const res = await fetch(`${gateway.url}/v1/cluster`);
  if (res.status !== 200) throw new Error(`GET /v1/cluster: ${res.status} ${await res.text()}`);
  return ((await res.json()) as { members: Member[] }).members;
}

test('every member answers for itself; a killed one shows unreachable', async (t) => {
  t.deepEqual(await checkResponse('getCluster', await fetch(`${gateway.url}/v1/cluster`)), []);
  // Three voters, one leader, every one reachable with its disk and a lag the leader reports.
  const all = await eventually('3 reachable members with a leader and their lags', async () => {
    const list = await members();
    const whole =
      list.length === 3 &&
      list.every((m) => m.reachable && m.lagEntries !== null && m.diskFreeBytes !== null) &&
      list.filter((m) => m.role === 'leader').length === 1;
    return whole ? list : undefined;
  });
  t.deepEqual(
    all.map((m) => m.nodeId),
    [1, 2, 3],
  );
  for (const m of all) {
    t.true(m.diskFreeBytes! > 0);
    t.is(m.diskFull, false);
    t.is(m.error, null);
  }
  t.is(all.find((m) => m.role === 'leader')!.state, 'Leader');

  const victim = all.find((m) => m.role !== 'leader')!.nodeId;
  await cluster.kill(victim - 1);
  const after = await eventually(`node ${victim} unreachable`, async () => {
    const list = await members().catch(() => undefined);
    return list?.find((m) => m.nodeId === victim)?.reachable === false ? list : undefined;
  });
  const dead = after.find((m) => m.nodeId === victim)!;
  t.is(dead.state, null);
  t.is(dead.diskFreeBytes, null);
  t.truthy(dead.error);
  t.true(after.filter((m) => m.nodeId !== victim).every((m) => m.reachable));
  t.deepEqual(await checkResponse('getCluster', await fetch(`${gateway.url}/v1/cluster`)), []);
});
