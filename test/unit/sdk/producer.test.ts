/**
 * producer(): batching by count, bytes and linger time, bounded buffer with backpressure, in-order
 * retries that never duplicate, flush()/close(), and failure that stops the producer. Against a
 * real walrus-node and a real walrus-gateway process, which one test kills and restarts mid-stream.
 * The fetch handed to the SDK is the real one, wrapped only to count requests, to hold them (to
 * fill the buffer) or to drop an answer the gateway really gave (a lost answer after an append).
 */
import test from 'ava';
import { createWalrusClient, type Producer, WalrusApiError } from '../../../sdk/index.js';
import { eventually } from '../../helpers/eventually.js';
import { GatewayProcess, useGatewayOverOneNode } from '../../helpers/gateway-process.js';

const running = useGatewayOverOneNode(test);

interface Sent {
  readonly seq: number;
  readonly bodyBytes: number;
  readonly recordCount: number;
  /** 'ok', the status of an error answer, or what the fetch threw. */
  outcome?: number | string;
}

/** The global fetch, with the producer's appends recorded; `hold` keeps requests until released. */
function observedFetch() {
  const sent: Sent[] = [];
  let held: (() => void)[] | undefined;
  let dropAnswerOfSeq: number | undefined;
  const fetchFn = async (input: string | URL | Request, init?: RequestInit): Promise<Response> => {
    const request = new Request(input, init);
    const seqHeader = request.headers.get('producer-seq');
    if (request.method !== 'POST' || seqHeader === null) return globalThis.fetch(request);
    const body = await request.clone().text();
    const entry: Sent = {
      seq: Number(seqHeader),
      bodyBytes: new TextEncoder().encode(body).length,
      recordCount: (JSON.parse(body) as { records: unknown[] }).records.length,
    };
    sent.push(entry);
    if (held !== undefined) await new Promise<void>((resolve) => held!.push(resolve));
    try {
      const res = await globalThis.fetch(request);
      entry.outcome = res.ok ? 'ok' : res.status;
      if (dropAnswerOfSeq === entry.seq) {
        dropAnswerOfSeq = undefined;
        await res.body?.cancel();
        entry.outcome = 'answer dropped';
        throw new TypeError('fetch failed', { cause: new Error('other side closed') });
      }
      return res;
    } catch (error) {
      entry.outcome ??= String(error);
      throw error;
    }
  };
  return {
    fetch: fetchFn as typeof fetch,
    sent,
    hold: () => {
      held = [];
    },
    release: () => {
      const waiting = held ?? [];
      held = undefined;
      for (const resolve of waiting) resolve();
    },
    dropAnswerOf: (seq: number) => {
      dropAnswerOfSeq = seq;
    },
  };
}

function clientWith(fetchFn: typeof fetch) {
  return createWalrusClient({ baseUrl: running.gateway.url, fetch: fetchFn });
}

async function readAll(topic: string): Promise<string[]> {
  const client = createWalrusClient({ baseUrl: running.gateway.url });
  const values: string[] = [];
  for (let offset = 0; ; ) {
    const page = await client.read(topic, { offset, limit: 1000 });
    values.push(...page.records.map((r) => r.value));
    // endOffset is left out of reads wholly inside sealed segments (immutable answers).
    if (page.records.length === 0 || (page.endOffset !== undefined && page.nextOffset >= page.endOffset))
      return values;
    offset = page.nextOffset;
  }
}

const range = (n: number, prefix: string) => Array.from({ length: n }, (_, i) => `${prefix}-${i}`);

test.serial(
  'batches by record count and by bytes; acks carry contiguous offsets in append order',
  async (t) => {
    const observed = observedFetch();
    const client = clientWith(observed.fetch);
    await client.createTopic('p-count');
    const producer = client.producer('p-count', { batchRecordCountMax: 100, lingerMs: 50 });
    const tickets = [];
    for (const value of range(1000, 'c')) tickets.push(await producer.append(value));
    await producer.flush();
    const acks = await Promise.all(tickets.map((ticket) => ticket.ack()));
    t.deepEqual(
      acks.map((a) => a.offset),
      acks.map((_, i) => i),
    );
    t.deepEqual(await readAll('p-count'), range(1000, 'c'));
    t.true(observed.sent.every((s) => s.recordCount <= 100));
    t.true(observed.sent.length >= 10 && observed.sent.length < 1000, `${observed.sent.length} batches`);
    t.deepEqual(
      observed.sent.map((s) => s.seq),
      observed.sent.map((_, i) => i),
      'one sequence per batch, in order, none repeated',
    );

    await client.createTopic('p-bytes');
    const bytesObserved = observedFetch();
    const big = clientWith(bytesObserved.fetch).producer('p-bytes', { batchBytesMax: 10_000, lingerMs: 50 });
    const value = 'x'.repeat(1000);
    for (let i = 0; i < 60; i++) await big.append(value);
    await big.close();
    t.true(bytesObserved.sent.every((s) => s.bodyBytes <= 10_000 && s.recordCount <= 9));
    t.true(bytesObserved.sent.length >= 7);
    t.is((await readAll('p-bytes')).length, 60);
  },
);

test.serial('linger: records wait for their batch until lingerMs or flush()', async (t) => {
  const observed = observedFetch();
  const client = clientWith(observed.fetch);
  await client.createTopic('p-linger');
  const producer = client.producer('p-linger', { lingerMs: 600_000 });
  const tickets = await Promise.all(['a', 'b', 'c'].map((v) => producer.append(v)));
  t.is(observed.sent.length, 0, 'nothing is sent before the linger time');
  t.deepEqual(producer.buffered.recordCount, 3);
  await producer.flush();
  t.deepEqual(
    observed.sent.map((s) => s.recordCount),
    [3],
  );
  t.deepEqual(
    (await Promise.all(tickets.map((x) => x.ack()))).map((a) => a.offset),
    [0, 1, 2],
  );
  t.is(producer.buffered.recordCount, 0);
  await producer.close();
});

test.serial(
  'backpressure: append() waits while the buffer is full, in call order; waiting appends are bounded',
  async (t) => {
    const observed = observedFetch();
    const client = clientWith(observed.fetch);
    await client.createTopic('p-full');
    const producer = client.producer('p-full', {
      lingerMs: 0,
      batchRecordCountMax: 5,
      bufferRecordCountMax: 10,
      waitingAppendCountMax: 3,
    });
    observed.hold();
    for (const value of range(10, 'f')) await producer.append(value);
    t.is(producer.buffered.recordCount, 10);
    const order: string[] = [];
    const waiting = range(3, 'w').map((value) =>
      producer.append(value).then((ticket) => {
        order.push(value);
        return ticket;
      }),
    );
    const refused = await t.throwsAsync(producer.append('too-many'), { instanceOf: WalrusApiError });
    t.is(refused?.code, 'BUSY');
    await eventually('the first batch in flight', async () =>
      observed.sent.length === 1 ? true : undefined,
    );
    t.deepEqual(order, [], 'no room yet: the appends wait');
    observed.release();
    const tickets = await Promise.all(waiting);
    t.deepEqual(order, ['w-0', 'w-1', 'w-2']);
    await producer.close();
    t.deepEqual((await tickets[2]!.ack()).offset, 12);
    t.deepEqual(await readAll('p-full'), [...range(10, 'f'), ...range(3, 'w')]);
    t.true(observed.sent.every((s) => s.recordCount <= 5));
  },
);

test.serial(
  'a lost answer is retried with the same sequence: the cluster answers duplicate, nothing is appended twice',
  async (t) => {
    const observed = observedFetch();
    const client = clientWith(observed.fetch);
    await client.createTopic('p-lost');
    const producer = client.producer('p-lost', { lingerMs: 0, retry: { delayMsMin: 10, delayMsMax: 50 } });
    const first = await producer.append('one');
    await first.ack();
    observed.dropAnswerOf(1);
    const second = await producer.append('two');
    const ack = await second.ack();
    t.true(ack.duplicate, 'the retry was answered with the first answer');
    t.is(ack.offset, 1);
    t.is(ack.producerSeq, 1);
    await producer.append('three');
    await producer.close();
    t.deepEqual(
      observed.sent.map((s) => [s.seq, s.outcome]),
      [
        [0, 'ok'],
        [1, 'answer dropped'],
        [1, 'ok'],
        [2, 'ok'],
      ],
    );
    t.deepEqual(await readAll('p-lost'), ['one', 'two', 'three']);
  },
);

test.serial(
  'the gateway killed and restarted mid-stream: nothing lost, nothing duplicated, order kept',
  async (t) => {
    const observed = observedFetch();
    const client = clientWith(observed.fetch);
    await client.createTopic('p-kill');
    const producer: Producer = client.producer('p-kill', {
      lingerMs: 2,
      batchRecordCountMax: 20,
      retry: { attemptCountMax: 60, delayMsMin: 50, delayMsMax: 500 },
    });
    const total = 3000;
    const values = range(total, 'k');
    const writing = (async () => {
      const tickets = [];
      for (const value of values) tickets.push(await producer.append(value));
      await producer.close();
      return Promise.all(tickets.map((ticket) => ticket.ack()));
    })();
    await eventually('some batches acknowledged', async () =>
      observed.sent.filter((s) => s.outcome === 'ok').length >= 10 ? true : undefined,
    );
    const port = running.gateway.port;
    await running.gateway.kill();
    await eventually('a batch failing while the gateway is down', async () =>
      observed.sent.some((s) => s.outcome !== undefined && s.outcome !== 'ok') ? true : undefined,
    );
    running.gateway = await GatewayProcess.start({ nodes: running.cluster.clientAddrs, port });
    const acks = await writing;
    t.deepEqual(
      acks.map((a) => a.offset),
      values.map((_, i) => i),
    );
    t.deepEqual(await readAll('p-kill'), values, 'every record once, in order');
    const failed = observed.sent.filter((s) => s.outcome !== 'ok');
    t.true(failed.length >= 1, 'some attempts failed while the gateway was down');
    const seqs = observed.sent.map((s) => s.seq);
    t.true(
      seqs.every((seq, i) => i === 0 || seq === seqs[i - 1] || seq === seqs[i - 1]! + 1),
      'sequences never skip or go back: a retry repeats the same one',
    );
  },
);

test.serial(
  'a lasting error stops the producer: the batch and later appends reject, flush() reports it',
  async (t) => {
    const client = createWalrusClient({ baseUrl: running.gateway.url });
    const producer = client.producer('p-no-such-topic', { lingerMs: 0 });
    const ticket = await producer.append('x');
    const error = await t.throwsAsync(ticket.ack(), { instanceOf: WalrusApiError });
    t.is(error?.code, 'TOPIC_NOT_FOUND');
    t.false(error?.retryable);
    t.is(producer.failure, error);
    t.is(await t.throwsAsync(producer.append('y')), error);
    t.is(await t.throwsAsync(producer.flush()), error);

    const closed = client.producer('p-no-such-topic');
    await closed.close();
    const refused = await t.throwsAsync(closed.append('z'), { instanceOf: WalrusApiError });
    t.regex(refused?.message ?? '', /closed/);
  },
);

test.serial('producer options are checked: a clear INVALID_CONFIG', (t) => {
  const client = createWalrusClient({ baseUrl: running.gateway.url });
  for (const options of [
    { lingerMs: -1 },
    { batchRecordCountMax: 0 },
    { batchBytesMax: 1.5 },
    { batchBytesMax: 2_000_000, bufferBytesMax: 1_000_000 },
    { firstSeq: -1 },
  ]) {
    const error = t.throws(() => client.producer('t', options), { instanceOf: WalrusApiError });
    t.is(error?.code, 'INVALID_CONFIG', JSON.stringify(options));
  }
});
