/**
 * The frame decoder over arbitrary chunking: frames come out identical however the stream is cut,
 * bad length prefixes fail before anything beyond the limit is buffered, and the buffer never
 * holds more than one maximum frame plus one chunk.
 */
import test from 'ava';
import fc from 'fast-check';
import { ErrorCode } from '../../../node/protocol/error-codes.js';
import { encodeFrame } from '../../../node/protocol/frame.js';
import { FrameDecoder } from '../../../node/protocol/frame-decoder.js';

const frameMax = 256;
const payloadArb = fc.uint8Array({ minLength: 1, maxLength: frameMax });

function streamOf(payloads: readonly Uint8Array[]): Buffer {
  return Buffer.concat(payloads.map((p) => encodeFrame(p)));
}

function cut(stream: Buffer, cuts: readonly number[]): Buffer[] {
  const points = [...new Set(cuts.map((c) => c % (stream.length + 1)))].sort((a, b) => a - b);
  const chunks: Buffer[] = [];
  let start = 0;
  for (const p of points) {
    chunks.push(stream.subarray(start, p));
    start = p;
  }
  chunks.push(stream.subarray(start));
  return chunks;
}

test('frames survive any chunking of the stream, and memory stays within one frame plus one chunk', (t) => {
  fc.assert(
    fc.property(
      fc.array(payloadArb, { maxLength: 8 }),
      fc.array(fc.nat(), { maxLength: 12 }),
      (payloads, cuts) => {
        const stream = streamOf(payloads);
        const decoder = new FrameDecoder(frameMax);
        const got: Buffer[] = [];
        for (const chunk of cut(stream, cuts)) {
          const { frames, error } = decoder.push(chunk);
          if (error !== undefined) return false;
          got.push(...frames);
          if (decoder.bufferedByteCount() > frameMax + 4 + chunk.length) return false;
        }
        t.deepEqual(
          got.map((f) => [...f]),
          payloads.map((p) => [...p]),
        );
        return !decoder.hasPartialFrame();
      },
    ),
  );
});

test('a stream of frames split at every byte boundary decodes identically', (t) => {
  const payloads = [
    Buffer.from('METRICS'),
    Buffer.from([0xb1, 1, 2, 3]),
    Buffer.alloc(300, 7),
    Buffer.from('x'),
  ];
  const stream = streamOf(payloads);
  for (let at = 0; at <= stream.length; at += 1) {
    const decoder = new FrameDecoder(1024);
    const a = decoder.push(stream.subarray(0, at));
    const b = decoder.push(stream.subarray(at));
    t.is(a.error, undefined);
    t.is(b.error, undefined);
    t.deepEqual(
      [...a.frames, ...b.frames].map((f) => f.toString('hex')),
      payloads.map((p) => p.toString('hex')),
    );
  }
});

test('one byte at a time decodes identically', (t) => {
  const payloads = [Buffer.from('GET logs'), Buffer.alloc(70_000, 1)];
  const stream = streamOf(payloads);
  const decoder = new FrameDecoder(100_000);
  const got: Buffer[] = [];
  for (let i = 0; i < stream.length; i += 1) got.push(...decoder.push(stream.subarray(i, i + 1)).frames);
  t.deepEqual(
    got.map((f) => f.length),
    [8, 70_000],
  );
  t.true(got[0]!.equals(payloads[0]!));
});

test('a zero length prefix is BAD_REQUEST and the decoder stays failed', (t) => {
  const decoder = new FrameDecoder(64);
  const ok = encodeFrame(Buffer.from('OK'));
  const r = decoder.push(Buffer.concat([ok, Buffer.from([0, 0, 0, 0]), ok]));
  t.is(r.frames.length, 1, 'the frame before the bad prefix is still delivered');
  t.is(r.error?.code, ErrorCode.BAD_REQUEST);
  t.is(decoder.bufferedByteCount(), 0);
  t.is(decoder.push(ok).error?.code, ErrorCode.BAD_REQUEST);
  t.is(decoder.push(ok).frames.length, 0);
});

test('a 2 GiB length prefix fails as soon as its 4 bytes arrive, before any body is buffered', (t) => {
  const decoder = new FrameDecoder(4 * 1024 * 1024);
  t.is(decoder.push(Buffer.from([0x00, 0x00])).error, undefined);
  const r = decoder.push(Buffer.from([0x00, 0x80]));
  t.is(r.error?.code, ErrorCode.FRAME_TOO_LARGE);
  t.regex(r.error?.message ?? '', /2147483648/);
  t.is(decoder.bufferedByteCount(), 0);
  const max = new FrameDecoder(10);
  t.is(max.push(Buffer.from([0xff, 0xff, 0xff, 0xff])).error?.code, ErrorCode.FRAME_TOO_LARGE);
});

test('a length of exactly the limit is accepted, one more is not', (t) => {
  const decoder = new FrameDecoder(16);
  const r = decoder.push(encodeFrame(Buffer.alloc(16, 3)));
  t.is(r.error, undefined);
  t.is(r.frames[0]?.length, 16);
  t.is(new FrameDecoder(16).push(encodeFrame(Buffer.alloc(17))).error?.code, ErrorCode.FRAME_TOO_LARGE);
});

test('garbage never throws: it gives frames or a typed error', (t) => {
  fc.assert(
    fc.property(fc.array(fc.uint8Array({ maxLength: 64 }), { maxLength: 10 }), (chunks) => {
      const decoder = new FrameDecoder(128);
      for (const chunk of chunks) {
        const r = decoder.push(chunk);
        if (
          r.error !== undefined &&
          r.error.code !== ErrorCode.BAD_REQUEST &&
          r.error.code !== ErrorCode.FRAME_TOO_LARGE
        ) {
          return false;
        }
        if (decoder.bufferedByteCount() > 128 + 4 + chunk.length) return false;
      }
      return true;
    }),
  );
  t.pass();
});

test('a declared length longer than the bytes sent waits for more bytes (seed 002 health check)', (t) => {
  const decoder = new FrameDecoder(64);
  // The correct health check: length 7 for "METRICS".
  t.deepEqual(
    decoder.push(Buffer.from('\x07\x00\x00\x00METRICS', 'latin1')).frames.map((f) => f.toString()),
    ['METRICS'],
  );
  const waiting = new FrameDecoder(64);
  t.deepEqual(waiting.push(Buffer.from('\x08\x00\x00\x00METRICS', 'latin1')).frames, []);
  t.true(waiting.hasPartialFrame());
  // Seed 002's `\x06` variant cuts the command: the frame is "METRIC" and "S" starts the next prefix.
  const short = new FrameDecoder(64);
  const r = short.push(Buffer.from('\x06\x00\x00\x00METRICS', 'latin1'));
  t.deepEqual(
    r.frames.map((f) => f.toString()),
    ['METRIC'],
  );
  t.is(short.bufferedByteCount(), 1);
});
