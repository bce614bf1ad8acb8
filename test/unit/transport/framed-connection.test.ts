/**
 * The framed, pipelined connection core on its own, over a scripted socket (the test decides what
 * arrives when): replies in any order and split at any byte reach their callers; the frames of one
 * turn leave in one write; bounds, timeouts, aborts and disconnects fail the right requests with the
 * right code and `sent`; text-frame refusals; the handshake step and its frame limit; backpressure.
 * One case runs over a real loopback socket.
 */
import net from 'node:net';
import test from 'ava';
import fc from 'fast-check';
import { BinaryFlag } from '../../../node/protocol/binary-header.js';
import { ErrorCode, WalrusError } from '../../../node/protocol/error-codes.js';
import { encodeFrame } from '../../../node/protocol/frame.js';
import { encodeTextError } from '../../../node/protocol/text-codec.js';
import {
  type ClientHandshake,
  type CloseReason,
  FramedConnection,
  type FramedConnectionOptions,
} from '../../../node/transport/framed-connection.js';
import { TransportError } from '../../../node/transport/transport-error.js';
import { ScriptedSocket } from './scripted-socket.js';

/** A binary message payload (no length prefix): 0xB1 | 1 | tag | flags | u32 id | body. */
function message(tag: number, flags: number, requestId: number, body: Uint8Array): Buffer {
  const out = Buffer.alloc(8 + body.length);
  out[0] = 0xb1;
  out[1] = 1;
  out[2] = tag;
  out[3] = flags;
  out.writeUInt32LE(requestId, 4);
  out.set(body, 8);
  return out;
}

/** Tag 0xee is a frame that breaks the protocol. */
const breachTag = 0xee;
const turn = () => new Promise((resolve) => setImmediate(resolve));

interface Rig {
  readonly conn: FramedConnection;
  readonly socket: ScriptedSocket;
  readonly closes: [TransportError, CloseReason][];
  readonly events: string[];
}

function rig(overrides: Partial<FramedConnectionOptions> = {}): Rig {
  const socket = new ScriptedSocket();
  const closes: [TransportError, CloseReason][] = [];
  const events: string[] = [];
  const conn = new FramedConnection({
    host: 'scripted',
    port: 1,
    label: 'srv',
    connectTimeoutMs: 5_000,
    frameSizeMaxBytes: 1024,
    inFlightMax: 64,
    flush: 'nextTick',
    readReply: (frame) => {
      if (frame[2] === breachTag) throw new WalrusError(ErrorCode.UNAVAILABLE, 'breach');
      return { requestId: frame.readUInt32LE(4), tag: frame[2]!, outcome: Buffer.from(frame.subarray(8)) };
    },
    events: {
      onClose: (err, reason) => closes.push([err, reason]),
      onOpen: () => events.push('open'),
      onSlotFree: () => events.push('slot'),
      onDrain: () => events.push('drain'),
      onIdle: () => events.push('idle'),
    },
    connect: () => socket.asSocket(),
    ...overrides,
  });
  return { conn, socket, closes, events };
}

interface Outcome {
  value?: string;
  error?: unknown;
}

/** One request with body `body`; the returned outcome fills in when it settles. */
function ask(
  conn: FramedConnection,
  body: string,
  o: { timeoutMs?: number; signal?: AbortSignal; tag?: number } = {},
): { outcome: Outcome; done: Promise<void> } {
  const outcome: Outcome = {};
  const timeoutMs = o.timeoutMs ?? 10_000;
  const tag = o.tag ?? 7;
  const done = new Promise<void>((resolve) => {
    conn.request({
      payload: message(tag, 0, 0, Buffer.from(body)),
      tag,
      deadlineMs: Date.now() + timeoutMs,
      timeoutMs,
      signal: o.signal,
      resolve: (reply) => {
        outcome.value = reply.toString();
        resolve();
      },
      reject: (err) => {
        outcome.error = err;
        resolve();
      },
    });
  });
  return { outcome, done };
}

/** The server's replies to the requests written so far: `re:<body>` under each request's id and tag. */
function repliesTo(socket: ScriptedSocket): Buffer[] {
  return socket
    .frames()
    .map((f) =>
      encodeFrame(message(f[2]!, BinaryFlag.REPLY, f.readUInt32LE(4), Buffer.from(`re:${f.subarray(8)}`))),
    );
}

function codeOf(err: unknown): { code: string; sent: boolean } {
  if (!(err instanceof TransportError)) throw new Error(`not a TransportError: ${String(err)}`);
  return { code: err.code, sent: err.sent };
}

test('replies in any order, split at any bytes, reach their own callers; one write per turn', async (t) => {
  await fc.assert(
    fc.asyncProperty(
      fc
        .integer({ min: 1, max: 30 })
        .chain((n) =>
          fc.tuple(
            fc.shuffledSubarray([...Array(n).keys()], { minLength: n, maxLength: n }),
            fc.uniqueArray(fc.integer({ min: 1, max: 2_000 }), { maxLength: 40 }),
          ),
        ),
      async ([order, cuts]) => {
        const { conn, socket } = rig();
        socket.connectNow();
        const calls = order.map((_, i) => ask(conn, `q${i}`));
        await turn();
        if (socket.writes.length !== 1) return false; // the whole turn in one write
        const replies = repliesTo(socket);
        const stream = Buffer.concat(order.map((i) => replies[i]!));
        const at = [0, ...cuts.filter((c) => c < stream.length).sort((a, b) => a - b), stream.length];
        for (let i = 1; i < at.length; i += 1) socket.feed(stream.subarray(at[i - 1]!, at[i]!));
        await Promise.all(calls.map((c) => c.done));
        return calls.every((c, i) => c.outcome.value === `re:q${i}`) && conn.inFlightCount === 0;
      },
    ),
    { numRuns: 100 },
  );
  t.pass();
});

test('a reply stream fed one byte at a time decodes the same', async (t) => {
  const { conn, socket } = rig();
  socket.connectNow();
  const calls = Array.from({ length: 5 }, (_, i) => ask(conn, `b${i}`.repeat(i + 1)));
  await turn();
  for (const byte of Buffer.concat(repliesTo(socket).reverse())) socket.feed(Buffer.from([byte]));
  await Promise.all(calls.map((c) => c.done));
  t.deepEqual(
    calls.map((c) => c.outcome.value),
    calls.map((_, i) => `re:${`b${i}`.repeat(i + 1)}`),
  );
});

test('request ids are unique among requests in flight; a reply under another tag is a late one', async (t) => {
  const { conn, socket } = rig();
  socket.connectNow();
  const a = ask(conn, 'a', { tag: 1 });
  const b = ask(conn, 'b', { tag: 2 });
  await turn();
  const [fa, fb] = socket.frames();
  t.not(fa!.readUInt32LE(4), fb!.readUInt32LE(4));
  socket.feed(encodeFrame(message(2, BinaryFlag.REPLY, fa!.readUInt32LE(4), Buffer.from('wrong tag'))));
  socket.feed(encodeFrame(message(9, BinaryFlag.REPLY, 12345, Buffer.from('nobody'))));
  await turn();
  t.is(conn.inFlightCount, 2, 'neither settles: a reply must carry its request tag');
  for (const r of repliesTo(socket)) socket.feed(r);
  await Promise.all([a.done, b.done]);
  t.deepEqual([a.outcome.value, b.outcome.value], ['re:a', 're:b']);
});

test('requests admitted before open wait, and go out in one write once connected', async (t) => {
  const { conn, socket, events } = rig();
  const calls = [ask(conn, 'x'), ask(conn, 'y')];
  await turn();
  t.is(socket.writes.length, 0, 'nothing before the connection opens');
  t.is(conn.inFlightCount, 2);
  socket.connectNow();
  t.deepEqual(events, ['open']);
  await turn();
  t.is(socket.writes.length, 1);
  for (const r of repliesTo(socket)) socket.feed(r);
  await Promise.all(calls.map((c) => c.done));
  t.deepEqual(
    calls.map((c) => c.outcome.value),
    ['re:x', 're:y'],
  );
});

test('the in-flight bound: one more is BUSY (not sent); a settled request frees a slot', async (t) => {
  const { conn, socket, events } = rig({ inFlightMax: 3 });
  socket.connectNow();
  const calls = [ask(conn, '1'), ask(conn, '2'), ask(conn, '3')];
  const extra = ask(conn, '4');
  await extra.done;
  t.deepEqual(codeOf(extra.outcome.error), { code: ErrorCode.BUSY, sent: false });
  await turn();
  socket.feed(repliesTo(socket)[1]!);
  await calls[1]!.done;
  t.deepEqual(events, ['open', 'slot']);
  const again = ask(conn, '5');
  t.is(conn.inFlightCount, 3);
  await turn();
  for (const r of repliesTo(socket)) socket.feed(r);
  await Promise.all([...calls, again].map((c) => c.done));
  t.is(again.outcome.value, 're:5');
});

test('disconnect mid-flight: answered requests keep their replies, the rest fail UNAVAILABLE, sent', async (t) => {
  await fc.assert(
    fc.asyncProperty(fc.integer({ min: 1, max: 20 }), fc.nat(), async (n, answeredSeed) => {
      const answered = answeredSeed % (n + 1);
      const { conn, socket, closes } = rig();
      socket.connectNow();
      const calls = Array.from({ length: n }, (_, i) => ask(conn, `m${i}`));
      await turn();
      const replies = repliesTo(socket);
      for (let i = 0; i < answered; i += 1) socket.feed(replies[i]!);
      socket.hangUp(Object.assign(new Error('reset'), { code: 'ECONNRESET' }));
      await Promise.all(calls.map((c) => c.done));
      await turn(); // the socket's 'close' (nothing was in flight when every request was answered)
      const late = ask(conn, 'late');
      await late.done;
      return (
        calls.every((c, i) =>
          i < answered
            ? c.outcome.value === `re:m${i}`
            : codeOf(c.outcome.error).code === ErrorCode.UNAVAILABLE && codeOf(c.outcome.error).sent,
        ) &&
        closes.length === 1 &&
        closes[0]![1] === 'lost' &&
        /was lost \(ECONNRESET\)/.test(closes[0]![0].message) &&
        codeOf(late.outcome.error).code === ErrorCode.UNAVAILABLE &&
        !codeOf(late.outcome.error).sent &&
        conn.state === 'closed'
      );
    }),
    { numRuns: 50 },
  );
  t.pass();
});

test('a failed connect fails everything admitted UNAVAILABLE, not sent, reason connect', async (t) => {
  const { conn, socket, closes } = rig();
  const calls = [ask(conn, 'a'), ask(conn, 'b')];
  socket.hangUp(Object.assign(new Error('connect ECONNREFUSED'), { code: 'ECONNREFUSED' }));
  await Promise.all(calls.map((c) => c.done));
  for (const c of calls) t.deepEqual(codeOf(c.outcome.error), { code: ErrorCode.UNAVAILABLE, sent: false });
  t.is(closes.length, 1);
  t.is(closes[0]![1], 'connect');
  t.regex(closes[0]![0].message, /^cannot connect to srv: connect ECONNREFUSED/);
});

test('a connect that never completes fails after connectTimeoutMs', async (t) => {
  const { conn, closes } = rig({ connectTimeoutMs: 30 });
  const call = ask(conn, 'a');
  await call.done;
  t.deepEqual(codeOf(call.outcome.error), { code: ErrorCode.UNAVAILABLE, sent: false });
  t.regex((call.outcome.error as Error).message, /connect timed out after 30 ms/);
  t.is(closes[0]![1], 'connect');
});

test('timeouts: TIMEOUT (sent once open, not before); a late reply is dropped; others are unaffected', async (t) => {
  const { conn, socket, events } = rig();
  const early = ask(conn, 'early', { timeoutMs: 20 });
  await early.done;
  t.deepEqual(codeOf(early.outcome.error), { code: ErrorCode.TIMEOUT, sent: false });
  socket.connectNow();
  const slow = ask(conn, 'slow', { timeoutMs: 20 });
  const patient = ask(conn, 'patient');
  await slow.done;
  t.deepEqual(codeOf(slow.outcome.error), { code: ErrorCode.TIMEOUT, sent: true });
  t.regex((slow.outcome.error as Error).message, /no reply from srv within 20 ms/);
  for (const r of repliesTo(socket)) socket.feed(r); // 'early' and 'slow' are late now
  await patient.done;
  t.is(patient.outcome.value, 're:patient');
  t.is(conn.inFlightCount, 0);
  t.is(conn.state, 'open');
  t.is(events.filter((e) => e === 'slot').length, 3, 'each settled request freed its slot');
});

test('abort: before admission and in flight reject with the reason; the late reply is dropped', async (t) => {
  const { conn, socket } = rig();
  socket.connectNow();
  const before = new AbortController();
  before.abort(new Error('not wanted'));
  const a = ask(conn, 'a', { signal: before.signal });
  await a.done;
  t.is((a.outcome.error as Error).message, 'not wanted');
  const during = new AbortController();
  const b = ask(conn, 'b', { signal: during.signal });
  await turn();
  during.abort(new Error('changed my mind'));
  await b.done;
  t.is((b.outcome.error as Error).message, 'changed my mind');
  t.is(conn.inFlightCount, 0);
  for (const r of repliesTo(socket)) socket.feed(r);
  await turn();
  t.is(b.outcome.value, undefined);
});

test('text frames: ERR BUSY ends the connection BUSY, not sent; other codes sent once open', async (t) => {
  for (const [code, opened, sent, reason] of [
    [ErrorCode.BUSY, true, false, 'protocol'],
    [ErrorCode.FRAME_TOO_LARGE, true, true, 'protocol'],
    [ErrorCode.FRAME_TOO_LARGE, false, false, 'connect'],
  ] as const) {
    const { conn, socket, closes } = rig({
      handshake: opened ? undefined : { frameSizeMaxBytes: 64, onFrame: () => false },
    });
    socket.connectNow();
    const call = ask(conn, 'x');
    await turn();
    socket.feed(encodeFrame(encodeTextError({ code, message: 'no' })));
    await call.done;
    t.deepEqual(codeOf(call.outcome.error), { code, sent });
    t.is(closes[0]![1], reason);
    t.is(closes[0]![0].message, 'srv: no');
  }
});

test('a frame above the limit or a reply that breaks the protocol ends the connection', async (t) => {
  for (const bad of [
    encodeFrame(Buffer.alloc(1025, 0xb1)),
    encodeFrame(message(breachTag, BinaryFlag.REPLY, 1, Buffer.alloc(0))),
  ]) {
    const { conn, socket, closes } = rig();
    socket.connectNow();
    const call = ask(conn, 'x');
    await turn();
    socket.feed(bad);
    await call.done;
    t.deepEqual(codeOf(call.outcome.error), { code: ErrorCode.UNAVAILABLE, sent: true });
    t.is(closes.length, 1);
    t.is(closes[0]![1], 'protocol');
    t.true(socket.destroyed);
  }
});

/** A handshake that answers 'hello' with 'prove' and is done on 'accept'; 'refuse' refuses. */
function scriptedHandshake(log: string[]): ClientHandshake {
  return {
    frameSizeMaxBytes: 32,
    onFrame(frame, io) {
      const word = frame.subarray(8).toString();
      log.push(word);
      if (word === 'hello') io.write(encodeFrame(message(0x81, 0, 0, Buffer.from('prove'))));
      if (word === 'refuse') {
        io.end(encodeFrame(message(0x81, BinaryFlag.ERROR, 0, Buffer.from('bye'))));
        throw new WalrusError(ErrorCode.UNAUTHENTICATED, 'refused');
      }
      return word === 'accept';
    },
  };
}

test('the handshake runs before anything else is written, under its own frame limit', async (t) => {
  const seen: string[] = [];
  const { conn, socket, events } = rig({ handshake: scriptedHandshake(seen) });
  const call = ask(conn, 'after');
  socket.connectNow();
  t.is(conn.state, 'handshaking');
  socket.feed(encodeFrame(message(0x80, 0, 0, Buffer.from('hello'))));
  await turn();
  t.deepEqual(
    socket.frames().map((f) => f.subarray(8).toString()),
    ['prove'],
    'the request waits for the handshake',
  );
  socket.feed(encodeFrame(message(0x82, 0, 0, Buffer.from('accept'))));
  t.deepEqual(events, ['open']);
  await turn();
  t.deepEqual(
    socket.frames().map((f) => f.subarray(8).toString()),
    ['prove', 'after'],
  );
  // Once open, frames up to frameSizeMaxBytes (not the handshake's 32) are read.
  const id = socket.frames()[1]!.readUInt32LE(4);
  socket.feed(encodeFrame(message(7, BinaryFlag.REPLY, id, Buffer.alloc(500, 'r'))));
  await call.done;
  t.is(call.outcome.value, 'r'.repeat(500));

  const big = rig({ handshake: scriptedHandshake([]) });
  const waiting = ask(big.conn, 'x');
  big.socket.connectNow();
  big.socket.feed(encodeFrame(message(0x80, 0, 0, Buffer.alloc(100))));
  await waiting.done;
  t.deepEqual(codeOf(waiting.outcome.error), { code: ErrorCode.UNAVAILABLE, sent: false });
  t.regex(big.closes[0]![0].message, /bad framing from srv: frame length 108 exceeds the limit of 32/);
});

test('a handshake refusal fails the attempt with its code; its last frame was written', async (t) => {
  const { conn, socket, closes } = rig({ handshake: scriptedHandshake([]) });
  const call = ask(conn, 'x');
  socket.connectNow();
  socket.feed(encodeFrame(message(0x80, 0, 0, Buffer.from('refuse'))));
  await call.done;
  t.deepEqual(codeOf(call.outcome.error), { code: ErrorCode.UNAUTHENTICATED, sent: false });
  t.deepEqual(
    closes.map(([e, r]) => [e.code, e.message, r]),
    [[ErrorCode.UNAUTHENTICATED, 'refused', 'connect']],
  );
  t.true(socket.ended);
  t.is(socket.frames()[0]!.subarray(8).toString(), 'bye');
});

test('backpressure: writable only under the high-water mark; drain is passed on', async (t) => {
  const { conn, socket, events } = rig({ writeBufferHighBytes: 100 });
  t.false(conn.writable, 'not before open');
  socket.connectNow();
  t.true(conn.writable);
  conn.sendFrame(Buffer.alloc(60));
  t.true(conn.writable);
  conn.sendFrame(Buffer.alloc(60));
  t.false(conn.writable, '120 bytes pending');
  await turn();
  t.is(socket.writes.length, 1);
  t.true(conn.writable);
  socket.writableLength = 100;
  t.false(conn.writable);
  socket.writableLength = 0;
  socket.emit('drain');
  t.deepEqual(events, ['open', 'drain']);
});

test('idle: reported only with nothing in flight', async (t) => {
  const { conn, socket, events } = rig({ idleTimeoutMs: 1_000 });
  socket.connectNow();
  t.is(socket.idleTimeoutMs, 1_000);
  const call = ask(conn, 'x');
  socket.emit('timeout');
  t.deepEqual(events, ['open']);
  await turn();
  for (const r of repliesTo(socket)) socket.feed(r);
  await call.done;
  socket.emit('timeout');
  t.deepEqual(events, ['open', 'slot', 'idle']);
});

test('close(): everything in flight fails UNAVAILABLE with the message; no onClose; later requests fail', async (t) => {
  const { conn, socket, closes } = rig();
  socket.connectNow();
  const call = ask(conn, 'x');
  await conn.close('closed by the owner');
  await call.done;
  t.deepEqual(codeOf(call.outcome.error), { code: ErrorCode.UNAVAILABLE, sent: true });
  t.is((call.outcome.error as Error).message, 'closed by the owner');
  t.deepEqual(closes, []);
  t.true(socket.closed);
  const later = ask(conn, 'y');
  await later.done;
  t.deepEqual(codeOf(later.outcome.error), { code: ErrorCode.UNAVAILABLE, sent: false });
});

test('over a real loopback socket: connect, pipelined replies, close', async (t) => {
  const server = net.createServer((sock) => {
    sock.on('data', (chunk) => {
      // Requests are small and arrive whole here; answer them in reverse order.
      const frames: Buffer[] = [];
      for (let at = 0; at < chunk.length; ) {
        const length = chunk.readUInt32LE(at);
        frames.push(chunk.subarray(at + 4, at + 4 + length));
        at += 4 + length;
      }
      for (const f of frames.reverse()) {
        sock.write(
          encodeFrame(
            message(f[2]!, BinaryFlag.REPLY, f.readUInt32LE(4), Buffer.from(`re:${f.subarray(8)}`)),
          ),
        );
      }
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.teardown(() => new Promise<void>((resolve) => server.close(() => resolve())));
  const { port } = server.address() as net.AddressInfo;
  const { conn, closes } = rig({ host: '127.0.0.1', port, connect: undefined, flush: 'setImmediate' });
  const calls = Array.from({ length: 10 }, (_, i) => ask(conn, `r${i}`));
  await Promise.all(calls.map((c) => c.done));
  t.deepEqual(
    calls.map((c) => c.outcome.value),
    calls.map((_, i) => `re:r${i}`),
  );
  await conn.close('done');
  t.deepEqual(closes, []);
});
