/**
 * The client-side pipelined connection against real FrameServers: out-of-order replies matched by
 * request id, bounded in-flight and wait queue, timeouts, abort, disconnects, refused connects with
 * fail-fast backoff, and reconnect after a server restart on the same port.
 */
import { spawn } from 'node:child_process';
import net from 'node:net';
import test from 'ava';
import { readRequestId } from '../../../node/protocol/binary-header.js';
import {
  decodeReply,
  decodeRequest,
  encodeReply,
  encodeRequest,
} from '../../../node/protocol/binary-codec.js';
import { ErrorCode } from '../../../node/protocol/error-codes.js';
import type { FrameConnection } from '../../../node/transport/frame-server.js';
import { PipelinedConnection } from '../../../node/transport/pipelined-connection.js';
import type { TransportError } from '../../../node/transport/transport-error.js';
import { startServer, waitFor } from './helpers.js';

/** One encoding for every request: the connection sets each copy's request id. */
const ping = encodeRequest(0, { op: 'ping' });
const pong = (conn: FrameConnection, payload: Buffer, nodeId: number) =>
  conn.send(encodeReply(readRequestId(payload)!, 'ping', { nodeId }));

async function rejection(p: Promise<unknown>): Promise<unknown> {
  try {
    await p;
  } catch (e) {
    return e;
  }
  throw new Error('expected a rejection');
}

test('many requests in flight; replies in reverse order reach the right callers', async (t) => {
  const held: { conn: FrameConnection; payload: Buffer }[] = [];
  const count = 50;
  // Caller i asks about topic `t<i>`; the server answers it with nodeId i under its request id.
  const s = await startServer((conn, payload) => {
    held.push({ conn, payload: Buffer.from(payload) });
    if (held.length === count) {
      for (const h of held.reverse()) {
        const decoded = decodeRequest(h.payload);
        const topic = decoded.kind === 'request' && 'topic' in decoded.request ? decoded.request.topic : '';
        pong(h.conn, h.payload, Number(topic.slice(1)));
      }
    }
  });
  const c = new PipelinedConnection({ host: '127.0.0.1', port: s.port });
  t.teardown(() => c.close());
  const replies = await Promise.all(
    Array.from({ length: count }, (_, i) =>
      c.request(encodeRequest(0, { op: 'describeTopic', topic: `t${i}` })),
    ),
  );
  t.is(new Set(held.map((h) => readRequestId(h.payload))).size, count, 'each request had an id of its own');
  replies.forEach((payload, i) => {
    const r = decodeReply(payload);
    t.true(r.kind === 'response' && (r.response as { nodeId: number }).nodeId === i);
  });
  await c.close();
  await s.close();
});

test('in flight is bounded: extra requests wait in a bounded queue, beyond it BUSY', async (t) => {
  const held: { conn: FrameConnection; payload: Buffer }[] = [];
  const s = await startServer((conn, payload) => held.push({ conn, payload: Buffer.from(payload) }));
  t.teardown(() => s.close());
  const c = new PipelinedConnection({ host: '127.0.0.1', port: s.port, inFlightMax: 2, waitQueueMax: 2 });
  t.teardown(() => c.close());
  const calls = Array.from({ length: 4 }, () => c.request(ping));
  const busy = (await rejection(c.request(ping))) as TransportError;
  t.is(busy.code, ErrorCode.BUSY);
  t.false(busy.sent);
  t.is(c.inFlightCount(), 2);
  t.is(c.waitingCount(), 2);
  await waitFor(() => held.length === 2, 'two requests at the server');
  for (let i = 0; i < 4; i += 1) {
    await waitFor(() => held.length > i, `request ${i}`);
    pong(held[i]!.conn, held[i]!.payload, i);
  }
  const replies = await Promise.all(calls);
  t.deepEqual(
    replies.map((p) => (decodeReply(p) as { response: { nodeId: number } }).response.nodeId),
    [0, 1, 2, 3],
  );
  await c.close();
  await s.close();
});

test('a request without a reply times out with TIMEOUT (sent); a late reply is dropped and the connection stays usable', async (t) => {
  const held: { conn: FrameConnection; payload: Buffer }[] = [];
  const s = await startServer((conn, payload) => {
    if (held.length === 0) held.push({ conn, payload: Buffer.from(payload) });
    else pong(conn, payload, 2);
  });
  const c = new PipelinedConnection({ host: '127.0.0.1', port: s.port });
  t.teardown(() => c.close());
  const err = (await rejection(c.request(ping, { timeoutMs: 100 }))) as TransportError;
  t.is(err.code, ErrorCode.TIMEOUT);
  t.true(err.sent);
  await waitFor(() => held.length === 1, 'the first request at the server');
  pong(held[0]!.conn, held[0]!.payload, 1); // late
  const next = decodeReply(await c.request(ping));
  t.true(next.kind === 'response' && (next.response as { nodeId: number }).nodeId === 2);
  await c.close();
  await s.close();
});

test('abort rejects with the signal reason, before or after sending', async (t) => {
  const s = await startServer(() => {});
  t.teardown(() => s.close());
  const c = new PipelinedConnection({ host: '127.0.0.1', port: s.port });
  t.teardown(() => c.close());
  const before = new AbortController();
  before.abort(new Error('not wanted'));
  t.is(((await rejection(c.request(ping, { signal: before.signal }))) as Error).message, 'not wanted');
  const during = new AbortController();
  const p = c.request(ping, { signal: during.signal });
  await waitFor(() => s.server.inFlightCount() === 1, 'the request at the server');
  during.abort();
  t.is(((await rejection(p)) as Error).name, 'AbortError');
  t.is(c.inFlightCount(), 0);
  await c.close();
  await s.close();
});

test('a lost connection rejects everything in flight with UNAVAILABLE (sent: outcome unknown)', async (t) => {
  let server: FrameConnection | undefined;
  const s = await startServer((conn) => {
    server = conn;
  });
  const c = new PipelinedConnection({ host: '127.0.0.1', port: s.port });
  t.teardown(() => c.close());
  const calls = [c.request(ping), c.request(ping), c.request(ping)];
  await waitFor(() => s.server.inFlightCount() === 3, 'three in flight');
  server!.close();
  for (const call of calls) {
    const err = (await rejection(call)) as TransportError;
    t.is(err.code, ErrorCode.UNAVAILABLE);
    t.true(err.sent);
  }
  await c.close();
  await s.close();
});

test('a refused connect fails UNAVAILABLE (not sent), fails fast during backoff, then reconnects when the server is back', async (t) => {
  const s = await startServer((conn, payload) => pong(conn, payload, 1));
  t.teardown(() => s.close());
  const port = s.port;
  const c = new PipelinedConnection({
    host: '127.0.0.1',
    port,
    reconnectBackoffMsMin: 300,
    reconnectBackoffMsMax: 300,
  });
  t.is(decodeReply(await c.request(ping)).kind, 'response');
  await s.close();
  await waitFor(() => c.state === 'idle', 'the client to notice the close');
  const refused = (await rejection(c.request(ping))) as TransportError;
  t.is(refused.code, ErrorCode.UNAVAILABLE);
  t.false(refused.sent, 'nothing reached a server');
  const fast = (await rejection(c.request(ping))) as TransportError;
  t.regex(fast.message, /failed recently/);
  t.false(fast.sent);
  // Restart on the same port.
  const again = await startServer((conn, payload) => pong(conn, payload, 2), { port });
  t.teardown(() => again.close());
  let reply: Buffer | undefined;
  for (let i = 0; i < 50 && reply === undefined; i += 1) {
    try {
      reply = await c.request(ping);
    } catch {
      await new Promise((r) => setTimeout(r, 100));
    }
  }
  const r = decodeReply(reply!);
  t.true(r.kind === 'response' && (r.response as { nodeId: number }).nodeId === 2);
  await c.close();
  await again.close();
});

test('a server at its connection limit answers ERR BUSY: the request fails BUSY and is known not applied', async (t) => {
  const s = await startServer((conn, payload) => pong(conn, payload, 1), { connectionCountMax: 1 });
  t.teardown(() => s.close());
  const first = new PipelinedConnection({ host: '127.0.0.1', port: s.port });
  t.teardown(() => first.close());
  await first.request(ping);
  const second = new PipelinedConnection({ host: '127.0.0.1', port: s.port });
  t.teardown(() => second.close());
  const err = (await rejection(second.request(ping))) as TransportError;
  t.is(err.code, ErrorCode.BUSY);
  t.false(err.sent);
  await first.close();
  await second.close();
  await s.close();
});

test('a connect that cannot complete gives UNAVAILABLE, not sent, after the connect timeout', async (t) => {
  // A listener that never accepts, with its accept queue filled: the kernel drops further SYNs, so
  // the connect hangs until our timeout. (Node always accepts, hence a small Python listener.)
  const child = spawn(
    'python3',
    [
      '-c',
      'import socket,sys,time\ns=socket.socket()\ns.bind(("127.0.0.1",0))\ns.listen(0)\nprint(s.getsockname()[1],flush=True)\ntime.sleep(60)',
    ],
    { stdio: ['ignore', 'pipe', 'inherit'] },
  );
  const port = await new Promise<number>((resolve) =>
    child.stdout!.once('data', (d: Buffer) => resolve(Number(d.toString().trim()))),
  );
  const fillers = Array.from({ length: 4 }, () =>
    net.connect({ host: '127.0.0.1', port }).on('error', () => {}),
  );
  await new Promise((r) => setTimeout(r, 200));
  const c = new PipelinedConnection({ host: '127.0.0.1', port, connectTimeoutMs: 300 });
  t.teardown(() => c.close());
  const err = (await rejection(c.request(ping, { timeoutMs: 10_000 }))) as TransportError;
  t.is(err.code, ErrorCode.UNAVAILABLE);
  t.false(err.sent);
  t.regex(err.message, /timed out/);
  await c.close();
  for (const f of fillers) f.destroy();
  child.kill('SIGKILL');
});

test('close() rejects pending requests and later requests', async (t) => {
  const s = await startServer(() => {});
  t.teardown(() => s.close());
  const c = new PipelinedConnection({ host: '127.0.0.1', port: s.port });
  t.teardown(() => c.close());
  const p = c.request(ping);
  await waitFor(() => s.server.inFlightCount() === 1, 'in flight');
  await c.close();
  t.is(((await rejection(p)) as TransportError).code, ErrorCode.UNAVAILABLE);
  t.is(((await rejection(c.request(ping))) as TransportError).code, ErrorCode.UNAVAILABLE);
  await s.close();
});

test('garbage from the server closes the connection and fails the requests', async (t) => {
  const server = net.createServer((sock) => {
    sock.on('data', () => sock.write(Buffer.from([0xff, 0xff, 0xff, 0xff, 1, 2, 3])));
    sock.on('error', () => {});
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as net.AddressInfo).port;
  const c = new PipelinedConnection({ host: '127.0.0.1', port });
  t.teardown(() => c.close());
  const err = (await rejection(c.request(ping))) as TransportError;
  t.is(err.code, ErrorCode.UNAVAILABLE);
  t.regex(err.message, /bad framing/);
  await c.close();
  await new Promise((r) => server.close(r));
});

test('an idle client connection closes itself and reconnects on the next request', async (t) => {
  const s = await startServer((conn, payload) => pong(conn, payload, 1));
  t.teardown(() => s.close());
  const c = new PipelinedConnection({ host: '127.0.0.1', port: s.port, idleTimeoutMs: 200 });
  t.teardown(() => c.close());
  await c.request(ping);
  t.is(c.state, 'open');
  await waitFor(() => c.state === 'idle', 'the client to close its idle connection');
  await waitFor(() => s.server.connectionCount() === 0, 'the server to see the close');
  t.is(decodeReply(await c.request(ping)).kind, 'response');
  t.is(s.server.connectionCount(), 1);
});
