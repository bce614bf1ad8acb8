/**
 * "VMs" on one machine, for running the cloud-init user data of infra/terraform for real: each VM
 * is a network namespace with its own address on a bridge (as in test/helpers/netns-cluster.ts,
 * whose ip/namespace helpers this reuses) and its own root directory, which stands in for / in the
 * paths the user data writes (/etc/walrus, /usr/local, /opt/walrus, /var/lib/walrus). One more
 * namespace, "outside", holds the fake Google Cloud endpoints (fake-gcp.ts) and the test's clients.
 *
 * What differs from a VM, and why (the rest runs as on a VM):
 * - cloud-init itself: this applies the two modules our user data relies on for files and commands,
 *   write_files and runcmd, as cloud-init does; fs_setup/mounts are checked, not run (no disk: the
 *   root's data dir stands for the mounted volume);
 * - systemd: `systemctl`, `useradd`, `chown` and `mountpoint` are shims that record their calls;
 *   units are started by reading their EnvironmentFile/Environment/ExecStart lines (ExecStart's
 *   `$VAR` split into words, as systemd does), as root rather than User=walrus;
 * - npm installs the release offline from a cache the test warmed from the registry (a namespace
 *   has no route to the registry).
 * Every process is started by this class and stopped by PID; every namespace is deleted by name.
 */
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { parse as parseYaml } from 'yaml';
import { ip, namePrefix, removeStaleNamespaces } from '../helpers/netns-cluster.js';

const subnet = '10.78.0';
export const outsideIp = `${subnet}.200`;
export const fakeGcpPort = 8080;
const commandTimeoutMsDefault = 120_000;
const logTailBytesMax = 64 * 1024;
const stopGraceMs = 10_000;
const fakeGcpBin = path.join(import.meta.dirname, 'fake-gcp.js');
/** Absolute paths of a VM that live under its root directory here. */
const vmOwnPaths =
  /(^|[\s=:])\/(etc\/walrus|etc\/systemd|opt\/walrus|var\/lib\/walrus|usr\/local)(?=[/\s:]|$)/gm;

export interface Vm {
  readonly nodeId: number;
  readonly ns: string;
  readonly ip: string;
  readonly root: string;
  readonly shimLog: string;
}

interface Started {
  readonly name: string;
  readonly child: ChildProcess;
  tail: string;
}

const shims: Record<string, string> = {
  systemctl: 'exit 0',
  useradd: 'exit 0',
  chown: 'exit 0',
  // The data volume is "mounted" when the directory exists.
  mountpoint: '[ "$1" = -q ] && shift; [ -d "$1" ]',
};

export class VmLab {
  private static count = 0;
  readonly vms: Vm[] = [];
  readonly outsideNs: string;
  private readonly hub: string;
  private readonly namespaces: string[] = [];
  private readonly started: Started[] = [];

  private constructor(
    readonly dir: string,
    private readonly prefix: string,
  ) {
    this.hub = `${prefix}hub`;
    this.outsideNs = `${prefix}out`;
  }

  /** Node i (1-based) gets the module's address for it: cidrhost(subnet, 10 + i - 1). */
  static create(dir: string, vmCount: number): VmLab {
    removeStaleNamespaces();
    VmLab.count += 1;
    const lab = new VmLab(dir, `${namePrefix}${process.pid}-vm${VmLab.count}-`);
    try {
      lab.createNetwork(vmCount);
    } catch (error) {
      lab.deleteNamespaces();
      throw error;
    }
    const shimDir = path.join(dir, 'shims');
    fs.mkdirSync(shimDir, { recursive: true });
    for (const [name, body] of Object.entries(shims))
      fs.writeFileSync(
        path.join(shimDir, name),
        `#!/bin/sh\necho "${name} $*" >>"$WALRUS_SHIM_LOG"\n${body}\n`,
        { mode: 0o755 },
      );
    return lab;
  }

  private addNamespace(name: string): void {
    ip('netns', 'add', name);
    this.namespaces.push(name);
  }

  private createNetwork(vmCount: number): void {
    this.addNamespace(this.hub);
    ip('-n', this.hub, 'link', 'add', 'br0', 'type', 'bridge');
    ip('-n', this.hub, 'link', 'set', 'br0', 'up');
    const attach = (ns: string, port: number, host: string): void => {
      this.addNamespace(ns);
      ip('link', 'add', 'eth0', 'netns', ns, 'type', 'veth', 'peer', 'name', `p${port}`, 'netns', this.hub);
      ip('-n', this.hub, 'link', 'set', `p${port}`, 'master', 'br0');
      ip('-n', this.hub, 'link', 'set', `p${port}`, 'up');
      ip('-n', ns, 'addr', 'add', `${host}/24`, 'dev', 'eth0');
      ip('-n', ns, 'link', 'set', 'eth0', 'up');
      ip('-n', ns, 'link', 'set', 'lo', 'up');
    };
    attach(this.outsideNs, 200, outsideIp);
    for (let i = 0; i < vmCount; i++) {
      const nodeId = i + 1;
      const vm: Vm = {
        nodeId,
        ns: `${this.prefix}n${nodeId}`,
        ip: `${subnet}.${10 + i}`,
        root: path.join(this.dir, `vm${nodeId}`),
        shimLog: path.join(this.dir, `vm${nodeId}-shims.log`),
      };
      fs.mkdirSync(vm.root, { recursive: true });
      attach(vm.ns, nodeId, vm.ip);
      this.vms.push(vm);
    }
  }

  /** Runs `argv` in namespace `ns` with exactly `env`; resolves with its exit code and output. */
  run(
    ns: string,
    argv: readonly string[],
    env: Readonly<Record<string, string>>,
    timeoutMs = commandTimeoutMsDefault,
  ): Promise<{ code: number | null; output: string }> {
    const pairs = Object.entries(env).map(([k, v]) => `${k}=${v}`);
    const child = spawn('ip', ['netns', 'exec', ns, 'env', '-i', ...pairs, ...argv], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let output = '';
    const keep = (chunk: Buffer): void => {
      output = (output + chunk.toString('utf8')).slice(-logTailBytesMax);
    };
    child.stdout.on('data', keep);
    child.stderr.on('data', keep);
    return new Promise((resolve) => {
      const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
      child.once('close', (code) => {
        clearTimeout(timer);
        resolve({ code, output });
      });
    });
  }

  /** Starts a long-running process in `ns`; stopped by `destroy`. Resolves once `ready` is printed. */
  async start(
    name: string,
    ns: string,
    argv: readonly string[],
    env: Readonly<Record<string, string>>,
    ready?: string,
  ): Promise<void> {
    const pairs = Object.entries(env).map(([k, v]) => `${k}=${v}`);
    const child = spawn('ip', ['netns', 'exec', ns, 'env', '-i', ...pairs, ...argv], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const entry: Started = { name, child, tail: '' };
    this.started.push(entry);
    await new Promise<void>((resolve, reject) => {
      const keep = (chunk: Buffer): void => {
        entry.tail = (entry.tail + chunk.toString('utf8')).slice(-logTailBytesMax);
        if (ready !== undefined && entry.tail.includes(ready)) resolve();
      };
      child.stdout!.on('data', keep);
      child.stderr!.on('data', keep);
      child.once('exit', (code) => reject(new Error(`${name} exited with ${code}:\n${entry.tail}`)));
      if (ready === undefined) resolve();
    });
  }

  /** What a started process printed last, and whether it still runs. */
  status(name: string): { running: boolean; tail: string } {
    const entry = this.started.find((s) => s.name === name);
    if (entry === undefined) return { running: false, tail: '(never started)' };
    return { running: entry.child.exitCode === null && entry.child.signalCode === null, tail: entry.tail };
  }

  /**
   * Does what cloud-init does with the rendered user data on VM `vm`: checks it is cloud-config,
   * writes its write_files under the VM's root, then runs its runcmd entries in the VM's namespace.
   */
  async cloudInit(
    vm: Vm,
    userData: string,
    env: Readonly<Record<string, string>>,
    timeoutMs: number,
  ): Promise<{ code: number | null; output: string }> {
    if (!userData.startsWith('#cloud-config\n')) throw new Error('user data is not #cloud-config');
    const doc = parseYaml(userData) as {
      write_files: { path: string; content: string; encoding?: string; permissions?: string }[];
      runcmd: (string | string[])[];
      mounts: string[][];
    };
    for (const file of doc.write_files) {
      const target = path.join(vm.root, file.path);
      fs.mkdirSync(path.dirname(target), { recursive: true });
      const bytes = file.encoding === 'b64' ? Buffer.from(file.content, 'base64') : Buffer.from(file.content);
      fs.writeFileSync(target, bytes);
      fs.chmodSync(target, Number.parseInt(file.permissions ?? '0644', 8));
    }
    // The data volume, mounted where the user data mounts it.
    const dataDir = doc.mounts[0]![1]!;
    fs.mkdirSync(path.join(vm.root, dataDir), { recursive: true });
    let last = { code: 0 as number | null, output: '' };
    for (const entry of doc.runcmd) {
      const argv = (Array.isArray(entry) ? entry : ['sh', '-c', entry]).map((word) =>
        word.startsWith('/') && fs.existsSync(path.join(vm.root, word)) ? path.join(vm.root, word) : word,
      );
      last = await this.run(
        vm.ns,
        argv,
        {
          ...env,
          PATH: `${path.join(this.dir, 'shims')}:/usr/sbin:/usr/bin:/sbin:/bin`,
          WALRUS_ROOT: vm.root,
          WALRUS_SHIM_LOG: vm.shimLog,
        },
        timeoutMs,
      );
      if (last.code !== 0) return last;
    }
    return last;
  }

  /** The calls the VM's shims recorded, one a line (`systemctl enable --now …`). */
  shimCalls(vm: Vm): string[] {
    return fs.existsSync(vm.shimLog) ? fs.readFileSync(vm.shimLog, 'utf8').trim().split('\n') : [];
  }

  /**
   * Starts systemd unit `unit` of VM `vm` from its file under the VM's root: EnvironmentFile
   * (a leading `-` = optional), Environment and ExecStart, with the VM's own paths under its root.
   */
  async startUnit(vm: Vm, unit: string): Promise<void> {
    const text = fs
      .readFileSync(path.join(vm.root, 'etc/systemd/system', unit), 'utf8')
      .replace(vmOwnPaths, (_, before: string, p: string) => `${before}${vm.root}/${p}`);
    const env: Record<string, string> = {};
    let execStart: string | undefined;
    let section = '';
    for (const raw of text.split('\n')) {
      const line = raw.trim();
      if (line.startsWith('[')) section = line;
      if (section !== '[Service]' || line.startsWith('#') || !line.includes('=')) continue;
      const key = line.slice(0, line.indexOf('='));
      const value = line.slice(line.indexOf('=') + 1);
      if (key === 'EnvironmentFile') {
        const optional = value.startsWith('-');
        const file = optional ? value.slice(1) : value;
        if (!fs.existsSync(file)) {
          if (optional) continue;
          throw new Error(`${unit}: EnvironmentFile ${file} is missing`);
        }
        for (const envLine of fs.readFileSync(file, 'utf8').split('\n')) {
          const eq = envLine.indexOf('=');
          if (eq > 0 && !envLine.startsWith('#')) env[envLine.slice(0, eq).trim()] = envLine.slice(eq + 1);
        }
      } else if (key === 'Environment') {
        const eq = value.indexOf('=');
        env[value.slice(0, eq)] = value.slice(eq + 1);
      } else if (key === 'ExecStart') execStart = value;
    }
    if (execStart === undefined) throw new Error(`${unit} has no ExecStart`);
    const argv = execStart.split(/\s+/).flatMap((word) => {
      const split = /^\$([A-Za-z_][A-Za-z0-9_]*)$/.exec(word);
      if (split !== null) return (env[split[1]!] ?? '').split(/\s+/).filter((w) => w !== '');
      return [word.replace(/\$\{([A-Za-z_][A-Za-z0-9_]*)\}/g, (_, name: string) => env[name] ?? '')];
    });
    await this.start(`vm${vm.nodeId}:${unit}`, vm.ns, argv, env);
  }

  /** A sha256 of a file, as `sha256sum` prints it. */
  static sha256(file: string): string {
    return crypto.createHash('sha256').update(fs.readFileSync(file)).digest('hex');
  }

  /** Starts the fake Google Cloud endpoints in the outside namespace. */
  async startFakeGcp(filesDir: string, secrets: Readonly<Record<string, string>>): Promise<void> {
    const secretsFile = path.join(this.dir, 'secrets.json');
    fs.writeFileSync(secretsFile, JSON.stringify(secrets));
    await this.start(
      'fake-gcp',
      this.outsideNs,
      [process.execPath, fakeGcpBin, outsideIp, String(fakeGcpPort), filesDir, secretsFile],
      {},
      'listening',
    );
  }

  private deleteNamespaces(): void {
    for (const ns of this.namespaces.reverse()) {
      try {
        ip('netns', 'del', ns);
      } catch {
        // Already gone.
      }
    }
    this.namespaces.length = 0;
  }

  /** Stops every process it started (SIGTERM, then SIGKILL), by PID; deletes its namespaces. */
  async destroy(): Promise<void> {
    const running = this.started.filter((s) => s.child.exitCode === null && s.child.signalCode === null);
    await Promise.all(
      running.map(
        (s) =>
          new Promise<void>((resolve) => {
            const timer = setTimeout(() => s.child.kill('SIGKILL'), stopGraceMs);
            s.child.once('exit', () => {
              clearTimeout(timer);
              resolve();
            });
            s.child.kill('SIGTERM');
          }),
      ),
    );
    this.deleteNamespaces();
  }
}

/** Packs a tarball laid out like an official Node.js release, from this machine's node and npm. */
export function buildNodeDist(distDir: string): { version: string } {
  const version = process.version.slice(1);
  const arch = process.arch === 'arm64' ? 'arm64' : 'x64';
  const name = `node-v${version}-linux-${arch}`;
  const stage = path.join(distDir, 'stage', name);
  fs.mkdirSync(path.join(stage, 'bin'), { recursive: true });
  fs.mkdirSync(path.join(stage, 'lib/node_modules'), { recursive: true });
  fs.mkdirSync(path.join(stage, 'include/node'), { recursive: true });
  fs.mkdirSync(path.join(stage, 'share/doc'), { recursive: true });
  fs.copyFileSync(process.execPath, path.join(stage, 'bin/node'));
  fs.chmodSync(path.join(stage, 'bin/node'), 0o755);
  const npmDir = path.join(execFileSync('npm', ['root', '-g'], { encoding: 'utf8' }).trim(), 'npm');
  execFileSync('cp', ['-a', npmDir, path.join(stage, 'lib/node_modules/npm')]);
  fs.symlinkSync('../lib/node_modules/npm/bin/npm-cli.js', path.join(stage, 'bin/npm'));
  const versionDir = path.join(distDir, `v${version}`);
  fs.mkdirSync(versionDir, { recursive: true });
  const tarball = path.join(versionDir, `${name}.tar.gz`);
  execFileSync('sh', [
    '-c',
    `tar -C "$1" -cf - "$2" | gzip -1 > "$3"`,
    'sh',
    path.dirname(stage),
    name,
    tarball,
  ]);
  fs.rmSync(path.join(distDir, 'stage'), { recursive: true, force: true });
  fs.writeFileSync(path.join(versionDir, 'SHASUMS256.txt'), `${VmLab.sha256(tarball)}  ${name}.tar.gz\n`);
  return { version };
}

/**
 * Programs of the OS that our units name besides ours (`ExecReload=/bin/kill -HUP $MAINPID`: procps,
 * on every Debian and Ubuntu image), as stand-ins under a root that `systemd-analyze verify --root`
 * checks: the roots here hold only what the test put there.
 */
export const osProgramsOfUnits = ['bin/kill'] as const;

export function addOsProgramStandIns(root: string): void {
  for (const program of osProgramsOfUnits) {
    const file = path.join(root, program);
    if (fs.existsSync(file)) continue;
    fs.mkdirSync(path.dirname(file), { recursive: true });
    fs.writeFileSync(file, '#!/bin/sh\n', { mode: 0o755 });
  }
}
