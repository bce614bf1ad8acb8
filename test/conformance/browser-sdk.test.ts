/**
 * The SDK in a browser: sdk/ bundled by esbuild for the browser platform and run in headless Debian
 * chromium (playwright-core), from a page on another origin than the gateway (started with
 * --cors-origins for that page's origin), over three real walrus-nodes. The page creates a topic,
 * appends bytes and strings, reads them back both ways, tails three records, keeps tailing across
 * a gateway restart with nothing lost or repeated, and runs the producer through a SIGKILLed
 * gateway: every record once, in order.
 */
import { once } from 'node:events';
import fs from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import test from 'ava';
import { build } from 'esbuild';
import type { BrowserContext, Page } from 'playwright-core';
import type * as Sdk from '../../sdk/index.js';
import { createWalrusClient } from '../../sdk/index.js';
import { type Chromium, chromiumPath, launchChromium } from '../helpers/chromium.js';
import { eventually } from '../helpers/eventually.js';
import { GatewayProcess, repoRoot } from '../helpers/gateway-process.js';
import { startLocalCluster, type TestCluster } from '../helpers/local-cluster.js';

/** What the page keeps on its global object between evaluate() calls. */
interface PageState {
  WalrusSdk: typeof Sdk;
  client: Sdk.WalrusHttpClient;
  tailed: { offset: number; value: string }[];
  tailError: string | undefined;
  fetchFailures: number;
  produced: { acked: number; offsets: number[]; error: string | undefined; done: boolean };
}

let cluster: TestCluster;
let gateway: GatewayProcess;
let pageServer: http.Server;
let pageOrigin: string;
let context: BrowserContext;
let browser: Chromium | undefined;

async function startGateway(port?: number): Promise<GatewayProcess> {
  return GatewayProcess.start({
    nodes: cluster.clientAddrs,
    ...(port === undefined ? {} : { port }),
    extraArgs: ['--cors-origins', pageOrigin],
  });
}

test.before(async () => {
  const bundle = await build({
    entryPoints: [path.join(repoRoot, 'sdk/index.ts')],
    bundle: true,
    platform: 'browser',
    format: 'iife',
    globalName: 'WalrusSdk',
    target: 'chrome120',
    write: false,
    logLevel: 'silent',
  });
  const sdkJs = bundle.outputFiles[0]!.text;
  pageServer = http.createServer((req, res) => {
    if (req.url === '/sdk.js') {
      res.writeHead(200, { 'content-type': 'text/javascript' }).end(sdkJs);
      return;
    }
    res
      .writeHead(200, { 'content-type': 'text/html' })
      .end('<!doctype html><title>walrus sdk</title><script src="/sdk.js"></script>');
  });
  pageServer.listen(0, '127.0.0.1');
  await once(pageServer, 'listening');
  pageOrigin = `http://127.0.0.1:${(pageServer.address() as AddressInfo).port}`;
  cluster = await startLocalCluster({ nodeCount: 3 });
  gateway = await startGateway();
  browser = await launchChromium();
  context = browser.context;
});

test.after.always(async () => {
  await browser?.close();
  await gateway?.stop();
  await cluster?.destroy();
  pageServer?.closeAllConnections();
  pageServer?.close();
});

async function openPage(): Promise<Page> {
  const page = await context.newPage();
  await page.goto(pageOrigin);
  await page.evaluate((baseUrl) => {
    const w = globalThis as unknown as PageState;
    let failures = 0;
    w.fetchFailures = 0;
    w.client = w.WalrusSdk.createWalrusClient({
      baseUrl,
      retry: { attemptCountMax: 4, delayMsMin: 50, delayMsMax: 500 },
      // The page's own fetch, unbound, counting the failures the gateway's death causes.
      fetch: (input, init) =>
        fetch(input, init).catch((error: unknown) => {
          failures++;
          w.fetchFailures = failures;
          throw error;
        }),
    });
  }, gateway.url);
  return page;
}

test.serial(
  'the bundled SDK in Chromium, cross-origin: create, append bytes and strings, read, tail 3',
  async (t) => {
    t.true(
      fs.existsSync(chromiumPath),
      'install Debian chromium (apt-get install -y chromium) or set CHROMIUM_PATH',
    );
    const page = await openPage();
    t.not(
      new URL(page.url()).origin,
      new URL(gateway.url).origin,
      'the page and the gateway are two origins',
    );
    const result = await page.evaluate(async () => {
      const w = globalThis as unknown as PageState;
      const client = w.client;
      await client.createTopic('browser-sdk');
      const appended = await client.append('browser-sdk', [
        'text ✓',
        new Uint8Array([0, 255, 1, 128]),
        { value: new Uint8Array([104, 105]), headers: { from: 'browser' } },
      ]);
      const asText = await client.read('browser-sdk', { offset: 0 });
      const asBytes = await client.read('browser-sdk', { offset: 0, values: 'bytes' });
      const tailed: string[] = [];
      for await (const record of client.tail('browser-sdk', { from: 0 })) {
        tailed.push(`${record.offset}:${record.value}`);
        if (tailed.length === 3) break;
      }
      return {
        count: appended.count,
        text: asText.records.map((r) => r.value),
        headers: asText.records[2]?.headers,
        bytes: asBytes.records.map((r) =>
          r.value instanceof Uint8Array ? Array.from(r.value) : 'not bytes',
        ),
        tailed,
        hasBuffer: 'Buffer' in globalThis,
      };
    });
    t.false(result.hasBuffer, 'a browser has no Buffer');
    t.is(result.count, 3);
    t.is(result.text[0], 'text ✓');
    t.is(result.text[2], 'hi');
    t.deepEqual(result.headers, { from: 'browser' });
    t.deepEqual(result.bytes, [Array.from(new TextEncoder().encode('text ✓')), [0, 255, 1, 128], [104, 105]]);
    t.deepEqual(result.tailed, ['0:text ✓', `1:${result.text[1]}`, '2:hi']);
    await page.close();
  },
);

test.serial('tail() in Chromium survives a gateway restart: nothing lost, nothing repeated', async (t) => {
  const page = await openPage();
  const writer = createWalrusClient({ baseUrl: gateway.url });
  await writer.createTopic('browser-tail');
  await writer.append('browser-tail', ['a-0', 'a-1', 'a-2']);
  await page.evaluate(() => {
    const w = globalThis as unknown as PageState;
    w.tailed = [];
    void (async () => {
      try {
        for await (const record of w.client.tail('browser-tail', {
          from: 0,
          reconnectAttemptCountMax: 60,
          retry: { delayMsMin: 50, delayMsMax: 500 },
        })) {
          w.tailed.push({ offset: record.offset, value: record.value });
          if (w.tailed.length === 8) break;
        }
      } catch (error) {
        w.tailError = String(error);
      }
    })();
  });
  const tailed = () => page.evaluate(() => (globalThis as unknown as PageState).tailed);
  await eventually('the page tails the first records', async () =>
    (await tailed()).length >= 3 ? true : undefined,
  );
  const port = gateway.port;
  await gateway.kill();
  gateway = await startGateway(port);
  const after = createWalrusClient({ baseUrl: gateway.url });
  await after.append('browser-tail', ['b-0', 'b-1']);
  await after.append('browser-tail', ['b-2', 'b-3', 'b-4']);
  await eventually('the page tails every record', async () =>
    (await tailed()).length >= 8 ? true : undefined,
  );
  const seen = await tailed();
  t.is(await page.evaluate(() => (globalThis as unknown as PageState).tailError), undefined);
  t.deepEqual(
    seen.map((r) => r.offset),
    [0, 1, 2, 3, 4, 5, 6, 7],
  );
  t.deepEqual(
    seen.map((r) => r.value),
    ['a-0', 'a-1', 'a-2', 'b-0', 'b-1', 'b-2', 'b-3', 'b-4'],
  );
  await page.close();
});

test.serial(
  'the producer in Chromium through a SIGKILLed gateway: every record once, in order',
  async (t) => {
    const page = await openPage();
    const total = 600;
    await createWalrusClient({ baseUrl: gateway.url }).createTopic('browser-producer');
    await page.evaluate((count) => {
      const w = globalThis as unknown as PageState;
      w.produced = { acked: 0, offsets: [], error: undefined, done: false };
      const producer = w.client.producer('browser-producer', {
        lingerMs: 2,
        batchRecordCountMax: 10,
        retry: { attemptCountMax: 60, delayMsMin: 50, delayMsMax: 500 },
      });
      void (async () => {
        try {
          const acks: Promise<void>[] = [];
          for (let i = 0; i < count; i++) {
            const ticket = await producer.append(i % 2 === 0 ? `p-${i}` : new TextEncoder().encode(`p-${i}`));
            acks.push(
              ticket.ack().then((ack) => {
                w.produced.acked++;
                w.produced.offsets[i] = ack.offset;
              }),
            );
          }
          await producer.close();
          await Promise.all(acks);
        } catch (error) {
          w.produced.error = String(error);
        }
        w.produced.done = true;
      })();
    }, total);
    const produced = () => page.evaluate(() => (globalThis as unknown as PageState).produced);
    await eventually('the producer has acks', async () =>
      (await produced()).acked >= 50 ? true : undefined,
    );
    const port = gateway.port;
    await gateway.kill();
    await eventually('the page sees the gateway gone', async () =>
      (await page.evaluate(() => (globalThis as unknown as PageState).fetchFailures)) > 0 ? true : undefined,
    );
    gateway = await startGateway(port);
    const final = await eventually(
      'the producer is done',
      async () => {
        const p = await produced();
        return p.done ? p : undefined;
      },
      120_000,
    );
    t.is(final.error, undefined);
    t.is(final.acked, total);
    t.deepEqual(
      final.offsets,
      Array.from({ length: total }, (_, i) => i),
    );
    const reader = createWalrusClient({ baseUrl: gateway.url });
    const values: string[] = [];
    let endOffset = -1;
    for (let offset = 0; offset < total; ) {
      const page = await reader.read('browser-producer', { offset, limit: 1000 });
      values.push(...page.records.map((r) => r.value));
      offset = page.nextOffset;
      endOffset = page.endOffset ?? endOffset; // absent from immutable (sealed-segment) reads
      if (page.records.length === 0) break;
    }
    t.deepEqual(
      values,
      Array.from({ length: total }, (_, i) => `p-${i}`),
    );
    t.is(endOffset, total, 'no record appended twice');
    await page.close();
  },
);
