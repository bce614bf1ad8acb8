/**
 * Shared set-up of the in-process gateway route tests: the Hono app (`app.request()`, no listen)
 * over a real walrus-node process reached through the real WalrusClient. One node per test file
 * (`useRealNode` registers its start and its teardown with ava); tests in a file run concurrently
 * against it, so each names its topics with `unique()`.
 */
import type { TestFn } from 'ava';
import { createApp, type GatewayDeps } from '../../../gateway/app.js';
import type { RequestFor, Upstream, UpstreamCallOptions } from '../../../gateway/upstream.js';
import { WalrusClient } from '../../../node/client/walrus-client.js';
import type { RequestOp, ResponseOf } from '../../../node/protocol/messages.js';
import { startLocalCluster, type TestCluster } from '../../helpers/local-cluster.js';

/**
 * Passes every call to the real client and counts it by op, so tests can assert that a request
 * never reached the cluster, or that many SSE tails shared one upstream reader. It answers nothing
 * itself.
 */
export class CountingUpstream implements Upstream {
  readonly calls = new Map<string, number>();

  constructor(private readonly inner: Upstream) {}

  request<Op extends RequestOp>(req: RequestFor<Op>, options?: UpstreamCallOptions): Promise<ResponseOf<Op>> {
    this.calls.set(req.op, (this.calls.get(req.op) ?? 0) + 1);
    return this.inner.request(req, options);
  }
}

export interface RealNode {
  readonly cluster: TestCluster;
  readonly client: WalrusClient;
}

/**
 * Starts one real walrus-node for the test file before its tests and stops it (removing its data
 * directory) after them, whatever happened. `node()` is the running node, valid inside tests.
 */
export function useRealNode(test: TestFn, env: Record<string, string> = {}): () => RealNode {
  let node: RealNode | undefined;
  test.before(async () => {
    const cluster = await startLocalCluster({ nodeCount: 1, env: { WALRUS_LOG_LEVEL: 'warn', ...env } });
    node = { cluster, client: new WalrusClient({ nodes: cluster.clientAddrs }) };
  });
  test.after.always(async () => {
    await node?.client.close();
    await node?.cluster.destroy();
  });
  return () => {
    if (node === undefined) throw new Error('the test node is not running (test.before failed?)');
    return node;
  };
}

let uniqueCount = 0;

/** A topic (or consumer) name no other test of this process uses: `base-<n>`. */
export function unique(base: string): string {
  uniqueCount += 1;
  return `${base}-${uniqueCount}`;
}

export function makeGateway(node: RealNode, overrides: Partial<GatewayDeps> = {}) {
  const upstream = new CountingUpstream(node.client);
  const gateway = createApp({
    upstream,
    nodes: node.cluster.clientAddrs,
    connectMember: (address) => new WalrusClient({ nodes: [address], retryCountMax: 0 }),
    ...overrides,
  });
  const call = (path: string, init?: RequestInit) => gateway.app.request(path, init);
  const json = (method: string, path: string, body: unknown, headers: Record<string, string> = {}) =>
    gateway.app.request(path, {
      method,
      headers: { 'content-type': 'application/json', ...headers },
      body: JSON.stringify(body),
    });
  return { upstream, gateway, call, json };
}

export async function problemCode(res: Response): Promise<string> {
  if (!res.headers.get('content-type')?.startsWith('application/problem+json')) {
    throw new Error(`not problem+json: ${res.status} ${res.headers.get('content-type')} ${await res.text()}`);
  }
  return ((await res.json()) as { code: string }).code;
}
