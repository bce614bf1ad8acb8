/**
 * The SDK works wherever fetch does: its sources use no Node-only global or module (a browser has
 * no Buffer, process or node:*), fetch is only ever called as a plain function (a browser's fetch
 * throws "Illegal invocation" when called as a method of another object), and values go both ways
 * as strings or Uint8Arrays, as the caller chooses. Against an in-process gateway over a real node;
 * the same SDK bundled and run in Chromium is test/conformance/browser-sdk.test.ts.
 */
import { once } from 'node:events';
import fs from 'node:fs';
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { serve } from '@hono/node-server';
import test from 'ava';
import { createApp } from '../../../gateway/app.js';
import { base64ToBytes, bytesToBase64, createWalrusClient } from '../../../sdk/index.js';
import { repoRoot } from '../../helpers/spec-check.js';
import { useRealNode } from '../gateway/helpers.js';

const realNode = useRealNode(test);

async function startGateway() {
  const gateway = createApp({ upstream: realNode().client });
  const server = serve({ fetch: gateway.app.fetch, port: 0, hostname: '127.0.0.1' }) as Server;
  await once(server, 'listening');
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    close: () => {
      gateway.close();
      server.closeAllConnections();
      server.close();
    },
  };
}

/** A fetch that, like a browser's, refuses to be called as a method of anything but the global. */
function browserLikeFetch(): { fetch: typeof fetch; receivers: unknown[] } {
  const receivers: unknown[] = [];
  const strict = function (this: unknown, input: string | URL | Request, init?: RequestInit) {
    receivers.push(this);
    if (this !== undefined && this !== globalThis)
      throw new TypeError("Failed to execute 'fetch' on 'Window': Illegal invocation");
    return globalThis.fetch(input, init);
  };
  return { fetch: strict as typeof fetch, receivers };
}

function sdkSources(dir = path.join(repoRoot, 'sdk')): string[] {
  return fs.readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    const file = path.join(dir, e.name);
    if (e.isDirectory()) return sdkSources(file);
    return e.name.endsWith('.ts') ? [file] : [];
  });
}

test('sdk/ uses no Node-only global or module', (t) => {
  const violations: string[] = [];
  for (const file of sdkSources()) {
    const code = fs
      .readFileSync(file, 'utf8')
      .replace(/\/\*[\s\S]*?\*\//g, '')
      .replace(/(^|[^:'"`])\/\/.*$/gm, '$1');
    const rel = path.relative(repoRoot, file);
    for (const [pattern, what] of [
      [/\bBuffer\b/, 'Buffer'],
      [/\bprocess\./, 'process'],
      [/\brequire\(/, 'require'],
      [/\b__dirname\b|\bimport\.meta\.dirname\b/, 'a file path'],
      [/\bsetImmediate\b/, 'setImmediate'],
      [
        /from\s+['"]node:|from\s+['"](fs|path|http|https|net|os|crypto|stream|buffer|events|util)['"]/,
        'a Node module',
      ],
    ] as const) {
      if (pattern.test(code)) violations.push(`${rel} uses ${what}`);
    }
  }
  t.true(sdkSources().length >= 8, 'the scan reads the SDK');
  t.deepEqual(violations, []);
});

test('fetch is called as a plain function: tail, reads, appends and the producer work with a browser-strict fetch', async (t) => {
  const g = await startGateway();
  t.teardown(g.close);
  const strict = browserLikeFetch();
  const client = createWalrusClient({
    baseUrl: g.url,
    fetch: strict.fetch,
    retry: { attemptCountMax: 2, delayMsMin: 5, delayMsMax: 10 },
  });
  await client.createTopic('strict');
  await client.append('strict', ['a', 'b']);
  t.deepEqual(
    (await client.read('strict', { offset: 0 })).records.map((r) => r.value),
    ['a', 'b'],
  );
  const producer = client.producer('strict');
  await producer.append('c');
  await producer.close();
  const seen: string[] = [];
  for await (const record of client.tail('strict', {
    from: 0,
    reconnectAttemptCountMax: 2,
    retry: { delayMsMin: 5, delayMsMax: 10 },
  })) {
    seen.push(record.value);
    if (seen.length === 3) break;
  }
  t.deepEqual(seen, ['a', 'b', 'c']);
  t.true(strict.receivers.length >= 4);
  t.true(
    strict.receivers.every((r) => r === undefined || r === globalThis),
    'fetch was never called as a method of an SDK object',
  );
});

test('values: Uint8Array and string in, string or Uint8Array out (base64 decoded for the caller)', async (t) => {
  const g = await startGateway();
  t.teardown(g.close);
  const client = createWalrusClient({ baseUrl: g.url });
  await client.createTopic('values');
  const binary = new Uint8Array([0, 0xff, 0xfe, 0x80, 10, 13]);
  await client.append('values', [
    'héllo ✓',
    binary,
    { value: new Uint8Array([0x68, 0x69]), headers: { k: 'v' } },
  ]);
  const asText = await client.read('values', { offset: 0 });
  t.is(asText.records[0]!.value, 'héllo ✓');
  t.is(asText.records[2]!.value, 'hi');
  t.deepEqual(asText.records[2]!.headers, { k: 'v' });
  t.false('encoding' in asText.records[1]!, 'no wire encoding leaks out');
  const asBytes = await client.read('values', { offset: 0, values: 'bytes' });
  t.true(asBytes.records.every((r) => r.value instanceof Uint8Array));
  t.deepEqual(asBytes.records[0]!.value, new TextEncoder().encode('héllo ✓'));
  t.deepEqual(asBytes.records[1]!.value, binary);
  const consumed = await client.consumerRead('values', 'c', { values: 'bytes' });
  t.deepEqual(consumed.records[1]!.value, binary);
  for await (const record of client.tail('values', { from: 1, values: 'bytes' })) {
    t.deepEqual(record.value, binary);
    break;
  }
});

test('base64 codec: round trip of every byte and of a value longer than one fromCharCode chunk', (t) => {
  const every = Uint8Array.from({ length: 256 }, (_, i) => i);
  t.deepEqual(base64ToBytes(bytesToBase64(every)), every);
  t.is(bytesToBase64(every), globalThis.btoa(String.fromCharCode(...every)));
  const long = Uint8Array.from({ length: 200_003 }, (_, i) => (i * 31) & 0xff);
  t.deepEqual(base64ToBytes(bytesToBase64(long)), long);
  t.is(bytesToBase64(new Uint8Array()), '');
});
