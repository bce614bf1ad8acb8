/**
 * The replication surface of the gateway over one real walrus-node (one voter: the default
 * replication factor is 1): POST /v1/topics takes `replicationFactor`, topics show the factor, the
 * under-replicated count and each segment's replicas and epoch, and appends (JSON batch and raw
 * body) take `?acks=leader|quorum` and answer the achieved `acks`. Answers are checked against
 * openapi.yaml; bad values are 400 BAD_REQUEST and never reach the node.
 */
import test from 'ava';
import type { RequestFor, Upstream, UpstreamCallOptions } from '../../../gateway/upstream.js';
import type { Request, RequestOp, ResponseOf } from '../../../node/protocol/messages.js';
import { checkResponse } from '../../helpers/spec-check.js';
import { makeGateway, problemCode, unique, useRealNode } from './helpers.js';

const node = useRealNode(test);

/** Records every request on its way to the real node; `answer` may rewrite a reply. */
class RecordingUpstream implements Upstream {
  readonly requests: Request[] = [];
  answer: <Op extends RequestOp>(req: RequestFor<Op>, reply: ResponseOf<Op>) => ResponseOf<Op> = (
    _req,
    reply,
  ) => reply;

  constructor(private readonly inner: Upstream) {}

  async request<Op extends RequestOp>(
    req: RequestFor<Op>,
    options?: UpstreamCallOptions,
  ): Promise<ResponseOf<Op>> {
    this.requests.push(req as Request);
    return this.answer(req, await this.inner.request(req, options));
  }

  ops(op: RequestOp): Request[] {
    return this.requests.filter((r) => r.op === op);
  }
}

function setup() {
  const recording = new RecordingUpstream(node().client);
  return { recording, ...makeGateway(node(), { upstream: recording }) };
}

interface TopicJson {
  replicationFactor: number;
  underReplicatedSegmentCount: number;
  segments: { id: number; leaderNodeId: number; replicas: number[]; epoch: number }[];
}

test('a topic shows its replication factor, under-replicated count, and each segment replicas and epoch', async (t) => {
  const { json, call, recording } = setup();
  const name = unique('rf');
  const created = await json('POST', '/v1/topics', { name, replicationFactor: 1 });
  t.is(created.status, 201);
  t.deepEqual(await checkResponse('createTopic', created), []);
  t.like(recording.ops('createTopic').at(-1), { op: 'createTopic', topic: name, replicationFactor: 1 });
  const body = (await created.json()) as TopicJson;
  t.is(body.replicationFactor, 1);
  t.is(body.underReplicatedSegmentCount, 0);
  t.deepEqual(body.segments, [{ ...body.segments[0]!, replicas: [1], epoch: 1 }]);
  t.is(body.segments[0]!.leaderNodeId, 1);

  const described = await call(`/v1/topics/${name}`);
  t.deepEqual(await checkResponse('describeTopic', described), []);
  t.like(await described.json(), { replicationFactor: 1, underReplicatedSegmentCount: 0 });
  const list = await call('/v1/topics');
  t.deepEqual(await checkResponse('listTopics', list), []);
  const listed = ((await list.json()) as { topics: (TopicJson & { name: string })[] }).topics.find(
    (x) => x.name === name,
  );
  t.like(listed, { replicationFactor: 1, underReplicatedSegmentCount: 0 });
  t.deepEqual(listed?.segments[0]?.replicas, [1]);
});

test('without replicationFactor a topic gets the cluster default, min(3, voters): 1 on one node', async (t) => {
  const { json, recording } = setup();
  const name = unique('default');
  const created = await json('POST', '/v1/topics', { name });
  t.is(created.status, 201);
  t.false('replicationFactor' in recording.ops('createTopic').at(-1)!);
  t.like(await created.json(), { replicationFactor: 1, underReplicatedSegmentCount: 0 });
  // The same factor again is the same settings: 200; another one is 409.
  const same = await json('POST', '/v1/topics', { name, replicationFactor: 1 });
  t.is(same.status, 200);
  const other = await json('POST', '/v1/topics', { name, replicationFactor: 2 });
  t.is(other.status, 409);
  t.is(await problemCode(other), 'TOPIC_EXISTS');
});

test('a replication factor above the number of voters is 400 BAD_REQUEST from the node', async (t) => {
  const { json, call, recording } = setup();
  const name = unique('toomany');
  const res = await json('POST', '/v1/topics', { name, replicationFactor: 3 });
  t.is(res.status, 400);
  t.deepEqual(await checkResponse('createTopic', res), []);
  const problem = (await res.json()) as { code: string; detail: string };
  t.is(problem.code, 'BAD_REQUEST');
  t.regex(problem.detail, /replicationFactor 3 is above the 1 voter of the cluster/);
  t.is(recording.ops('createTopic').length, 1, 'the node judged it');
  t.is((await call(`/v1/topics/${name}`)).status, 404, 'nothing was created');
});

test('replicationFactor that is not an integer from 1 to 7 is 400 BAD_REQUEST before the node is asked', async (t) => {
  const { json, recording } = setup();
  for (const replicationFactor of [0, 8, -1, 1.5, '1', null, true, [1], {}]) {
    const res = await json('POST', '/v1/topics', { name: unique('bad'), replicationFactor });
    t.is(res.status, 400, JSON.stringify(replicationFactor));
    const problem = (await res.json()) as { code: string; detail: string };
    t.is(problem.code, 'BAD_REQUEST');
    t.regex(problem.detail, /replicationFactor must be an integer from 1 to 7/);
  }
  t.is(recording.ops('createTopic').length, 0);
});

test('appends take ?acks=leader|quorum, JSON batches and raw bodies alike, and answer the achieved acks', async (t) => {
  const { json, call, recording } = setup();
  const name = unique('acks');
  const url = `/v1/topics/${name}/records`;
  await json('POST', '/v1/topics', { name });
  const raw = (query: string) =>
    call(`${url}${query}`, { method: 'POST', headers: { 'content-type': 'text/plain' }, body: 'line' });

  for (const [query, asked] of [
    ['', undefined],
    ['?acks=quorum', 'quorum'],
    ['?acks=leader', 'leader'],
  ] as const) {
    for (const send of [
      () => json('POST', `${url}${query}`, { records: [{ value: 'v' }] }),
      () => raw(query),
    ]) {
      const res = await send();
      t.is(res.status, 201, query);
      t.deepEqual(await checkResponse('appendRecords', res), []);
      const { acks } = (await res.json()) as { acks: string };
      // One copy: whatever is asked, the node achieves quorum (a majority of one), or leader if it says so.
      t.true(acks === 'quorum' || (asked === 'leader' && acks === 'leader'), `${query}: ${acks}`);
      t.is(recording.ops('append').at(-1)?.op, 'append');
      const sent = recording.ops('append').at(-1) as Extract<Request, { op: 'append' }>;
      t.is(sent.acks, asked, `${query} is passed to the node`);
    }
  }
  t.is(recording.ops('append').length, 6);
});

test('the answer carries the acks the node reports', async (t) => {
  const { json, call, recording } = setup();
  const name = unique('achieved');
  const url = `/v1/topics/${name}/records`;
  await json('POST', '/v1/topics', { name });
  recording.answer = (req, reply) =>
    (req.op === 'append' ? { ...reply, acks: 'leader' } : reply) as typeof reply;
  const batch = await json('POST', `${url}?acks=leader`, { records: [{ value: 'a' }, { value: 'b' }] });
  t.like(await batch.json(), { count: 2, acks: 'leader' });
  const raw = await call(`${url}?acks=leader`, {
    method: 'POST',
    headers: { 'content-type': 'application/octet-stream' },
    body: Buffer.from([1, 2, 3]),
  });
  t.is(raw.status, 201);
  t.is(raw.headers.get('content-type')?.split(';')[0], 'application/json', 'raw appends answer JSON too');
  t.like(await raw.json(), { count: 1, acks: 'leader' });
});

test('any other acks value is 400 BAD_REQUEST problem+json, and nothing is appended', async (t) => {
  const { json, call, recording } = setup();
  const name = unique('badacks');
  const url = `/v1/topics/${name}/records`;
  await json('POST', '/v1/topics', { name });
  for (const query of [
    'acks=all',
    'acks=LEADER',
    'acks=',
    'acks=1',
    'acks=leader%20',
    'acks=quorum,leader',
  ]) {
    for (const res of [
      await json('POST', `${url}?${query}`, { records: [{ value: 'v' }] }),
      await call(`${url}?${query}`, { method: 'POST', headers: { 'content-type': 'text/plain' }, body: 'x' }),
    ]) {
      t.is(res.status, 400, query);
      t.deepEqual(await checkResponse('appendRecords', res), []);
      const problem = (await res.json()) as { code: string; detail: string };
      t.is(problem.code, 'BAD_REQUEST', query);
      t.is(problem.detail, 'acks must be one of leader, quorum');
    }
  }
  t.is(recording.ops('append').length, 0);
  const read = (await (await call(url)).json()) as { records: unknown[] };
  t.deepEqual(read.records, []);
});
