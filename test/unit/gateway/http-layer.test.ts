/**
 * What the gateway's HTTP layer refuses before the app sees a request (node:http's clientError:
 * oversized headers or URL, slow headers, a short body, bytes that are not HTTP) is problem+json
 * with a code from the one table, spoken to over raw sockets; and JSON bodies with invalid UTF-8
 * or lone surrogates are 400 BAD_REQUEST, never stored as U+FFFD. A real node behind the gateway.
 */
import type { AddressInfo } from 'node:net';
import test from 'ava';
import { serveGateway } from '../../../gateway/http-server.js';
import { rawExchange } from '../../helpers/raw-socket.js';
import { makeGateway, unique, useRealNode } from './helpers.js';

const node = useRealNode(test);

/** Short timeouts so the 408 cases take about a second; checked every 100 ms. */
const headersTimeoutMs = 1_000;
const requestTimeoutMs = 1_500;
/** Bound of a raw exchange: the server answers and closes long before. */
const exchangeQuietMs = 20_000;

async function served(t: { teardown(fn: () => void): void }) {
  const g = makeGateway(node());
  const server = serveGateway({
    fetch: g.gateway.app.fetch,
    port: 0,
    host: '127.0.0.1',
    headersTimeoutMs,
    requestTimeoutMs,
    connectionsCheckIntervalMs: 100,
  });
  await new Promise<void>((resolve) => server.once('listening', () => resolve()));
  t.teardown(() => {
    g.gateway.close();
    server.closeAllConnections();
    server.close();
  });
  return { port: (server.address() as AddressInfo).port, call: g.call };
}

interface RawResponse {
  readonly status: number;
  readonly headers: Map<string, string>;
  readonly body: string;
  readonly closed: boolean;
}

async function raw(port: number, chunks: readonly (string | Buffer)[]): Promise<RawResponse> {
  const bytes = chunks.map((c) => (typeof c === 'string' ? Buffer.from(c, 'latin1') : c));
  const { data, closed } = await rawExchange(port, bytes, { quietMs: exchangeQuietMs });
  const text = data.toString('utf8');
  const split = text.indexOf('\r\n\r\n');
  if (split === -1)
    throw new Error(`no HTTP answer (closed: ${closed}): ${JSON.stringify(text.slice(0, 200))}`);
  const [statusLine, ...lines] = text.slice(0, split).split('\r\n');
  const headers = new Map<string, string>();
  for (const line of lines) {
    const colon = line.indexOf(':');
    headers.set(line.slice(0, colon).trim().toLowerCase(), line.slice(colon + 1).trim());
  }
  return { status: Number(statusLine!.split(' ')[1]), headers, body: text.slice(split + 4), closed };
}

function assertProblem(
  t: import('ava').ExecutionContext,
  res: RawResponse,
  status: number,
  code: string,
  detail: RegExp,
): void {
  t.is(res.status, status);
  t.is(res.headers.get('content-type'), 'application/problem+json');
  t.is(res.headers.get('connection'), 'close');
  const problem = JSON.parse(res.body) as Record<string, unknown>;
  t.is(problem['code'], code);
  t.is(problem['status'], status);
  t.is(problem['retryable'], false);
  t.is(problem['mayHaveBeenApplied'], false);
  t.regex(String(problem['detail']), detail);
  t.true(res.closed, 'the connection is closed after the answer');
}

test('a 100 KB header is 431 problem+json HEADERS_TOO_LARGE', async (t) => {
  const { port } = await served(t);
  const res = await raw(port, [
    `GET /v1/health HTTP/1.1\r\nHost: x\r\nX-Big: ${'a'.repeat(100_000)}\r\n\r\n`,
  ]);
  assertProblem(t, res, 431, 'HEADERS_TOO_LARGE', /exceed 16384 bytes/);
});

test('3,000 headers are 431 problem+json HEADERS_TOO_LARGE', async (t) => {
  const { port } = await served(t);
  let head = 'GET /v1/health HTTP/1.1\r\nHost: x\r\n';
  for (let i = 0; i < 3000; i++) head += `X-H${i}: v\r\n`;
  const res = await raw(port, [`${head}\r\n`]);
  assertProblem(t, res, 431, 'HEADERS_TOO_LARGE', /too many headers/);
});

test('a 108 KB URL is 431 problem+json HEADERS_TOO_LARGE', async (t) => {
  const { port } = await served(t);
  const res = await raw(port, [`GET /v1/topics/${'u'.repeat(108_000)} HTTP/1.1\r\nHost: x\r\n\r\n`]);
  assertProblem(t, res, 431, 'HEADERS_TOO_LARGE', /URL/);
});

test('headers that never finish are 408 problem+json REQUEST_TIMEOUT', async (t) => {
  const { port } = await served(t);
  const res = await raw(port, ['GET /v1/health HTTP/1.1\r\nHost: x\r\nX-Slow: a']);
  assertProblem(t, res, 408, 'REQUEST_TIMEOUT', /did not arrive whole in time/);
});

test('a body shorter than its Content-Length is 408 problem+json REQUEST_TIMEOUT', async (t) => {
  const { port } = await served(t);
  const topic = unique('short-body');
  const res = await raw(port, [
    `POST /v1/topics/${topic}/records HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{"records":`,
  ]);
  assertProblem(t, res, 408, 'REQUEST_TIMEOUT', /within 1500 ms/);
});

test('bytes that are not HTTP are 400 problem+json BAD_REQUEST', async (t) => {
  const { port } = await served(t);
  const res = await raw(port, ['\x00\x01\x02 not http\r\n\r\n']);
  assertProblem(t, res, 400, 'BAD_REQUEST', /not valid HTTP\/1\.1/);
});

async function appendBytes(
  call: (path: string, init?: RequestInit) => Response | Promise<Response>,
  topic: string,
  body: Buffer,
) {
  return call(`/v1/topics/${topic}/records`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body,
  });
}

test('JSON with invalid UTF-8 or a lone surrogate is 400 BAD_REQUEST and nothing is stored', async (t) => {
  const { call } = await served(t);
  const topic = unique('utf8');
  t.is(
    (
      await call('/v1/topics', {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ name: topic }),
      })
    ).status,
    201,
  );
  const invalidUtf8 = Buffer.concat([
    Buffer.from('{"records":[{"value":"a'),
    Buffer.from([0xff, 0xfe]),
    Buffer.from('b"}]}'),
  ]);
  const cases: [string, Buffer, RegExp][] = [
    ['invalid UTF-8 bytes', invalidUtf8, /not valid UTF-8/],
    [
      'a truncated UTF-8 sequence',
      Buffer.concat([Buffer.from('{"records":[{"value":"'), Buffer.from([0xe2, 0x82]), Buffer.from('"}]}')]),
      /not valid UTF-8/,
    ],
    ['a lone high surrogate escape', Buffer.from('{"records":[{"value":"x\\ud800y"}]}'), /lone surrogate/],
    [
      'a lone low surrogate in a header',
      Buffer.from('{"records":[{"value":"v","headers":{"h":"\\udc00"}}]}'),
      /lone surrogate/,
    ],
    [
      'a lone surrogate in a key',
      Buffer.from('{"records":[{"value":"v","headers":{"\\ud800":"w"}}]}'),
      /lone surrogate/,
    ],
  ];
  for (const [what, body, detail] of cases) {
    const res = await appendBytes(call, topic, body);
    t.is(res.status, 400, what);
    const problem = (await res.json()) as { code: string; detail: string };
    t.is(problem.code, 'BAD_REQUEST', what);
    t.regex(problem.detail, detail, what);
  }
  // A topic body and a commit body go through the same parser.
  const badName = await call('/v1/topics', {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: Buffer.concat([Buffer.from('{"name":"'), Buffer.from([0xc3]), Buffer.from('"}')]),
  });
  t.is(badName.status, 400);
  t.regex(((await badName.json()) as { detail: string }).detail, /not valid UTF-8/);
  // Nothing reached the log.
  const read = await call(`/v1/topics/${topic}/records?offset=0`);
  t.is(read.status, 200);
  t.deepEqual(((await read.json()) as { records: unknown[] }).records, []);
  // Well-formed text, a surrogate pair escape included, is stored as sent.
  const good = await appendBytes(call, topic, Buffer.from('{"records":[{"value":"é \\ud83d\\ude00 ✓"}]}'));
  t.is(good.status, 201);
  const back = (await (await call(`/v1/topics/${topic}/records?offset=0`)).json()) as {
    records: { value: string }[];
  };
  t.is(back.records[0]?.value, 'é 😀 ✓');
});
