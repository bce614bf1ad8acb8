/**
 * `npm start`: a local cluster on the seed quick-start ports (client 9091…, raft 6001…, HTTP admin
 * 9101… with /metrics, /health, /ready) with data
 * in ./data, plus the HTTP gateway on port 3000 when it is built. Prints what it started and how to
 * talk to it; Ctrl-C stops every process it started.
 *
 * Flags: --nodes N (default 3), --data-dir DIR (default ./data),
 * --gateway-port P (default 3000), --no-gateway.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { LocalCluster, gatewayBin, waitForPort } from './launcher.js';

async function main(): Promise<void> {
  const { values } = parseArgs({
    args: process.argv.slice(2),
    strict: true,
    options: {
      nodes: { type: 'string', default: '3' },
      'data-dir': { type: 'string', default: './data' },
      'gateway-port': { type: 'string', default: '3000' },
      'no-gateway': { type: 'boolean', default: false },
    },
  });
  const nodeCount = Number(values.nodes);
  if (!Number.isSafeInteger(nodeCount) || nodeCount < 1 || nodeCount > 9)
    throw new Error('--nodes must be 1..9');
  const gatewayPort = Number(values['gateway-port']);
  const dataDir = path.resolve(values['data-dir']);
  const clientPorts = Array.from({ length: nodeCount }, (_, i) => 9091 + i);
  const raftPorts = Array.from({ length: nodeCount }, (_, i) => 6001 + i);
  // HTTP admin ports: /metrics for Prometheus, /health, /ready (docs/metrics.md).
  const adminPorts = Array.from({ length: nodeCount }, (_, i) => 9101 + i);

  const cluster = await LocalCluster.start({
    nodeCount,
    dataDir,
    clientPorts,
    raftPorts,
    adminPorts,
    env: { WALRUS_LOG_LEVEL: process.env['WALRUS_LOG_LEVEL'] ?? 'warn' },
    inheritOutput: true,
  });
  let gateway: ChildProcess | null = null;
  const withGateway = !values['no-gateway'] && fs.existsSync(gatewayBin);
  if (withGateway) {
    gateway = spawn(
      process.execPath,
      [gatewayBin, '--port', String(gatewayPort), '--nodes', cluster.clientAddrs.join(',')],
      {
        stdio: ['ignore', 'inherit', 'inherit'],
      },
    );
    await waitForPort(gatewayPort, 15_000, () => gateway?.exitCode === null);
  }

  const lines = [
    '',
    `Walrus-TS: ${nodeCount} node${nodeCount > 1 ? 's' : ''} running, data in ${dataDir}`,
    ...cluster.nodes.map(
      (n, i) =>
        `  node ${n.spec.nodeId}: client ${n.clientAddr}  raft ${n.raftAddr}  admin http://127.0.0.1:${adminPorts[i]}/metrics  pid ${n.process?.pid}`,
    ),
    withGateway
      ? `  gateway: http://127.0.0.1:${gatewayPort}  (docs: http://127.0.0.1:${gatewayPort}/docs)`
      : '',
    '',
    'Talk to it:',
    `  npx walrus-cli --addr ${cluster.clientAddrs[0]}                 # interactive shell`,
    `  npx walrus-cli --addr ${cluster.clientAddrs[0]} register logs`,
    `  npx walrus-cli --addr ${cluster.clientAddrs[0]} put logs "hello"`,
    `  npx walrus-cli --addr ${cluster.clientAddrs[0]} get logs`,
    `  printf '\\x07\\x00\\x00\\x00METRICS' | nc -q 1 127.0.0.1 ${clientPorts[0]}   # raw protocol health check`,
    withGateway
      ? `  curl -s -X POST localhost:${gatewayPort}/v1/topics -H 'content-type: application/json' -d '{"name":"logs"}'`
      : '',
    '',
    'Ctrl-C stops everything.',
    '',
  ];
  process.stdout.write(`${lines.filter((l, i, all) => l !== '' || all[i - 1] !== '').join('\n')}\n`);

  let stopping = false;
  const stop = async (): Promise<void> => {
    if (stopping) return;
    stopping = true;
    process.stdout.write('\nStopping…\n');
    if (gateway !== null && gateway.exitCode === null) {
      const exited = new Promise((r) => gateway?.once('exit', r));
      gateway.kill('SIGTERM');
      await exited;
    }
    await cluster.stop();
    process.exit(0);
  };
  process.on('SIGINT', () => void stop());
  process.on('SIGTERM', () => void stop());
}

main().catch((error: unknown) => {
  process.stderr.write(`npm start: ${error instanceof Error ? error.message : String(error)}\n`);
  process.exit(1);
});
