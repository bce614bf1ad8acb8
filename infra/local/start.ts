/**
 * `npm start`: a local cluster on the seed quick-start ports (client 9091…, raft 6001…, HTTP admin
 * 9101… with /metrics, /health, /ready) with data
 * in ./data, plus the HTTP gateway on port 3000 when it is built. Prints what it started and how to
 * talk to it; Ctrl-C stops every process it started.
 *
 * Flags (`npm start -- --help`): --nodes N (default 3), --base-port P (default 9091: node i's
 * client port is P+i-1, its raft port P-3090+i-1 and its admin port P+10+i-1, so the defaults are
 * the seed's 9091…/6001… and another base moves all three families together), --gateway-port P (default 3000), --data-dir DIR
 * (default ./data), --no-gateway. Bad flags print the usage and exit 2.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';
import { LocalCluster, gatewayBin, waitForPort } from './launcher.js';

export const startLimits = {
  /** Nodes one `npm start` runs. */
  nodeCountMax: 9,
  /** Raft ports sit this far below client ports (9091 → 6001, the seed's quick start). */
  raftPortOffset: 3090,
  /** Admin (HTTP /metrics) ports sit this far above client ports (9091 → 9101). */
  adminPortOffset: 10,
} as const;

export const startUsage = `Usage: npm start -- [--nodes N] [--base-port P] [--gateway-port P] [--data-dir DIR] [--no-gateway]
  --nodes N          nodes to start, 1..${startLimits.nodeCountMax} (default 3)
  --base-port P      client port of node 1 (default 9091); node i listens on P+i-1 for clients
                     and on P-${startLimits.raftPortOffset}+i-1 for Raft (default 6001…),
                     P+${startLimits.adminPortOffset}+i-1 for HTTP /metrics (default 9101…)
  --gateway-port P   HTTP gateway port (default 3000)
  --data-dir DIR     data root (default ./data)
  --no-gateway       nodes only
`;

/** Bad usage: printed with the usage, exit code 2. */
class UsageError extends Error {}

export interface StartOptions {
  readonly nodeCount: number;
  readonly clientPorts: readonly number[];
  readonly raftPorts: readonly number[];
  readonly gatewayPort: number;
  readonly dataDir: string;
  readonly gateway: boolean;
}

function portOf(flag: string, text: string): number {
  const port = Number(text);
  if (!/^\d+$/.test(text) || port < 1 || port > 65_535)
    throw new UsageError(`${flag} must be a port, 1..65535`);
  return port;
}

/** Parses npm start's flags (node:util parseArgs); throws UsageError naming the bad one. */
export function parseStartArgs(argv: readonly string[]): StartOptions | 'help' {
  let values: Record<string, string | boolean | undefined>;
  try {
    ({ values } = parseArgs({
      args: [...argv],
      strict: true,
      allowPositionals: false,
      options: {
        nodes: { type: 'string', default: '3' },
        'base-port': { type: 'string', default: '9091' },
        'data-dir': { type: 'string', default: './data' },
        'gateway-port': { type: 'string', default: '3000' },
        'no-gateway': { type: 'boolean', default: false },
        help: { type: 'boolean', short: 'h', default: false },
      },
    }));
  } catch (error) {
    throw new UsageError((error as Error).message);
  }
  if (values['help'] === true) return 'help';
  const nodeText = values['nodes'] as string;
  const nodeCount = Number(nodeText);
  if (!/^\d+$/.test(nodeText) || nodeCount < 1 || nodeCount > startLimits.nodeCountMax)
    throw new UsageError(`--nodes must be 1..${startLimits.nodeCountMax}`);
  const basePort = portOf('--base-port', values['base-port'] as string);
  const raftBase = basePort - startLimits.raftPortOffset;
  if (raftBase < 1 || basePort + nodeCount - 1 > 65_535)
    throw new UsageError(
      `--base-port must leave room for ${nodeCount} client ports and raft ports ${startLimits.raftPortOffset} below: ${startLimits.raftPortOffset + 1}..${65_536 - nodeCount}`,
    );
  const gatewayPort = portOf('--gateway-port', values['gateway-port'] as string);
  const clientPorts = Array.from({ length: nodeCount }, (_, i) => basePort + i);
  const raftPorts = Array.from({ length: nodeCount }, (_, i) => raftBase + i);
  const gateway = values['no-gateway'] !== true;
  const adminPorts = clientPorts.map((port) => port + startLimits.adminPortOffset);
  if (gateway && [...clientPorts, ...raftPorts, ...adminPorts].includes(gatewayPort))
    throw new UsageError(`--gateway-port ${gatewayPort} is one of the nodes' ports`);
  return {
    nodeCount,
    clientPorts,
    raftPorts,
    gatewayPort,
    dataDir: path.resolve(values['data-dir'] as string),
    gateway,
  };
}

async function main(): Promise<void> {
  let parsed: StartOptions | 'help';
  try {
    parsed = parseStartArgs(process.argv.slice(2));
  } catch (error) {
    if (!(error instanceof UsageError)) throw error;
    process.stderr.write(`npm start: ${error.message}\n${startUsage}`);
    process.exit(2);
  }
  if (parsed === 'help') {
    process.stdout.write(startUsage);
    return;
  }
  const { nodeCount, gatewayPort, dataDir, clientPorts, raftPorts } = parsed;
  // HTTP admin ports, 10 above the client ports (9101… by default): /metrics for Prometheus,
  // /health, /ready (docs/metrics.md).
  const adminPorts = clientPorts.map((port) => port + startLimits.adminPortOffset);

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
  const withGateway = parsed.gateway && fs.existsSync(gatewayBin);
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
      ? `  gateway: http://127.0.0.1:${gatewayPort}  (console: http://127.0.0.1:${gatewayPort}/ui, docs: http://127.0.0.1:${gatewayPort}/docs)`
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

// Run only as the entry point: tests import parseStartArgs.
if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(path.resolve(process.argv[1])).href) {
  main().catch((error: unknown) => {
    process.stderr.write(`npm start: ${error instanceof Error ? error.message : String(error)}\n`);
    process.exit(1);
  });
}
