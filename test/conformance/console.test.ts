/**
 * The web console at /ui, driven in headless Debian chromium (playwright-core) against a real
 * 3-node cluster behind a real gateway with tokens: the page asks for a token, then shows the
 * three nodes and the leader, creates a topic, tails it over SSE, appends through its append box
 * and sees the record arrive in the tail. Saves a screenshot in a temp dir and prints its path.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import test from 'ava';
import { chromiumPath, launchChromium } from '../helpers/chromium.js';
import { eventually } from '../helpers/eventually.js';
import { GatewayProcess } from '../helpers/gateway-process.js';
import { startLocalCluster, type TestCluster, tempDir } from '../helpers/local-cluster.js';

/** The page's document, typed just enough for the checks below (this package has no DOM types). */
interface PageElement {
  readonly textContent: string | null;
  readonly dataset: Record<string, string | undefined>;
}
interface PageDocument {
  querySelector(selector: string): PageElement | null;
  querySelectorAll(selector: string): { readonly length: number };
}

const token = 'console-admin-token';
const waitMs = 30_000;

let cluster: TestCluster;
let gateway: GatewayProcess;
let dir: string;

test.before(async () => {
  dir = tempDir('console');
  const tokens = path.join(dir, 'tokens.json');
  fs.writeFileSync(tokens, JSON.stringify({ tokens: [{ token, scopes: ['admin'] }] }));
  cluster = await startLocalCluster({ nodeCount: 3 });
  gateway = await GatewayProcess.start({ nodes: cluster.clientAddrs, extraArgs: ['--tokens-file', tokens] });
});

test.after.always(async () => {
  await gateway?.stop();
  await cluster?.destroy();
});

test('the console shows the cluster, creates a topic, appends and tails it', async (t) => {
  t.true(
    fs.existsSync(chromiumPath),
    'install Debian chromium (apt-get install -y chromium) or set CHROMIUM_PATH',
  );
  const browser = await launchChromium();
  t.teardown(() => browser.close());
  const context = browser.context;
  const page = await context.newPage();
  page.setDefaultTimeout(waitMs);
  const pageErrors: string[] = [];
  page.on('pageerror', (error) => pageErrors.push(String(error)));
  const external: string[] = [];
  page.on('request', (request) => {
    if (!request.url().startsWith(gateway.url)) external.push(request.url());
  });

  await page.goto(`${gateway.url}/ui`);
  // The gateway has tokens: the page asks for one and shows nothing of the cluster without it.
  await page.locator('#token-form').waitFor({ state: 'visible' });
  t.is(await page.locator('#nodes tbody tr').count(), 0);
  await page.fill('#token', token);
  await page.click('#token-form button[type=submit]');

  await page.locator('#token-form').waitFor({ state: 'hidden' });
  // Three nodes, one of them the leader (the cluster may still be electing: wait for it).
  await page.waitForFunction(
    () =>
      (globalThis as unknown as { document: PageDocument }).document.querySelectorAll('#nodes tbody tr')
        .length === 3 &&
      (globalThis as unknown as { document: PageDocument }).document.querySelectorAll(
        '#nodes tbody tr[data-role="leader"]',
      ).length === 1,
    undefined,
    { timeout: waitMs },
  );
  const leaderText = await page.locator('#leader').textContent();
  t.regex(leaderText ?? '', /^node [1-3]$/);
  const roles = await page
    .locator('#nodes tbody tr')
    .evaluateAll((rows) => rows.map((r) => (r as unknown as PageElement).dataset['role']));
  t.deepEqual([...roles].sort(), ['follower', 'follower', 'leader']);
  t.regex((await page.locator('#term').textContent()) ?? '', /^\d+$/);
  t.regex((await page.locator('#disk').textContent()) ?? '', /free on node/);
  // Every member's own disk and reachability, whichever node answered (GET /v1/cluster `members`).
  await page.waitForFunction(
    () =>
      (globalThis as unknown as { document: PageDocument }).document.querySelectorAll(
        '#nodes tbody tr[data-reachable="true"]',
      ).length === 3,
    undefined,
    { timeout: waitMs },
  );
  const disks = await page.locator('#nodes tbody td.disk').allTextContents();
  t.is(disks.length, 3);
  for (const disk of disks) t.regex(disk, /^[\d.]+ (B|KiB|MiB|GiB|TiB)$/);

  // Create a topic through the form: it appears in the topic table with its segments.
  await page.fill('#create-name', 'console-topic');
  await page.click('#create-form button[type=submit]');
  await page.locator('#topic-table tbody tr[data-topic="console-topic"]').waitFor();
  await page.locator('#topic-detail:not([hidden]) #segments tbody tr').first().waitFor();
  t.regex((await page.locator('#create-result').textContent()) ?? '', /created console-topic/);

  // Tail it from new records, append through the box, watch the record arrive over SSE.
  await page.selectOption('#tail-topic', 'console-topic');
  await page.click('#tail-start');
  await page.waitForFunction(
    () =>
      (globalThis as unknown as { document: PageDocument }).document.querySelector('#tail-state')
        ?.textContent === 'tailing console-topic',
  );
  await page.fill('#append-value', 'hello from the console');
  await page.click('#append-form button[type=submit]');
  await page.locator('#records tbody tr[data-offset="0"]').waitFor();
  t.is(
    await page.locator('#records tbody tr[data-offset="0"] td.value').textContent(),
    'hello from the console',
  );
  t.regex((await page.locator('#append-result').textContent()) ?? '', /at offset 0/);

  // The record is really in the cluster, read back through the API with the same token.
  const read = await eventually('the record through the API', async () => {
    const res = await fetch(`${gateway.url}/v1/topics/console-topic/records?offset=0`, {
      headers: { authorization: `Bearer ${token}` },
    });
    const body = (await res.json()) as { records?: { value: string }[] };
    return body.records?.length ? body.records : undefined;
  });
  t.is(read[0]?.value, 'hello from the console');

  // The topic's details follow the append (refreshed every 2 s).
  await page.waitForFunction(
    () =>
      (globalThis as unknown as { document: PageDocument }).document.querySelector('#detail-offsets')
        ?.textContent === '0–1',
  );

  const screenshot = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'walrus-console-')), 'console.png');
  await page.screenshot({ path: screenshot, fullPage: true });
  t.true(fs.statSync(screenshot).size > 0);
  t.log(`screenshot: ${screenshot}`);
  process.stdout.write(`console screenshot: ${screenshot}\n`);
  t.deepEqual(pageErrors, [], 'no script errors');
  t.deepEqual(external, [], 'nothing is fetched from anywhere but the gateway');
});

test('the console files are served with a strict CSP and need no token', async (t) => {
  for (const [file, type] of [
    ['/ui', /text\/html/],
    ['/ui/console.js', /text\/javascript/],
    ['/ui/console.css', /text\/css/],
  ] as const) {
    const res = await fetch(`${gateway.url}${file}`);
    t.is(res.status, 200, file);
    t.regex(res.headers.get('content-type') ?? '', type);
    t.regex(res.headers.get('content-security-policy') ?? '', /script-src 'self'/);
    await res.arrayBuffer();
  }
  const api = await fetch(`${gateway.url}/v1/cluster`);
  t.is(api.status, 401, 'the API behind it still needs the token');
  await api.arrayBuffer();
});
