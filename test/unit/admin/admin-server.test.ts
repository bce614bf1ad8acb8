/**
 * The admin port's HTTP contract on a real socket: /health, /ready (503 problem+json with the
 * reasons, then 200), /metrics with Prometheus's content type, HEAD, and typed errors for unknown
 * routes, other methods, a failing scrape and too many scrapes at once.
 */
import test from 'ava';
import { AdminServer, adminServerLimits } from '../../../node/admin/admin-server.js';

async function withServer(
  options: Partial<ConstructorParameters<typeof AdminServer>[0]>,
  run: (base: string) => Promise<void>,
): Promise<void> {
  const server = new AdminServer({
    host: '127.0.0.1',
    port: 0,
    nodeId: 7,
    scrape: async () => ({ text: 'walrus_up 1\n', contentType: 'text/plain; version=0.0.4; charset=utf-8' }),
    readiness: () => ({ ready: true, reasons: [] }),
    ...options,
  });
  const { port } = await server.listen();
  try {
    await run(`http://127.0.0.1:${port}`);
  } finally {
    await server.close();
  }
}

test('/health answers 200 with the node id; /metrics serves the exposition text', async (t) => {
  await withServer({}, async (base) => {
    const health = await fetch(`${base}/health`);
    t.is(health.status, 200);
    t.deepEqual(await health.json(), { status: 'ok', node_id: 7 });
    const metrics = await fetch(`${base}/metrics`);
    t.is(metrics.status, 200);
    t.regex(metrics.headers.get('content-type') ?? '', /^text\/plain; version=0\.0\.4/);
    t.is(await metrics.text(), 'walrus_up 1\n');
    const head = await fetch(`${base}/metrics`, { method: 'HEAD' });
    t.is(head.status, 200);
    t.is(await head.text(), '');
  });
});

test('/ready is a 503 problem naming what is missing, then 200', async (t) => {
  let reasons = ['its topics are not recovered yet', 'it knows no Raft leader'];
  await withServer({ readiness: () => ({ ready: reasons.length === 0, reasons }) }, async (base) => {
    const notReady = await fetch(`${base}/ready`);
    t.is(notReady.status, 503);
    t.is(notReady.headers.get('content-type'), 'application/problem+json');
    const body = (await notReady.json()) as { code: string; status: number; detail: string };
    t.is(body.code, 'UNAVAILABLE');
    t.is(body.status, 503);
    t.regex(body.detail, /node 7 is not ready: its topics are not recovered yet; it knows no Raft leader/);
    reasons = [];
    const ready = await fetch(`${base}/ready`);
    t.is(ready.status, 200);
    t.deepEqual(await ready.json(), { status: 'ready', node_id: 7 });
  });
});

test('unknown routes, other methods and failed scrapes are typed problems', async (t) => {
  await withServer(
    {
      scrape: async () => {
        throw new Error('disk gone');
      },
    },
    async (base) => {
      const missing = await fetch(`${base}/v1/topics`);
      t.is(missing.status, 404);
      t.is(((await missing.json()) as { code: string }).code, 'NOT_FOUND');
      const post = await fetch(`${base}/metrics`, { method: 'POST', body: 'x' });
      t.is(post.status, 405);
      t.is(post.headers.get('allow'), 'GET, HEAD');
      t.is(((await post.json()) as { code: string }).code, 'METHOD_NOT_ALLOWED');
      const failed = await fetch(`${base}/metrics`);
      t.is(failed.status, 500);
      const body = (await failed.json()) as { code: string; detail: string };
      t.is(body.code, 'INTERNAL');
      t.regex(body.detail, /disk gone/);
    },
  );
});

test('scrapes in flight are bounded: one more is answered BUSY', async (t) => {
  const release: (() => void)[] = [];
  await withServer(
    {
      scrape: () =>
        new Promise((resolve) => {
          release.push(() => resolve({ text: 'x 1\n', contentType: 'text/plain' }));
        }),
    },
    async (base) => {
      const held = Array.from({ length: adminServerLimits.scrapeInFlightMax }, () =>
        fetch(`${base}/metrics`),
      );
      while (release.length < adminServerLimits.scrapeInFlightMax)
        await new Promise((r) => setTimeout(r, 10));
      const refused = await fetch(`${base}/metrics`);
      t.is(((await refused.json()) as { code: string }).code, 'BUSY');
      t.is(refused.headers.get('retry-after'), '1');
      for (const r of release) r();
      for (const res of await Promise.all(held)) t.is(res.status, 200);
    },
  );
});
