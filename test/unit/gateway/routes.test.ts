/**
 * Every route in-process (`app.request()`) over the MemoryUpstream contract implementation; each
 * answer is also checked against openapi.yaml's response schema for that operation and status.
 */
import test from 'ava';
import { checkResponse } from './spec-check.js';
import { makeGateway, problemCode } from './helpers.js';

test('health, ready, cluster and cluster metrics', async (t) => {
  const { call } = makeGateway();
  const health = await call('/v1/health');
  t.is(health.status, 200);
  t.deepEqual(await checkResponse('getHealth', health), []);
  const ready = await call('/v1/ready');
  t.deepEqual(await ready.json(), { ready: true, nodeId: 1 });
  const cluster = await call('/v1/cluster');
  t.deepEqual(await checkResponse('getCluster', cluster), []);
  t.deepEqual(((await cluster.json()) as { nodes: unknown }).nodes, [{ address: '127.0.0.1:9091' }]);
  const metrics = await call('/v1/cluster/metrics');
  t.is(((await metrics.json()) as { state: string }).state, 'Leader');
});

test('create a topic: 201, then 200 with the same settings, 409 with others', async (t) => {
  const { json } = makeGateway();
  const created = await json('POST', '/v1/topics', { name: 'logs' });
  t.is(created.status, 201);
  t.is(created.headers.get('location'), '/v1/topics/logs');
  t.deepEqual(await checkResponse('createTopic', created), []);
  const again = await json('POST', '/v1/topics', { name: 'logs' });
  t.is(again.status, 200);
  t.deepEqual(await checkResponse('createTopic', again), []);
  const other = await json('POST', '/v1/topics', { name: 'logs', retention: { retentionMs: 1000 } });
  t.is(other.status, 409);
  t.is(await problemCode(other), 'TOPIC_EXISTS');
});

test('list, describe, configure and delete topics', async (t) => {
  const { json, call } = makeGateway();
  await json('POST', '/v1/topics', { name: 'a' });
  await json('POST', '/v1/topics', { name: 'b', retention: { retentionBytes: 4096 } });
  const list = await call('/v1/topics');
  t.deepEqual(await checkResponse('listTopics', list), []);
  t.deepEqual(((await list.json()) as { topics: { name: string }[] }).topics.map((x) => x.name).sort(), [
    'a',
    'b',
  ]);
  const described = await call('/v1/topics/b');
  t.deepEqual(await checkResponse('describeTopic', described), []);
  const topic = (await described.json()) as { retention: unknown; segments: unknown[] };
  t.deepEqual(topic.retention, { retentionMs: null, retentionBytes: 4096 });
  t.is(topic.segments.length, 1);
  const patched = await json('PATCH', '/v1/topics/b', { retention: { retentionMs: 60000 } });
  t.is(patched.status, 200);
  t.deepEqual(await checkResponse('configureTopic', patched), []);
  t.deepEqual(((await patched.json()) as { retention: unknown }).retention, {
    retentionMs: 60000,
    retentionBytes: 4096,
  });
  t.is((await call('/v1/topics/b', { method: 'DELETE' })).status, 204);
  const gone = await call('/v1/topics/b');
  t.is(gone.status, 404);
  t.is(await problemCode(gone), 'TOPIC_NOT_FOUND');
  t.is(await problemCode(await call('/v1/topics/b', { method: 'DELETE' })), 'TOPIC_NOT_FOUND');
});

test('append a JSON batch (text and base64) and read it back', async (t) => {
  const { json, call } = makeGateway();
  await json('POST', '/v1/topics', { name: 'logs' });
  const appended = await json('POST', '/v1/topics/logs/records', {
    records: [
      { value: 'hello', headers: { source: 'test' } },
      { value: Buffer.from([0xff, 0x00, 0x80]).toString('base64'), encoding: 'base64' },
    ],
  });
  t.is(appended.status, 201);
  t.deepEqual(await checkResponse('appendRecords', appended), []);
  const result = (await appended.json()) as {
    firstOffset: number;
    lastOffset: number;
    count: number;
    duplicate: boolean;
  };
  t.like(result, { firstOffset: 0, lastOffset: 1, count: 2, duplicate: false });
  t.is(appended.headers.get('walrus-first-offset'), '0');

  const read = await call('/v1/topics/logs/records?offset=0&limit=10');
  t.is(read.status, 200);
  t.deepEqual(await checkResponse('readRecords', read), []);
  t.is(read.headers.get('walrus-next-offset'), '2');
  const body = (await read.json()) as {
    records: { offset: number; value: string; encoding?: string; headers: object }[];
  };
  t.is(body.records.length, 2);
  t.like(body.records[0], { offset: 0, value: 'hello', headers: { source: 'test' } });
  t.is(body.records[0]!.encoding, undefined);
  t.like(body.records[1], {
    offset: 1,
    encoding: 'base64',
    value: Buffer.from([0xff, 0x00, 0x80]).toString('base64'),
  });
});

test('a raw body of another content type is one record with its content type kept', async (t) => {
  const { json, call } = makeGateway();
  await json('POST', '/v1/topics', { name: 'raw' });
  const res = await call('/v1/topics/raw/records', {
    method: 'POST',
    headers: { 'content-type': 'text/plain' },
    body: 'plain text',
  });
  t.is(res.status, 201);
  const read = (await (await call('/v1/topics/raw/records')).json()) as {
    records: { value: string; headers: object }[];
  };
  t.deepEqual(read.records[0]!.headers, { 'content-type': 'text/plain' });
  t.is(read.records[0]!.value, 'plain text');
});

test('read by limit, by timestamp, from the tail, and with clamp; 416 outside the range', async (t) => {
  const { json, call, upstream } = makeGateway();
  await json('POST', '/v1/topics', { name: 't' });
  await json('POST', '/v1/topics/t/records', {
    records: Array.from({ length: 10 }, (_, i) => ({ value: `v${i}` })),
  });
  const offsets = async (url: string) =>
    ((await (await call(url)).json()) as { records: { offset: number }[] }).records.map((r) => r.offset);
  t.deepEqual(await offsets('/v1/topics/t/records?offset=3&limit=2'), [3, 4]);
  t.deepEqual(await offsets('/v1/topics/t/records?tailOffset=3'), [7, 8, 9]);
  t.deepEqual(await offsets('/v1/topics/t/records?timestamp=0&limit=1'), [0]);
  t.deepEqual(await offsets(`/v1/topics/t/records?timestamp=${Date.now() + 60_000}`), []);
  t.deepEqual(await offsets('/v1/topics/t/records?offset=10'), []);

  const beyond = await call('/v1/topics/t/records?offset=11');
  t.is(beyond.status, 416);
  t.deepEqual(await checkResponse('readRecords', beyond), []);
  t.like(await beyond.json(), { code: 'OFFSET_OUT_OF_RANGE', startOffset: 0, endOffset: 10 });
  t.deepEqual(await offsets('/v1/topics/t/records?offset=11&clamp=true'), []);

  upstream.trim('t', 5);
  const trimmed = await call('/v1/topics/t/records?offset=2');
  t.like(await trimmed.json(), { code: 'OFFSET_OUT_OF_RANGE', startOffset: 5, endOffset: 10 });
  t.deepEqual(await offsets('/v1/topics/t/records?offset=2&clamp=true&limit=2'), [5, 6]);
});

test('a long poll answers as soon as a record arrives', async (t) => {
  const { json, call } = makeGateway();
  await json('POST', '/v1/topics', { name: 'lp' });
  const pending = call('/v1/topics/lp/records?offset=0&waitMs=20000');
  await new Promise((r) => setTimeout(r, 50));
  await json('POST', '/v1/topics/lp/records', { records: [{ value: 'late' }] });
  const body = (await (await pending).json()) as { records: { value: string }[] };
  t.deepEqual(
    body.records.map((r) => r.value),
    ['late'],
  );
});

test('idempotent producer: a retried request is answered, not appended again', async (t) => {
  const { json, call } = makeGateway();
  await json('POST', '/v1/topics', { name: 'p' });
  const headers = { 'producer-id': 'writer-1', 'producer-seq': '0' };
  const first = (await (
    await json('POST', '/v1/topics/p/records', { records: [{ value: 'x' }] }, headers)
  ).json()) as object;
  const retry = await json('POST', '/v1/topics/p/records', { records: [{ value: 'x' }] }, headers);
  t.is(retry.status, 201);
  t.like(await retry.json(), { ...first, duplicate: true });
  const gap = await json(
    'POST',
    '/v1/topics/p/records',
    { records: [{ value: 'y' }] },
    { 'producer-id': 'writer-1', 'producer-seq': '5' },
  );
  t.is(gap.status, 409);
  t.is(await problemCode(gap), 'SEQUENCE_MISMATCH');
  const all = (await (await call('/v1/topics/p/records')).json()) as { records: unknown[] };
  t.is(all.records.length, 1);
  const alone = await json(
    'POST',
    '/v1/topics/p/records',
    { records: [{ value: 'z' }] },
    { 'producer-id': 'writer-1' },
  );
  t.is(await problemCode(alone), 'BAD_REQUEST');
});

test('conditional append: Expected-Offset that does not match is 412', async (t) => {
  const { json } = makeGateway();
  await json('POST', '/v1/topics', { name: 'c' });
  const ok = await json(
    'POST',
    '/v1/topics/c/records',
    { records: [{ value: 'a' }] },
    { 'expected-offset': '0' },
  );
  t.is(ok.status, 201);
  const stale = await json(
    'POST',
    '/v1/topics/c/records',
    { records: [{ value: 'b' }] },
    { 'expected-offset': '0' },
  );
  t.is(stale.status, 412);
  t.deepEqual(await checkResponse('appendRecords', stale), []);
  t.is(await problemCode(stale), 'OFFSET_MISMATCH');
});

test('named consumers: read next with auto-commit, commit, get', async (t) => {
  const { json, call } = makeGateway();
  await json('POST', '/v1/topics', { name: 'q' });
  await json('POST', '/v1/topics/q/records', { records: [{ value: 'a' }, { value: 'b' }, { value: 'c' }] });
  const unknown = await call('/v1/topics/q/consumers/c1');
  t.is(await problemCode(unknown), 'CONSUMER_NOT_FOUND');
  const r1 = await call('/v1/topics/q/consumers/c1/read?limit=2', { method: 'POST' });
  t.deepEqual(await checkResponse('consumerReadNext', r1), []);
  t.deepEqual(
    ((await r1.json()) as { records: { value: string }[] }).records.map((r) => r.value),
    ['a', 'b'],
  );
  const got = await call('/v1/topics/q/consumers/c1');
  t.deepEqual(await checkResponse('getConsumer', got), []);
  t.like(await got.json(), { topic: 'q', consumer: 'c1', offset: 2 });
  const peek = await call('/v1/topics/q/consumers/c1/read?autoCommit=false', { method: 'POST' });
  t.deepEqual(
    ((await peek.json()) as { records: { value: string }[] }).records.map((r) => r.value),
    ['c'],
  );
  t.like(await (await call('/v1/topics/q/consumers/c1')).json(), { offset: 2 });
  const committed = await json('POST', '/v1/topics/q/consumers/c1/commit', { offset: 0 });
  t.deepEqual(await checkResponse('consumerCommit', committed), []);
  t.like(await committed.json(), { offset: 0 });
  const beyond = await json('POST', '/v1/topics/q/consumers/c1/commit', { offset: 99 });
  t.is(beyond.status, 416);
});

test('/metrics, /openapi.yaml and /docs', async (t) => {
  const { call } = makeGateway();
  await call('/v1/health');
  const metrics = await call('/metrics');
  t.is(metrics.status, 200);
  const text = await metrics.text();
  t.regex(text, /walrus_gateway_http_requests_total\{method="GET",route="\/v1\/health",status="200"\} 1/);
  t.regex(text, /walrus_gateway_http_request_duration_seconds_bucket/);
  const spec = await call('/openapi.yaml');
  t.regex(spec.headers.get('content-type') ?? '', /yaml/);
  t.regex(await spec.text(), /^openapi: 3\.1/);
  const docs = await call('/docs');
  const html = await docs.text();
  t.regex(html, /<code class="m">POST<\/code><\/td><td><code>\/v1\/topics\/\{topic\}\/records<\/code>/);
  t.notRegex(html, /https?:\/\/cdn/);
});

test('unknown routes are 404 and wrong methods 405, as problem+json', async (t) => {
  const { call } = makeGateway();
  const missing = await call('/v2/nothing');
  t.is(missing.status, 404);
  t.is(await problemCode(missing), 'NOT_FOUND');
  const wrong = await call('/v1/topics', { method: 'PUT' });
  t.is(wrong.status, 405);
  t.is(wrong.headers.get('allow'), 'GET, POST');
  t.is(await problemCode(wrong), 'METHOD_NOT_ALLOWED');
});

test('upstream failures map through the one code table', async (t) => {
  const { call, upstream } = makeGateway();
  upstream.failWith = 'UNAVAILABLE';
  const res = await call('/v1/topics');
  t.is(res.status, 503);
  t.is(res.headers.get('retry-after'), '1');
  t.is(await problemCode(res), 'UNAVAILABLE');
  upstream.failWith = 'DISK_FULL';
  t.is((await call('/v1/topics')).status, 507);
});
