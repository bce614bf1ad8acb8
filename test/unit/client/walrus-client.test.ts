/**
 * WalrusClient against in-memory nodes on real sockets: typed conveniences, leader-hint routing,
 * failover, and the retry rules (bounded, retryable codes only, no blind re-send of an ambiguous
 * non-idempotent append).
 */
import net from 'node:net';
import test from 'ava';
import { ErrorCode, WalrusError } from '../../../node/protocol/error-codes.js';
import { WalrusClient } from '../../../node/client/walrus-client.js';
import type { Request } from '../../../node/protocol/messages.js';
import { FakeNode } from './fake-node.js';

async function rejection(p: Promise<unknown>): Promise<WalrusError> {
  try {
    await p;
  } catch (e) {
    if (e instanceof WalrusError) return e;
    throw e;
  }
  throw new Error('expected a rejection');
}

/** A port with nothing listening (bound, then released). */
async function deadPort(): Promise<number> {
  const s = net.createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  const port = (s.address() as net.AddressInfo).port;
  await new Promise((r) => s.close(r));
  return port;
}

const fastRetries = { retryBackoffMsMin: 5, retryBackoffMsMax: 20 } as const;

test('typed conveniences round-trip through the binary protocol', async (t) => {
  const node = await new FakeNode(1).start();
  t.teardown(() => node.stop());
  const client = new WalrusClient({ nodes: [node.addr], ...fastRetries });
  t.teardown(() => client.close());
  t.deepEqual(await client.ping(), { nodeId: 1 });
  const created = await client.createTopic('orders', { retentionMs: 60_000 });
  t.true(created.created);
  t.is(created.topic.retention.retentionMs, 60_000);
  t.false((await client.createTopic('orders')).created);
  const appended = await client.append('orders', [
    { value: Buffer.from('a') },
    { value: Buffer.from([0, 255, 1]), headers: { 'content-type': 'application/octet-stream' } },
  ]);
  t.deepEqual(appended, {
    firstOffset: 0,
    lastOffset: 1,
    timestampMs: 1_700_000_000_000,
    duplicate: false,
    acks: 'quorum',
  });
  const read = await client.read('orders', 0, { recordCountMax: 10 });
  t.is(read.records.length, 2);
  t.deepEqual([...read.records[1]!.value], [0, 255, 1]);
  t.deepEqual(read.records[1]!.headers, { 'content-type': 'application/octet-stream' });
  t.is(read.nextOffset, 2);
  t.is((await client.describeTopic('orders')).endOffset, 2);
  t.deepEqual(
    (await client.listTopics()).map((x) => x.name),
    ['orders'],
  );
  t.is((await client.configureTopic('orders', { retentionBytes: 1024 })).retention.retentionBytes, 1024);
  t.is(await client.offsetForTimestamp('orders', 0), 0);
  const next = await client.consumerReadNext('orders', 'c1', { recordCountMax: 1 });
  t.is(next.records[0]!.value.toString(), 'a');
  t.deepEqual(await client.consumerGet('orders', 'c1'), { topic: 'orders', consumer: 'c1', offset: 1 });
  t.is((await client.consumerCommit('orders', 'c1', 2)).offset, 2);
  t.like(await client.metrics(), { id: 1, state: 'Leader' });
  t.like(await client.state('orders'), { topic: 'orders', leader_node: 1 });
  t.deepEqual(await client.deleteTopic('orders'), { deleted: true });
  const missing = await rejection(client.describeTopic('orders'));
  t.is(missing.code, ErrorCode.TOPIC_NOT_FOUND);
  t.is(node.count('describeTopic'), 2, 'TOPIC_NOT_FOUND is not retried');
  await client.close();
  await node.stop();
});

test('append passes acks through and answers what was achieved; createTopic passes replicationFactor', async (t) => {
  const node = await new FakeNode(1).start();
  t.teardown(() => node.stop());
  const seen: Request[] = [];
  node.hook = (r) => {
    seen.push(r);
    return undefined;
  };
  const client = new WalrusClient({ nodes: [node.addr], ...fastRetries });
  t.teardown(() => client.close());
  const created = await client.createTopic('rf', { replicationFactor: 3, retentionMs: 1000 });
  t.like(seen.at(-1), { op: 'createTopic', replicationFactor: 3, retention: { retentionMs: 1000 } });
  t.is(created.topic.replicationFactor, 3);
  t.is(created.topic.underReplicatedSegmentCount, 1);
  t.deepEqual(created.topic.segments[0]!.replicas, [1]);
  t.is(created.topic.segments[0]!.epoch, 1);
  await client.createTopic('only-rf', { replicationFactor: 1 });
  t.deepEqual(
    seen.at(-1),
    { op: 'createTopic', topic: 'only-rf', replicationFactor: 1 },
    'no empty retention',
  );
  await client.createTopic('plain');
  t.deepEqual(seen.at(-1), { op: 'createTopic', topic: 'plain' });
  t.is((await client.describeTopic('plain')).replicationFactor, 1);

  const leader = await client.append('rf', [{ value: Buffer.from('a') }], { acks: 'leader' });
  t.like(seen.at(-1), { op: 'append', acks: 'leader' });
  t.is(leader.acks, 'leader');
  const quorum = await client.append('rf', [{ value: Buffer.from('b') }], { acks: 'quorum' });
  t.false('acks' in seen.at(-1)!, 'quorum is the default and travels as no option');
  t.is(quorum.acks, 'quorum');
  t.is((await client.append('rf', [{ value: Buffer.from('c') }])).acks, 'quorum');

  const before = seen.length;
  for (const replicationFactor of [8, -1, 2.5]) {
    t.is((await rejection(client.createTopic('x', { replicationFactor }))).code, ErrorCode.BAD_REQUEST);
  }
  const badAcks = client.append('rf', [{ value: Buffer.from('d') }], { acks: 'all' as unknown as 'leader' });
  t.is((await rejection(badAcks)).code, ErrorCode.BAD_REQUEST);
  t.is(seen.length, before, 'refused before anything was sent');
});

test('bad arguments fail with typed errors before anything is sent', async (t) => {
  const node = await new FakeNode(1).start();
  t.teardown(() => node.stop());
  const client = new WalrusClient({ nodes: [node.addr] });
  t.teardown(() => client.close());
  t.is(
    (await rejection(client.append('../etc', [{ value: Buffer.from('x') }]))).code,
    ErrorCode.INVALID_TOPIC_NAME,
  );
  t.is((await rejection(client.read('t', -1))).code, ErrorCode.BAD_REQUEST);
  t.is(node.seen.length, 0);
  t.throws(() => new WalrusClient({ nodes: [] }), { instanceOf: WalrusError });
  t.throws(() => new WalrusClient({ nodes: ['no-port'] }), { instanceOf: WalrusError });
  await client.close();
  await node.stop();
});

test('NOT_LEADER with a leader hint re-routes the topic to the leader and caches it', async (t) => {
  const follower = await new FakeNode(1).start();
  t.teardown(() => follower.stop());
  const leader = await new FakeNode(2).start();
  t.teardown(() => leader.stop());
  follower.hook = (r) =>
    r.op === 'append'
      ? { code: ErrorCode.NOT_LEADER, message: 'not me', leaderHint: { nodeId: 2, clientAddr: leader.addr } }
      : undefined;
  leader.topics.set('t', {
    records: [],
    createdAtMs: 0,
    retention: { retentionMs: null, retentionBytes: null },
  });
  const client = new WalrusClient({ nodes: [follower.addr], ...fastRetries });
  t.teardown(() => client.close());
  t.is((await client.append('t', [{ value: Buffer.from('1') }])).firstOffset, 0);
  t.is((await client.append('t', [{ value: Buffer.from('2') }])).firstOffset, 1);
  t.is(follower.count('append'), 1, 'the second append went straight to the cached leader');
  t.is(leader.count('append'), 2);
  t.deepEqual(await client.ping(), { nodeId: 1 }, 'requests without a topic still go to the preferred node');
  await client.close();
  await follower.stop();
  await leader.stop();
});

test('a redirect of an append is followed even with retries off: it is not a retry', async (t) => {
  const follower = await new FakeNode(1).start();
  t.teardown(() => follower.stop());
  const leader = await new FakeNode(2).start();
  t.teardown(() => leader.stop());
  follower.hook = (r) =>
    r.op === 'append' && r.noForward === true
      ? { code: ErrorCode.NOT_LEADER, message: 'not me', leaderHint: { nodeId: 2, clientAddr: leader.addr } }
      : undefined;
  leader.topics.set('t', {
    records: [],
    createdAtMs: 0,
    retention: { retentionMs: null, retentionBytes: null },
  });
  const client = new WalrusClient({ nodes: [follower.addr], retryCountMax: 0 });
  t.teardown(() => client.close());
  t.is((await client.append('t', [{ value: Buffer.from('1') }])).firstOffset, 0);
  t.is(leader.count('append'), 1);
  await client.close();
  await follower.stop();
  await leader.stop();
});

test('appends ask not to be forwarded; a hinted leader that cannot be reached makes them forwarded again', async (t) => {
  const node = await new FakeNode(1).start();
  t.teardown(() => node.stop());
  node.topics.set('t', {
    records: [],
    createdAtMs: 0,
    retention: { retentionMs: null, retentionBytes: null },
  });
  // The node leads nothing itself: it names a leader whose advertised address is not reachable
  // from this client, unless the append lets it forward (which the fake does by applying it).
  const unreachable = `127.0.0.1:${await deadPort()}`;
  const noForward: boolean[] = [];
  node.hook = (r) => {
    if (r.op !== 'append') return undefined;
    noForward.push(r.noForward === true);
    return r.noForward === true
      ? { code: ErrorCode.NOT_LEADER, message: 'not me', leaderHint: { nodeId: 2, clientAddr: unreachable } }
      : undefined;
  };
  const client = new WalrusClient({ nodes: [node.addr], ...fastRetries });
  t.teardown(() => client.close());
  t.is((await client.append('t', [{ value: Buffer.from('1') }])).firstOffset, 0);
  t.deepEqual(noForward, [true, false], 'redirected, the hint failed to connect, then forwarded');
  t.is((await client.append('t', [{ value: Buffer.from('2') }])).firstOffset, 1);
  t.deepEqual(noForward, [true, false, false], 'redirects stay paused');
  await client.close();
  await node.stop();
});

test('a node that refuses connections is skipped: the next node answers', async (t) => {
  const node = await new FakeNode(7).start();
  t.teardown(() => node.stop());
  const client = new WalrusClient({ nodes: [`127.0.0.1:${await deadPort()}`, node.addr], ...fastRetries });
  t.teardown(() => client.close());
  t.deepEqual(await client.ping(), { nodeId: 7 });
  node.topics.set('t', {
    records: [],
    createdAtMs: 0,
    retention: { retentionMs: null, retentionBytes: null },
  });
  // A plain append is safe to send elsewhere when the connect failed: nothing reached a server.
  t.is((await client.append('t', [{ value: Buffer.from('x') }])).firstOffset, 0);
  t.is(node.count('append'), 1);
  await client.close();
  await node.stop();
});

test('an append without producer id is not re-sent after an ambiguous failure', async (t) => {
  const node = await new FakeNode(1).start();
  t.teardown(() => node.stop());
  node.topics.set('t', {
    records: [],
    createdAtMs: 0,
    retention: { retentionMs: null, retentionBytes: null },
  });
  let drops = 1;
  node.hook = (r) => (r.op === 'append' && drops-- > 0 ? 'apply-then-drop' : undefined);
  const client = new WalrusClient({ nodes: [node.addr], ...fastRetries });
  t.teardown(() => client.close());
  const err = await rejection(client.append('t', [{ value: Buffer.from('once') }]));
  t.is(
    err.code,
    ErrorCode.OUTCOME_UNKNOWN,
    'never a retryable UNAVAILABLE: the append may have been applied',
  );
  t.false(err.retryable);
  t.true(err.mayHaveBeenApplied);
  t.is(node.count('append'), 1, 'not re-sent');
  t.is(
    node.topics.get('t')!.records.length,
    1,
    'the server had applied it: a blind retry would have duplicated it',
  );
  await client.close();
  await node.stop();
});

test('an idempotent producer append is retried after an ambiguous failure and is not duplicated', async (t) => {
  const node = await new FakeNode(1).start();
  t.teardown(() => node.stop());
  node.topics.set('t', {
    records: [],
    createdAtMs: 0,
    retention: { retentionMs: null, retentionBytes: null },
  });
  let drops = 1;
  node.hook = (r) => (r.op === 'append' && drops-- > 0 ? 'apply-then-drop' : undefined);
  const client = new WalrusClient({ nodes: [node.addr], ...fastRetries });
  t.teardown(() => client.close());
  const reply = await client.append('t', [{ value: Buffer.from('once') }], {
    producerId: 'p1',
    producerSeq: 0,
  });
  t.deepEqual(reply, {
    firstOffset: 0,
    lastOffset: 0,
    timestampMs: 1_700_000_000_000,
    duplicate: true,
    acks: 'quorum',
  });
  t.is(node.count('append'), 2);
  t.is(node.topics.get('t')!.records.length, 1);
  await client.close();
  await node.stop();
});

test('BUSY (refused up front) is retried even for a plain append; retries are bounded by retryCountMax', async (t) => {
  const node = await new FakeNode(1).start();
  t.teardown(() => node.stop());
  node.topics.set('t', {
    records: [],
    createdAtMs: 0,
    retention: { retentionMs: null, retentionBytes: null },
  });
  let busy = 2;
  node.hook = (r) =>
    r.op === 'append' && busy-- > 0 ? { code: ErrorCode.BUSY, message: 'later' } : undefined;
  const client = new WalrusClient({ nodes: [node.addr], retryCountMax: 3, ...fastRetries });
  t.teardown(() => client.close());
  t.is((await client.append('t', [{ value: Buffer.from('x') }])).firstOffset, 0);
  t.is(node.count('append'), 3);
  node.hook = () => ({ code: ErrorCode.UNAVAILABLE, message: 'no quorum' });
  const err = await rejection(client.describeTopic('t'));
  t.is(err.code, ErrorCode.UNAVAILABLE);
  t.is(node.count('describeTopic'), 4, 'one attempt plus retryCountMax retries');
  // A retryable code says that nothing was applied: even a plain append is re-sent.
  const plain = await rejection(client.append('t', [{ value: Buffer.from('y') }]));
  t.is(plain.code, ErrorCode.UNAVAILABLE);
  t.is(node.count('append'), 3 + 4, 'one attempt plus retryCountMax retries');
  // OUTCOME_UNKNOWN from the server (e.g. a quorum wait that ran out): a plain append is not
  // re-sent, an idempotent producer's is (the node deduplicates it).
  node.hook = (r) =>
    r.op === 'append' ? { code: ErrorCode.OUTCOME_UNKNOWN, message: 'quorum wait ran out' } : undefined;
  const unknown = await rejection(client.append('t', [{ value: Buffer.from('z') }]));
  t.is(unknown.code, ErrorCode.OUTCOME_UNKNOWN);
  t.is(node.count('append'), 3 + 4 + 1, 'a plain append is not re-sent after an unknown outcome');
  const producer = await rejection(
    client.append('t', [{ value: Buffer.from('z') }], { producerId: 'p', producerSeq: 0 }),
  );
  t.is(producer.code, ErrorCode.OUTCOME_UNKNOWN);
  t.is(node.count('append'), 3 + 4 + 1 + 4, 'an idempotent append is retried up to retryCountMax');
  await client.close();
  await node.stop();
});

test('a request without a reply fails TIMEOUT within the call timeout; abort rejects with the reason', async (t) => {
  const node = await new FakeNode(1).start();
  t.teardown(() => node.stop());
  node.hook = (r) => (r.op === 'metrics' ? 'hang' : undefined);
  const client = new WalrusClient({ nodes: [node.addr], retryCountMax: 0 });
  t.teardown(() => client.close());
  const err = await rejection(client.metrics({ timeoutMs: 100 }));
  t.is(err.code, ErrorCode.TIMEOUT, 'a read that timed out changed nothing: still retryable');
  node.topics.set('t', {
    records: [],
    createdAtMs: 0,
    retention: { retentionMs: null, retentionBytes: null },
  });
  node.hook = (r) => (r.op === 'metrics' || r.op === 'append' ? 'hang' : undefined);
  const append = await rejection(client.append('t', [{ value: Buffer.from('a') }], { timeoutMs: 100 }));
  t.is(
    append.code,
    ErrorCode.OUTCOME_UNKNOWN,
    'an append sent and not answered in time may have been applied',
  );
  const ac = new AbortController();
  const p = client.metrics({ signal: ac.signal });
  ac.abort(new Error('user gave up'));
  await t.throwsAsync(p, { message: 'user gave up' });
  t.deepEqual(await client.ping(), { nodeId: 1 }, 'the connection is still usable');
  await client.close();
  t.is((await rejection(client.ping())).code, ErrorCode.UNAVAILABLE);
  await node.stop();
});

test('a server restart is survived by idempotent calls within the deadline', async (t) => {
  const node = await new FakeNode(1).start();
  t.teardown(() => node.stop());
  const port = node.port;
  const client = new WalrusClient({ nodes: [node.addr], retryCountMax: 20, ...fastRetries });
  t.teardown(() => client.close());
  t.deepEqual(await client.ping(), { nodeId: 1 });
  await node.stop();
  const restarted = new FakeNode(2);
  const pending = client.ping();
  await restarted.start(port);
  t.deepEqual(await pending, { nodeId: 2 });
  await client.close();
  await restarted.stop();
});

test('closing the client during retries ends the call with UNAVAILABLE', async (t) => {
  const node = await new FakeNode(1).start();
  t.teardown(() => node.stop());
  node.hook = () => ({ code: ErrorCode.BUSY, message: 'always busy' });
  const client = new WalrusClient({
    nodes: [node.addr],
    retryCountMax: 100,
    retryBackoffMsMin: 20,
    retryBackoffMsMax: 20,
  });
  const call = client.ping();
  await new Promise((r) => setTimeout(r, 100));
  await client.close();
  const err = await rejection(call);
  t.is(err.code, ErrorCode.UNAVAILABLE);
  t.true(node.count('ping') < 100, 'the retry loop stopped');
});
