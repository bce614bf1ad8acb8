/**
 * /docs is a real API reference: headless Debian chromium (playwright-core) loads it from a real
 * gateway, every request stays on the gateway's origin (no CDN), and opening an operation shows
 * its parameters and its response schema's fields. /openapi.yaml keeps its path and content type.
 */
import fs from 'node:fs';
import test from 'ava';
import { chromiumPath, launchChromium } from '../helpers/chromium.js';
import { eventually } from '../helpers/eventually.js';
import { useGatewayOverOneNode } from '../helpers/gateway-process.js';

const running = useGatewayOverOneNode(test);

test('/docs renders the spec in Chromium from the gateway alone and shows an operation schema', async (t) => {
  t.true(
    fs.existsSync(chromiumPath),
    'install Debian chromium (apt-get install -y chromium) or set CHROMIUM_PATH',
  );
  const spec = await fetch(`${running.gateway.url}/openapi.yaml`);
  t.is(spec.status, 200);
  t.is(spec.headers.get('content-type'), 'application/yaml; charset=utf-8');
  t.regex(await spec.text(), /^openapi: 3\.1\.0/);

  const browser = await launchChromium();
  t.teardown(() => browser.close());
  const context = browser.context;
  const page = await context.newPage();
  const origins = new Set<string>();
  page.on('request', (request) => {
    const url = new URL(request.url());
    if (url.protocol.startsWith('http')) origins.add(url.origin);
  });
  const errors: string[] = [];
  page.on('pageerror', (error) => errors.push(String(error)));
  await page.goto(`${running.gateway.url}/docs`);
  const operation = page.locator('#operations-consumers-consumerReadNext');
  await operation.waitFor({ timeout: 60_000 });
  await operation.locator('.opblock-summary').first().click();
  // The expanded operation lists its query parameters and its 200 answer's schema fields.
  const body = operation.locator('.opblock-body');
  await body.getByText('waitMs', { exact: true }).first().waitFor({ timeout: 30_000 });
  await body.locator('.tab', { hasText: 'Schema' }).first().click();
  const text = await eventually('the schema of the 200 answer', async () => {
    const shown = await body.innerText();
    return /\blag\b/.test(shown) ? shown : undefined;
  }).catch(async (error: unknown) => {
    t.log(await body.innerText());
    throw error;
  });
  t.regex(text, /\bendOffset\b/);
  t.deepEqual(
    [...origins],
    [running.gateway.url.replace(/\/$/, '')],
    'nothing is fetched from another origin',
  );
  t.deepEqual(errors, []);
});
