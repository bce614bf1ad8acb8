/**
 * A browser's own EventSource (headless Debian chromium driven by playwright-core) tails a topic
 * through a real gateway: one `message` per record with `lastEventId` = offset, and after the
 * gateway closes the stream the browser reconnects by itself with Last-Event-ID and misses nothing.
 */
import fs from 'node:fs';
import test from 'ava';
import { chromiumPath, launchChromium } from '../helpers/chromium.js';
import { createWalrusClient } from '../../sdk/index.js';
import { GatewayProcess, useGatewayOverOneNode } from '../helpers/gateway-process.js';

const running = useGatewayOverOneNode(test);

test('EventSource in headless Chromium tails a topic and resumes by itself', async (t) => {
  t.true(
    fs.existsSync(chromiumPath),
    `install Debian chromium (apt-get install -y chromium) or set CHROMIUM_PATH`,
  );
  const browser = await launchChromium();
  t.teardown(() => browser.close());
  const context = browser.context;
  const client = createWalrusClient({ baseUrl: running.gateway.url });
  await client.createTopic('browser');
  await client.append('browser', ['before-1', 'before-2']);

  const page = await context.newPage();
  // Same origin as the API, so no CORS is involved: the page is the gateway's own /docs.
  await page.goto(`${running.gateway.url}/docs`);
  await page.evaluate(() => {
    const w = globalThis as unknown as {
      received: { id: string; value: string }[];
      opens: number;
      errors: string[];
    };
    w.received = [];
    w.opens = 0;
    w.errors = [];
    const source = new EventSource('/v1/topics/browser/records?offset=0');
    source.onopen = () => {
      w.opens++;
    };
    source.onerror = () => {
      w.errors.push(`${Date.now()} readyState=${source.readyState}`);
    };
    source.onmessage = (event) => {
      w.received.push({ id: event.lastEventId, value: (JSON.parse(event.data) as { value: string }).value });
    };
  });
  const received = () =>
    page.evaluate(() => (globalThis as unknown as { received: { id: string; value: string }[] }).received);
  const waitFor = async (count: number) => {
    for (let i = 0; i < 300; i++) {
      if ((await received()).length >= count) return;
      await new Promise((r) => setTimeout(r, 50));
    }
  };
  await waitFor(2);
  await client.append('browser', ['live-1']);
  await waitFor(3);

  // Stop the gateway gracefully and start a new one on the same port: the browser's own
  // reconnect (retry: 1000) sends Last-Event-ID, and the new gateway continues from there.
  const port = running.gateway.port;
  await running.gateway.stop('SIGTERM');
  await client.append('browser', ['while-down']).catch(() => undefined);
  running.gateway = await GatewayProcess.start({ nodes: running.cluster.clientAddrs, port });
  const writer = createWalrusClient({ baseUrl: running.gateway.url });
  await writer.append('browser', ['after-restart']);
  await waitFor(4);
  const all = await received();
  t.deepEqual(
    all.map((r) => r.id),
    all.map((_, i) => String(i)),
  );
  t.deepEqual(
    all.slice(0, 3).map((r) => r.value),
    ['before-1', 'before-2', 'live-1'],
  );
  t.is(all[all.length - 1]!.value, 'after-restart');
  t.true(
    (await page.evaluate(() => (globalThis as unknown as { opens: number }).opens)) >= 2,
    'the browser reconnected',
  );
});
