/**
 * Issue 12, item 8: removeNode (0x38), localOffsetForTimestamp (0x13) and handOff (0x39) are
 * refused FORBIDDEN on the unauthenticated client port of a real node; `walrus-cli remove-node`
 * still works, through the Raft leader's peer port with the cluster secret (and is refused there
 * without it).
 */
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import test from 'ava';
import { WalrusClient } from '../../../node/client/walrus-client.js';
import { ErrorCode, WalrusError } from '../../../node/protocol/error-codes.js';
import type { Request } from '../../../node/protocol/messages.js';
import { cliBin } from '../../../infra/local/launcher.js';
import { eventually } from '../../helpers/eventually.js';
import { startLocalCluster } from '../../helpers/local-cluster.js';

const run = promisify(execFile);
const secret = 'peer-only-ops-secret';
/** Bound of one CLI run. */
const cliTimeoutMs = 60_000;

async function cli(args: string[], env: Record<string, string> = {}) {
  try {
    const { stdout, stderr } = await run(process.execPath, [cliBin, ...args], {
      timeout: cliTimeoutMs,
      env: { ...process.env, WALRUS_CLUSTER_SECRET: '', ...env },
    });
    return { code: 0, stdout, stderr };
  } catch (error) {
    const e = error as { code?: number; stdout?: string; stderr?: string };
    return { code: e.code ?? -1, stdout: e.stdout ?? '', stderr: e.stderr ?? '' };
  }
}

test('peer-only ops are FORBIDDEN on the client port; walrus-cli remove-node works through the peer port with the secret', async (t) => {
  const cluster = await startLocalCluster({
    nodeCount: 3,
    env: { WALRUS_LOG_LEVEL: 'warn', WALRUS_CLUSTER_SECRET: secret },
  });
  const client = new WalrusClient({ nodes: cluster.clientAddrs });
  t.teardown(async () => {
    await client.close();
    await cluster.destroy();
  });
  await client.createTopic('po');
  const refused: Request[] = [
    { op: 'removeNode', nodeId: 3 },
    { op: 'localOffsetForTimestamp', topic: 'po', timestampMs: 0 },
    { op: 'handOff', nodeId: 3 },
  ];
  for (const request of refused) {
    const error = await t.throwsAsync(client.request(request as Extract<Request, { op: 'removeNode' }>));
    t.true(error instanceof WalrusError);
    t.is((error as WalrusError).code, ErrorCode.FORBIDDEN, `${request.op}: ${error?.message}`);
    t.regex(error!.message, /peer port/);
  }
  t.is((await client.describeTopic('po')).name, 'po', 'nothing was removed or handed off');

  // Node 3 must be a voter before it can be removed.
  await eventually('node 3 a voter', async () => {
    const m = (await client.metrics()) as { membership_config: { voters: number[] } };
    return m.membership_config.voters.includes(3) ? true : undefined;
  });
  const addr = cluster.nodes[0]!.clientAddr;
  const noSecret = await cli(['--addr', addr, '--timeout-ms', '5000', 'remove-node', '3']);
  t.is(noSecret.code, 1, noSecret.stdout + noSecret.stderr);
  t.regex(noSecret.stderr, /UNAUTHENTICATED/);
  const removed = await cli([
    '--addr',
    addr,
    '--timeout-ms',
    '30000',
    '--cluster-secret',
    secret,
    'remove-node',
    '3',
  ]);
  t.is(removed.code, 0, removed.stdout + removed.stderr);
  t.regex(removed.stdout, /OK node 3 removed/);
  const again = await cli(['--addr', addr, '--timeout-ms', '30000', 'remove-node', '3'], {
    WALRUS_CLUSTER_SECRET: secret,
  });
  t.is(again.code, 0, again.stdout + again.stderr);
  t.regex(again.stdout, /OK node 3 was not a member/);
});
