/**
 * The binary protocol against a real walrus-node: topics, batches, ranges across segments,
 * consumers, pipelining, error codes, limits, and durability of cursors across kill -9.
 */
import test from 'ava';
import { WalrusError } from '../../../node/protocol/error-codes.js';
import { WalrusClient } from '../../../node/client/walrus-client.js';
import { TextClient } from '../../../node/client/text-client.js';
import { type TestCluster, startLocalCluster } from '../../helpers/local-cluster.js';
import { frame, portOf, rawExchange } from '../../helpers/raw-socket.js';

let cluster: TestCluster;
let client: WalrusClient;

test.before(async () => {
  cluster = await startLocalCluster({
    env: { WALRUS_MAX_SEGMENT_ENTRIES: '100', WALRUS_MONITOR_CHECK_MS: '50' },
  });
  client = new WalrusClient({ nodes: cluster.clientAddrs, requestTimeoutMs: 10_000 });
});

test.after.always(async () => {
  await client?.close();
  await cluster?.destroy();
});

const enc = (s: string): Uint8Array => Buffer.from(s, 'utf8');
const dec = (b: Uint8Array): string => Buffer.from(b).toString('utf8');

async function codeOf(promise: Promise<unknown>): Promise<string> {
  try {
    await promise;
  } catch (error) {
    if (error instanceof WalrusError) return error.code;
    throw error;
  }
  return 'OK';
}

test.serial('create, describe, list and delete topics', async (t) => {
  const created = await client.createTopic('b-topics');
  t.true(created.created);
  t.is(created.topic.name, 'b-topics');
  t.is(created.topic.endOffset, 0);
  t.false((await client.createTopic('b-topics')).created, 'creating again answers created=false');
  t.is(await codeOf(client.createTopic('b-topics', { retentionMs: 1000 })), 'TOPIC_EXISTS');
  const described = await client.describeTopic('b-topics');
  t.deepEqual(
    described.segments.map((s) => [s.id, s.baseOffset, s.sealed]),
    [[1, 0, false]],
  );
  t.true((await client.listTopics()).some((x) => x.name === 'b-topics'));
  t.deepEqual(await client.deleteTopic('b-topics'), { deleted: true });
  t.is(await codeOf(client.describeTopic('b-topics')), 'TOPIC_NOT_FOUND');
});

test.serial('a batch append returns first/last offsets; reads return exact bytes and headers', async (t) => {
  await client.createTopic('b-append');
  const first = await client.append('b-append', [
    { value: enc('zero'), headers: { k: 'v' } },
    { value: new Uint8Array([0, 255, 1, 254]) },
    { value: new Uint8Array(0) },
  ]);
  t.like(first, { firstOffset: 0, lastOffset: 2, duplicate: false });
  const second = await client.append('b-append', [{ value: enc('three') }]);
  t.like(second, { firstOffset: 3, lastOffset: 3 });
  const read = await client.read('b-append', 0, { recordCountMax: 10 });
  t.deepEqual(
    read.records.map((r) => r.offset),
    [0, 1, 2, 3],
  );
  t.is(dec(read.records[0]!.value), 'zero');
  t.deepEqual(read.records[0]!.headers, { k: 'v' });
  t.deepEqual([...read.records[1]!.value], [0, 255, 1, 254]);
  t.is(read.records[2]!.value.length, 0);
  t.is(read.nextOffset, 4);
  t.is(read.endOffset, 4);
  t.true(read.records.every((r) => r.timestampMs > 1_600_000_000_000));
  const limited = await client.read('b-append', 1, { recordCountMax: 2 });
  t.deepEqual(
    limited.records.map((r) => r.offset),
    [1, 2],
  );
  t.is(await codeOf(client.read('b-append', 5)), 'OFFSET_OUT_OF_RANGE');
  t.deepEqual((await client.read('b-append', 4)).records, []);
});

test.serial('many pipelined appends on one connection get contiguous, unique offsets', async (t) => {
  await client.createTopic('b-pipe');
  const n = 2000;
  const results = await Promise.all(
    Array.from({ length: n }, (_, i) => client.append('b-pipe', [{ value: enc(`m${i}`) }])),
  );
  const offsets = results.map((r) => r.firstOffset).sort((a, b) => a - b);
  t.deepEqual(
    offsets,
    Array.from({ length: n }, (_, i) => i),
  );
  // Reads cross the 100-entry segment boundaries with no gap and no duplicate.
  const seen: number[] = [];
  let offset = 0;
  while (offset < n) {
    const r = await client.read('b-pipe', offset, { recordCountMax: 333 });
    t.true(r.records.length > 0);
    for (const rec of r.records) seen.push(rec.offset);
    offset = r.nextOffset;
  }
  t.deepEqual(
    seen,
    Array.from({ length: n }, (_, i) => i),
  );
  const byValue = new Map(results.map((r, i) => [r.firstOffset, `m${i}`]));
  const check = await client.read('b-pipe', 1500, { recordCountMax: 50 });
  for (const rec of check.records) t.is(dec(rec.value), byValue.get(rec.offset) ?? '');
  const described = await client.describeTopic('b-pipe');
  t.true(described.segments.length >= 10, `expected rollovers, got ${described.segments.length} segments`);
});

test.serial('long-poll read waits for the next append', async (t) => {
  await client.createTopic('b-poll');
  const pending = client.read('b-poll', 0, { waitMs: 5000 });
  await new Promise((r) => setTimeout(r, 100));
  await client.append('b-poll', [{ value: enc('late') }]);
  const r = await pending;
  t.deepEqual(
    r.records.map((x) => dec(x.value)),
    ['late'],
  );
  const empty = await client.read('b-poll', 1, { waitMs: 100 });
  t.deepEqual(empty.records, []);
});

test.serial('idempotent producer: a retried sequence is not appended twice; a gap is refused', async (t) => {
  await client.createTopic('b-idem');
  const a = await client.append('b-idem', [{ value: enc('a') }], { producerId: 'p1', producerSeq: 0 });
  const again = await client.append('b-idem', [{ value: enc('a') }], { producerId: 'p1', producerSeq: 0 });
  t.is(again.firstOffset, a.firstOffset);
  t.true(again.duplicate);
  t.is(
    await codeOf(client.append('b-idem', [{ value: enc('c') }], { producerId: 'p1', producerSeq: 5 })),
    'SEQUENCE_MISMATCH',
  );
  const b = await client.append('b-idem', [{ value: enc('b') }], { producerId: 'p1', producerSeq: 1 });
  t.is(b.firstOffset, 1);
  t.is((await client.describeTopic('b-idem')).endOffset, 2);
});

test.serial(
  'conditional append: a wrong expected offset is OFFSET_MISMATCH and writes nothing',
  async (t) => {
    await client.createTopic('b-cond');
    await client.append('b-cond', [{ value: enc('x') }], { expectedOffset: 0 });
    t.is(
      await codeOf(client.append('b-cond', [{ value: enc('y') }], { expectedOffset: 0 })),
      'OFFSET_MISMATCH',
    );
    await client.append('b-cond', [{ value: enc('y') }], { expectedOffset: 1 });
    t.is((await client.describeTopic('b-cond')).endOffset, 2);
  },
);

test.serial('named consumers: read-next advances, commit moves the cursor, get reports it', async (t) => {
  await client.createTopic('b-cons');
  await client.append(
    'b-cons',
    Array.from({ length: 10 }, (_, i) => ({ value: enc(`c${i}`) })),
  );
  const first = await client.consumerReadNext('b-cons', 'g1', { recordCountMax: 4 });
  t.deepEqual(
    first.records.map((r) => r.offset),
    [0, 1, 2, 3],
  );
  t.is(first.nextOffset, 4);
  t.is((await client.consumerGet('b-cons', 'g1')).offset, 4);
  const peek = await client.consumerReadNext('b-cons', 'g1', { recordCountMax: 2, autoCommit: false });
  t.deepEqual(
    peek.records.map((r) => r.offset),
    [4, 5],
  );
  t.is((await client.consumerGet('b-cons', 'g1')).offset, 4, 'autoCommit=false leaves the cursor');
  await client.consumerCommit('b-cons', 'g1', 8);
  const rest = await client.consumerReadNext('b-cons', 'g1', { recordCountMax: 100 });
  t.deepEqual(
    rest.records.map((r) => r.offset),
    [8, 9],
  );
  t.is(await codeOf(client.consumerGet('b-cons', 'nobody')), 'CONSUMER_NOT_FOUND');
  t.is(await codeOf(client.consumerCommit('b-cons', 'g1', 11)), 'OFFSET_OUT_OF_RANGE');
  t.is(await codeOf(client.consumerReadNext('b-cons', '../evil')), 'BAD_REQUEST');
});

test.serial('concurrent read-next through one consumer never hands out a record twice', async (t) => {
  await client.createTopic('b-race');
  await client.append(
    'b-race',
    Array.from({ length: 200 }, (_, i) => ({ value: enc(`r${i}`) })),
  );
  const results = await Promise.all(
    Array.from({ length: 50 }, () => client.consumerReadNext('b-race', 'g', { recordCountMax: 3 })),
  );
  const offsets = results.flatMap((r) => r.records.map((x) => x.offset)).sort((a, b) => a - b);
  t.deepEqual(
    offsets,
    Array.from({ length: 150 }, (_, i) => i),
  );
});

test.serial('limits and bad requests have stable codes', async (t) => {
  await client.createTopic('b-limits');
  t.is(
    await codeOf(client.append('b-limits', [{ value: new Uint8Array(1024 * 1024 + 1) }])),
    'RECORD_TOO_LARGE',
  );
  t.is(await codeOf(client.append('b-limits', [])), 'BAD_REQUEST');
  t.is(await codeOf(client.append('nosuch', [{ value: enc('x') }])), 'TOPIC_NOT_FOUND');
  t.is(await codeOf(client.describeTopic('../etc')), 'INVALID_TOPIC_NAME');
  t.is((await client.describeTopic('b-limits')).endOffset, 0, 'nothing was written by the refused appends');
});

test.serial('metrics and state over the binary protocol', async (t) => {
  const metrics = (await client.metrics()) as Record<string, unknown>;
  t.is(metrics['id'], 1);
  t.is(metrics['state'], 'Leader');
  const state = (await client.state('b-pipe')) as Record<string, unknown>;
  t.is(state['topic'], 'b-pipe');
});

test.serial('connection limit and idle timeout', async (t) => {
  const limited = await startLocalCluster({
    env: { WALRUS_MAX_CONNECTIONS: '3', WALRUS_IDLE_TIMEOUT_MS: '300' },
  });
  try {
    const port = portOf(limited.clientAddrs[0]!);
    const held = [0, 1, 2].map(() => new TextClient(limited.clientAddrs[0]!));
    await Promise.all(held.map((c) => c.send('METRICS')));
    const refused = await rawExchange(port, [frame('METRICS')]);
    t.true(refused.closed);
    t.regex(refused.data.subarray(4).toString(), /^ERR BUSY /);
    await Promise.all(held.map((c) => c.close()));
    const idle = await rawExchange(port, [], { quietMs: 2000 });
    t.true(idle.closed, 'an idle connection is closed by the server');
  } finally {
    await limited.destroy();
  }
});

test.serial('the shared GET cursor and named cursors survive kill -9 without replay or skip', async (t) => {
  const c = await startLocalCluster();
  const addr = c.clientAddrs[0]!;
  try {
    const text = new TextClient(addr);
    await text.send('REGISTER durable');
    for (let i = 0; i < 10; i++) t.is(await text.send(`PUT durable d${i}`), 'OK');
    for (let i = 0; i < 4; i++) t.is(await text.send('GET durable'), `OK d${i}`);
    await text.close();
    const bin = new WalrusClient({ nodes: [addr] });
    await bin.consumerReadNext('durable', 'named', { recordCountMax: 7 });
    await bin.close();
    await c.kill(0, 'SIGKILL');
    await c.startNode(0);
    const after = new TextClient(addr);
    t.is(await after.send('GET durable'), 'OK d4');
    await after.close();
    const bin2 = new WalrusClient({ nodes: [addr] });
    t.is((await bin2.consumerGet('durable', 'named')).offset, 7);
    t.is((await bin2.describeTopic('durable')).endOffset, 10);
    await bin2.close();
  } finally {
    await c.destroy();
  }
});

test.serial(
  'retention deletes whole sealed segments, never the active one; readers move to the start',
  async (t) => {
    const c = await startLocalCluster({
      env: { WALRUS_MAX_SEGMENT_ENTRIES: '5', WALRUS_MONITOR_CHECK_MS: '50' },
    });
    const bin = new WalrusClient({ nodes: c.clientAddrs });
    try {
      await bin.createTopic('ret', { retentionBytes: 1 });
      for (let i = 0; i < 23; i++) await bin.append('ret', [{ value: enc(`v${i}`) }]);
      let info = await bin.describeTopic('ret');
      for (let waited = 0; info.startOffset === 0 && waited < 5000; waited += 50) {
        await new Promise((r) => setTimeout(r, 50));
        info = await bin.describeTopic('ret');
      }
      t.true(info.startOffset > 0, 'retention removed old segments');
      t.is(info.startOffset, info.segments[0]!.baseOffset);
      t.true(
        info.segments.some((s) => !s.sealed),
        'the active segment stays',
      );
      t.is(info.endOffset, 23);
      t.is(await codeOf(bin.read('ret', 0)), 'OFFSET_OUT_OF_RANGE');
      const first = await bin.consumerReadNext('ret', 'late', { recordCountMax: 1 });
      t.is(first.records[0]?.offset, info.startOffset, 'a new consumer starts at the first stored offset');
      await bin.configureTopic('ret', { retentionBytes: null });
      t.is((await bin.describeTopic('ret')).retention.retentionBytes, null);
    } finally {
      await bin.close();
      await c.destroy();
    }
  },
);
