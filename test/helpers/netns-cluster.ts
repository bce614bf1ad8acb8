/**
 * Real partitions: each walrus-node runs in a network namespace of its own, joined to the others by
 * a bridge in a hub namespace, so the nodes are separate hosts (10.77.0.<n>) on one machine. A
 * partition is nftables in a node's namespace dropping what it receives from chosen peers: two-way,
 * one-way, or a node cut off from all. Clients run in a client namespace inside a driver process
 * (netns-driver.ts) that this one talks to over IPC. Nothing is changed outside the namespaces this
 * creates; every process is stopped by PID and every namespace deleted by name (namespaces left by
 * a test process that died are removed at the next start). Needs root, iproute2 and nftables.
 */
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { cliBin, nodeBin } from '../../infra/local/launcher.js';
import { jsonReply, type NodeMetrics } from './node-text.js';

const clientPort = 9091;
const raftPort = 6001;
const startTimeoutMs = 15_000;
const askTimeoutMsDefault = 5_000;
const logTailBytesMax = 32 * 1024;
export const namePrefix = 'walrus-t';
const driverBin = path.join(import.meta.dirname, 'netns-driver.js');
/**
 * nftables by absolute path: under npm scripts PATH starts with node_modules/.bin, where
 * @vercel/nft (a dependency of a dependency) installs a different program named `nft`.
 */
const nftBin =
  ['/usr/sbin/nft', '/sbin/nft', '/usr/bin/nft'].find((p) => fs.existsSync(p)) ?? '/usr/sbin/nft';

export function ip(...args: string[]): string {
  return execFileSync('ip', args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
}

export function inNs(ns: string, ...command: string[]): string {
  return ip('netns', 'exec', ns, ...command);
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** Deletes namespaces this helper made in test processes that no longer run. */
export function removeStaleNamespaces(): void {
  for (const line of ip('netns', 'list').split('\n')) {
    const name = line.split(' ')[0] ?? '';
    const m = new RegExp(`^${namePrefix}(\\d+)-`).exec(name);
    if (m !== null && !alive(Number(m[1]))) ip('netns', 'del', name);
  }
}

/**
 * Narrows what `drop` drops (by default every packet from the sender). Both narrowings combine.
 */
export interface DropFilter {
  /**
   * Only the connections `from` opens to the receiver's raft port: the Raft messages and peer
   * requests `from` sends. The receiver's own link to `from` keeps working both ways (`from`'s
   * TCP acknowledgements on it still pass), so what the receiver sends still reaches `from`:
   * a one-way cut of Raft messages rather than of IP packets.
   */
  readonly sendersLinksOnly?: boolean;
  /**
   * Only IP packets longer than this many bytes. TCP delivers a stream in order, so the first
   * dropped segment stops everything after it on that connection until the rule is lifted (then
   * the sender's retransmissions, on their backoff, deliver it).
   */
  readonly ipLengthAbove?: number;
}

interface NetnsNode {
  readonly nodeId: number;
  readonly ns: string;
  readonly host: string;
  process: ChildProcess | null;
  logTail: string;
}

export class NetnsCluster {
  private static count = 0;
  private readonly hub: string;
  private readonly clientNs: string;
  private driver: ChildProcess | null = null;
  private readonly pending = new Map<number, (reply: object) => void>();
  private askId = 0;
  readonly nodes: NetnsNode[] = [];

  private constructor(
    private readonly prefix: string,
    private readonly dataDir: string,
    private readonly env: Readonly<Record<string, string>>,
  ) {
    this.hub = `${prefix}hub`;
    this.clientNs = `${prefix}client`;
  }

  /**
   * Node n (1-based) at 10.77.0.n; node 1 bootstraps and the others join it, as in the seed.
   * `startCount` (default all) nodes start now; the others' namespaces wait for `startNode`.
   */
  static async start(options: {
    nodeCount: number;
    startCount?: number;
    env?: Record<string, string>;
  }): Promise<NetnsCluster> {
    removeStaleNamespaces();
    NetnsCluster.count += 1;
    const prefix = `${namePrefix}${process.pid}-${NetnsCluster.count}-`;
    const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'walrus-netns-'));
    const cluster = new NetnsCluster(prefix, dataDir, options.env ?? {});
    try {
      cluster.createNetwork(options.nodeCount);
      await cluster.startDriver();
      for (let i = 0; i < (options.startCount ?? options.nodeCount); i++) await cluster.startNode(i);
    } catch (error) {
      await cluster.destroy();
      throw error;
    }
    return cluster;
  }

  private createNetwork(nodeCount: number): void {
    ip('netns', 'add', this.hub);
    ip('-n', this.hub, 'link', 'add', 'br0', 'type', 'bridge');
    ip('-n', this.hub, 'link', 'set', 'br0', 'up');
    const attach = (ns: string, port: number, host: string): void => {
      ip('netns', 'add', ns);
      ip('link', 'add', 'eth0', 'netns', ns, 'type', 'veth', 'peer', 'name', `p${port}`, 'netns', this.hub);
      ip('-n', this.hub, 'link', 'set', `p${port}`, 'master', 'br0');
      ip('-n', this.hub, 'link', 'set', `p${port}`, 'up');
      ip('-n', ns, 'addr', 'add', `${host}/24`, 'dev', 'eth0');
      ip('-n', ns, 'link', 'set', 'eth0', 'up');
      ip('-n', ns, 'link', 'set', 'lo', 'up');
    };
    attach(this.clientNs, 100, '10.77.0.100');
    for (let i = 0; i < nodeCount; i++) {
      const nodeId = i + 1;
      const node: NetnsNode = {
        nodeId,
        ns: `${this.prefix}n${nodeId}`,
        host: `10.77.0.${nodeId}`,
        process: null,
        logTail: '',
      };
      attach(node.ns, nodeId, node.host);
      inNs(node.ns, nftBin, 'add', 'table', 'inet', 'walrus');
      inNs(
        node.ns,
        nftBin,
        'add chain inet walrus input { type filter hook input priority 0 ; policy accept ; }',
      );
      this.nodes.push(node);
    }
  }

  private async startDriver(): Promise<void> {
    const driver = spawn('ip', ['netns', 'exec', this.clientNs, process.execPath, driverBin], {
      stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
    });
    this.driver = driver;
    driver.on('message', (m: { id?: number }) => {
      if (m.id === undefined) return;
      this.pending.get(m.id)?.(m);
      this.pending.delete(m.id);
    });
    // A driver that dies answers every ask still waiting, rather than leaving the test hanging.
    driver.once('exit', (code) => {
      for (const answer of this.pending.values()) answer({ error: `DRIVER_EXITED ${code}` });
      this.pending.clear();
    });
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error('the netns driver did not start')), startTimeoutMs);
      driver.once('message', () => {
        clearTimeout(timer);
        resolve();
      });
      driver.once('exit', (code) => reject(new Error(`the netns driver exited with ${code}`)));
    });
  }

  clientAddr(index: number): string {
    return `${this.nodes[index]!.host}:${clientPort}`;
  }

  private ask<T>(message: Record<string, unknown>): Promise<T & { error?: string }> {
    const driver = this.driver;
    if (driver === null) return Promise.reject(new Error('the cluster is destroyed'));
    const id = ++this.askId;
    return new Promise((resolve) => {
      this.pending.set(id, (m) => resolve(m as T & { error?: string }));
      driver.send({ id, ...message });
    });
  }

  /** Sends text commands to node `index` from the client namespace; a failure is `ERR <code>`. */
  async text(index: number, commands: readonly string[], timeoutMs = askTimeoutMsDefault): Promise<string[]> {
    const m = await this.ask<{ replies?: string[] }>({
      kind: 'text',
      addr: this.clientAddr(index),
      commands,
      timeoutMs,
    });
    return m.replies ?? [`ERR ${m.error ?? 'UNKNOWN'}`];
  }

  /**
   * One writer: appends each value as one record, in order, through any node (leader-aware), until
   * `untilMs` (Date.now()). Each outcome is an offset, or an error (after which the record may or
   * may not be there).
   */
  async appends(
    topic: string,
    values: readonly string[],
    untilMs: number,
    timeoutMs = 2_000,
  ): Promise<{ value: string; offset?: number; error?: string }[]> {
    const nodes = this.nodes.map((_, i) => this.clientAddr(i));
    const m = await this.ask<{ results?: { value: string; offset?: number; error?: string }[] }>({
      kind: 'appends',
      nodes,
      topic,
      values,
      timeoutMs,
      untilMs,
    });
    if (m.results === undefined) throw new Error(`appends failed: ${m.error}`);
    return m.results;
  }

  /** Every record of the topic from its start, read through any node. */
  async readAll(topic: string): Promise<{ records: { offset: number; value: string }[]; endOffset: number }> {
    const nodes = this.nodes.map((_, i) => this.clientAddr(i));
    const m = await this.ask<{ records?: { offset: number; value: string }[]; endOffset?: number }>({
      kind: 'readAll',
      nodes,
      topic,
    });
    if (m.records === undefined || m.endOffset === undefined) throw new Error(`readAll failed: ${m.error}`);
    return { records: m.records, endOffset: m.endOffset };
  }

  /** The node's METRICS, or null when it does not answer in time. */
  async metrics(index: number, timeoutMs = 1_500): Promise<NodeMetrics | null> {
    const [reply] = await this.text(index, ['METRICS'], timeoutMs);
    return jsonReply<NodeMetrics>(reply);
  }

  private args(index: number): string[] {
    const node = this.nodes[index]!;
    const args = [
      nodeBin,
      '--node-id',
      String(node.nodeId),
      '--data-dir',
      this.dataDir,
      '--raft-host',
      node.host,
      '--raft-port',
      String(raftPort),
      '--client-host',
      node.host,
      '--client-port',
      String(clientPort),
    ];
    if (index > 0) args.push('--join', `${this.nodes[0]!.host}:${raftPort}`);
    return args;
  }

  /** Starts node `index` in its namespace and waits for its client listener. */
  async startNode(index: number): Promise<void> {
    const node = this.nodes[index]!;
    const child = spawn('ip', ['netns', 'exec', node.ns, process.execPath, ...this.args(index)], {
      env: { ...process.env, WALRUS_LOG_LEVEL: 'info', ...this.env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    node.process = child;
    node.logTail = '';
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(
        () => reject(new Error(`node ${node.nodeId} did not start:\n${node.logTail}`)),
        startTimeoutMs,
      );
      const keep = (chunk: Buffer): void => {
        node.logTail = (node.logTail + chunk.toString('utf8')).slice(-logTailBytesMax);
        if (node.logTail.includes('Client listener bound')) {
          clearTimeout(timer);
          resolve();
        }
      };
      child.stdout!.on('data', keep);
      child.stderr!.on('data', keep);
      child.once('exit', (code) => {
        clearTimeout(timer);
        reject(new Error(`node ${node.nodeId} exited with ${code}:\n${node.logTail}`));
      });
    });
  }

  /** SIGKILLs node `index` (kill -9) and waits for it to exit; `startNode` brings it back. */
  async kill(index: number): Promise<void> {
    const child = this.nodes[index]!.process;
    if (child === null || child.exitCode !== null || child.signalCode !== null) return;
    const exited = new Promise((resolve) => child.once('exit', resolve));
    child.kill('SIGKILL');
    await exited;
  }

  /**
   * Node `to` stops receiving anything from node `from` (one way), or only what `filter` says.
   * Returns a function that lifts this rule alone (`heal` lifts them all).
   */
  drop(to: number, from: number, filter: DropFilter = {}): () => void {
    const ns = this.nodes[to]!.ns;
    const match = ['ip', 'saddr', this.nodes[from]!.host];
    if (filter.sendersLinksOnly === true) match.push('tcp', 'dport', String(raftPort));
    if (filter.ipLengthAbove !== undefined) match.push('ip', 'length', '>', String(filter.ipLengthAbove));
    const echo = inNs(
      ns,
      nftBin,
      '--echo',
      '--handle',
      'add',
      'rule',
      'inet',
      'walrus',
      'input',
      ...match,
      'drop',
    );
    const handle = /# handle (\d+)/.exec(echo)?.[1];
    if (handle === undefined) throw new Error(`nft did not say the new rule's handle: ${echo}`);
    let lifted = false;
    return () => {
      if (lifted) return;
      lifted = true;
      try {
        inNs(ns, nftBin, 'delete', 'rule', 'inet', 'walrus', 'input', 'handle', handle);
      } catch {
        // Already gone: `heal` flushed it.
      }
    };
  }

  /** Cuts node `index` off from every other node, both ways (clients can still reach it). */
  isolate(index: number): void {
    for (let other = 0; other < this.nodes.length; other++) {
      if (other === index) continue;
      this.drop(index, other);
      this.drop(other, index);
    }
  }

  /** Removes every partition. */
  heal(): void {
    for (const node of this.nodes) inNs(node.ns, nftBin, 'flush', 'chain', 'inet', 'walrus', 'input');
  }

  /**
   * Runs walrus-cli with `args` in the client namespace (e.g. `--addr`, clientAddr(i),
   * `remove-node`, id) and resolves with its exit code and output; killed after `timeoutMs`.
   */
  cli(
    args: readonly string[],
    timeoutMs = 30_000,
  ): Promise<{ code: number | null; stdout: string; stderr: string }> {
    return new Promise((resolve) => {
      const child = spawn('ip', ['netns', 'exec', this.clientNs, process.execPath, cliBin, ...args], {
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      let stdout = '';
      let stderr = '';
      child.stdout.on('data', (chunk: Buffer) => {
        stdout += chunk.toString('utf8');
      });
      child.stderr.on('data', (chunk: Buffer) => {
        stderr += chunk.toString('utf8');
      });
      const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
      child.once('close', (code) => {
        clearTimeout(timer);
        resolve({ code, stdout, stderr });
      });
    });
  }

  /** SIGKILLs every process it started (by PID) and deletes its namespaces and data. */
  async destroy(): Promise<void> {
    const exits: Promise<unknown>[] = [];
    for (const node of this.nodes) {
      const child = node.process;
      if (child !== null && child.exitCode === null && child.signalCode === null) {
        exits.push(new Promise((resolve) => child.once('exit', resolve)));
        child.kill('SIGKILL');
      }
    }
    if (this.driver !== null && this.driver.exitCode === null) {
      exits.push(new Promise((resolve) => this.driver!.once('exit', resolve)));
      this.driver.kill('SIGKILL');
    }
    this.driver = null;
    await Promise.all(exits);
    for (const ns of [...this.nodes.map((n) => n.ns), this.clientNs, this.hub]) {
      try {
        ip('netns', 'del', ns);
      } catch {
        // Never created (a failed start).
      }
    }
    fs.rmSync(this.dataDir, { recursive: true, force: true });
  }
}
