/**
 * Durable Streams state lives in the cluster: two gateways over one 3-node cluster agree on a
 * stream's content type, offsets, closed state, producer epoch and fork, and a restarted gateway
 * forgets none of it. The stream's data is readable through /v1/topics too, under the topic its
 * path maps to; a path that cannot be mapped is refused with BAD_REQUEST.
 */
import test from 'ava';
import { topicOfStream } from '../../gateway/ds/path-map.js';
import { eventually } from '../helpers/eventually.js';
import { GatewayProcess } from '../helpers/gateway-process.js';
import { startLocalCluster, type TestCluster } from '../helpers/local-cluster.js';

let cluster: TestCluster;
let a: GatewayProcess;
let b: GatewayProcess;

test.before(async () => {
  cluster = await startLocalCluster({ nodeCount: 3 });
  a = await GatewayProcess.start({ nodes: cluster.clientAddrs });
  b = await GatewayProcess.start({ nodes: [...cluster.clientAddrs].reverse() });
});

test.after.always(async (t) => {
  if (t.passed === false)
    for (const n of cluster?.nodes ?? []) t.log(`node ${n.spec.nodeId}: ${n.logTail.slice(-2000)}`);
  await a?.stop();
  await b?.stop();
  await cluster?.destroy();
});

const stream = (g: GatewayProcess, path: string) => `${g.url}/v1/stream/${path}`;

test('two gateways agree on a stream, and a restarted gateway forgets nothing', async (t) => {
  const created = await eventually('a stream created through gateway a', async () => {
    const r = await fetch(stream(a, 'room/ü 1'), {
      method: 'PUT',
      headers: { 'content-type': 'application/json' },
    });
    return r.status === 201 ? r : undefined;
  });
  t.is(created.headers.get('stream-next-offset'), '0000000000000000_0000000000000000');
  // Producer epoch 3 through gateway a; epoch 2 through gateway b is fenced with the current epoch named.
  const producer = (epoch: number, seq: number) => ({
    'content-type': 'application/json',
    'producer-id': 'w1',
    'producer-epoch': String(epoch),
    'producer-seq': String(seq),
  });
  const first = await fetch(stream(a, 'room/ü 1'), {
    method: 'POST',
    headers: producer(3, 0),
    body: '[{"n":1},{"n":2}]',
  });
  t.is(first.status, 200);
  const fenced = await fetch(stream(b, 'room/ü 1'), {
    method: 'POST',
    headers: producer(2, 0),
    body: '{"n":0}',
  });
  t.is(fenced.status, 403);
  t.is(fenced.headers.get('producer-epoch'), '3');
  // Gateway b sees what a wrote, with the content type a set; b closes it, a sees it closed.
  const read = await fetch(`${stream(b, 'room/ü 1')}?offset=-1`);
  t.is(read.headers.get('content-type'), 'application/json');
  t.deepEqual(await read.json(), [{ n: 1 }, { n: 2 }]);
  const close = await fetch(stream(b, 'room/ü 1'), { method: 'POST', headers: { 'stream-closed': 'true' } });
  t.is(close.status, 204);
  const late = await fetch(stream(a, 'room/ü 1'), {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: '{"n":3}',
  });
  t.is(late.status, 409);
  t.is(late.headers.get('stream-closed'), 'true');
  // A fork made through b reads through a.
  const fork = await fetch(stream(b, 'room/fork'), {
    method: 'PUT',
    headers: {
      'stream-forked-from': '/v1/stream/room/%C3%BC%201',
      'stream-fork-offset': '0000000000000000_0000000000000001',
    },
  });
  t.is(fork.status, 201);
  t.deepEqual(await (await fetch(`${stream(a, 'room/fork')}?offset=-1`)).json(), [{ n: 1 }]);

  // Gateway a restarts (on another port): the stream is as it was.
  await a.stop();
  a = await GatewayProcess.start({ nodes: cluster.clientAddrs });
  const head = await fetch(stream(a, 'room/ü 1'), { method: 'HEAD' });
  t.is(head.status, 200);
  t.is(head.headers.get('stream-closed'), 'true');
  t.is(head.headers.get('stream-next-offset'), '0000000000000000_0000000000000002');
  t.is(head.headers.get('content-type'), 'application/json');

  // The same records through the topic API, under the topic the path maps to.
  const topic = topicOfStream('/v1/stream/room/ü 1');
  const records = (await (await fetch(`${a.url}/v1/topics/${topic}/records?offset=0&limit=10`)).json()) as {
    records: { value: string }[];
  };
  t.deepEqual(
    records.records.map((r) => r.value),
    ['{"n":1}', '{"n":2}'],
  );
});

test('a path that cannot be mapped to a topic is refused with BAD_REQUEST naming the reason', async (t) => {
  for (const bad of ['a%2Fb', 'x/%ZZ', 'c%00d', `${'p'.repeat(1100)}`]) {
    const r = await fetch(stream(a, bad), { method: 'PUT', headers: { 'content-type': 'text/plain' } });
    t.is(r.status, 400, bad.slice(0, 20));
    const problem = (await r.json()) as { code: string; detail: string };
    t.is(problem.code, 'BAD_REQUEST');
    t.regex(problem.detail, /stream path/);
  }
});
