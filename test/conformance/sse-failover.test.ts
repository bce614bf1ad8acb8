/**
 * Stateless gateways: a client tailing through one gateway that is killed (SIGKILL) mid-stream
 * resumes through another with nothing lost or repeated; a gracefully stopped gateway (SIGTERM)
 * drains its tails with a resumable event. Real node, real gateway processes, the SDK's tail().
 */
import test from 'ava';
import { createWalrusClient } from '../../sdk/index.js';
import { GatewayProcess } from '../helpers/gateway-process.js';
import { startLocalCluster, type TestCluster } from '../helpers/local-cluster.js';

let cluster: TestCluster;
const gateways: GatewayProcess[] = [];

test.before(async () => {
  cluster = await startLocalCluster({ nodeCount: 1 });
});

test.after.always(async () => {
  for (const g of gateways) await g.stop();
  await cluster?.destroy();
});

/** A fetch that plays load balancer: each request goes to the first gateway still alive. */
function balancedFetch(pool: GatewayProcess[]): typeof fetch {
  return (input, init) => {
    const target = pool.find((g) => g.alive);
    if (target === undefined) return Promise.reject(new Error('no gateway alive'));
    const url = new URL(typeof input === 'string' ? input : input instanceof URL ? input.href : input.url);
    url.port = String(target.port);
    return fetch(url, init);
  };
}

async function tailAcross(
  t: import('ava').ExecutionContext,
  stop: (g: GatewayProcess) => Promise<unknown>,
  topic: string,
) {
  const a = await GatewayProcess.start({ nodes: cluster.clientAddrs });
  const b = await GatewayProcess.start({ nodes: cluster.clientAddrs });
  gateways.push(a, b);
  const writer = createWalrusClient({ baseUrl: b.url });
  await writer.createTopic(topic);
  const total = 300;
  const reader = createWalrusClient({
    baseUrl: a.url,
    fetch: balancedFetch([a, b]),
    retry: { delayMsMin: 20 },
  });
  const seen: number[] = [];
  const controller = new AbortController();
  const tailing = (async () => {
    for await (const record of reader.tail(topic, {
      from: 0,
      signal: controller.signal,
      retry: { delayMsMin: 20 },
    })) {
      seen.push(record.offset);
      t.is(record.value, `m${record.offset}`);
      if (seen.length === total) break;
    }
  })();
  for (let i = 0; i < total; i++) {
    await writer.append(topic, [`m${i}`]);
    if (i === total / 3) {
      // Make sure the tail really is mid-stream on gateway A before it goes away.
      while (seen.length < 10) await new Promise((r) => setTimeout(r, 10));
      await stop(a);
    }
  }
  const timer = setTimeout(() => controller.abort(), 30_000);
  await tailing;
  clearTimeout(timer);
  t.false(a.alive);
  t.deepEqual(
    seen,
    Array.from({ length: total }, (_, i) => i),
  );
}

test('a tail resumes through another gateway after SIGKILL: nothing lost, nothing repeated', async (t) => {
  await tailAcross(t, (g) => g.kill(), 'failover-kill');
});

test('a gateway stopped with SIGTERM drains its tails and they resume elsewhere', async (t) => {
  await tailAcross(t, (g) => g.stop('SIGTERM'), 'failover-term');
});
