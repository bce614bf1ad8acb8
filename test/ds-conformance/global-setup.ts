/**
 * vitest globalSetup of the Durable Streams conformance run: 3 real walrus-node processes and a
 * gateway (with `--cors-origins '*'`, as a browser DS client needs), all on free ports in a temp
 * directory, started from the built dist/ (npm run build first); stopped and removed at the end.
 * The gateway's URL reaches the test file through vitest's provide/inject. With DS_BASE_URL set,
 * nothing is started and the suite runs against that server.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import type { TestProject } from 'vitest/node';

type Launcher = typeof import('../../infra/local/launcher.js');
type Gateways = typeof import('../helpers/gateway-process.js');

declare module 'vitest' {
  export interface ProvidedContext {
    dsBaseUrl: string;
  }
}

const repoRoot = path.resolve(import.meta.dirname, '../..');

async function fromDist<T>(file: string): Promise<T> {
  const built = path.join(repoRoot, 'dist', file);
  if (!fs.existsSync(built)) throw new Error(`${built} is missing: run npm run build first`);
  return (await import(pathToFileURL(built).href)) as T;
}

export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  // DS_BASE_URL runs the suite against a server already running (the reference server, say).
  const given = process.env.DS_BASE_URL;
  if (given !== undefined && given !== '') {
    project.provide('dsBaseUrl', given);
    return async () => {};
  }
  const { LocalCluster } = await fromDist<Launcher>('infra/local/launcher.js');
  const { GatewayProcess } = await fromDist<Gateways>('test/helpers/gateway-process.js');
  const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'walrus-ds-conformance-'));
  const cluster = await LocalCluster.start({ nodeCount: 3, dataDir, env: { WALRUS_LOG_LEVEL: 'warn' } });
  let gateway: Awaited<ReturnType<Gateways['GatewayProcess']['start']>> | null = null;
  try {
    gateway = await GatewayProcess.start({ nodes: cluster.clientAddrs, extraArgs: ['--cors-origins', '*'] });
  } catch (error) {
    await cluster.stop();
    fs.rmSync(dataDir, { recursive: true, force: true });
    throw error;
  }
  project.provide('dsBaseUrl', gateway.url);
  return async () => {
    await gateway?.stop();
    await cluster.stop();
    fs.rmSync(dataDir, { recursive: true, force: true });
  };
}
