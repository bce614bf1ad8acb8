/**
 * The fault campaign's cluster: real walrus-node processes that a nemesis can kill, pause, restart,
 * partition, wipe and starve of disk, and a client agent process (campaign-agent.ts) that runs the
 * writers, the consumer, the gateway and the readers where the nodes can be reached.
 *
 * Two network modes, one interface:
 * - `netns` (root with `ip` and `nft`): as test/helpers/netns-cluster.ts, a namespace per node
 *   (10.78.0.n) on a bridge in a hub namespace, nftables in each node's namespace for partitions
 *   (one-way too), and the agent in a client namespace (10.78.0.100). Only these namespaces carry
 *   traffic.
 * - `loopback`: nodes on 127.0.0.1, the agent beside the test; partitions are not available.
 *
 * Each node has a data directory of its own (`<root>/n<id>`, holding `node_<id>`), so one can be
 * a small tmpfs (a full disk) and one can be wiped. Every process is started and stopped by PID
 * (also written to `<root>/pids`, so a later run can stop what a killed run left), every namespace
 * and mount is removed by `destroy()`, and leftovers of test processes that died are removed at
 * the next start.
 */
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { freePort, nodeBin } from '../../infra/local/launcher.js';

/** Generous: a wait for the port, not a sleep; a starved machine (a campaign at nice 19 beside CI) took over 15 s. */
const startTimeoutMs = 60_000;
const stopTimeoutMs = 5_000;
const logTailBytesMax = 16 * 1024;
const netnsClientPort = 9091;
const netnsRaftPort = 6001;
const nsPrefix = 'walrus-c';
const rootPrefix = 'walrus-campaign-';
const agentBin = path.join(import.meta.dirname, 'campaign-agent.js');
/** By absolute path: under npm scripts PATH starts with node_modules/.bin, which has another `nft`. */
const nftBin =
  ['/usr/sbin/nft', '/sbin/nft', '/usr/bin/nft'].find((p) => fs.existsSync(p)) ?? '/usr/sbin/nft';
const ipBin = ['/usr/sbin/ip', '/sbin/ip', '/usr/bin/ip', '/bin/ip'].find((p) => fs.existsSync(p)) ?? 'ip';

export type NetMode = 'netns' | 'loopback';

export interface CampaignNode {
  readonly index: number;
  readonly nodeId: number;
  readonly clientAddr: string;
  readonly raftAddr: string;
  /** The node's --data-dir (its files are in `node_<id>` below it). */
  readonly dataRoot: string;
  /** The node's network namespace (netns mode). */
  readonly ns: string | null;
  process: ChildProcess | null;
  paused: boolean;
  /** True once it has been started: later starts carry --join (a node with Raft state ignores it). */
  started: boolean;
  logTail: string;
  /** A tmpfs of this many bytes is mounted at dataRoot. */
  tmpfsBytes: number | null;
}

function run(file: string, args: readonly string[]): string {
  return execFileSync(file, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

function isRoot(): boolean {
  return typeof process.getuid === 'function' && process.getuid() === 0;
}

/** What this machine allows: partitions need root, `ip` and `nft`; a tmpfs needs root. */
export function capabilities(): { mode: NetMode; root: boolean; why: string } {
  const root = isRoot();
  if (!root) return { mode: 'loopback', root, why: 'not root: no network namespaces' };
  for (const [what, file, args] of [
    ['ip', ipBin, ['-V']],
    ['nft', nftBin, ['--version']],
  ] as const) {
    try {
      run(file, args);
    } catch {
      return { mode: 'loopback', root, why: `${what} is not available` };
    }
  }
  return { mode: 'netns', root, why: 'root with ip and nft' };
}

function mountsUnder(dir: string): string[] {
  const out: string[] = [];
  for (const line of fs.readFileSync('/proc/self/mounts', 'utf8').split('\n')) {
    const target = line.split(' ')[1]?.replace(/\\040/g, ' ');
    if (target !== undefined && (target === dir || target.startsWith(`${dir}/`))) out.push(target);
  }
  return out.sort((a, b) => b.length - a.length);
}

function unmount(target: string): void {
  try {
    run('umount', [target]);
  } catch {
    run('umount', ['-l', target]);
  }
}

/**
 * Removes what campaign runs of processes that no longer exist left behind: their processes (by the
 * PIDs they recorded, only if the command line is still one of ours), mounts, namespaces, files.
 */
export function removeLeftovers(): void {
  const tmp = os.tmpdir();
  for (const name of fs.readdirSync(tmp)) {
    const m = new RegExp(`^${rootPrefix}(\\d+)-`).exec(name);
    if (m === null || alive(Number(m[1]))) continue;
    const root = path.join(tmp, name);
    try {
      for (const line of fs.readFileSync(path.join(root, 'pids'), 'utf8').split('\n')) {
        const pid = Number(line);
        if (!Number.isSafeInteger(pid) || pid <= 1 || !alive(pid)) continue;
        let cmdline = '';
        try {
          cmdline = fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8');
        } catch {
          continue;
        }
        if (/walrus-node\.js|campaign-agent\.js|gateway\/server\.js/.test(cmdline)) {
          process.kill(pid, 'SIGKILL');
        }
      }
    } catch {
      // No pids file.
    }
    if (isRoot()) for (const target of mountsUnder(root)) unmount(target);
    fs.rmSync(root, { recursive: true, force: true });
  }
  if (!isRoot()) return;
  let list = '';
  try {
    list = run(ipBin, ['netns', 'list']);
  } catch {
    return;
  }
  for (const line of list.split('\n')) {
    const name = line.split(' ')[0] ?? '';
    const m = new RegExp(`^${nsPrefix}(\\d+)-`).exec(name);
    if (m !== null && !alive(Number(m[1]))) run(ipBin, ['netns', 'del', name]);
  }
}

export interface AgentReply {
  readonly id: number;
  readonly ok: boolean;
  readonly value?: unknown;
  readonly error?: string;
}

export class CampaignCluster {
  private static count = 0;
  readonly nodes: CampaignNode[] = [];
  private agent: ChildProcess | null = null;
  agentLogTail = '';
  private readonly pending = new Map<number, (reply: AgentReply) => void>();
  private askId = 0;
  private readonly namespaces: string[] = [];
  private readonly clientNs: string | null;
  private readonly hubNs: string | null;

  private constructor(
    readonly mode: NetMode,
    readonly root: string,
    private readonly env: Readonly<Record<string, string>>,
    prefix: string,
  ) {
    this.clientNs = mode === 'netns' ? `${prefix}cl` : null;
    this.hubNs = mode === 'netns' ? `${prefix}hub` : null;
  }

  /**
   * Makes the network (netns mode), the data directories (a tmpfs of `tmpfsBytes` for node
   * `tmpfsNode`), the agent, and starts every node: node 1 bootstraps, the others join it.
   */
  static async start(options: {
    mode: NetMode;
    nodeCount: number;
    env?: Record<string, string>;
    tmpfsNode?: number | null;
    tmpfsBytes?: number;
  }): Promise<CampaignCluster> {
    removeLeftovers();
    CampaignCluster.count += 1;
    const root = fs.mkdtempSync(path.join(os.tmpdir(), `${rootPrefix}${process.pid}-`));
    const prefix = `${nsPrefix}${process.pid}-${CampaignCluster.count}-`;
    const cluster = new CampaignCluster(options.mode, root, options.env ?? {}, prefix);
    try {
      if (options.mode === 'netns') cluster.createNetwork(prefix, options.nodeCount);
      for (let i = 0; i < options.nodeCount; i++) {
        const nodeId = i + 1;
        const host = options.mode === 'netns' ? `10.78.0.${nodeId}` : '127.0.0.1';
        const clientPort = options.mode === 'netns' ? netnsClientPort : await freePort();
        const raftPort = options.mode === 'netns' ? netnsRaftPort : await freePort();
        const dataRoot = path.join(root, `n${nodeId}`);
        fs.mkdirSync(dataRoot);
        let tmpfsBytes: number | null = null;
        if (options.tmpfsNode === i) {
          tmpfsBytes = options.tmpfsBytes ?? 64 * 1024 * 1024;
          run('mount', ['-t', 'tmpfs', '-o', `size=${tmpfsBytes},mode=0700`, 'walrus-campaign', dataRoot]);
        }
        cluster.nodes.push({
          index: i,
          nodeId,
          clientAddr: `${host}:${clientPort}`,
          raftAddr: `${host}:${raftPort}`,
          dataRoot,
          ns: options.mode === 'netns' ? `${prefix}n${nodeId}` : null,
          process: null,
          paused: false,
          started: false,
          logTail: '',
          tmpfsBytes,
        });
      }
      await cluster.startAgent();
      for (let i = 0; i < options.nodeCount; i++) await cluster.startNode(i);
    } catch (error) {
      await cluster.destroy();
      throw error;
    }
    return cluster;
  }

  private createNetwork(prefix: string, nodeCount: number): void {
    const hub = this.hubNs!;
    run(ipBin, ['netns', 'add', hub]);
    this.namespaces.push(hub);
    run(ipBin, ['-n', hub, 'link', 'add', 'br0', 'type', 'bridge']);
    run(ipBin, ['-n', hub, 'link', 'set', 'br0', 'up']);
    const attach = (ns: string, port: number, host: string): void => {
      run(ipBin, ['netns', 'add', ns]);
      this.namespaces.push(ns);
      run(ipBin, [
        'link',
        'add',
        'eth0',
        'netns',
        ns,
        'type',
        'veth',
        'peer',
        'name',
        `p${port}`,
        'netns',
        hub,
      ]);
      run(ipBin, ['-n', hub, 'link', 'set', `p${port}`, 'master', 'br0']);
      run(ipBin, ['-n', hub, 'link', 'set', `p${port}`, 'up']);
      run(ipBin, ['-n', ns, 'addr', 'add', `${host}/24`, 'dev', 'eth0']);
      run(ipBin, ['-n', ns, 'link', 'set', 'eth0', 'up']);
      run(ipBin, ['-n', ns, 'link', 'set', 'lo', 'up']);
    };
    attach(this.clientNs!, 100, '10.78.0.100');
    for (let i = 0; i < nodeCount; i++) {
      const ns = `${prefix}n${i + 1}`;
      attach(ns, i + 1, `10.78.0.${i + 1}`);
      run(ipBin, ['netns', 'exec', ns, nftBin, 'add', 'table', 'inet', 'walrus']);
      run(ipBin, [
        'netns',
        'exec',
        ns,
        nftBin,
        'add chain inet walrus input { type filter hook input priority 0 ; policy accept ; }',
      ]);
    }
  }

  private recordPid(pid: number | undefined): void {
    if (pid !== undefined) fs.appendFileSync(path.join(this.root, 'pids'), `${pid}\n`);
  }

  /** Spawns a command in namespace `ns` (netns mode) or here. */
  private spawnIn(
    ns: string | null,
    args: readonly string[],
    env: NodeJS.ProcessEnv,
    ipc = false,
  ): ChildProcess {
    const stdio: ('ignore' | 'pipe' | 'ipc')[] = ipc
      ? ['ignore', 'pipe', 'pipe', 'ipc']
      : ['ignore', 'pipe', 'pipe'];
    const child =
      ns === null
        ? spawn(process.execPath, args, { env, stdio })
        : spawn(ipBin, ['netns', 'exec', ns, process.execPath, ...args], { env, stdio });
    this.recordPid(child.pid);
    return child;
  }

  private async startAgent(): Promise<void> {
    const agent = this.spawnIn(this.clientNs, [agentBin, this.root], { ...process.env }, true);
    this.agent = agent;
    const keep = (chunk: Buffer): void => {
      this.agentLogTail = (this.agentLogTail + chunk.toString('utf8')).slice(-logTailBytesMax);
    };
    agent.stdout!.on('data', keep);
    agent.stderr!.on('data', keep);
    agent.on('message', (m: AgentReply & { pid?: number }) => {
      if (m.pid !== undefined) this.recordPid(m.pid);
      if (m.id === undefined) return;
      this.pending.get(m.id)?.(m);
      this.pending.delete(m.id);
    });
    agent.once('exit', (code, signal) => {
      for (const answer of this.pending.values())
        answer({
          id: 0,
          ok: false,
          error: `the agent exited (${code ?? signal}): ${this.agentLogTail.slice(-500)}`,
        });
      this.pending.clear();
    });
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error('the campaign agent did not start')), startTimeoutMs);
      agent.once('message', () => {
        clearTimeout(timer);
        resolve();
      });
      agent.once('exit', (code) => {
        clearTimeout(timer);
        reject(new Error(`the campaign agent exited with ${code}: ${this.agentLogTail}`));
      });
    });
  }

  /** Asks the agent to do something where the nodes are reachable; rejects on its error or after timeoutMs. */
  ask<T>(kind: string, payload: Record<string, unknown> = {}, timeoutMs = 60_000): Promise<T> {
    const agent = this.agent;
    if (agent === null || agent.exitCode !== null || agent.signalCode !== null)
      return Promise.reject(new Error(`the agent is not running: ${this.agentLogTail.slice(-500)}`));
    const id = ++this.askId;
    return new Promise<T>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(id);
        reject(new Error(`the agent did not answer ${kind} within ${timeoutMs} ms`));
      }, timeoutMs);
      this.pending.set(id, (m) => {
        clearTimeout(timer);
        if (m.ok) resolve(m.value as T);
        else reject(new Error(m.error ?? `${kind} failed`));
      });
      agent.send({ id, kind, ...payload });
    });
  }

  get clientAddrs(): string[] {
    return this.nodes.map((n) => n.clientAddr);
  }

  isRunning(index: number): boolean {
    const child = this.nodes[index]!.process;
    return child !== null && child.exitCode === null && child.signalCode === null;
  }

  /**
   * Starts node `index` and waits for its client listener. `join` is the raft address to join:
   * by default none for node 1's first start (it bootstraps), else node 1's, or another member's
   * when node 1 is not running (a node with Raft state ignores it).
   */
  async startNode(index: number, join?: string): Promise<void> {
    const node = this.nodes[index]!;
    if (this.isRunning(index)) return;
    const joinAddr =
      join ??
      (index === 0 && !node.started
        ? null
        : (
            this.nodes.find((n) => n.index !== index && this.isRunning(n.index)) ??
            this.nodes[index === 0 ? 1 : 0]!
          ).raftAddr);
    const [host, raftPort] = node.raftAddr.split(':') as [string, string];
    const clientPort = node.clientAddr.split(':')[1]!;
    const args = [
      nodeBin,
      '--node-id',
      String(node.nodeId),
      '--data-dir',
      node.dataRoot,
      '--raft-host',
      host,
      '--raft-port',
      raftPort,
      '--client-host',
      host,
      '--client-port',
      clientPort,
      ...(joinAddr === null ? [] : ['--join', joinAddr]),
    ];
    const child = this.spawnIn(node.ns, args, { ...process.env, WALRUS_LOG_LEVEL: 'info', ...this.env });
    node.process = child;
    node.paused = false;
    node.started = true;
    node.logTail = '';
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(
        () =>
          reject(
            new Error(
              `node ${node.nodeId} did not start within ${startTimeoutMs} ms:\n${node.logTail.slice(-2000)}`,
            ),
          ),
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
      child.once('exit', (code, signal) => {
        clearTimeout(timer);
        reject(new Error(`node ${node.nodeId} exited (${code ?? signal}):\n${node.logTail.slice(-2000)}`));
      });
    });
  }

  /** Sends `signal` to node `index` by PID and waits for it to exit (SIGTERM: SIGKILL after a grace period). */
  async kill(index: number, signal: 'SIGKILL' | 'SIGTERM' = 'SIGKILL'): Promise<void> {
    const node = this.nodes[index]!;
    const child = node.process;
    if (child === null || child.exitCode !== null || child.signalCode !== null) return;
    const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
    if (node.paused) child.kill('SIGCONT');
    child.kill(signal);
    const timer = setTimeout(() => child.kill('SIGKILL'), stopTimeoutMs);
    await exited;
    clearTimeout(timer);
    node.paused = false;
  }

  pause(index: number): void {
    const node = this.nodes[index]!;
    if (!this.isRunning(index)) return;
    node.process!.kill('SIGSTOP');
    node.paused = true;
  }

  resume(index: number): void {
    const node = this.nodes[index]!;
    if (node.paused && this.isRunning(index)) node.process!.kill('SIGCONT');
    node.paused = false;
  }

  /** Deletes node `index`'s files (its `node_<id>` directory); the node must be stopped. */
  wipe(index: number): void {
    if (this.isRunning(index)) throw new Error(`node ${index + 1} is running: stop it before wiping it`);
    const node = this.nodes[index]!;
    fs.rmSync(path.join(node.dataRoot, `node_${node.nodeId}`), { recursive: true, force: true });
  }

  /** Fills node `index`'s tmpfs to the last byte with a ballast file beside its files. Returns the bytes written. */
  fillDisk(index: number): number {
    const node = this.nodes[index]!;
    if (node.tmpfsBytes === null) throw new Error(`node ${node.nodeId} has no tmpfs data directory`);
    const fd = fs.openSync(path.join(node.dataRoot, 'ballast'), 'a');
    let written = 0;
    try {
      for (const size of [1 << 20, 1 << 12, 1]) {
        const chunk = Buffer.alloc(size, 0x5a);
        for (;;) {
          try {
            written += fs.writeSync(fd, chunk);
          } catch {
            break;
          }
        }
      }
    } finally {
      fs.closeSync(fd);
    }
    return written;
  }

  freeDisk(index: number): void {
    fs.rmSync(path.join(this.nodes[index]!.dataRoot, 'ballast'), { force: true });
  }

  private nft(index: number, ...args: string[]): string {
    const ns = this.nodes[index]!.ns;
    if (ns === null) throw new Error('partitions need the netns mode');
    return run(ipBin, ['netns', 'exec', ns, nftBin, ...args]);
  }

  /** Node `to` stops receiving anything from node `from` (one way). */
  drop(to: number, from: number): void {
    const host = this.nodes[from]!.raftAddr.split(':')[0]!;
    this.nft(to, 'add', 'rule', 'inet', 'walrus', 'input', 'ip', 'saddr', host, 'drop');
  }

  /** Cuts node `index` off from every other node, both ways (the client namespace still reaches it). */
  isolate(index: number, from: readonly number[] = this.nodes.map((n) => n.index)): void {
    for (const other of from) {
      if (other === index) continue;
      this.drop(index, other);
      this.drop(other, index);
    }
  }

  /** Lifts every partition. */
  heal(): void {
    if (this.mode !== 'netns') return;
    for (const node of this.nodes) this.nft(node.index, 'flush', 'chain', 'inet', 'walrus', 'input');
  }

  /** Stops every process by PID, removes the namespaces, mounts and files. Never throws. */
  async destroy(): Promise<void> {
    const exits: Promise<unknown>[] = [];
    for (const node of this.nodes) {
      const child = node.process;
      if (child !== null && child.exitCode === null && child.signalCode === null) {
        exits.push(new Promise((resolve) => child.once('exit', resolve)));
        if (node.paused) child.kill('SIGCONT');
        child.kill('SIGKILL');
      }
    }
    const agent = this.agent;
    if (agent !== null && agent.exitCode === null && agent.signalCode === null) {
      // The agent stops its gateway by PID on the way out; SIGKILL if it takes too long.
      const exited = new Promise((resolve) => agent.once('exit', resolve));
      exits.push(exited);
      try {
        agent.send({ id: 0, kind: 'shutdown' });
      } catch {
        agent.kill('SIGKILL');
      }
      const timer = setTimeout(() => agent.kill('SIGKILL'), stopTimeoutMs);
      void exited.then(() => clearTimeout(timer));
    }
    await Promise.all(exits);
    this.agent = null;
    for (const ns of this.namespaces.reverse()) {
      try {
        run(ipBin, ['netns', 'del', ns]);
      } catch {
        // Already gone.
      }
    }
    for (const node of this.nodes) {
      if (node.tmpfsBytes === null) continue;
      try {
        unmount(node.dataRoot);
      } catch {
        // Reported by the leftover sweep of the next run, which tries again.
      }
    }
    if (mountsUnder(this.root).length === 0) fs.rmSync(this.root, { recursive: true, force: true });
  }
}
