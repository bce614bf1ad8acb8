/**
 * The SDK over real HTTP against an in-process gateway in front of a real walrus-node: typed calls,
 * one error class with code/status/detail, bounded retries of retryable answers only when safe,
 * AbortSignal, and tail(): resume after a server-side disconnect, `break` closes the connection.
 */
import { once } from 'node:events';
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { serve } from '@hono/node-server';
import test from 'ava';
import { createApp } from '../../../gateway/app.js';
import { createWalrusClient, WalrusApiError } from '../../../sdk/index.js';
import type { Upstream } from '../../../gateway/upstream.js';
import { useRealNode } from '../gateway/helpers.js';

const realNode = useRealNode(test);

async function startGateway(
  options: Parameters<typeof createApp>[0] extends infer D ? Partial<D> : never = {},
) {
  // A plain object that calls the real node's client, so a test can wrap `request` to inject a
  // transient failure (the one thing a healthy real node will not produce on demand).
  const client = realNode().client;
  const upstream: Upstream = { request: (req, o) => client.request(req, o) };
  const gateway = createApp({ upstream, ...options });
  const server = serve({ fetch: gateway.app.fetch, port: 0, hostname: '127.0.0.1' }) as Server;
  await once(server, 'listening');
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return {
    upstream,
    gateway,
    url,
    close: () => {
      gateway.close();
      server.closeAllConnections();
      server.close();
    },
  };
}

test('typed calls and the one error class', async (t) => {
  const g = await startGateway();
  t.teardown(g.close);
  const client = createWalrusClient({ baseUrl: g.url });
  await client.createTopic('sdk', { retention: { retentionMs: 60_000 } });
  const described = await client.describeTopic('sdk');
  t.is(described.retention.retentionMs, 60_000);
  t.is((await client.configureTopic('sdk', { retentionBytes: 1024 })).retention.retentionBytes, 1024);
  const appended = await client.append('sdk', ['a', 'b']);
  t.is(appended.count, 2);
  const error = await t.throwsAsync(client.read('sdk', { offset: 50 }), { instanceOf: WalrusApiError });
  t.is(error?.code, 'OFFSET_OUT_OF_RANGE');
  t.is(error?.status, 416);
  t.regex(error?.detail ?? '', /outside the stored range/);
  const bad = await t.throwsAsync(client.createTopic('bad name'), { instanceOf: WalrusApiError });
  t.is(bad?.code, 'INVALID_TOPIC_NAME');
  const raw = await client.api.GET('/v1/topics/{topic}', { params: { path: { topic: 'sdk' } } });
  t.is(raw.data?.name, 'sdk');
});

test('replicationFactor and acks: createTopic and append pass them, and the answers show them', async (t) => {
  const g = await startGateway();
  t.teardown(g.close);
  const sent: { op: string; replicationFactor?: number; acks?: string }[] = [];
  const original = g.upstream.request.bind(g.upstream);
  g.upstream.request = ((req: Parameters<typeof original>[0], options?: Parameters<typeof original>[1]) => {
    sent.push(req as (typeof sent)[number]);
    return original(req, options);
  }) as typeof original;
  const client = createWalrusClient({ baseUrl: g.url });
  const topic = await client.createTopic('sdk-rf', {
    replicationFactor: 1,
    retention: { retentionMs: 60_000 },
  });
  t.like(sent.at(-1), { op: 'createTopic', replicationFactor: 1 });
  t.is(topic.replicationFactor, 1);
  t.is(topic.underReplicatedSegmentCount, 0);
  t.deepEqual(topic.segments[0]?.replicas, [1]);
  t.is(topic.segments[0]?.epoch, 1);
  t.is((await client.describeTopic('sdk-rf')).replicationFactor, 1);

  const leader = await client.append('sdk-rf', ['a'], { acks: 'leader' });
  t.is(sent.at(-1)?.acks, 'leader');
  t.true(leader.acks === 'leader' || leader.acks === 'quorum');
  const quorum = await client.append('sdk-rf', ['b'], { acks: 'quorum' });
  t.is(sent.at(-1)?.acks, 'quorum');
  t.is(quorum.acks, 'quorum');
  const plain = await client.append('sdk-rf', ['c']);
  t.is(sent.at(-1)?.acks, undefined);
  t.is(plain.acks, 'quorum');

  const tooMany = await t.throwsAsync(client.createTopic('sdk-rf3', { replicationFactor: 3 }), {
    instanceOf: WalrusApiError,
  });
  t.is(tooMany?.code, 'BAD_REQUEST');
  t.is(tooMany?.status, 400);
  const badAcks = await t.throwsAsync(client.append('sdk-rf', ['d'], { acks: 'all' as 'leader' }), {
    instanceOf: WalrusApiError,
  });
  t.is(badAcks?.code, 'BAD_REQUEST');
});

test('retryable answers are retried for safe requests, within the bound', async (t) => {
  const g = await startGateway();
  t.teardown(g.close);
  const client = createWalrusClient({
    baseUrl: g.url,
    retry: { attemptCountMax: 3, delayMsMin: 5, delayMsMax: 20 },
  });
  await client.createTopic('r');
  let failuresLeft = 2;
  const original = g.upstream.request.bind(g.upstream);
  g.upstream.request = (async (
    req: Parameters<typeof original>[0],
    options?: Parameters<typeof original>[1],
  ) => {
    if (req.op === 'describeTopic' && failuresLeft-- > 0)
      throw new (await import('../../../node/protocol/error-codes.js')).WalrusError('UNAVAILABLE', 'blip');
    return original(req, options);
  }) as typeof original;
  t.is((await client.describeTopic('r')).name, 'r', 'two failures, third attempt succeeds');
  failuresLeft = 100;
  const error = await t.throwsAsync(client.describeTopic('r'), { instanceOf: WalrusApiError });
  t.is(error?.code, 'UNAVAILABLE');
  t.true(error?.retryable);
  // 3 SDK attempts, each tried at most twice by the gateway: bounded at both layers.
  t.is(100 - failuresLeft, 3 * 2);

  // An unknown outcome (the append may have been written): a plain append is not repeated, an
  // idempotent producer's is (the cluster deduplicates it).
  const { WalrusError } = await import('../../../node/protocol/error-codes.js');
  let appendCalls = 0;
  let failWith: string = 'OUTCOME_UNKNOWN';
  g.upstream.request = (async (
    req: Parameters<typeof original>[0],
    options?: Parameters<typeof original>[1],
  ) => {
    if (req.op === 'append') {
      appendCalls++;
      throw new WalrusError(failWith as 'OUTCOME_UNKNOWN', 'connection to the segment leader was lost');
    }
    return original(req, options);
  }) as typeof original;
  const unknown = await t.throwsAsync(client.append('r', ['x']), { instanceOf: WalrusApiError });
  t.is(unknown?.code, 'OUTCOME_UNKNOWN');
  t.is(unknown?.status, 502);
  t.false(unknown?.retryable);
  t.true(unknown?.mayHaveBeenApplied);
  t.is(unknown?.problem['mayHaveBeenApplied'], true);
  t.is(appendCalls, 1, 'a plain append is sent once');
  appendCalls = 0;
  await t.throwsAsync(client.append('r', ['x'], { producerId: 'p', producerSeq: 0 }));
  t.is(appendCalls, 3 * 2, 'an idempotent-producer append is retried, bounded at both layers');
  // A retryable code says nothing was applied: even a plain append is repeated, within the bound.
  failWith = 'UNAVAILABLE';
  appendCalls = 0;
  const unavailable = await t.throwsAsync(client.append('r', ['x']), { instanceOf: WalrusApiError });
  t.is(unavailable?.code, 'UNAVAILABLE');
  t.false(unavailable?.mayHaveBeenApplied);
  t.is(appendCalls, 3 * 2);
});

test('an unreachable gateway is UNAVAILABLE with status 0; an AbortSignal cancels', async (t) => {
  const client = createWalrusClient({
    baseUrl: 'http://127.0.0.1:1',
    retry: { attemptCountMax: 2, delayMsMin: 1, delayMsMax: 2 },
  });
  const error = await t.throwsAsync(client.listTopics(), { instanceOf: WalrusApiError });
  t.is(error?.code, 'UNAVAILABLE');
  t.is(error?.status, 0);
  const g = await startGateway();
  t.teardown(g.close);
  const live = createWalrusClient({ baseUrl: g.url });
  await live.createTopic('ab');
  const controller = new AbortController();
  const pending = live.read('ab', { offset: 0, waitMs: 20_000, signal: controller.signal });
  setTimeout(() => controller.abort(), 50);
  const aborted = await t.throwsAsync(pending, { any: true });
  t.is((aborted as { name?: string } | undefined)?.name, 'AbortError');
});

test('tail(): records in order, resumes after a server-side disconnect, break closes the connection', async (t) => {
  const g = await startGateway({ sse: { heartbeatIntervalMs: 50 } });
  t.teardown(g.close);
  const client = createWalrusClient({ baseUrl: g.url });
  await client.createTopic('tail');
  await client.append('tail', ['a', 'b', 'c']);
  const seen: string[] = [];
  let cut = false;
  for await (const record of client.tail('tail', { from: 0, retry: { delayMsMin: 10 } })) {
    seen.push(record.value);
    if (record.offset === 1 && !cut) {
      cut = true;
      g.gateway.hub.drain(); // every tail gets a resumable UNAVAILABLE and is closed
      // biome-ignore lint/suspicious/noExplicitAny: reopen the hub for the reconnect (test only)
      (g.gateway.hub as any).draining = false;
      await client.append('tail', ['d']);
    }
    if (record.offset === 3) break;
  }
  t.deepEqual(seen, ['a', 'b', 'c', 'd']);
  for (let i = 0; i < 100 && g.gateway.hub.size > 0; i++) await new Promise((r) => setTimeout(r, 10));
  t.is(g.gateway.hub.size, 0, 'break closed the SSE connection');

  // from: 'end' sees only what is appended after the tail starts, and its position holds even
  // before the first record arrives.
  const fromEnd = client.tail('tail', { from: 'end' });
  const next = fromEnd.next();
  while (g.gateway.hub.size < 1) await new Promise((r) => setTimeout(r, 10));
  await client.append('tail', ['e']);
  t.is(((await next).value as { value: string }).value, 'e');
  await fromEnd.return(undefined);
});
