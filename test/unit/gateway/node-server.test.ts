/**
 * The gateway served by @hono/node-server over a real socket, as walrus-gateway serves it. On Node
 * the headers every answer carries (nosniff, CORS) go on the Node response and the append answers
 * with a plain header record (gateway/response-headers.ts), a path `app.request()` never takes:
 * these tests check that successes, problems, preflights and SSE tails all still carry them.
 */
import type { AddressInfo } from 'node:net';
import { serve } from '@hono/node-server';
import test from 'ava';
import { request } from 'undici';
import type { GatewayDeps } from '../../../gateway/app.js';
import { makeGateway, unique, useRealNode } from './helpers.js';

const node = useRealNode(test);
const allowedOrigin = 'https://app.example';

async function served(t: { teardown(fn: () => void): void }, tokens: GatewayDeps['tokens'] = []) {
  const g = makeGateway(node(), { corsOrigins: [allowedOrigin], tokens });
  const server = serve({ fetch: g.gateway.app.fetch, port: 0, hostname: '127.0.0.1' });
  await new Promise<void>((resolve) => server.once('listening', () => resolve()));
  t.teardown(() => {
    g.gateway.close();
    server.close();
  });
  const origin = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return { origin };
}

const post = (url: string, body: string, headers: Record<string, string> = {}) =>
  request(url, { method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body });

test('an append answers 201 JSON with Walrus-First-Offset, nosniff and the CORS headers of an allowed origin', async (t) => {
  const { origin } = await served(t);
  const topic = unique('ns-append');
  t.is((await post(`${origin}/v1/topics`, JSON.stringify({ name: topic }))).statusCode, 201);
  for (const expected of [0, 1]) {
    const res = await post(`${origin}/v1/topics/${topic}/records`, '{"records":[{"value":"a"}]}', {
      origin: allowedOrigin,
    });
    const body = (await res.body.json()) as { firstOffset: number };
    t.is(res.statusCode, 201);
    t.is(body.firstOffset, expected);
    t.is(res.headers['content-type'], 'application/json');
    t.is(res.headers['walrus-first-offset'], String(expected));
    t.is(res.headers['x-content-type-options'], 'nosniff');
    t.is(res.headers['access-control-allow-origin'], allowedOrigin);
    t.is(res.headers['vary'], 'Origin');
    t.regex(String(res.headers['access-control-expose-headers']), /Walrus-First-Offset/);
  }
  const stranger = await post(`${origin}/v1/topics/${topic}/records`, '{"records":[{"value":"b"}]}', {
    origin: 'https://elsewhere.example',
  });
  await stranger.body.dump();
  t.is(stranger.statusCode, 201);
  t.is(stranger.headers['access-control-allow-origin'], undefined);
  t.is(stranger.headers['x-content-type-options'], 'nosniff');
});

test('a problem answer keeps nosniff and CORS, and a keep-alive connection does not carry them over', async (t) => {
  const { origin } = await served(t);
  const bad = await post(`${origin}/v1/topics/x/records`, '{not json', { origin: allowedOrigin });
  const problem = (await bad.body.json()) as { code: string };
  t.is(bad.statusCode, 400);
  t.is(problem.code, 'BAD_REQUEST');
  t.is(bad.headers['content-type'], 'application/problem+json');
  t.is(bad.headers['x-content-type-options'], 'nosniff');
  t.is(bad.headers['access-control-allow-origin'], allowedOrigin);
  // The next request on the same pooled connection, without an Origin, gets no CORS headers.
  const missing = await request(`${origin}/v1/topics/${unique('absent')}`);
  await missing.body.dump();
  t.is(missing.statusCode, 404);
  t.is(missing.headers['access-control-allow-origin'], undefined);
  t.is(missing.headers['x-content-type-options'], 'nosniff');
});

test('a preflight is 204 with the allowed methods; an unknown origin gets none', async (t) => {
  const { origin } = await served(t);
  const headers = { origin: allowedOrigin, 'access-control-request-method': 'POST' };
  const ok = await request(`${origin}/v1/topics/t/records`, { method: 'OPTIONS', headers });
  await ok.body.dump();
  t.is(ok.statusCode, 204);
  t.is(ok.headers['access-control-allow-origin'], allowedOrigin);
  t.regex(String(ok.headers['access-control-allow-methods']), /POST/);
  const other = await request(`${origin}/v1/topics/t/records`, {
    method: 'OPTIONS',
    headers: { ...headers, origin: 'https://elsewhere.example' },
  });
  await other.body.dump();
  t.is(other.statusCode, 204);
  t.is(other.headers['access-control-allow-origin'], undefined);
});

test('an SSE tail written to the Node response carries nosniff and CORS', async (t) => {
  const { origin } = await served(t);
  const topic = unique('ns-sse');
  await (await post(`${origin}/v1/topics`, JSON.stringify({ name: topic }))).body.dump();
  const controller = new AbortController();
  const res = await request(`${origin}/v1/topics/${topic}/records?offset=0`, {
    headers: { accept: 'text/event-stream', origin: allowedOrigin },
    signal: controller.signal,
  });
  t.is(res.statusCode, 200);
  t.regex(String(res.headers['content-type']), /^text\/event-stream/);
  t.is(res.headers['x-content-type-options'], 'nosniff');
  t.is(res.headers['access-control-allow-origin'], allowedOrigin);
  controller.abort();
  await res.body.dump().catch(() => {});
});

test('a refusal of the middleware itself (401) carries nosniff and CORS too', async (t) => {
  const { origin } = await served(t, [{ token: 'writer-token-123', scopes: ['write'] }]);
  const res = await post(`${origin}/v1/topics/t/records`, '{"records":[{"value":"a"}]}', {
    origin: allowedOrigin,
  });
  const problem = (await res.body.json()) as { code: string };
  t.is(res.statusCode, 401);
  t.is(problem.code, 'UNAUTHENTICATED');
  t.is(res.headers['x-content-type-options'], 'nosniff');
  t.is(res.headers['access-control-allow-origin'], allowedOrigin);
});
