/**
 * `npm start -- --base-port B --nodes 2 --gateway-port G` as a user runs it: the nodes listen on
 * the client ports B, B+1 (raft B-3090, B-3089) and form one cluster, the gateway answers on G,
 * and Ctrl-C (SIGINT to the process group this test started) stops every process it started.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import test from 'ava';
import { WalrusClient } from '../../node/client/walrus-client.js';
import { eventually } from '../helpers/eventually.js';
import { freePort, repoRoot, tempDir } from '../helpers/local-cluster.js';

const raftPortOffset = 3090;
const basePortAttemptCountMax = 50;

async function isFree(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const server = net.createServer();
    server.once('error', () => resolve(false));
    server.listen(port, '127.0.0.1', () => server.close(() => resolve(true)));
  });
}

async function listening(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = net.connect({ host: '127.0.0.1', port });
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
  });
}

/** A base port whose two client ports and two raft ports are all free now. */
async function freeBasePort(): Promise<number> {
  for (let attempt = 0; attempt < basePortAttemptCountMax; attempt++) {
    const base = (await freePort()) + raftPortOffset;
    const ports = [base, base + 1, base - raftPortOffset, base - raftPortOffset + 1];
    if (base + 1 <= 65_535 && (await Promise.all(ports.map(isFree))).every(Boolean)) return base;
  }
  throw new Error('no free base port found');
}

test('npm start honours --base-port, --nodes and --gateway-port, and Ctrl-C stops it all', async (t) => {
  const base = await freeBasePort();
  const gatewayPort = await freePort();
  const dataDir = tempDir('npm-start');
  const npm = process.platform === 'win32' ? 'npm.cmd' : 'npm';
  const child: ChildProcess = spawn(
    npm,
    [
      'start',
      '--',
      '--base-port',
      String(base),
      '--nodes',
      '2',
      '--gateway-port',
      String(gatewayPort),
      '--data-dir',
      dataDir,
    ],
    {
      cwd: repoRoot,
      detached: true,
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { ...process.env, WALRUS_LOG_LEVEL: 'warn' },
    },
  );
  let output = '';
  child.stdout!.on('data', (d: Buffer) => (output += d.toString()));
  child.stderr!.on('data', (d: Buffer) => (output += d.toString()));
  const exited = new Promise<number | string | null>((resolve) =>
    child.once('exit', (code, signal) => resolve(code ?? signal)),
  );
  t.teardown(() => {
    if (child.exitCode === null && child.signalCode === null) process.kill(-child.pid!, 'SIGKILL');
    fs.rmSync(dataDir, { recursive: true, force: true });
  });

  await eventually(
    'npm start prints what it started',
    async () => (output.includes('Ctrl-C stops everything') ? true : undefined),
    60_000,
  ).catch((error: unknown) => {
    throw new Error(`${(error as Error).message}\n${output}`);
  });
  t.regex(output, /Walrus-TS: 2 nodes running/);
  t.regex(
    output,
    new RegExp(`node 1: client 127\\.0\\.0\\.1:${base}  raft 127\\.0\\.0\\.1:${base - raftPortOffset}`),
  );
  t.regex(
    output,
    new RegExp(
      `node 2: client 127\\.0\\.0\\.1:${base + 1}  raft 127\\.0\\.0\\.1:${base - raftPortOffset + 1}`,
    ),
  );
  t.regex(output, new RegExp(`gateway: http://127\\.0\\.0\\.1:${gatewayPort}`));

  // The two nodes form one cluster on those ports, and the gateway fronts it.
  const client = new WalrusClient({ nodes: [`127.0.0.1:${base + 1}`] });
  t.teardown(() => client.close());
  const metrics = await eventually('two voters with a leader', async () => {
    const m = (await client.metrics()) as {
      current_leader?: number;
      membership_config?: { voters?: number[] };
    };
    return m.current_leader && m.membership_config?.voters?.length === 2 ? m : undefined;
  });
  t.truthy(metrics.current_leader);
  const health = await fetch(`http://127.0.0.1:${gatewayPort}/v1/health`);
  t.is(health.status, 200);
  await health.arrayBuffer();
  await client.close();

  process.kill(-child.pid!, 'SIGINT');
  // npm itself may die of the SIGINT; the launcher under it stops what it started and exits 0.
  t.true([0, 'SIGINT'].includes((await exited) as number | string), output);
  const ports = [base, base + 1, base - raftPortOffset, base - raftPortOffset + 1, gatewayPort];
  await eventually('every port closed after Ctrl-C', async () => {
    const open = await Promise.all(ports.map(listening));
    return open.every((o) => !o) ? true : undefined;
  });
  t.pass('nodes and gateway stopped');
});
