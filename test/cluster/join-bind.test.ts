/**
 * Issue 11 §4: a node binds its ports before it asks to join, so a node that cannot start does
 * not leave a member behind. Its client port is taken (EADDRINUSE): the joining node exits
 * non-zero and the cluster's membership is unchanged; once the port is free, the same node joins.
 * Before, the node joined first (it was added as a learner) and only then failed to bind, and it
 * stayed a member until removed by hand.
 */
import { spawn } from 'node:child_process';
import net from 'node:net';
import test from 'ava';
import { eventually } from '../helpers/eventually.js';
import { freePort, nodeBin, startLocalCluster, waitForPort } from '../helpers/local-cluster.js';
import { waitForServing } from '../../infra/local/launcher.js';
import { nodeMetrics } from '../helpers/node-text.js';

/** Bound of a node process that is expected to exit by itself. */
const exitTimeoutMs = 60_000;

function occupy(port: number): Promise<net.Server> {
  return new Promise((resolve, reject) => {
    const server = net.createServer((socket) => socket.destroy());
    server.once('error', reject);
    server.listen(port, '127.0.0.1', () => resolve(server));
  });
}

test('a joining node whose client port is taken exits non-zero and leaves the membership unchanged', async (t) => {
  const cluster = await startLocalCluster({ nodeCount: 1 });
  const clientPort = await freePort();
  const raftPort = await freePort();
  const blocker = await occupy(clientPort);
  const args = [
    '--node-id',
    '2',
    '--data-dir',
    cluster.dataDir,
    '--raft-port',
    String(raftPort),
    '--client-port',
    String(clientPort),
    '--join',
    cluster.nodes[0]!.raftAddr,
  ];
  const children: ReturnType<typeof spawn>[] = [];
  t.teardown(async () => {
    for (const child of children)
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    blocker.close();
    await cluster.destroy();
  });
  const before = await eventually('node 1 leads', async () => {
    const m = await nodeMetrics(cluster.clientAddrs[0]!);
    return m?.current_leader === 1 ? m : undefined;
  });

  const child = spawn(process.execPath, [nodeBin, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  children.push(child);
  let output = '';
  child.stdout.on('data', (chunk: Buffer) => {
    output += chunk.toString('utf8');
  });
  child.stderr.on('data', (chunk: Buffer) => {
    output += chunk.toString('utf8');
  });
  const timer = setTimeout(() => child.kill('SIGKILL'), exitTimeoutMs);
  const code = await new Promise<number | null>((resolve) => child.once('exit', (c) => resolve(c)));
  clearTimeout(timer);
  t.not(code, 0, output.slice(-2000));
  t.not(code, null, 'it exited by itself');
  t.regex(output, /EADDRINUSE/);
  t.notRegex(output, /Joined cluster/, 'it never asked to join');

  const after = await nodeMetrics(cluster.clientAddrs[0]!);
  t.deepEqual(after?.membership_config.nodes, before.membership_config.nodes);
  t.deepEqual(after?.membership_config.voters, [1]);
  t.deepEqual(after?.membership_config.learners, []);

  // The port is free again: the same node starts and joins.
  await new Promise<void>((resolve) => blocker.close(() => resolve()));
  const again = spawn(process.execPath, [nodeBin, ...args], { stdio: 'ignore' });
  children.push(again);
  await waitForPort(clientPort, 30_000, () => again.exitCode === null);
  await waitForServing(`127.0.0.1:${clientPort}`, 30_000, () => again.exitCode === null);
  await eventually('node 2 a member', async () => {
    const m = await nodeMetrics(cluster.clientAddrs[0]!);
    return m?.membership_config.nodes.includes(2) ? true : undefined;
  });
  const stopped = new Promise((resolve) => again.once('exit', resolve));
  again.kill('SIGTERM');
  const stopTimer = setTimeout(() => again.kill('SIGKILL'), exitTimeoutMs);
  await stopped;
  clearTimeout(stopTimer);
  t.is(again.exitCode, 0, 'SIGTERM stops it cleanly');
});
