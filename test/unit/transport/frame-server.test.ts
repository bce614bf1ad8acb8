/**
 * FrameServer over real loopback sockets: framing errors close only the offending connection,
 * limits (connections, in flight, write buffer, idle) have their defined answers, and socket errors
 * never take the server down.
 */
import net from 'node:net';
import test from 'ava';
import fc from 'fast-check';
import { encodeFrame } from '../../../node/protocol/frame.js';
import { parseTextCommand } from '../../../node/protocol/text-codec.js';
import type { FrameConnection } from '../../../node/transport/frame-server.js';
import { RawClient, startServer, waitFor } from './helpers.js';

const echo = (conn: FrameConnection, payload: Buffer): void => conn.send(Buffer.from(payload));

test('echoes frames, several per chunk and one split over many chunks', async (t) => {
  const s = await startServer(echo);
  t.teardown(() => s.close());
  const c = await RawClient.connect(s.port);
  t.teardown(() => c.destroy());
  c.write(Buffer.concat([encodeFrame(Buffer.from('one')), encodeFrame(Buffer.from('two'))]));
  const big = encodeFrame(Buffer.alloc(200_000, 9));
  for (let i = 0; i < big.length; i += 7_000) c.write(big.subarray(i, i + 7_000));
  t.is((await c.frame(0)).toString(), 'one');
  t.is((await c.frame(1)).toString(), 'two');
  t.true((await c.frame(2)).equals(Buffer.alloc(200_000, 9)));
  c.destroy();
  await s.close();
});

test('the seed health check gets a framed reply; a 6-byte length gets a framed ERR for "METRIC"', async (t) => {
  const s = await startServer((conn, p) => {
    const r = parseTextCommand(p);
    conn.send(Buffer.from(r.ok ? `OK ${r.command.kind}` : `ERR ${r.error.code} ${r.error.message}`));
  });
  const c = await RawClient.connect(s.port);
  t.teardown(() => c.destroy());
  c.write('\x07\x00\x00\x00METRICS');
  t.is((await c.frame(0)).toString(), 'OK METRICS');
  const d = await RawClient.connect(s.port);
  t.teardown(() => d.destroy());
  d.write('\x06\x00\x00\x00METRICS');
  t.regex((await d.frame(0)).toString(), /^ERR UNKNOWN_COMMAND unknown command 'METRIC'/);
  c.destroy();
  d.destroy();
  await s.close();
});

test('an oversized or 2 GiB length prefix gets ERR FRAME_TOO_LARGE and a close; other connections keep working', async (t) => {
  const s = await startServer(echo, { frameSizeMaxBytes: 1024 });
  t.teardown(() => s.close());
  const good = await RawClient.connect(s.port);
  t.teardown(() => good.destroy());
  for (const prefix of ['\x01\x04\x00\x00', '\x00\x00\x00\x80', '\xff\xff\xff\xff']) {
    const bad = await RawClient.connect(s.port);
    t.teardown(() => bad.destroy());
    bad.write(prefix);
    t.regex((await bad.frame(0)).toString(), /^ERR FRAME_TOO_LARGE /);
    await bad.waitClosed();
    t.is(bad.frames.length, 1);
  }
  good.write(encodeFrame(Buffer.from('still here')));
  t.is((await good.frame(0)).toString(), 'still here');
  good.destroy();
  await s.close();
});

test('a zero length prefix gets ERR BAD_REQUEST and a close, after replies to the frames before it', async (t) => {
  const s = await startServer(echo);
  t.teardown(() => s.close());
  const c = await RawClient.connect(s.port);
  t.teardown(() => c.destroy());
  c.write(
    Buffer.concat([
      encodeFrame(Buffer.from('first')),
      Buffer.from([0, 0, 0, 0]),
      encodeFrame(Buffer.from('never')),
    ]),
  );
  t.is((await c.frame(0)).toString(), 'first');
  t.regex((await c.frame(1)).toString(), /^ERR BAD_REQUEST /);
  await c.waitClosed();
  t.is(c.frames.length, 2);
  await s.close();
});

test('a truncated frame followed by a close is dropped without a call to onFrame', async (t) => {
  let calls = 0;
  const s = await startServer((conn, p) => {
    calls += 1;
    echo(conn, p);
  });
  const c = await RawClient.connect(s.port);
  t.teardown(() => c.destroy());
  c.write(
    Buffer.concat([encodeFrame(Buffer.from('whole')), encodeFrame(Buffer.from('truncated')).subarray(0, 8)]),
  );
  await c.frame(0);
  c.socket.end();
  await waitFor(() => s.server.connectionCount() === 0, 'the server to drop the connection');
  t.is(calls, 1);
  const d = await RawClient.connect(s.port);
  t.teardown(() => d.destroy());
  d.write(encodeFrame(Buffer.from('next')));
  t.is((await d.frame(0)).toString(), 'next');
  d.destroy();
  await s.close();
});

test('over the connection limit a new connection gets ERR BUSY and is closed; after one leaves, a new one works', async (t) => {
  const s = await startServer(echo, { connectionCountMax: 2 });
  t.teardown(() => s.close());
  const a = await RawClient.connect(s.port);
  t.teardown(() => a.destroy());
  const b = await RawClient.connect(s.port);
  t.teardown(() => b.destroy());
  await waitFor(() => s.server.connectionCount() === 2, 'two connections');
  const c = await RawClient.connect(s.port);
  t.teardown(() => c.destroy());
  t.regex((await c.frame(0)).toString(), /^ERR BUSY /);
  await c.waitClosed();
  a.destroy();
  await waitFor(() => s.server.connectionCount() === 1, 'one connection');
  const d = await RawClient.connect(s.port);
  t.teardown(() => d.destroy());
  d.write(encodeFrame(Buffer.from('in')));
  t.is((await d.frame(0)).toString(), 'in');
  b.write(encodeFrame(Buffer.from('b')));
  t.is((await b.frame(0)).toString(), 'b');
  b.destroy();
  d.destroy();
  await s.close();
});

test('idle connections are closed; a connection with a request in flight (a long poll) is not', async (t) => {
  const held: { conn: FrameConnection; payload: Buffer }[] = [];
  const s = await startServer((conn, payload) => held.push({ conn, payload: Buffer.from(payload) }), {
    idleTimeoutMs: 1_000,
  });
  t.teardown(() => s.close());
  const idle = await RawClient.connect(s.port);
  t.teardown(() => idle.destroy());
  const polling = await RawClient.connect(s.port);
  t.teardown(() => polling.destroy());
  polling.write(encodeFrame(Buffer.from('long poll')));
  await waitFor(() => held.length === 1, 'the long poll to arrive');
  await idle.waitClosed();
  // Several idle periods later the long poll's connection is still open and gets its reply.
  await new Promise((r) => setTimeout(r, 3_000));
  t.false(polling.closed);
  held[0]!.conn.send(Buffer.from('records'));
  t.is((await polling.frame(0)).toString(), 'records');
  await polling.waitClosed(); // idle again once answered
  await s.close();
});

test('in-flight limit: the server stops handing frames to the handler until replies are sent', async (t) => {
  const held: { conn: FrameConnection; payload: Buffer }[] = [];
  const s = await startServer((conn, payload) => held.push({ conn, payload: Buffer.from(payload) }), {
    inFlightMaxPerConnection: 3,
  });
  const c = await RawClient.connect(s.port);
  t.teardown(() => c.destroy());
  const frames = Array.from({ length: 10 }, (_, i) => encodeFrame(Buffer.from(`r${i}`)));
  c.write(Buffer.concat(frames));
  await waitFor(() => held.length === 3, 'three frames in flight');
  await new Promise((r) => setTimeout(r, 100));
  t.is(held.length, 3, 'no fourth frame while three are in flight');
  t.is(s.server.inFlightCount(), 3);
  held[1]!.conn.send(Buffer.from('reply'));
  await waitFor(() => held.length === 4, 'one more frame after one reply');
  for (let i = 0; i < 10; i += 1) {
    await waitFor(() => held.length > i, `frame ${i}`);
    held[i]!.conn.send(held[i]!.payload);
  }
  t.deepEqual(
    held.map((h) => h.payload.toString()),
    frames.map((_, i) => `r${i}`),
  );
  c.destroy();
  await s.close();
});

test('a handler that replies synchronously with in-flight limit 1 handles thousands of frames from one chunk', async (t) => {
  const s = await startServer(echo, { inFlightMaxPerConnection: 1 });
  t.teardown(() => s.close());
  const c = await RawClient.connect(s.port);
  t.teardown(() => c.destroy());
  const count = 20_000;
  c.write(Buffer.concat(Array.from({ length: count }, (_, i) => encodeFrame(Buffer.from(String(i))))));
  await c.frame(count - 1);
  t.is(c.frames.length, count);
  t.is(c.frames[count - 1]!.toString(), String(count - 1));
});

test('a client that never reads its replies is disconnected at writeBufferMaxBytes', async (t) => {
  const replySizeBytes = 256 * 1024;
  const reply = Buffer.alloc(replySizeBytes, 1);
  let replies = 0;
  const s = await startServer(
    (conn) => {
      replies += 1;
      conn.send(reply);
    },
    { writeBufferMaxBytes: 1024 * 1024, inFlightMaxPerConnection: 1024 },
  );
  const c = await RawClient.connect(s.port);
  t.teardown(() => c.destroy());
  c.socket.pause(); // never read
  const request = encodeFrame(Buffer.from('give me a lot'));
  for (let i = 0; i < 2000 && !c.closed; i += 1) {
    c.write(request);
    if (i % 50 === 0) await new Promise((r) => setTimeout(r, 5));
  }
  await waitFor(
    () => s.warnings.some((w) => w.includes('does not read')),
    'the server to give up on the reader',
  );
  await waitFor(() => s.server.connectionCount() === 0, 'the connection to be dropped');
  // Bounded: the server stopped answering long before 2000 replies (500 MB) had queued.
  t.true(replies < 2000, `replies queued: ${replies}`);
  c.destroy();
  await s.close();
});

test('ECONNRESET and handler exceptions do not take the server down', async (t) => {
  const s = await startServer((conn, payload) => {
    if (payload.toString() === 'throw') throw new Error('handler bug');
    echo(conn, payload);
  });
  const reset = await RawClient.connect(s.port);
  t.teardown(() => reset.destroy());
  reset.write(encodeFrame(Buffer.from('x')).subarray(0, 6));
  reset.socket.resetAndDestroy();
  const thrower = await RawClient.connect(s.port);
  t.teardown(() => thrower.destroy());
  thrower.write(encodeFrame(Buffer.from('throw')));
  await thrower.waitClosed();
  t.true(s.warnings.some((w) => w.includes('handler threw')));
  const ok = await RawClient.connect(s.port);
  t.teardown(() => ok.destroy());
  ok.write(encodeFrame(Buffer.from('alive')));
  t.is((await ok.frame(0)).toString(), 'alive');
  ok.destroy();
  await s.close();
});

test('send after the peer left is ignored, and onClose reports the connection', async (t) => {
  let conn: FrameConnection | undefined;
  const closedIds: number[] = [];
  const s = await startServer(
    (c) => {
      conn = c;
    },
    { onClose: (c) => closedIds.push(c.id) },
  );
  const c = await RawClient.connect(s.port);
  t.teardown(() => c.destroy());
  c.write(encodeFrame(Buffer.from('hold')));
  await waitFor(() => conn !== undefined, 'the frame');
  c.destroy();
  await waitFor(() => closedIds.length === 1, 'onClose');
  t.true(conn!.closed);
  t.notThrows(() => conn!.send(Buffer.from('late')));
  t.deepEqual(closedIds, [conn!.id]);
  await s.close();
});

test('close() drops every connection and frees the port', async (t) => {
  const s = await startServer(echo);
  t.teardown(() => s.close());
  const c = await RawClient.connect(s.port);
  t.teardown(() => c.destroy());
  await waitFor(() => s.server.connectionCount() === 1, 'connection');
  await s.close();
  await c.waitClosed();
  const refused = await new Promise<string>((resolve) => {
    const sock = net.connect({ host: '127.0.0.1', port: s.port });
    sock.on('connect', () => {
      sock.destroy();
      resolve('connected');
    });
    sock.on('error', (e: NodeJS.ErrnoException) => resolve(e.code ?? 'error'));
  });
  t.is(refused, 'ECONNREFUSED');
});

test('random byte streams from many clients never take the server down', async (t) => {
  const s = await startServer(
    (conn, p) => {
      const r = parseTextCommand(p);
      conn.send(Buffer.from(r.ok ? 'OK' : `ERR ${r.error.code} ${r.error.message}`));
    },
    { frameSizeMaxBytes: 4096 },
  );
  t.teardown(() => s.close());
  const streams = fc.sample(fc.array(fc.uint8Array({ maxLength: 300 }), { minLength: 1, maxLength: 5 }), {
    numRuns: 40,
    seed: 42,
  });
  const clients = await Promise.all(streams.map(() => RawClient.connect(s.port)));
  for (const [i, chunks] of streams.entries()) {
    for (const chunk of chunks) clients[i]!.write(chunk);
    clients[i]!.socket.end();
  }
  await waitFor(() => s.server.connectionCount() === 0, 'every garbage connection to end');
  for (const c of clients) {
    for (const f of c.frames) t.regex(f.toString('latin1'), /^(OK|ERR [A-Z_]+ )/);
  }
  const good = await RawClient.connect(s.port);
  t.teardown(() => good.destroy());
  good.write(encodeFrame(Buffer.from('METRICS')));
  t.is((await good.frame(0)).toString(), 'OK');
});
