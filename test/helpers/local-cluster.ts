/**
 * Test entry point to the local launcher: a cluster in a fresh temp directory on free ports,
 * removed again by `stop()`. Same code as `npm start` (infra/local/launcher.ts).
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type tls from 'node:tls';
import type { ExecutionContext } from 'ava';
import { LocalCluster } from '../../infra/local/launcher.js';

export {
  LocalCluster,
  cliBin,
  freePort,
  gatewayBin,
  nodeBin,
  repoRoot,
  waitForPort,
} from '../../infra/local/launcher.js';

export interface TestCluster extends LocalCluster {
  /** Stops every node and removes the data directory. */
  destroy(): Promise<void>;
}

export function tempDir(prefix: string): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), `walrus-${prefix}-`));
}

export async function startLocalCluster(
  options: {
    nodeCount?: number;
    env?: Record<string, string>;
    dataDir?: string;
    extraArgs?: string[];
    /** TLS to the client ports (nodes with --tls-cert), for the launcher's start-up probe. */
    clientTls?: tls.ConnectionOptions;
  } = {},
): Promise<TestCluster> {
  const dataDir = options.dataDir ?? tempDir('cluster');
  const cluster = await LocalCluster.start({
    nodeCount: options.nodeCount ?? 1,
    dataDir,
    env: { WALRUS_LOG_LEVEL: 'info', ...options.env },
    extraArgs: options.extraArgs ?? [],
    ...(options.clientTls === undefined ? {} : { clientTls: options.clientTls }),
  });
  return Object.assign(cluster, {
    async destroy(): Promise<void> {
      await cluster.stop();
      if (options.dataDir === undefined) fs.rmSync(dataDir, { recursive: true, force: true });
    },
  });
}

/** Runs `run` on a fresh cluster, logs every node's log tail if it fails, and destroys the cluster. */
export async function withCluster(
  t: ExecutionContext,
  options: Parameters<typeof startLocalCluster>[0],
  run: (cluster: TestCluster) => Promise<void>,
): Promise<void> {
  const cluster = await startLocalCluster(options);
  try {
    await run(cluster);
  } catch (error) {
    for (const n of cluster.nodes) t.log(`--- node ${n.spec.nodeId} log tail ---\n${n.logTail.slice(-3000)}`);
    throw error;
  } finally {
    await cluster.destroy();
  }
}
