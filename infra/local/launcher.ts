/**
 * Starts, stops, kills and restarts real walrus-node processes (and, when built, a gateway) on
 * loopback. The one launcher behind `npm start` and the test helpers (test/helpers/local-cluster.ts):
 * what the tests exercise is what a user runs. Every process it starts is tracked by PID and
 * stopped by `stop()`.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import type tls from 'node:tls';
import { WalrusClient } from '../../node/client/walrus-client.js';
import { ErrorCode } from '../../node/protocol/error-codes.js';

export const repoRoot = path.resolve(import.meta.dirname, '../../..');
export const nodeBin = path.join(repoRoot, 'dist/node/bin/walrus-node.js');
export const cliBin = path.join(repoRoot, 'dist/node/bin/walrus-cli.js');
export const gatewayBin = path.join(repoRoot, 'dist/gateway/server.js');

const startTimeoutMs = 15_000;
const stopTimeoutMs = 5_000;
const logTailBytesMax = 64 * 1024;

export interface NodeSpec {
  readonly nodeId: number;
  readonly clientPort: number;
  readonly raftPort: number;
  /** raft address of the node to join, or null for the bootstrap node. */
  readonly join: string | null;
}

export interface NodeProcess {
  readonly spec: NodeSpec;
  readonly clientAddr: string;
  readonly raftAddr: string;
  process: ChildProcess | null;
  /** The last log output, for failure messages. */
  logTail: string;
  /** Extra environment and flags for this node only (e.g. a different cluster secret). */
  env?: Readonly<Record<string, string>>;
  extraArgs?: readonly string[];
}

export interface LaunchOptions {
  readonly nodeCount: number;
  readonly dataDir: string;
  /** Client and raft ports; defaults to free ephemeral ports. */
  readonly clientPorts?: readonly number[];
  readonly raftPorts?: readonly number[];
  /** HTTP admin ports (--admin-port: /metrics, /health, /ready) by node index; none when absent. */
  readonly adminPorts?: readonly number[];
  readonly env?: Readonly<Record<string, string>>;
  readonly extraArgs?: readonly string[];
  /** Print node output to this process's stdout (npm start) instead of keeping it. */
  readonly inheritOutput?: boolean;
  /** TLS to the client ports (nodes started with --tls-cert), for the start-up probe. */
  readonly clientTls?: tls.ConnectionOptions;
}

/** Finds a free TCP port on 127.0.0.1 (closed again before use; fine for tests on loopback). */
/**
 * Ports handed out by freePort: below Linux's default ephemeral range (32768-60999), so an outgoing
 * connection (a peer link reconnecting, a client) can never take the port as its source port
 * between the check here and the node's own bind, which once failed a node with EADDRINUSE.
 */
export const freePortRange = { min: 20_000, max: 32_000, attemptCountMax: 200 } as const;

/**
 * Ports this process handed out recently: a cluster picks all its ports before any node binds, so
 * two picks could be the same port (a node then failed with EADDRINUSE on a fresh-clone CI run).
 * Bounded: the oldest are forgotten first.
 */
const handedOut: number[] = [];
const handedOutCountMax = 256;

/** A port on 127.0.0.1 that nothing listens on now and not handed out lately, picked at random in freePortRange. */
export async function freePort(): Promise<number> {
  for (let attempt = 0; attempt < freePortRange.attemptCountMax; attempt++) {
    const port = freePortRange.min + Math.floor(Math.random() * (freePortRange.max - freePortRange.min));
    if (handedOut.includes(port)) continue;
    const free = await new Promise<boolean>((resolve) => {
      const server = net.createServer();
      server.once('error', () => resolve(false));
      server.listen(port, '127.0.0.1', () => server.close(() => resolve(true)));
    });
    if (free) {
      handedOut.push(port);
      if (handedOut.length > handedOutCountMax) handedOut.shift();
      return port;
    }
  }
  throw new Error(
    `no free port in [${freePortRange.min}, ${freePortRange.max}) after ${freePortRange.attemptCountMax} tries`,
  );
}

/**
 * Resolves once the node at `addr` serves: a node binds its client port before it joins and
 * recovers, and answers UNAVAILABLE until then. Any other answer (a PING reply, or
 * UNAUTHENTICATED from a node that wants a token) means it serves. Rejects after timeoutMs.
 */
export async function waitForServing(
  addr: string,
  timeoutMs: number,
  isAlive: () => boolean,
  clientTls?: tls.ConnectionOptions,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  const client = new WalrusClient({
    nodes: [addr],
    retryCountMax: 0,
    requestTimeoutMs: 2_000,
    connectTimeoutMs: 1_000,
    ...(clientTls === undefined ? {} : { tls: clientTls }),
  });
  try {
    for (;;) {
      const code = await client.ping().then(
        () => null,
        (error: { code?: string }) => error.code ?? 'INTERNAL',
      );
      if (code !== ErrorCode.UNAVAILABLE && code !== ErrorCode.TIMEOUT) return;
      if (!isAlive()) throw new Error(`node at ${addr} exited before serving`);
      if (Date.now() > deadline) throw new Error(`node at ${addr} did not serve within ${timeoutMs} ms`);
      await new Promise((r) => setTimeout(r, 50));
    }
  } finally {
    await client.close();
  }
}

/** Resolves once host:port accepts a TCP connection (tried every pollMs), or rejects after timeoutMs. */
export async function waitForPort(
  port: number,
  timeoutMs: number,
  isAlive: () => boolean = () => true,
  pollMs = 50,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const ok = await new Promise<boolean>((resolve) => {
      const socket = net.connect({ host: '127.0.0.1', port });
      socket.once('connect', () => {
        socket.destroy();
        resolve(true);
      });
      socket.once('error', () => resolve(false));
    });
    if (ok) return;
    if (!isAlive()) throw new Error(`process for port ${port} exited before listening`);
    if (Date.now() > deadline) throw new Error(`nothing listened on port ${port} within ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, pollMs));
  }
}

export class LocalCluster {
  readonly nodes: NodeProcess[];
  readonly dataDir: string;
  private readonly options: LaunchOptions;

  private constructor(options: LaunchOptions, nodes: NodeProcess[]) {
    this.options = options;
    this.nodes = nodes;
    this.dataDir = options.dataDir;
  }

  static async start(options: LaunchOptions): Promise<LocalCluster> {
    if (!fs.existsSync(nodeBin)) throw new Error(`${nodeBin} is missing: run npm run build first`);
    fs.mkdirSync(options.dataDir, { recursive: true });
    const nodes: NodeProcess[] = [];
    for (let i = 0; i < options.nodeCount; i++) {
      const clientPort = options.clientPorts?.[i] ?? (await freePort());
      const raftPort = options.raftPorts?.[i] ?? (await freePort());
      const spec: NodeSpec = {
        nodeId: i + 1,
        clientPort,
        raftPort,
        join: i === 0 ? null : `127.0.0.1:${nodes[0]!.spec.raftPort}`,
      };
      nodes.push({
        spec,
        clientAddr: `127.0.0.1:${clientPort}`,
        raftAddr: `127.0.0.1:${raftPort}`,
        process: null,
        logTail: '',
      });
    }
    const cluster = new LocalCluster(options, nodes);
    try {
      for (let i = 0; i < nodes.length; i++) await cluster.startNode(i);
    } catch (error) {
      await cluster.stop();
      throw error;
    }
    return cluster;
  }

  get clientAddrs(): string[] {
    return this.nodes.map((n) => n.clientAddr);
  }

  /** The node's command line, as the seed documents it. */
  args(index: number): string[] {
    const { spec } = this.nodes[index]!;
    const args = [
      '--node-id',
      String(spec.nodeId),
      '--data-dir',
      this.dataDir,
      '--raft-port',
      String(spec.raftPort),
      '--raft-host',
      '127.0.0.1',
      '--client-port',
      String(spec.clientPort),
      '--client-host',
      '127.0.0.1',
    ];
    if (spec.join !== null) args.push('--join', spec.join);
    const adminPort = this.options.adminPorts?.[index];
    if (adminPort !== undefined) args.push('--admin-port', String(adminPort));
    return [...args, ...(this.options.extraArgs ?? []), ...(this.nodes[index]!.extraArgs ?? [])];
  }

  async startNode(index: number): Promise<void> {
    const node = this.nodes[index]!;
    if (node.process !== null && node.process.exitCode === null && node.process.signalCode === null) return;
    const child = spawn(process.execPath, [nodeBin, ...this.args(index)], {
      env: { ...process.env, ...this.options.env, ...node.env },
      stdio: this.options.inheritOutput ? ['ignore', 'inherit', 'inherit'] : ['ignore', 'pipe', 'pipe'],
    });
    node.process = child;
    node.logTail = '';
    const keep = (chunk: Buffer): void => {
      node.logTail = (node.logTail + chunk.toString('utf8')).slice(-logTailBytesMax);
    };
    child.stdout?.on('data', keep);
    child.stderr?.on('data', keep);
    try {
      const isAlive = (): boolean => child.exitCode === null && child.signalCode === null;
      await waitForPort(node.spec.clientPort, startTimeoutMs, isAlive);
      await waitForServing(node.clientAddr, startTimeoutMs, isAlive, this.options.clientTls);
    } catch (error) {
      throw new Error(`node ${node.spec.nodeId} did not start: ${(error as Error).message}\n${node.logTail}`);
    }
  }

  /** Adds and starts one more node that joins node 1 (the seed's hot join). Returns its index. */
  async addNode(
    options: { env?: Record<string, string>; extraArgs?: string[]; waitForListen?: boolean } = {},
  ): Promise<number> {
    const clientPort = await freePort();
    const raftPort = await freePort();
    const nodeId = Math.max(...this.nodes.map((n) => n.spec.nodeId)) + 1;
    const node: NodeProcess = {
      spec: { nodeId, clientPort, raftPort, join: `127.0.0.1:${this.nodes[0]!.spec.raftPort}` },
      clientAddr: `127.0.0.1:${clientPort}`,
      raftAddr: `127.0.0.1:${raftPort}`,
      process: null,
      logTail: '',
      ...(options.env ? { env: options.env } : {}),
      ...(options.extraArgs ? { extraArgs: options.extraArgs } : {}),
    };
    this.nodes.push(node);
    if (options.waitForListen === false) {
      void this.startNode(this.nodes.length - 1).catch(() => {});
    } else {
      await this.startNode(this.nodes.length - 1);
    }
    return this.nodes.length - 1;
  }

  /** Sends a signal (SIGKILL by default: kill -9) and waits for the process to exit. */
  async kill(index: number, signal: NodeJS.Signals = 'SIGKILL'): Promise<void> {
    const node = this.nodes[index]!;
    const child = node.process;
    if (child === null || child.exitCode !== null || child.signalCode !== null) return;
    const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
    child.kill(signal);
    if (signal === 'SIGSTOP') return;
    const timer = setTimeout(() => child.kill('SIGKILL'), stopTimeoutMs);
    await exited;
    clearTimeout(timer);
  }

  async restart(index: number): Promise<void> {
    await this.kill(index, 'SIGTERM');
    await this.startNode(index);
  }

  /** Stops every node by PID: SIGTERM, then SIGKILL after a grace period. */
  async stop(): Promise<void> {
    await Promise.all(this.nodes.map((_, i) => this.kill(i, 'SIGTERM')));
  }
}
