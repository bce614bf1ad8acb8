/**
 * A local NATS JetStream cluster of real `nats-server` processes on loopback, the baseline that
 * test/bench/replication-bench.ts measures Walrus-TS against. Owns: finding Debian's `nats-server`
 * (installing it with apt-get when missing and running as root), checking a config with the
 * server's own `-t` before use (2.9.x rejects fields it does not know, e.g. `sync_interval`),
 * writing each server's config (JetStream on, a store dir of its own, cluster routes to the other
 * servers, 127.0.0.1 only), starting the processes, and stopping them by PID.
 *
 * The configs are written here from the server's documented options; nothing of NATS is copied.
 */
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { freePort, waitForPort } from '../../infra/local/launcher.js';
import { debianBinary } from './debian-package.js';

const startTimeoutMs = 15_000;
const stopTimeoutMs = 5_000;
const configCheckTimeoutMs = 10_000;
const installTimeoutMs = 300_000;
const logTailBytesMax = 64 * 1024;
/** Where Debian's package puts the binary (/usr/sbin is not on every user's PATH). */
const debianBinPath = '/usr/sbin/nats-server';
/** JetStream store limits per server: far above what a benchmark writes, and stated, not guessed. */
const maxFileStoreBytes = 16 * 1024 * 1024 * 1024;
const maxMemoryStoreBytes = 256 * 1024 * 1024;
const clusterName = 'walrus-bench';
/** Starts of the whole cluster on fresh ports when a port was taken before a server bound it. */
const startAttemptCountMax = 3;

export interface NatsServerBinary {
  readonly path: string;
  /** As the binary reports it, e.g. `2.9.10`. */
  readonly version: string;
}

function findBinary(): string | null {
  const which = spawnSync('sh', ['-c', 'command -v nats-server'], { encoding: 'utf8' });
  const found = which.status === 0 ? which.stdout.trim() : '';
  if (found !== '') return found;
  return fs.existsSync(debianBinPath) ? debianBinPath : null;
}

/**
 * The nats-server binary and its version. Missing: as root, `apt-get install -y nats-server`
 * (Debian bookworm ships 2.9.10), after one `apt-get update` if the first try fails; otherwise an
 * error that says what to run.
 */
export function ensureNatsServer(log: (line: string) => void = () => {}): NatsServerBinary {
  let bin = findBinary();
  if (bin === null) {
    if (process.getuid?.() !== 0) {
      throw new Error(
        'nats-server is not installed and this is not root: run `apt-get install -y nats-server` ' +
          "(Debian's package) as root, then run the benchmark again",
      );
    }
    const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
    const install = (): boolean =>
      spawnSync('apt-get', ['install', '-y', '-q', 'nats-server'], {
        env,
        stdio: ['ignore', 'ignore', 'inherit'],
        timeout: installTimeoutMs,
      }).status === 0;
    log('# nats-server is missing: apt-get install -y nats-server');
    if (!install()) {
      spawnSync('apt-get', ['update', '-q'], {
        env,
        stdio: ['ignore', 'ignore', 'inherit'],
        timeout: installTimeoutMs,
      });
      if (!install()) throw new Error('apt-get install -y nats-server failed (see its output above)');
    }
    bin = findBinary();
    if (bin === null) throw new Error('apt-get installed nats-server, but no nats-server binary was found');
  }
  return versionOf(bin);
}

/** The first release with `sync_interval` (JetStream fsync per write), and a Debian suite that ships one. */
const syncIntervalVersion = [2, 10, 0] as const;
const syncIntervalSuite = 'trixie';
const cacheDir = path.resolve(import.meta.dirname, '../../../node_modules/.cache/walrus-bench');

function atLeast(version: string, wanted: readonly number[]): boolean {
  const parts = version.split('.').map(Number);
  for (let i = 0; i < wanted.length; i++) {
    const have = parts[i] ?? 0;
    if (have !== wanted[i]) return have > wanted[i]!;
  }
  return true;
}

/**
 * A nats-server that can be told to fsync every write (`sync_interval: always`, >= 2.10), so that
 * JetStream can also be measured at our durability. `BENCH_NATS_SERVER=<path>` picks the binary.
 * Otherwise the machine's (ensureNatsServer) if it is new enough, else Debian trixie's package,
 * verified and unpacked into node_modules/.cache (debian-package.ts). If that cannot be had, the
 * machine's binary, and the bench reports the sync_interval phase as unsupported.
 */
export async function ensureNatsServerWithSyncInterval(
  log: (line: string) => void = () => {},
): Promise<NatsServerBinary> {
  const chosen = process.env['BENCH_NATS_SERVER'];
  if (chosen !== undefined && chosen !== '') return versionOf(chosen);
  const installed = ensureNatsServer(log);
  if (atLeast(installed.version, syncIntervalVersion)) return installed;
  try {
    log(
      `# nats-server ${installed.version} has no sync_interval: using Debian ${syncIntervalSuite}'s package`,
    );
    const fetched = await debianBinary({
      suite: syncIntervalSuite,
      packageName: 'nats-server',
      binaryPath: 'usr/sbin/nats-server',
      cacheDir,
    });
    return versionOf(fetched.path);
  } catch (error) {
    log(
      `# could not get Debian ${syncIntervalSuite}'s nats-server (${String(error)}): using ${installed.version}`,
    );
    return installed;
  }
}

function versionOf(bin: string): NatsServerBinary {
  const out = spawnSync(bin, ['--version'], { encoding: 'utf8', timeout: configCheckTimeoutMs });
  const match = /v?(\d+\.\d+\.\d+)/.exec(`${out.stdout ?? ''}${out.stderr ?? ''}`);
  if (match === null) throw new Error(`could not read the version of ${bin}: ${out.stdout}${out.stderr}`);
  return { path: bin, version: match[1]! };
}

/** nats-server refused a config at `-t`; `message` is what it said (e.g. `unknown field "sync_interval"`). */
export class NatsConfigRejected extends Error {
  constructor(readonly serverMessage: string) {
    super(`nats-server rejected the config: ${serverMessage}`);
    this.name = 'NatsConfigRejected';
  }
}

export interface NatsClusterOptions {
  readonly binary: NatsServerBinary;
  /** Each server gets `<dir>/<name>/` for its config and JetStream store. */
  readonly dir: string;
  readonly serverCount: number;
  /** Adds `sync_interval: always` to the jetstream block (fsync every write; nats-server >= 2.10.0). */
  readonly syncAlways?: boolean;
}

export interface NatsServerProcess {
  readonly name: string;
  readonly clientPort: number;
  readonly clusterPort: number;
  /** `nats://127.0.0.1:<clientPort>` */
  readonly clientUrl: string;
  readonly configPath: string;
  process: ChildProcess | null;
  logTail: string;
}

/** The outcome of `nats-server -c <file> -t`: accepted, or the server's own message. */
export type ConfigCheck =
  | { readonly accepted: true }
  | { readonly accepted: false; readonly message: string };

/** Asks the binary whether it accepts a config file, without starting a server. */
export function checkNatsConfig(binary: NatsServerBinary, configPath: string): ConfigCheck {
  const out = spawnSync(binary.path, ['-c', configPath, '-t'], {
    encoding: 'utf8',
    timeout: configCheckTimeoutMs,
  });
  if (out.status === 0) return { accepted: true };
  const message = `${out.stdout ?? ''}${out.stderr ?? ''}`.trim() || `exit ${out.status ?? out.signal}`;
  return { accepted: false, message };
}

function configText(
  server: { name: string; clientPort: number; clusterPort: number; storeDir: string },
  peerClusterPorts: readonly number[],
  syncAlways: boolean,
): string {
  const routes = peerClusterPorts.map((port) => `    "nats-route://127.0.0.1:${port}"`).join('\n');
  return [
    `server_name: "${server.name}"`,
    `listen: "127.0.0.1:${server.clientPort}"`,
    'jetstream {',
    `  store_dir: "${server.storeDir}"`,
    `  max_file_store: ${maxFileStoreBytes}`,
    `  max_memory_store: ${maxMemoryStoreBytes}`,
    ...(syncAlways ? ['  sync_interval: always'] : []),
    '}',
    'cluster {',
    `  name: "${clusterName}"`,
    `  listen: "127.0.0.1:${server.clusterPort}"`,
    // Clients get only the URLs they were given: nothing but loopback is ever advertised.
    '  no_advertise: true',
    '  routes: [',
    routes,
    '  ]',
    '}',
    '',
  ].join('\n');
}

export class NatsCluster {
  readonly servers: NatsServerProcess[];
  private readonly binary: NatsServerBinary;

  private constructor(binary: NatsServerBinary, servers: NatsServerProcess[]) {
    this.binary = binary;
    this.servers = servers;
  }

  /**
   * Writes every server's config, checks each with `-t` (throws NatsConfigRejected with the
   * server's message if it refuses one), then starts the servers and waits for their client ports.
   */
  static async start(options: NatsClusterOptions): Promise<NatsCluster> {
    for (let attempt = 1; ; attempt++) {
      try {
        return await NatsCluster.startOnce(options);
      } catch (error) {
        // freePort's ports are free when picked, not held: another process on this machine may bind
        // one before the server does. Start over on fresh ports (and fresh store dirs), bounded.
        const portTaken = error instanceof Error && error.message.includes('address already in use');
        if (!portTaken || attempt >= startAttemptCountMax) throw error;
      }
    }
  }

  private static async startOnce(options: NatsClusterOptions): Promise<NatsCluster> {
    // Distinct ports: freePort checks each port alone, so two picks can return the same one.
    const taken = new Set<number>();
    const distinctFreePort = async (): Promise<number> => {
      for (;;) {
        const port = await freePort();
        if (!taken.has(port)) {
          taken.add(port);
          return port;
        }
      }
    };
    const ports: { clientPort: number; clusterPort: number }[] = [];
    for (let i = 0; i < options.serverCount; i++) {
      ports.push({ clientPort: await distinctFreePort(), clusterPort: await distinctFreePort() });
    }
    const servers: NatsServerProcess[] = ports.map(({ clientPort, clusterPort }, i) => {
      const name = `n${i + 1}`;
      const serverDir = path.join(options.dir, name);
      fs.rmSync(serverDir, { recursive: true, force: true });
      fs.mkdirSync(serverDir, { recursive: true });
      const configPath = path.join(serverDir, 'nats-server.conf');
      const peers = ports.filter((_, j) => j !== i).map((p) => p.clusterPort);
      const text = configText(
        { name, clientPort, clusterPort, storeDir: path.join(serverDir, 'store') },
        peers,
        options.syncAlways === true,
      );
      fs.writeFileSync(configPath, text);
      return {
        name,
        clientPort,
        clusterPort,
        clientUrl: `nats://127.0.0.1:${clientPort}`,
        configPath,
        process: null,
        logTail: '',
      };
    });
    for (const server of servers) {
      const check = checkNatsConfig(options.binary, server.configPath);
      if (!check.accepted) throw new NatsConfigRejected(check.message);
    }
    const cluster = new NatsCluster(options.binary, servers);
    try {
      for (let i = 0; i < servers.length; i++) await cluster.startServer(i);
    } catch (error) {
      await cluster.stop();
      throw error;
    }
    return cluster;
  }

  get clientUrls(): string[] {
    return this.servers.map((s) => s.clientUrl);
  }

  /** PIDs of the servers running now (for a signal handler that must not wait). */
  pids(): number[] {
    return this.servers.flatMap((s) =>
      s.process?.pid !== undefined && s.process.exitCode === null && s.process.signalCode === null
        ? [s.process.pid]
        : [],
    );
  }

  private async startServer(index: number): Promise<void> {
    const server = this.servers[index]!;
    const child = spawn(this.binary.path, ['-c', server.configPath], { stdio: ['ignore', 'pipe', 'pipe'] });
    server.process = child;
    server.logTail = '';
    const keep = (chunk: Buffer): void => {
      server.logTail = (server.logTail + chunk.toString('utf8')).slice(-logTailBytesMax);
    };
    child.stdout?.on('data', keep);
    child.stderr?.on('data', keep);
    try {
      await waitForPort(
        server.clientPort,
        startTimeoutMs,
        () => child.exitCode === null && child.signalCode === null,
      );
    } catch (error) {
      throw new Error(
        `nats-server ${server.name} did not start: ${(error as Error).message}\n${server.logTail}`,
      );
    }
  }

  /** Stops every server by PID: SIGTERM, then SIGKILL after a grace period. */
  async stop(): Promise<void> {
    await Promise.all(
      this.servers.map(async (server) => {
        const child = server.process;
        if (child === null || child.exitCode !== null || child.signalCode !== null) return;
        const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
        child.kill('SIGTERM');
        const timer = setTimeout(() => child.kill('SIGKILL'), stopTimeoutMs);
        await exited;
        clearTimeout(timer);
      }),
    );
  }
}
