/**
 * The HTTP API end to end: a real walrus-node process, a real walrus-gateway process, and the SDK
 * (plus raw fetch where the SDK would hide the wire): every route once, answers checked against
 * openapi.yaml, idempotent and conditional appends, consumers, out-of-range reads, bad input over
 * a real socket (huge bodies, CR/LF, malformed requests) with the process still alive after.
 */
import net from 'node:net';
import test from 'ava';
import { createWalrusClient, WalrusApiError } from '../../sdk/index.js';
import { useGatewayOverOneNode } from '../helpers/gateway-process.js';
import { checkResponse } from '../helpers/spec-check.js';

const running = useGatewayOverOneNode(test);

test('SDK: topics, appends, reads, consumers against real processes', async (t) => {
  const client = createWalrusClient({ baseUrl: running.gateway.url });
  t.deepEqual(await client.health(), { status: 'ok' });
  t.like(await client.ready(), { ready: true });
  const topic = await client.createTopic('e2e-logs');
  t.is(topic.name, 'e2e-logs');
  t.is((await client.createTopic('e2e-logs')).name, 'e2e-logs');
  t.true((await client.listTopics()).some((x) => x.name === 'e2e-logs'));

  const first = await client.append('e2e-logs', [
    'one',
    { value: 'two', headers: { k: 'v' } },
    new Uint8Array([0xff, 0xfe]),
  ]);
  t.like(first, { firstOffset: 0, lastOffset: 2, count: 3, duplicate: false });
  const read = await client.read('e2e-logs', { offset: 0, limit: 10 });
  // Values come back decoded: text as strings, and bytes as bytes when asked for.
  t.deepEqual(
    read.records.slice(0, 2).map((r) => r.value),
    ['one', 'two'],
  );
  const bytes = await client.read('e2e-logs', { offset: 2, limit: 1, values: 'bytes' });
  t.deepEqual(bytes.records[0]!.value, new Uint8Array([0xff, 0xfe]));
  t.deepEqual(read.records[1]!.headers, { k: 'v' });
  t.is(read.nextOffset, 3);

  const once = await client.append('e2e-logs', ['idem'], { producerId: 'p-e2e', producerSeq: 0 });
  const again = await client.append('e2e-logs', ['idem'], { producerId: 'p-e2e', producerSeq: 0 });
  t.is(again.firstOffset, once.firstOffset);
  t.true(again.duplicate);
  const conflict = await t.throwsAsync(client.append('e2e-logs', ['late'], { expectedOffset: 0 }), {
    instanceOf: WalrusApiError,
  });
  t.is(conflict?.code, 'OFFSET_MISMATCH');
  t.is(conflict?.status, 412);
  t.like(await client.append('e2e-logs', ['cas'], { expectedOffset: 4 }), { firstOffset: 4 });

  const outside = await t.throwsAsync(client.read('e2e-logs', { offset: 99 }), {
    instanceOf: WalrusApiError,
  });
  t.is(outside?.status, 416);
  t.like(outside?.problem, { code: 'OFFSET_OUT_OF_RANGE', startOffset: 0, endOffset: 5 });
  t.is((await client.read('e2e-logs', { offset: 99, clamp: true })).records.length, 0);
  t.deepEqual(
    (await client.read('e2e-logs', { tailOffset: 2 })).records.map((r) => r.offset),
    [3, 4],
  );

  const batch = await client.consumerRead('e2e-logs', 'worker', { limit: 2 });
  t.deepEqual(
    batch.records.map((r) => r.offset),
    [0, 1],
  );
  t.like(await client.consumerGet('e2e-logs', 'worker'), { offset: 2 });
  t.like(await client.consumerCommit('e2e-logs', 'worker', 4), { offset: 4 });
  t.deepEqual(
    (await client.consumerRead('e2e-logs', 'worker')).records.map((r) => r.offset),
    [4],
  );

  const missing = await t.throwsAsync(client.describeTopic('no-such-topic'), { instanceOf: WalrusApiError });
  t.is(missing?.code, 'TOPIC_NOT_FOUND');
  await client.deleteTopic('e2e-logs');
  t.false((await client.listTopics()).some((x) => x.name === 'e2e-logs'));
});

test('answers of the real stack match openapi.yaml', async (t) => {
  const base = running.gateway.url;
  const post = (path: string, body: unknown) =>
    fetch(base + path, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify(body),
    });
  t.deepEqual(await checkResponse('createTopic', await post('/v1/topics', { name: 'spec-check' })), []);
  t.deepEqual(
    await checkResponse(
      'appendRecords',
      await post('/v1/topics/spec-check/records', { records: [{ value: 'a' }] }),
    ),
    [],
  );
  t.deepEqual(await checkResponse('readRecords', await fetch(`${base}/v1/topics/spec-check/records`)), []);
  t.deepEqual(await checkResponse('describeTopic', await fetch(`${base}/v1/topics/spec-check`)), []);
  t.deepEqual(await checkResponse('listTopics', await fetch(`${base}/v1/topics`)), []);
  t.deepEqual(await checkResponse('getCluster', await fetch(`${base}/v1/cluster`)), []);
  t.deepEqual(
    await checkResponse('readRecords', await fetch(`${base}/v1/topics/spec-check/records?offset=9`)),
    [],
  );
  t.deepEqual(await checkResponse('describeTopic', await fetch(`${base}/v1/topics/nope`)), []);
  t.deepEqual(
    await checkResponse('consumerReadNext', await post('/v1/topics/spec-check/consumers/c/read', {})),
    [],
  );
  const metrics = await (await fetch(`${base}/metrics`)).text();
  t.regex(
    metrics,
    /walrus_gateway_http_requests_total\{method="POST",route="\/v1\/topics\/:topic\/records",status="201"\}/,
  );
  t.regex(metrics, /walrus_gateway_process_cpu_seconds_total/);
});

/** Sends raw bytes on a fresh socket and returns what came back until the server closed or 2 s passed. */
async function raw(port: number, bytes: string | Buffer): Promise<string> {
  return new Promise((resolve) => {
    const socket = net.connect(port, '127.0.0.1');
    let out = '';
    socket.setEncoding('latin1');
    socket.on('data', (d: string) => {
      out += d;
    });
    socket.on('error', () => {});
    socket.on('close', () => resolve(out));
    socket.write(bytes);
    setTimeout(() => socket.destroy(), 2000);
  });
}

test('bad input over a real socket never crashes the gateway', async (t) => {
  const port = running.gateway.port;
  await fetch(`${running.gateway.url}/v1/topics`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: '{"name":"bad-input"}',
  });
  // Declared too large: answered 413 from the headers alone, before any body byte is read.
  const huge = await raw(
    port,
    'POST /v1/topics/bad-input/records HTTP/1.1\r\nHost: x\r\nContent-Type: application/octet-stream\r\nContent-Length: 9437184\r\n\r\n',
  );
  t.regex(huge, /^HTTP\/1\.1 413/);
  t.regex(huge, /content-type: application\/problem\+json/i);
  const malformed = await fetch(`${running.gateway.url}/v1/topics/bad-input/records`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: '{"records": [',
  });
  t.is(malformed.status, 400);
  t.regex(
    await raw(port, 'GET /v1/topics HTTP/1.1\r\nHost: x\r\nLast-Event-ID: 1\rX: y\r\n\r\n'),
    /^HTTP\/1\.1 400/,
  );
  t.regex(await raw(port, 'GARBAGE\r\n\r\n'), /^HTTP\/1\.1 400/);
  // Chunked, with no length up front: cut off with 413 once the stream passes the limit.
  const chunk = `100000\r\n${'x'.repeat(0x100000)}\r\n`;
  const chunked = await raw(
    port,
    `POST /v1/topics/bad-input/records HTTP/1.1\r\nHost: x\r\nContent-Type: text/plain\r\nTransfer-Encoding: chunked\r\n\r\n${chunk.repeat(10)}0\r\n\r\n`,
  );
  t.regex(chunked, /^HTTP\/1\.1 413/);
  const path = await fetch(`${running.gateway.url}/v1/topics/..%2F..%2Fetc%2Fpasswd/records`);
  t.is(path.status, 400);
  t.true(running.gateway.alive);
  t.is((await fetch(`${running.gateway.url}/v1/health`)).status, 200);
});
