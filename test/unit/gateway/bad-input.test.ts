/**
 * Bad input never crashes the gateway and always answers problem+json with the right status:
 * malformed JSON, wrong types, huge bodies, bad offsets, path-like names, CR/LF in ids and headers.
 */
import test from 'ava';
import { bodySizeMaxBytes } from '../../../gateway/limits.js';
import { makeGateway, problemCode, unique, useRealNode } from './helpers.js';

const node = useRealNode(test);

/** A gateway over the file's real node and a fresh topic of its own (name `logs`, path `base`). */
async function setup() {
  const g = makeGateway(node());
  const logs = unique('logs');
  const created = await g.json('POST', '/v1/topics', { name: logs });
  if (created.status !== 201) throw new Error(`set-up: creating ${logs} answered ${created.status}`);
  return { ...g, logs, base: `/v1/topics/${logs}` };
}

test('malformed JSON and wrong types are 400', async (t) => {
  const { call, json, base } = await setup();
  const post = (body: string) =>
    call(`${base}/records`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body,
    });
  for (const body of [
    '{',
    '[]',
    'null',
    '{"records": 1}',
    '{"records": []}',
    '{"records": [1]}',
    '{"records": [{"value": 1}]}',
    '{"records": [{"value": "x", "extra": 1}]}',
    '{"records": [{"value": "x", "encoding": "hex"}]}',
    '{"records": [{"value": "***", "encoding": "base64"}]}',
    '{"records": [{"value": "x", "headers": {"a": 1}}]}',
    '{"records": [{"value": "x", "headers": []}]}',
  ]) {
    const res = await post(body);
    t.is(res.status, 400, body);
    t.is(await problemCode(res), 'BAD_REQUEST', body);
  }
  for (const body of [
    {},
    { name: 5 },
    { name: 'x', retention: { retentionMs: -1 } },
    { name: 'x', retention: 'forever' },
    { name: 'x', other: 1 },
  ]) {
    const res = await json('POST', '/v1/topics', body);
    t.is(res.status, 400, JSON.stringify(body));
  }
  const notJson = await call('/v1/topics', {
    method: 'POST',
    headers: { 'content-type': 'text/plain' },
    body: 'logs',
  });
  t.is(notJson.status, 415);
  t.is(await problemCode(notJson), 'UNSUPPORTED_MEDIA_TYPE');
});

test('CR/LF or NUL in record headers, and bad header names, are 400', async (t) => {
  const { json, base } = await setup();
  for (const headers of [
    { a: 'x\r\ny: z' },
    { a: 'x\ny' },
    { a: 'nul\0' },
    { 'bad name': 'v' },
    { 'a\r\nb': 'v' },
    { ['x'.repeat(300)]: 'v' },
  ]) {
    const res = await json('POST', `${base}/records`, { records: [{ value: 'v', headers }] });
    t.is(res.status, 400, JSON.stringify(headers));
    t.is(await problemCode(res), 'BAD_REQUEST');
  }
});

test('bad producer ids, sequences and expected offsets are 400', async (t) => {
  const { json, base } = await setup();
  const cases: Record<string, string>[] = [
    { 'producer-id': 'has space', 'producer-seq': '0' },
    { 'producer-id': 'x'.repeat(200), 'producer-seq': '0' },
    { 'producer-id': 'p', 'producer-seq': '-1' },
    { 'producer-id': 'p', 'producer-seq': '1.5' },
    { 'expected-offset': 'abc' },
    { 'expected-offset': '99999999999999999' },
  ];
  for (const headers of cases) {
    const res = await json('POST', `${base}/records`, { records: [{ value: 'v' }] }, headers);
    t.is(res.status, 400, JSON.stringify(headers));
  }
});

test('a body over the limit is 413, and too many records is 413', async (t) => {
  const { call, json, base } = await setup();
  const huge = new Uint8Array(bodySizeMaxBytes + 1);
  const res = await call(`${base}/records`, {
    method: 'POST',
    headers: { 'content-type': 'application/octet-stream', 'content-length': String(huge.byteLength) },
    body: huge,
  });
  t.is(res.status, 413);
  t.is(await problemCode(res), 'BATCH_TOO_LARGE');
  const many = await json('POST', `${base}/records`, {
    records: Array.from({ length: 1001 }, () => ({ value: 'v' })),
  });
  t.is(many.status, 413);
});

test('bad offsets and limits are 400; exclusive start parameters are 400', async (t) => {
  const { call, base } = await setup();
  for (const q of [
    'offset=-1',
    'offset=abc',
    'offset=1e3',
    'limit=0',
    'limit=1001',
    'maxBytes=0',
    'waitMs=60001',
    'clamp=maybe',
    'offset=1&tailOffset=1',
    'timestamp=x',
  ]) {
    const res = await call(`${base}/records?${q}`);
    t.is(res.status, 400, q);
    t.is(await problemCode(res), 'BAD_REQUEST', q);
  }
});

test('path-like and invalid topic names are 400 INVALID_TOPIC_NAME and never reach the cluster', async (t) => {
  const { call, upstream, base } = await setup();
  const before = upstream.calls.get('describeTopic') ?? 0;
  for (const name of [
    '..%2F..%2Fetc',
    'a%20b',
    '%2Fetc%2Fpasswd',
    'x'.repeat(201),
    'caf%C3%A9',
    'a%0D%0Ab',
  ]) {
    const res = await call(`/v1/topics/${name}`);
    t.is(res.status, 400, name);
    t.is(await problemCode(res), 'INVALID_TOPIC_NAME', name);
  }
  // A literal `..` segment is removed by URL normalisation before routing: no route, no cluster call.
  const dotted = await call('/v1/topics/../../etc/passwd');
  t.is(dotted.status, 404);
  t.is(await problemCode(dotted), 'NOT_FOUND');
  t.is(upstream.calls.get('describeTopic') ?? 0, before);
  const consumer = await call(`${base}/consumers/a%20b`);
  t.is(consumer.status, 400);
});

test('406 when neither JSON nor an event stream is acceptable', async (t) => {
  const { call, base } = await setup();
  const res = await call(`${base}/records`, { headers: { accept: 'text/html' } });
  t.is(res.status, 406);
  t.is(await problemCode(res), 'NOT_ACCEPTABLE');
});
