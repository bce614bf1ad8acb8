/**
 * Bearer tokens with scopes and topic prefixes, 401/403 as problem+json; public routes stay public;
 * CORS off by default and configurable; the token document is validated at start-up.
 */
import test from 'ava';
import { parseTokens } from '../../../gateway/middleware/auth.js';
import { makeGateway as makeGatewayOver, problemCode, unique, useRealNode } from './helpers.js';

const node = useRealNode(test);
const makeGateway = (overrides: Parameters<typeof makeGatewayOver>[1] = {}) =>
  makeGatewayOver(node(), overrides);

/**
 * Tests share the file's node, so each gets its own topic namespace `ns`: the writer token's prefix
 * is `${ns}app-`, and every topic a test makes starts with `ns`.
 */
function setup() {
  const ns = `${unique('auth')}-`;
  const tokens = [
    { token: 'admin-token-123', scopes: ['admin' as const] },
    { token: 'reader-token-123', scopes: ['read' as const] },
    {
      token: 'app-writer-token',
      scopes: ['read' as const, 'write' as const],
      topicPrefixes: [`${ns}app-`],
    },
  ];
  const g = makeGateway({ tokens });
  const as = (token: string | undefined, path: string, init: RequestInit = {}) =>
    g.call(path, {
      ...init,
      headers: {
        ...(init.headers as Record<string, string>),
        ...(token ? { authorization: `Bearer ${token}` } : {}),
      },
    });
  return { ...g, as, ns };
}

test('no or a wrong token is 401; public routes need none', async (t) => {
  const { as } = setup();
  const none = await as(undefined, '/v1/topics');
  t.is(none.status, 401);
  t.is(await problemCode(none), 'UNAUTHENTICATED');
  t.is((await as('wrong-token-xyz', '/v1/topics')).status, 401);
  t.is((await as(undefined, '/v1/topics', { headers: { authorization: 'Basic abc' } })).status, 401);
  for (const path of ['/v1/health', '/v1/ready', '/metrics', '/openapi.yaml', '/docs']) {
    t.is((await as(undefined, path)).status, 200, path);
  }
});

test('scopes: read cannot write, write cannot administer, admin can do all', async (t) => {
  const { as, ns } = setup();
  const create = (token: string, name: string) =>
    as(token, '/v1/topics', {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ name: `${ns}${name}` }),
    });
  const append = (token: string, topic: string) =>
    as(token, `/v1/topics/${ns}${topic}/records`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: '{"records":[{"value":"v"}]}',
    });
  t.is((await create('admin-token-123', 'app-logs')).status, 201);
  t.is((await create('admin-token-123', 'other')).status, 201);
  const readerCreate = await create('reader-token-123', 'x');
  t.is(readerCreate.status, 403);
  t.is(await problemCode(readerCreate), 'FORBIDDEN');
  t.is((await append('reader-token-123', 'app-logs')).status, 403);
  t.is((await append('app-writer-token', 'app-logs')).status, 201);
  t.is((await create('app-writer-token', 'app-new')).status, 403);
  t.is((await as('reader-token-123', `/v1/topics/${ns}app-logs/records`)).status, 200);
  t.is((await as('admin-token-123', `/v1/topics/${ns}other`, { method: 'DELETE' })).status, 204);
});

test('topic prefixes limit what a token sees and touches', async (t) => {
  const { as, ns } = setup();
  for (const name of ['app-a', 'secret']) {
    const created = await as('admin-token-123', '/v1/topics', {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ name: `${ns}${name}` }),
    });
    t.is(created.status, 201);
  }
  const list = (await (await as('app-writer-token', '/v1/topics')).json()) as { topics: { name: string }[] };
  t.deepEqual(
    list.topics.map((x) => x.name),
    [`${ns}app-a`],
  );
  t.is((await as('app-writer-token', `/v1/topics/${ns}secret`)).status, 403);
  t.is(
    (
      await as('app-writer-token', `/v1/topics/${ns}secret/records`, {
        headers: { accept: 'text/event-stream' },
      })
    ).status,
    403,
  );
  const sse = await as(undefined, `/v1/topics/${ns}app-a/records?access_token=app-writer-token`, {
    headers: { accept: 'text/event-stream' },
  });
  t.is(sse.status, 200);
  await sse.body?.cancel();
});

test('the token document is validated', (t) => {
  t.deepEqual(parseTokens('{"tokens":[{"token":"abcdefgh","scopes":["read"]}]}'), [
    { token: 'abcdefgh', scopes: ['read'] },
  ]);
  for (const bad of [
    '{}',
    '{"tokens":[{"token":"short","scopes":["read"]}]}',
    '{"tokens":[{"token":"abcdefgh","scopes":["root"]}]}',
    'nope',
  ]) {
    t.throws(() => parseTokens(bad), undefined, bad);
  }
});

test('CORS is off by default and answers preflights when configured', async (t) => {
  const closed = makeGateway();
  const res = await closed.call('/v1/topics', { headers: { origin: 'https://app.example' } });
  t.is(res.headers.get('access-control-allow-origin'), null);
  const open = makeGateway({ corsOrigins: ['https://app.example'] });
  const ok = await open.call('/v1/topics', { headers: { origin: 'https://app.example' } });
  t.is(ok.headers.get('access-control-allow-origin'), 'https://app.example');
  const other = await open.call('/v1/topics', { headers: { origin: 'https://evil.example' } });
  t.is(other.headers.get('access-control-allow-origin'), null);
  const preflight = await open.call('/v1/topics/x/records', {
    method: 'OPTIONS',
    headers: { origin: 'https://app.example', 'access-control-request-method': 'POST' },
  });
  t.is(preflight.status, 204);
  t.regex(preflight.headers.get('access-control-allow-headers') ?? '', /Producer-Id/);
  const failing = await open.call('/v1/topics/x', { headers: { origin: 'https://app.example' } });
  t.is(failing.status, 404);
  t.is(
    failing.headers.get('access-control-allow-origin'),
    'https://app.example',
    'errors carry CORS headers too',
  );
  t.is(ok.headers.get('x-content-type-options'), 'nosniff');
});
