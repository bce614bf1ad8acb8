/**
 * Plain appends of one event-loop turn to one topic share one upstream append
 * (gateway/append-coalescer.ts): each request still gets the offsets of its own records, a record
 * only one request got wrong fails only that request, and appends with per-request checks
 * (producer ids, expected offsets) or other acks are never joined. Against a real node whose
 * record size limit is small, so that a too-large record is easy to send.
 */
import test from 'ava';
import { AppendCoalescer } from '../../../gateway/append-coalescer.js';
import { GatewayMetrics } from '../../../gateway/metrics.js';
import type { Upstream } from '../../../gateway/upstream.js';
import { coalescedAppendRecordCountMax } from '../../../gateway/limits.js';
import { ErrorCode, WalrusError } from '../../../node/protocol/error-codes.js';
import { makeGateway, problemCode, unique, useRealNode } from './helpers.js';

const recordSizeMaxBytes = 64;
const node = useRealNode(test, { WALRUS_MAX_RECORD_BYTES: String(recordSizeMaxBytes) });

interface Appended {
  firstOffset: number;
  lastOffset: number;
  count: number;
  acks: string;
}

test('concurrent plain appends are joined, and each request gets the offsets of its own records', async (t) => {
  const { call, json, upstream, gateway } = makeGateway(node());
  const topic = unique('joined');
  t.is((await json('POST', '/v1/topics', { name: topic })).status, 201);
  const requestCount = 40;
  const before = upstream.calls.get('append') ?? 0;
  const sizes = Array.from({ length: requestCount }, (_, i) => 1 + (i % 3));
  const responses = await Promise.all(
    sizes.map((size, i) =>
      json('POST', `/v1/topics/${topic}/records`, {
        records: Array.from({ length: size }, (_, j) => ({ value: `r${i}.${j}` })),
      }),
    ),
  );
  const appendCalls = (upstream.calls.get('append') ?? 0) - before;
  t.true(appendCalls < requestCount, `${appendCalls} upstream appends for ${requestCount} requests`);
  const metrics = await (await gateway.app.request('/metrics')).text();
  t.regex(metrics, /walrus_gateway_appends_joined_total [1-9]/);

  // Every request's offsets hold exactly its own records, and together they cover the log.
  const covered = new Set<number>();
  for (const [i, res] of responses.entries()) {
    t.is(res.status, 201);
    const body = (await res.json()) as Appended;
    const size = sizes[i]!;
    t.is(body.count, size);
    t.is(body.lastOffset - body.firstOffset + 1, size);
    t.is(res.headers.get('walrus-first-offset'), String(body.firstOffset));
    const read = await call(`/v1/topics/${topic}/records?offset=${body.firstOffset}&limit=${sizes[i]}`);
    const records = ((await read.json()) as { records: { offset: number; value: string }[] }).records;
    t.deepEqual(
      records.map((r) => r.value),
      Array.from({ length: sizes[i]! }, (_, j) => `r${i}.${j}`),
    );
    for (let o = body.firstOffset; o <= body.lastOffset; o++) {
      t.false(covered.has(o), `offset ${o} answered twice`);
      covered.add(o);
    }
  }
  const total = sizes.reduce((a, b) => a + b, 0);
  t.deepEqual(
    [...covered].sort((a, b) => a - b),
    Array.from({ length: total }, (_, o) => o),
  );
});

test('a record too large fails only the request that sent it', async (t) => {
  const { call, json, gateway } = makeGateway(node());
  const topic = unique('culprit');
  t.is((await json('POST', '/v1/topics', { name: topic })).status, 201);
  const values = ['a', 'b', 'x'.repeat(recordSizeMaxBytes + 1), 'c', 'd'];
  const responses = await Promise.all(
    values.map((value) => json('POST', `/v1/topics/${topic}/records`, { records: [{ value }] })),
  );
  // They were sent as one batch, which the node refused whole; then each again on its own.
  const metrics = await (await gateway.app.request('/metrics')).text();
  t.regex(metrics, /walrus_gateway_joined_append_batches_total [1-9]/);
  t.is(responses[2]!.status, 413);
  t.is(await problemCode(responses[2]!), 'RECORD_TOO_LARGE');
  const offsets: number[] = [];
  for (const i of [0, 1, 3, 4]) {
    t.is(responses[i]!.status, 201, `request ${i}`);
    offsets.push(((await responses[i]!.json()) as Appended).firstOffset);
  }
  t.deepEqual(
    [...offsets].sort((a, b) => a - b),
    [0, 1, 2, 3],
  );
  const read = await call(`/v1/topics/${topic}/records?offset=0&limit=10`);
  const records = ((await read.json()) as { records: { value: string }[] }).records;
  t.deepEqual(records.map((r) => r.value).sort(), ['a', 'b', 'c', 'd']);
});

test('appends with a producer id, an expected offset or other acks are not joined with plain ones', async (t) => {
  const { json, upstream } = makeGateway(node());
  const topic = unique('apart');
  t.is((await json('POST', '/v1/topics', { name: topic })).status, 201);
  const before = upstream.calls.get('append') ?? 0;
  const responses = await Promise.all([
    json(
      'POST',
      `/v1/topics/${topic}/records`,
      { records: [{ value: 'p' }] },
      {
        'producer-id': 'p1',
        'producer-seq': '0',
      },
    ),
    json(
      'POST',
      `/v1/topics/${topic}/records`,
      { records: [{ value: 'q' }] },
      {
        'producer-id': 'p2',
        'producer-seq': '0',
      },
    ),
    json('POST', `/v1/topics/${topic}/records?acks=leader`, { records: [{ value: 'l' }] }),
    json('POST', `/v1/topics/${topic}/records`, { records: [{ value: 'n' }] }),
  ]);
  for (const res of responses) t.is(res.status, 201);
  // Two producers, one acks=leader, one plain: four upstream appends, none joined.
  t.is((upstream.calls.get('append') ?? 0) - before, 4);
  const bodies = (await Promise.all(responses.map((r) => r.json()))) as Appended[];
  t.is(bodies[2]!.acks, 'leader');
  t.is(bodies[3]!.acks, 'quorum');
  // A wrong expected offset is answered for that request alone.
  const mismatch = await json(
    'POST',
    `/v1/topics/${topic}/records`,
    { records: [{ value: 'e' }] },
    {
      'expected-offset': '0',
    },
  );
  t.is(mismatch.status, 412);
  t.is(await problemCode(mismatch), 'OFFSET_MISMATCH');
});

/**
 * What a real node cannot be made to do: answer a joined batch with offsets for another number of
 * records, or an upstream that throws instead of rejecting. Neither may be split into offsets the
 * requests do not own, nor end the process (the batch leaves from a setImmediate).
 */
test('a reply for another number of records fails every member OUTCOME_UNKNOWN; a throwing upstream rejects', async (t) => {
  let calls = 0;
  const wrongCount: Upstream = {
    request: (async () => {
      calls++;
      return { firstOffset: 10, lastOffset: 10, timestampMs: 1, duplicate: false, acks: 'quorum' };
    }) as Upstream['request'],
  };
  const joined = new AppendCoalescer(wrongCount, new GatewayMetrics());
  const records = [{ value: new Uint8Array([1]) }];
  const outcomes = await Promise.allSettled([
    joined.append('t', records, undefined),
    joined.append('t', records, undefined),
  ]);
  t.is(calls, 1, 'one upstream append for both');
  for (const o of outcomes) {
    t.is(o.status, 'rejected');
    t.is(((o as PromiseRejectedResult).reason as WalrusError).code, ErrorCode.OUTCOME_UNKNOWN);
  }

  const throwing: Upstream = {
    request: (() => {
      throw new WalrusError(ErrorCode.UNAVAILABLE, 'thrown, not rejected');
    }) as Upstream['request'],
  };
  const alone = new AppendCoalescer(throwing, new GatewayMetrics());
  const error = await t.throwsAsync(alone.append('t', records, undefined));
  t.is((error as WalrusError).code, ErrorCode.UNAVAILABLE);
});

/** An upstream whose appends settle when the test says: each call's record count and its settle. */
function heldUpstream(): {
  upstream: Upstream;
  calls: { recordCount: number; answer: () => void }[];
} {
  const calls: { recordCount: number; answer: () => void }[] = [];
  let end = 0;
  const upstream: Upstream = {
    request: ((req: { records: readonly unknown[] }) =>
      new Promise((resolve) => {
        const count = req.records.length;
        calls.push({
          recordCount: count,
          answer: () => {
            const firstOffset = end;
            end += count;
            resolve({ firstOffset, lastOffset: end - 1, timestampMs: 1, duplicate: false, acks: 'quorum' });
          },
        });
      })) as unknown as Upstream['request'],
  };
  return { upstream, calls };
}

const turn = () => new Promise((resolve) => setImmediate(resolve));
const one = [{ value: new Uint8Array([1]) }];

test('while a joined append is in flight, the appends of later turns gather in one group that leaves when it settles', async (t) => {
  const { upstream, calls } = heldUpstream();
  const joined = new AppendCoalescer(upstream, new GatewayMetrics());
  const first = [joined.append('t', one, undefined), joined.append('t', one, undefined)];
  await turn();
  t.deepEqual(
    calls.map((c) => c.recordCount),
    [2],
  );
  const later = [joined.append('t', one, undefined)];
  await turn();
  later.push(joined.append('t', [...one, ...one], undefined));
  await turn();
  // Another topic is not held behind this one's append.
  const other = joined.append('u', one, undefined);
  await turn();
  t.deepEqual(
    calls.map((c) => c.recordCount),
    [2, 1],
    'the later turns wait; the other topic went',
  );
  calls[0]!.answer();
  t.deepEqual(
    (await Promise.all(first)).map((r) => r.firstOffset),
    [0, 1],
  );
  await turn();
  t.deepEqual(
    calls.map((c) => c.recordCount),
    [2, 1, 3],
    'the held group left as one append once the first settled',
  );
  calls[2]!.answer();
  const replies = await Promise.all(later);
  t.deepEqual(
    replies.map((r) => [r.firstOffset, r.lastOffset]),
    [
      [2, 2],
      [3, 4],
    ],
  );
  calls[1]!.answer();
  t.is((await other).firstOffset, 5);
});

test('a held group leaves anyway when the append in flight does not settle, and at once when it is full', async (t) => {
  const { upstream, calls } = heldUpstream();
  const joined = new AppendCoalescer(upstream, new GatewayMetrics());
  void joined.append('t', one, undefined);
  await turn();
  const waiting = joined.append('t', one, undefined);
  await turn();
  t.is(calls.length, 1);
  // The first never settles (a stalled node): the held one leaves after coalescedAppendHoldMsMax.
  for (let i = 0; i < 1000 && calls.length < 2; i++) await new Promise((r) => setTimeout(r, 10));
  t.is(calls.length, 2);
  calls[1]!.answer();
  t.is((await waiting).lastOffset, 0);

  const { upstream: full, calls: fullCalls } = heldUpstream();
  const bounded = new AppendCoalescer(full, new GatewayMetrics());
  const half = Array.from({ length: coalescedAppendRecordCountMax / 2 }, () => one[0]!);
  void bounded.append('t', half, undefined);
  await turn();
  void bounded.append('t', half, undefined);
  await turn();
  void bounded.append('t', one, undefined);
  t.is(fullCalls.length, 1, 'held: the first is in flight');
  void bounded.append('t', half, undefined);
  t.deepEqual(
    fullCalls.map((c) => c.recordCount),
    [half.length, half.length + 1],
    'the held group would outgrow the limit: it left at once',
  );
});
