/**
 * Test helper: real `walrus-gateway` processes (dist/gateway/server.js) on free ports, tracked by
 * PID, stopped with SIGTERM (graceful drain) or killed with SIGKILL. Conformance tests and the
 * gateway benchmark use it beside startLocalCluster().
 */
import { type ChildProcess, spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import type { TestFn } from 'ava';
import { freePort, startLocalCluster, type TestCluster, waitForPort } from './local-cluster.js';

export const repoRoot = path.resolve(import.meta.dirname, '../../..');
export const gatewayBin = path.join(repoRoot, 'dist/gateway/server.js');

/** Generous: a wait for the port, not a sleep; a starved machine (a campaign at nice 19 beside CI) took over 15 s. */
const startTimeoutMs = 60_000;
const stopTimeoutMs = 8_000;
const logTailBytesMax = 64 * 1024;

export interface GatewayProcessOptions {
  readonly nodes: readonly string[];
  readonly port?: number;
  readonly extraArgs?: readonly string[];
  readonly env?: Readonly<Record<string, string>>;
}

export class GatewayProcess {
  logTail = '';
  private constructor(
    readonly child: ChildProcess,
    readonly port: number,
  ) {}

  get url(): string {
    return `http://127.0.0.1:${this.port}`;
  }

  get alive(): boolean {
    return this.child.exitCode === null && this.child.signalCode === null;
  }

  /**
   * Starts a gateway and resolves when its port accepts connections (a free port when none is
   * given). Not by reading its output: what it logs depends on WALRUS_LOG_LEVEL.
   */
  static async start(options: GatewayProcessOptions): Promise<GatewayProcess> {
    if (!fs.existsSync(gatewayBin)) throw new Error(`${gatewayBin} is missing: run npm run build first`);
    const port = options.port === undefined || options.port === 0 ? await freePort() : options.port;
    const args = [
      gatewayBin,
      '--port',
      String(port),
      '--nodes',
      options.nodes.join(','),
      ...(options.extraArgs ?? []),
    ];
    const child = spawn(process.execPath, args, {
      env: { ...process.env, WALRUS_LOG_LEVEL: 'warn', ...options.env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let tail = '';
    const early = (chunk: Buffer): void => {
      tail = (tail + chunk.toString('utf8')).slice(-logTailBytesMax);
    };
    child.stdout!.on('data', early);
    child.stderr!.on('data', early);
    try {
      await waitForPort(port, startTimeoutMs, () => child.exitCode === null && child.signalCode === null);
    } catch (error) {
      child.kill('SIGKILL');
      throw new Error(`gateway did not start: ${(error as Error).message}:\n${tail}`);
    } finally {
      child.stdout!.off('data', early);
      child.stderr!.off('data', early);
    }
    const gateway = new GatewayProcess(child, port);
    gateway.logTail = tail;
    const keep = (chunk: Buffer): void => {
      gateway.logTail = (gateway.logTail + chunk.toString('utf8')).slice(-logTailBytesMax);
    };
    child.stdout!.on('data', keep);
    child.stderr!.on('data', keep);
    return gateway;
  }

  /** SIGTERM (graceful: drains SSE) or SIGKILL; waits for the exit. Returns the exit code or signal. */
  async stop(signal: NodeJS.Signals = 'SIGTERM'): Promise<number | string | null> {
    if (!this.alive) return this.child.exitCode ?? this.child.signalCode;
    const exited = new Promise<number | string | null>((resolve) =>
      this.child.once('exit', (code, sig) => resolve(code ?? sig)),
    );
    this.child.kill(signal);
    const timer = setTimeout(() => this.child.kill('SIGKILL'), stopTimeoutMs);
    const result = await exited;
    clearTimeout(timer);
    return result;
  }

  kill(): Promise<number | string | null> {
    return this.stop('SIGKILL');
  }
}

/** A walrus-node with a gateway in front of it, for a test file (`useGatewayOverOneNode`). */
export interface GatewayOverOneNode {
  cluster: TestCluster;
  /** Replaceable by a test that restarts its gateway; the one here at the end is stopped. */
  gateway: GatewayProcess;
}

/** Starts one walrus-node and one gateway before the file's tests and stops both after them. */
export function useGatewayOverOneNode(test: TestFn): GatewayOverOneNode {
  const running = {} as GatewayOverOneNode;
  test.before(async () => {
    running.cluster = await startLocalCluster({ nodeCount: 1 });
    running.gateway = await GatewayProcess.start({ nodes: running.cluster.clientAddrs });
  });
  test.after.always(async () => {
    await running.gateway?.stop();
    await running.cluster?.destroy();
  });
  return running;
}
