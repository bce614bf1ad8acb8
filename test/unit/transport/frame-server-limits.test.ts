/**
 * FrameServer's bounds against hostile clients (issue 12), over real loopback sockets: the frame
 * deadline that a trickle cannot reset, the node-wide input budget (large frames refused BUSY and
 * dropped unread, small ones still served from the reserve, everything given back on close), and
 * the per-connection bound on reply bytes waiting for a client that reads slowly.
 */
import test from 'ava';
import { encodeFrame } from '../../../node/protocol/frame.js';
import type { FrameConnection } from '../../../node/transport/frame-server.js';
import { RawClient, startServer, waitFor } from './helpers.js';

const echo = (conn: FrameConnection, payload: Buffer): void => conn.send(Buffer.from(payload));
const kib = 1024;

test('a frame trickled one byte at a time is cut at the frame deadline; whole frames are not', async (t) => {
  const s = await startServer(echo, { frameDeadlineMs: 600, idleTimeoutMs: 60_000 });
  t.teardown(() => s.close());
  const slow = await RawClient.connect(s.port);
  t.teardown(() => slow.destroy());
  const steady = await RawClient.connect(s.port);
  t.teardown(() => steady.destroy());
  const frame = encodeFrame(Buffer.alloc(1000, 7));
  let sent = 0;
  let echoed = 0;
  const started = Date.now();
  // Both send every 50 ms: one a byte of a large frame, the other a whole small frame.
  const timer = setInterval(() => {
    if (!slow.closed) slow.write(frame.subarray(sent, sent + 1));
    sent += 1;
    steady.write(encodeFrame(Buffer.from(`ping${echoed++}`)));
  }, 50);
  t.teardown(() => clearInterval(timer));
  await slow.waitClosed();
  const tookMs = Date.now() - started;
  t.regex((await slow.frame(0)).toString(), /^ERR TIMEOUT /);
  t.true(tookMs >= 500, `cut after ${tookMs} ms, not before the deadline`);
  await new Promise((r) => setTimeout(r, 1_000));
  clearInterval(timer);
  t.false(steady.closed, 'a connection sending whole frames is never cut');
  await waitFor(() => steady.frames.length >= echoed, 'every ping echoed');
});

test('the input budget refuses a large partial frame BUSY without closing; small frames still pass', async (t) => {
  const budget = 4 * 1024 * kib;
  const s = await startServer(echo, { bufferedInputMaxBytes: budget, frameSizeMaxBytes: 3 * 1024 * kib });
  t.teardown(() => s.close());
  const hog = await RawClient.connect(s.port);
  t.teardown(() => hog.destroy());
  // Announce 3 MiB and send half: it is admitted and reserved at its announced length.
  const big = encodeFrame(Buffer.alloc(3 * 1024 * kib, 1));
  hog.write(big.subarray(0, 1024 * kib));
  await waitFor(() => s.server.budgetStats().bufferedInputBytes === 3 * 1024 * kib, 'the reservation');
  // A second large frame does not fit (only the small-frame reserve is left): BUSY, bytes dropped.
  const second = await RawClient.connect(s.port);
  t.teardown(() => second.destroy());
  second.write(encodeFrame(Buffer.alloc(900 * kib, 2)));
  second.write(encodeFrame(Buffer.from('after')));
  t.regex((await second.frame(0)).toString(), /^ERR BUSY .*budget/);
  t.is((await second.frame(1)).toString(), 'after', 'the stream stays in sync after a refused frame');
  t.false(second.closed);
  t.is(s.server.budgetStats().bufferedInputRefusals, 1);
  // A small frame split over two writes uses the reserve.
  const small = encodeFrame(Buffer.alloc(10 * kib, 3));
  second.write(small.subarray(0, 100));
  await new Promise((r) => setTimeout(r, 50));
  second.write(small.subarray(100));
  t.is((await second.frame(2)).length, 10 * kib);
  // The hog completes its frame: it is served, and the budget is given back.
  hog.write(big.subarray(1024 * kib));
  t.is((await hog.frame(0)).length, 3 * 1024 * kib);
  await waitFor(() => s.server.budgetStats().bufferedInputBytes === 0, 'everything given back');
  t.true(s.server.budgetStats().bufferedInputBytesPeak >= 3 * 1024 * kib);
});

test('when the whole budget is spent a new connection gets ERR BUSY; a closed hog gives it back', async (t) => {
  const budget = 2 * 1024 * kib;
  const s = await startServer(echo, { bufferedInputMaxBytes: budget, frameSizeMaxBytes: 1024 * kib });
  t.teardown(() => s.close());
  const hogs: RawClient[] = [];
  // Small frames (up to 64 KiB) may use the whole budget: 32 partial frames of 64 KiB fill it.
  for (let i = 0; i < 32; i++) {
    const c = await RawClient.connect(s.port);
    t.teardown(() => c.destroy());
    c.write(encodeFrame(Buffer.alloc(64 * kib)).subarray(0, 10));
    hogs.push(c);
  }
  await waitFor(() => s.server.budgetStats().bufferedInputBytes === budget, 'the budget spent');
  const refused = await RawClient.connect(s.port);
  t.teardown(() => refused.destroy());
  await waitFor(() => refused.frames.length > 0 || refused.closed, 'an answer');
  t.regex((await refused.frame(0)).toString(), /^ERR BUSY /);
  await refused.waitClosed();
  for (const h of hogs) h.destroy();
  await waitFor(() => s.server.budgetStats().bufferedInputBytes === 0, 'the budget given back');
  const served = await RawClient.connect(s.port);
  t.teardown(() => served.destroy());
  served.write(encodeFrame(Buffer.from('hello')));
  t.is((await served.frame(0)).toString(), 'hello');
});

test('a client that reads slowly stops being read once its pending replies reach the bound', async (t) => {
  let calls = 0;
  const reply = Buffer.alloc(1024 * kib, 5);
  const s = await startServer(
    (conn) => {
      calls += 1;
      conn.send(reply);
    },
    {
      replyPendingMaxBytesPerConnection: 4 * 1024 * kib,
      writeBufferMaxBytes: 64 * 1024 * kib,
      inFlightMaxPerConnection: 1024,
    },
  );
  t.teardown(() => s.close());
  const c = await RawClient.connect(s.port);
  t.teardown(() => c.destroy());
  c.socket.pause(); // does not read for now
  c.write(Buffer.concat(Array.from({ length: 200 }, () => encodeFrame(Buffer.from('give')))));
  await waitFor(() => calls >= 4, 'the first replies');
  await new Promise((r) => setTimeout(r, 500));
  // Kernel buffers take a few MiB; beyond that the server holds at most the bound plus one reply.
  t.true(calls < 40, `${calls} requests handed to the handler while the client did not read`);
  t.false(c.closed, 'backpressure, not a disconnect');
  c.socket.resume();
  await waitFor(() => c.frames.length === 200, 'every reply once the client reads', 30_000);
  t.is(calls, 200);
});

test('requests received whole stay counted in the input budget until they are answered', async (t) => {
  // A handler that answers only when told: large appends to a slow segment, say.
  const held: { conn: FrameConnection; size: number }[] = [];
  const budget = 4 * 1024 * kib;
  const s = await startServer((conn, payload) => held.push({ conn, size: payload.length }), {
    bufferedInputMaxBytes: budget,
    frameSizeMaxBytes: 2 * 1024 * kib,
    inFlightMaxPerConnection: 1024,
  });
  t.teardown(() => s.close());
  const c = await RawClient.connect(s.port);
  t.teardown(() => c.destroy());
  // Eight complete 900 KiB requests: about four fit under the budget (less the small-frame
  // reserve); before, each was forgotten once complete, and all eight were held uncounted.
  for (let i = 0; i < 8; i++) c.write(encodeFrame(Buffer.alloc(900 * kib, i)));
  await waitFor(() => held.length + c.frames.length === 8, 'every request handled or refused');
  t.true(held.length >= 3 && held.length <= 4, `${held.length} large requests admitted`);
  t.is(c.frames.length, 8 - held.length);
  for (const f of c.frames) t.regex(f.toString(), /^ERR BUSY .*budget/);
  t.true(s.server.budgetStats().bufferedInputBytes >= held.length * 900 * kib, 'held requests counted');
  // A small request still passes (the reserve), and answering gives everything back.
  c.write(encodeFrame(Buffer.from('small')));
  await waitFor(() => held.some((h) => h.size === 5), 'the small request handed to the handler');
  for (const h of held) h.conn.send(Buffer.from('ok'));
  await waitFor(() => s.server.budgetStats().bufferedInputBytes === 0, 'everything given back');
});
