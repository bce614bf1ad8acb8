/**
 * The rest of the HTTP surface, in-process over a real walrus-node (segments of 4 records, so
 * reads of history fall in sealed segments): unknown and repeated query parameters, topic list
 * pages and prefixes, consumers listed, deleted and long-polled with their lag, immutable reads of
 * sealed segments (ETag, Cache-Control, 304), and the multi-topic SSE tail with its resumable id.
 */
import test from 'ava';
import { type SseEvent, SseParser } from '../../../sdk/sse-parser.js';
import { checkSchema, loadSpec, responseSchema } from '../../helpers/spec-check.js';
import { makeGateway as makeGatewayOver, unique, useRealNode } from './helpers.js';

const node = useRealNode(test, { WALRUS_MAX_SEGMENT_ENTRIES: '4' });
const makeGateway = () => makeGatewayOver(node());

const records = (n: number, from = 0) => ({
  records: Array.from({ length: n }, (_, i) => ({ value: `r${from + i}` })),
});

async function problem(res: Response): Promise<{ code: string; parameter?: string; detail: string }> {
  if (!res.headers.get('content-type')?.startsWith('application/problem+json'))
    throw new Error(`not problem+json: ${res.status} ${await res.text()}`);
  return (await res.json()) as { code: string; parameter?: string; detail: string };
}

async function collect(res: Response, until: (events: SseEvent[]) => boolean): Promise<SseEvent[]> {
  const events: SseEvent[] = [];
  const parser = new SseParser((e) => events.push(e));
  const reader = res.body!.getReader();
  const decoder = new TextDecoder();
  try {
    while (!until(events)) {
      const { value, done } = await reader.read();
      if (done) break;
      parser.push(decoder.decode(value, { stream: true }));
    }
  } finally {
    await reader.cancel();
  }
  return events;
}

test('an unknown query parameter is 400 naming it, not a read from offset 0', async (t) => {
  const { json, call } = makeGateway();
  const name = unique('q');
  await json('POST', '/v1/topics', { name });
  await json('POST', `/v1/topics/${name}/records`, records(5));
  const res = await call(`/v1/topics/${name}/records?ofset=3&limit=1`);
  t.is(res.status, 400);
  const p = await problem(res);
  t.is(p.code, 'BAD_REQUEST');
  t.is(p.parameter, 'ofset');
  t.regex(p.detail, /ofset/);
  for (const [method, path] of [
    ['POST', `/v1/topics/${name}/records?ack=leader`],
    ['GET', `/v1/topics?prefx=a`],
    ['GET', `/v1/topics/${name}?x=1`],
    ['POST', `/v1/topics/${name}/consumers/c/read?autocommit=false`],
    ['GET', '/v1/health?verbose=1'],
  ] as const) {
    const r = await call(path, {
      method,
      headers: { 'content-type': 'application/json' },
      body: method === 'POST' ? '{"records":[{"value":"x"}]}' : undefined,
    });
    t.is(r.status, 400, `${method} ${path}`);
    t.truthy((await problem(r)).parameter, `${method} ${path} names the parameter`);
  }
});

test('repeated parameters and bad combinations are 400 naming the parameter', async (t) => {
  const { json, call } = makeGateway();
  const name = unique('q');
  await json('POST', '/v1/topics', { name });
  const twice = await call(`/v1/topics/${name}/records?offset=1&offset=2`);
  t.is(twice.status, 400);
  t.is((await problem(twice)).parameter, 'offset');
  const both = await call(`/v1/topics/${name}/records?offset=1&timestamp=2`);
  t.is(both.status, 400);
  t.is((await problem(both)).parameter, 'timestamp');
  const sseWait = await call(`/v1/topics/${name}/records?waitMs=10`, {
    headers: { accept: 'text/event-stream' },
  });
  t.is(sseWait.status, 400);
  t.is((await problem(sseWait)).parameter, 'waitMs');
  const badLimit = await call(`/v1/topics?limit=0`);
  t.is((await problem(badLimit)).parameter, 'limit');
});

test('GET /v1/topics: prefix filter and cursor pages, every topic once, each with its end', async (t) => {
  const { json, call } = makeGateway();
  const base = unique('pg');
  const names = Array.from({ length: 5 }, (_, i) => `${base}-${i}`);
  for (const [i, name] of names.entries()) {
    await json('POST', '/v1/topics', { name });
    await json('POST', `/v1/topics/${name}/records`, records(i + 1));
  }
  await json('POST', '/v1/topics', { name: `${base}x-other` });
  const seen: { name: string; endOffset: number }[] = [];
  let cursor: string | null = null;
  let pages = 0;
  do {
    const res = await call(`/v1/topics?prefix=${base}-&limit=2${cursor === null ? '' : `&cursor=${cursor}`}`);
    t.is(res.status, 200);
    t.deepEqual(
      checkSchema(
        loadSpec(),
        responseSchema('listTopics', 200, 'application/json'),
        await res.clone().json(),
      ),
      [],
    );
    const body = (await res.json()) as {
      topics: { name: string; endOffset: number }[];
      nextCursor: string | null;
    };
    t.true(body.topics.length <= 2);
    seen.push(...body.topics);
    cursor = body.nextCursor;
    pages++;
  } while (cursor !== null && pages < 10);
  t.is(pages, 3);
  t.deepEqual(
    seen.map((s) => [s.name, s.endOffset]),
    names.map((n, i) => [n, i + 1]),
  );
  const bad = await call('/v1/topics?cursor=%21%21');
  t.is((await problem(bad)).parameter, 'cursor');
});

test('consumers: listed, deleted (404 after), and a read reports the end and the lag', async (t) => {
  const { json, call } = makeGateway();
  const name = unique('c');
  await json('POST', '/v1/topics', { name });
  await json('POST', `/v1/topics/${name}/records`, records(6));
  const read = await call(`/v1/topics/${name}/consumers/alpha/read?limit=2`, { method: 'POST' });
  t.is(read.status, 200);
  const body = (await read.clone().json()) as { nextOffset: number; endOffset: number; lag: number };
  t.like(body, { nextOffset: 2, endOffset: 6, lag: 4 });
  t.deepEqual(checkSchema(loadSpec(), responseSchema('consumerReadNext', 200, 'application/json'), body), []);
  await call(`/v1/topics/${name}/consumers/beta/read?limit=1`, { method: 'POST' });
  const list = await call(`/v1/topics/${name}/consumers`);
  t.is(list.status, 200);
  t.deepEqual(await list.json(), {
    consumers: [
      { topic: name, consumer: 'alpha', offset: 2 },
      { topic: name, consumer: 'beta', offset: 1 },
    ],
  });
  t.is((await call(`/v1/topics/${name}/consumers/alpha`, { method: 'DELETE' })).status, 204);
  t.is((await call(`/v1/topics/${name}/consumers/alpha`)).status, 404);
  const again = await call(`/v1/topics/${name}/consumers/alpha`, { method: 'DELETE' });
  t.is(again.status, 404);
  t.is((await problem(again)).code, 'CONSUMER_NOT_FOUND');
  const after = (await (await call(`/v1/topics/${name}/consumers`)).json()) as { consumers: unknown[] };
  t.is(after.consumers.length, 1);
});

test('a consumer read long-polls with waitMs: it answers when a record arrives', async (t) => {
  const { json, call } = makeGateway();
  const name = unique('w');
  await json('POST', '/v1/topics', { name });
  const started = performance.now();
  const pending = call(`/v1/topics/${name}/consumers/c/read?waitMs=20000`, { method: 'POST' });
  // The append comes while the read waits; the read answers with it, well before its wait is over.
  await new Promise((r) => setTimeout(r, 300));
  await json('POST', `/v1/topics/${name}/records`, records(1));
  const res = await pending;
  const body = (await res.json()) as { records: { value: string }[]; nextOffset: number; lag: number };
  t.deepEqual(
    body.records.map((r) => r.value),
    ['r0'],
  );
  t.like(body, { nextOffset: 1, lag: 0 });
  t.true(performance.now() - started < 15_000);
  // With nothing to come, the wait ends empty.
  const empty = await call(`/v1/topics/${name}/consumers/c/read?waitMs=200`, { method: 'POST' });
  t.deepEqual(((await empty.json()) as { records: unknown[] }).records, []);
});

test('a read wholly inside sealed segments is immutable: strong ETag, cached for a year, 304', async (t) => {
  const { json, call } = makeGateway();
  const name = unique('e');
  await json('POST', '/v1/topics', { name });
  for (let i = 0; i < 10; i++) await json('POST', `/v1/topics/${name}/records`, records(1, i));
  const url = `/v1/topics/${name}/records?offset=0&limit=4`;
  const res = await call(url);
  t.is(res.status, 200);
  t.is(res.headers.get('cache-control'), 'public, max-age=31536000, immutable');
  const etag = res.headers.get('etag');
  t.regex(etag ?? '', /^"[A-Za-z0-9_-]+"$/);
  const body = (await res.json()) as { records: unknown[]; nextOffset: number };
  t.is(body.records.length, 4);
  t.deepEqual(checkSchema(loadSpec(), responseSchema('readRecords', 200, 'application/json'), body), []);
  const again = await call(url);
  t.is(again.headers.get('etag'), etag, 'the same bytes, the same tag');
  const notModified = await call(url, { headers: { 'if-none-match': etag! } });
  t.is(notModified.status, 304);
  t.is(notModified.headers.get('etag'), etag);
  t.is(await notModified.text(), '');
  const otherTag = await call(url, { headers: { 'if-none-match': '"nope"' } });
  t.is(otherTag.status, 200);
  // Reaching into the active segment, or starting from a moving point: not cacheable.
  for (const path of [
    `/v1/topics/${name}/records?offset=8`,
    `/v1/topics/${name}/records?offset=9`,
    `/v1/topics/${name}/records?tailOffset=8&limit=2`,
    `/v1/topics/${name}/records?offset=0&limit=2&clamp=true`,
  ]) {
    const r = await call(path);
    t.is(r.status, 200, path);
    t.is(r.headers.get('cache-control'), 'no-cache', path);
    t.is(r.headers.get('etag'), null, path);
  }
});

test('multi-topic tail: events name their topic, id holds every position, Last-Event-ID resumes all', async (t) => {
  const { json, call, gateway } = makeGateway();
  const a = unique('ma');
  const b = unique('mb');
  for (const name of [a, b]) await json('POST', '/v1/topics', { name });
  await json('POST', `/v1/topics/${a}/records`, records(2));
  const res = await call(`/v1/tail?topic=${a}:0&topic=${b}:0`, { headers: { accept: 'text/event-stream' } });
  t.is(res.status, 200);
  const pending = collect(res, (ev) => ev.filter((e) => e.event === 'record').length >= 3);
  while (gateway.hub.size < 2) await new Promise((r) => setTimeout(r, 5));
  await json('POST', `/v1/topics/${b}/records`, records(1, 10));
  const events = (await pending).filter((e) => e.event === 'record');
  const data = events.map((e) => JSON.parse(e.data) as { topic: string; offset: number; value: string });
  t.deepEqual(
    data.map((d) => [d.topic, d.offset, d.value]),
    [
      [a, 0, 'r0'],
      [a, 1, 'r1'],
      [b, 0, 'r10'],
    ],
  );
  t.deepEqual(
    events.map((e) => e.id),
    [`${a}:1,${b}:0`, `${a}:2,${b}:0`, `${a}:2,${b}:1`],
  );
  const spec = loadSpec();
  const tailEvents = (
    spec['paths'] as Record<
      string,
      { get: { responses: Record<string, { content: Record<string, Record<string, unknown>> }> } }
    >
  )['/v1/tail']!.get.responses['200']!.content['text/event-stream']!['x-sse-events'] as Record<
    string,
    Record<string, unknown>
  >;
  for (const d of data) t.deepEqual(checkSchema(spec, tailEvents['record']!, d), []);
  await new Promise((r) => setTimeout(r, 50));
  // Resume from the second event: a's second record and b's record come again, nothing else.
  await json('POST', `/v1/topics/${a}/records`, records(1, 2));
  const resumed = await call(`/v1/tail?topic=${a}&topic=${b}`, {
    headers: { accept: 'text/event-stream', 'last-event-id': events[0]!.id! },
  });
  const again = (await collect(resumed, (ev) => ev.filter((e) => e.event === 'record').length >= 3))
    .filter((e) => e.event === 'record')
    .map((e) => JSON.parse(e.data) as { topic: string; offset: number });
  t.deepEqual(again.map((d) => `${d.topic}:${d.offset}`).sort(), [`${a}:1`, `${a}:2`, `${b}:0`].sort());
  gateway.close();
});

test('multi-topic tail: bounded and checked', async (t) => {
  const { json, call } = makeGateway();
  const name = unique('mt');
  await json('POST', '/v1/topics', { name });
  const sse = { headers: { accept: 'text/event-stream' } };
  t.is((await problem(await call('/v1/tail', sse))).parameter, 'topic');
  const many = Array.from({ length: 17 }, (_, i) => `topic=${name}${i}`).join('&');
  t.is((await problem(await call(`/v1/tail?${many}`, sse))).parameter, 'topic');
  t.is((await problem(await call(`/v1/tail?topic=${name}&topic=${name}`, sse))).parameter, 'topic');
  t.is((await call(`/v1/tail?topic=${name}-missing`, sse)).status, 404);
  t.is((await call(`/v1/tail?topic=${name}:99`, sse)).status, 416);
  t.is((await call(`/v1/tail?topic=${name}`, { headers: { accept: 'application/json' } })).status, 406);
});
