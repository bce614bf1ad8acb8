/**
 * Every route in-process (`app.request()`) over one real walrus-node process; each answer is also
 * checked against openapi.yaml's response schema for that operation and status. Upstream failures
 * are in upstream-failures.test.ts (they stop the node, which would break these tests).
 */
import test from 'ava';
import { makeGateway as makeGatewayOver, problemCode, unique, useRealNode } from './helpers.js';
import { checkResponse } from '../../helpers/spec-check.js';

// Small segments and a fast monitor loop, so the retention case below drops a real sealed segment.
const segmentEntryCountMax = 10;
const node = useRealNode(test, {
  WALRUS_MAX_SEGMENT_ENTRIES: String(segmentEntryCountMax),
  WALRUS_MONITOR_CHECK_MS: '50',
});
const makeGateway = () => makeGatewayOver(node());

test('health, ready, cluster and cluster metrics', async (t) => {
  const { call } = makeGateway();
  const health = await call('/v1/health');
  t.is(health.status, 200);
  t.deepEqual(await checkResponse('getHealth', health), []);
  const ready = await call('/v1/ready');
  t.deepEqual(await ready.json(), { ready: true, nodeId: 1 });
  const cluster = await call('/v1/cluster');
  t.deepEqual(await checkResponse('getCluster', cluster), []);
  const body = (await cluster.json()) as {
    nodes: unknown;
    members: {
      nodeId: number;
      role: string;
      reachable: boolean;
      lagEntries: number;
      diskFreeBytes: number;
    }[];
  };
  t.deepEqual(
    body.nodes,
    node().cluster.clientAddrs.map((address) => ({ address })),
  );
  // The one member answers for itself: the leader, no lag, its disk's free bytes.
  t.is(body.members.length, 1);
  t.like(body.members[0], { nodeId: 1, role: 'leader', reachable: true, lagEntries: 0 });
  t.true(body.members[0]!.diskFreeBytes > 0);
  const metrics = await call('/v1/cluster/metrics');
  t.is(((await metrics.json()) as { state: string }).state, 'Leader');
});

test('create a topic: 201, then 200 with the same settings, 409 with others', async (t) => {
  const { json } = makeGateway();
  const name = unique('logs');
  const created = await json('POST', '/v1/topics', { name });
  t.is(created.status, 201);
  t.is(created.headers.get('location'), `/v1/topics/${name}`);
  t.deepEqual(await checkResponse('createTopic', created), []);
  const again = await json('POST', '/v1/topics', { name });
  t.is(again.status, 200);
  t.deepEqual(await checkResponse('createTopic', again), []);
  const other = await json('POST', '/v1/topics', { name, retention: { retentionMs: 1000 } });
  t.is(other.status, 409);
  t.is(await problemCode(other), 'TOPIC_EXISTS');
});

test('list, describe, configure and delete topics', async (t) => {
  const { json, call } = makeGateway();
  // Other tests of this file create topics on the same node at the same time: this one looks at
  // its own two (a prefix nobody else uses) and checks that both are listed, and nothing else of it.
  const prefix = unique('ls');
  const a = `${prefix}-a`;
  const b = `${prefix}-b`;
  await json('POST', '/v1/topics', { name: a });
  await json('POST', '/v1/topics', { name: b, retention: { retentionBytes: 4096 } });
  const list = await call('/v1/topics');
  t.deepEqual(await checkResponse('listTopics', list), []);
  t.deepEqual(
    ((await list.json()) as { topics: { name: string }[] }).topics
      .map((x) => x.name)
      .filter((n) => n.startsWith(`${prefix}-`))
      .sort(),
    [a, b],
  );
  const described = await call(`/v1/topics/${b}`);
  t.deepEqual(await checkResponse('describeTopic', described), []);
  const topic = (await described.json()) as { retention: unknown; segments: unknown[] };
  t.deepEqual(topic.retention, { retentionMs: null, retentionBytes: 4096 });
  t.is(topic.segments.length, 1);
  const patched = await json('PATCH', `/v1/topics/${b}`, { retention: { retentionMs: 60000 } });
  t.is(patched.status, 200);
  t.deepEqual(await checkResponse('configureTopic', patched), []);
  t.deepEqual(((await patched.json()) as { retention: unknown }).retention, {
    retentionMs: 60000,
    retentionBytes: 4096,
  });
  t.is((await call(`/v1/topics/${b}`, { method: 'DELETE' })).status, 204);
  const gone = await call(`/v1/topics/${b}`);
  t.is(gone.status, 404);
  t.is(await problemCode(gone), 'TOPIC_NOT_FOUND');
  t.is(await problemCode(await call(`/v1/topics/${b}`, { method: 'DELETE' })), 'TOPIC_NOT_FOUND');
});

test('append a JSON batch (text and base64) and read it back', async (t) => {
  const { json, call } = makeGateway();
  const name = unique('logs');
  await json('POST', '/v1/topics', { name });
  const appended = await json('POST', `/v1/topics/${name}/records`, {
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

  const read = await call(`/v1/topics/${name}/records?offset=0&limit=10`);
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
  const name = unique('raw');
  await json('POST', '/v1/topics', { name });
  const res = await call(`/v1/topics/${name}/records`, {
    method: 'POST',
    headers: { 'content-type': 'text/plain' },
    body: 'plain text',
  });
  t.is(res.status, 201);
  const read = (await (await call(`/v1/topics/${name}/records`)).json()) as {
    records: { value: string; headers: object }[];
  };
  t.deepEqual(read.records[0]!.headers, { 'content-type': 'text/plain' });
  t.is(read.records[0]!.value, 'plain text');
});

test('read by limit, by timestamp, from the tail, and with clamp; 416 outside the range', async (t) => {
  const { json, call } = makeGateway();
  const name = unique('t');
  const url = `/v1/topics/${name}/records`;
  await json('POST', '/v1/topics', { name });
  // One batch that fills the first segment exactly: the node seals it [0, 10) and opens another.
  await json('POST', url, {
    records: Array.from({ length: segmentEntryCountMax }, (_, i) => ({ value: `v${i}` })),
  });
  const offsets = async (query: string) =>
    ((await (await call(`${url}?${query}`)).json()) as { records: { offset: number }[] }).records.map(
      (r) => r.offset,
    );
  t.deepEqual(await offsets('offset=3&limit=2'), [3, 4]);
  t.deepEqual(await offsets('tailOffset=3'), [7, 8, 9]);
  t.deepEqual(await offsets('timestamp=0&limit=1'), [0]);
  t.deepEqual(await offsets(`timestamp=${Date.now() + 60_000}`), []);
  t.deepEqual(await offsets('offset=10'), []);

  const beyond = await call(`${url}?offset=11`);
  t.is(beyond.status, 416);
  t.deepEqual(await checkResponse('readRecords', beyond), []);
  t.like(await beyond.json(), { code: 'OFFSET_OUT_OF_RANGE', startOffset: 0, endOffset: 10 });
  t.deepEqual(await offsets('offset=11&clamp=true'), []);

  // Real retention: 4 more records go to the new active segment [10, 14); a 1-byte size limit
  // makes the node's monitor loop delete the sealed segment [0, 10) (never the active one).
  await json('POST', url, { records: Array.from({ length: 4 }, (_, i) => ({ value: `w${i}` })) });
  const patched = await json('PATCH', `/v1/topics/${name}`, { retention: { retentionBytes: 1 } });
  t.is(patched.status, 200);
  const retentionWaitMs = 20_000;
  const deadline = Date.now() + retentionWaitMs;
  let startOffset = 0;
  while (startOffset === 0 && Date.now() < deadline) {
    await new Promise((r) => setTimeout(r, 20));
    startOffset = ((await (await call(`/v1/topics/${name}`)).json()) as { startOffset: number }).startOffset;
  }
  t.is(startOffset, 10, `retention did not drop the sealed segment within ${retentionWaitMs} ms`);
  const trimmed = await call(`${url}?offset=2`);
  t.is(trimmed.status, 416);
  t.like(await trimmed.json(), { code: 'OFFSET_OUT_OF_RANGE', startOffset: 10, endOffset: 14 });
  t.deepEqual(await offsets('offset=2&clamp=true&limit=2'), [10, 11]);
});

test('a long poll answers as soon as a record arrives', async (t) => {
  const { json, call } = makeGateway();
  const name = unique('lp');
  await json('POST', '/v1/topics', { name });
  const pending = call(`/v1/topics/${name}/records?offset=0&waitMs=20000`);
  await new Promise((r) => setTimeout(r, 50));
  await json('POST', `/v1/topics/${name}/records`, { records: [{ value: 'late' }] });
  const body = (await (await pending).json()) as { records: { value: string }[] };
  t.deepEqual(
    body.records.map((r) => r.value),
    ['late'],
  );
});

test('idempotent producer: a retried request is answered, not appended again', async (t) => {
  const { json, call } = makeGateway();
  const name = unique('p');
  const url = `/v1/topics/${name}/records`;
  await json('POST', '/v1/topics', { name });
  const headers = { 'producer-id': 'writer-1', 'producer-seq': '0' };
  const first = (await (await json('POST', url, { records: [{ value: 'x' }] }, headers)).json()) as object;
  const retry = await json('POST', url, { records: [{ value: 'x' }] }, headers);
  t.is(retry.status, 201);
  t.like(await retry.json(), { ...first, duplicate: true });
  const gap = await json(
    'POST',
    url,
    { records: [{ value: 'y' }] },
    { 'producer-id': 'writer-1', 'producer-seq': '5' },
  );
  t.is(gap.status, 409);
  t.is(await problemCode(gap), 'SEQUENCE_MISMATCH');
  const all = (await (await call(url)).json()) as { records: unknown[] };
  t.is(all.records.length, 1);
  const alone = await json('POST', url, { records: [{ value: 'z' }] }, { 'producer-id': 'writer-1' });
  t.is(await problemCode(alone), 'BAD_REQUEST');
});

test('conditional append: Expected-Offset that does not match is 412', async (t) => {
  const { json } = makeGateway();
  const name = unique('c');
  const url = `/v1/topics/${name}/records`;
  await json('POST', '/v1/topics', { name });
  const ok = await json('POST', url, { records: [{ value: 'a' }] }, { 'expected-offset': '0' });
  t.is(ok.status, 201);
  const stale = await json('POST', url, { records: [{ value: 'b' }] }, { 'expected-offset': '0' });
  t.is(stale.status, 412);
  t.deepEqual(await checkResponse('appendRecords', stale), []);
  t.is(await problemCode(stale), 'OFFSET_MISMATCH');
});

test('named consumers: read next with auto-commit, commit, get', async (t) => {
  const { json, call } = makeGateway();
  const name = unique('q');
  const base = `/v1/topics/${name}`;
  await json('POST', '/v1/topics', { name });
  await json('POST', `${base}/records`, { records: [{ value: 'a' }, { value: 'b' }, { value: 'c' }] });
  const unknown = await call(`${base}/consumers/c1`);
  t.is(await problemCode(unknown), 'CONSUMER_NOT_FOUND');
  const r1 = await call(`${base}/consumers/c1/read?limit=2`, { method: 'POST' });
  t.deepEqual(await checkResponse('consumerReadNext', r1), []);
  t.deepEqual(
    ((await r1.json()) as { records: { value: string }[] }).records.map((r) => r.value),
    ['a', 'b'],
  );
  const got = await call(`${base}/consumers/c1`);
  t.deepEqual(await checkResponse('getConsumer', got), []);
  t.like(await got.json(), { topic: name, consumer: 'c1', offset: 2 });
  const peek = await call(`${base}/consumers/c1/read?autoCommit=false`, { method: 'POST' });
  t.deepEqual(
    ((await peek.json()) as { records: { value: string }[] }).records.map((r) => r.value),
    ['c'],
  );
  t.like(await (await call(`${base}/consumers/c1`)).json(), { offset: 2 });
  const committed = await json('POST', `${base}/consumers/c1/commit`, { offset: 0 });
  t.deepEqual(await checkResponse('consumerCommit', committed), []);
  t.like(await committed.json(), { offset: 0 });
  const beyond = await json('POST', `${base}/consumers/c1/commit`, { offset: 99 });
  t.is(beyond.status, 416);
  // Compare-and-set: refused unless the cursor is where the caller read from; a retry succeeds.
  const stale = await json('POST', `${base}/consumers/c1/commit`, { offset: 1, expectedOffset: 2 });
  t.is(stale.status, 412);
  t.is(await problemCode(stale), 'OFFSET_MISMATCH');
  for (let i = 0; i < 2; i++) {
    const cas = await json('POST', `${base}/consumers/c1/commit`, { offset: 1, expectedOffset: 0 });
    t.deepEqual(await checkResponse('consumerCommit', cas), []);
    t.like(await cas.json(), { offset: 1 });
  }
  const badExpected = await json('POST', `${base}/consumers/c1/commit`, { offset: 1, expectedOffset: -1 });
  t.is(await problemCode(badExpected), 'BAD_REQUEST');
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
  t.regex(html, /<script src="\/docs\/assets\/swagger-ui-bundle\.js"><\/script>/);
  t.notRegex(html, /https?:\/\//, 'nothing from another origin');
  const bundle = await call('/docs/assets/swagger-ui-bundle.js');
  t.is(bundle.status, 200);
  t.regex(bundle.headers.get('content-type') ?? '', /javascript/);
  t.is((await call('/docs/assets/..%2Fpackage.json')).status, 404);
});

test('beyond the in-flight limit a request is 429 BUSY (counted), and the gateway serves again once others finish', async (t) => {
  const { call, json } = makeGatewayOver(node(), { requestsInFlightMax: 2 });
  const topic = unique('busy');
  t.is((await json('POST', '/v1/topics', { name: topic })).status, 201);
  // Two long polls on an empty topic hold both places.
  const polls = [0, 1].map(() => call(`/v1/topics/${topic}/records?offset=0&waitMs=1500`));
  await new Promise((resolve) => setTimeout(resolve, 200));
  const refused = await call('/v1/health');
  t.is(refused.status, 429);
  t.is(refused.headers.get('retry-after'), '1');
  t.is(refused.headers.get('x-content-type-options'), 'nosniff');
  t.is(await problemCode(refused), 'BUSY');
  for (const poll of await Promise.all(polls)) {
    t.is(poll.status, 200);
    t.deepEqual(((await poll.json()) as { records: unknown[] }).records, []);
  }
  t.is((await call('/v1/health')).status, 200);
  const metrics = await (await call('/metrics')).text();
  t.regex(metrics, /walrus_gateway_http_requests_total\{method="GET",route="\/v1\/health",status="429"\} 1/);
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
