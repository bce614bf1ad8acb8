/**
 * The frame batcher's arena: frames are copied as they are pushed (a request id set in the copy,
 * never in the caller's bytes), batches follow one another in one arena without touching what was
 * handed out, large chunks keep their place in the stream, and a batch larger than an arena works.
 */
import test from 'ava';
import { encodeRequest } from '../../../node/protocol/binary-codec.js';
import { readRequestId } from '../../../node/protocol/binary-header.js';
import { FrameDecoder } from '../../../node/protocol/frame-decoder.js';
import { FrameBatcher, frameBatcherLimits } from '../../../node/transport/frame-batcher.js';

const tick = (): Promise<void> => new Promise((r) => setImmediate(r));

function framesOf(writes: Buffer[]): Buffer[] {
  const decoder = new FrameDecoder(64 * 1024 * 1024);
  return writes.flatMap((w) => decoder.push(w).frames.map((f) => Buffer.from(f)));
}

test('pushFrame sends one encoding under many request ids and never changes it', async (t) => {
  const writes: Buffer[] = [];
  const batcher = new FrameBatcher((b) => writes.push(b));
  const payload = encodeRequest(0, { op: 'describeTopic', topic: 'orders' });
  const before = Buffer.from(payload);
  for (let id = 1; id <= 300; id++) batcher.pushFrame(payload, id);
  t.is(batcher.pendingBytes, 300 * (4 + payload.length));
  await tick();
  t.is(writes.length, 1, 'one write for the turn');
  const frames = framesOf(writes);
  t.deepEqual(
    frames.map((f) => readRequestId(f)),
    Array.from({ length: 300 }, (_, i) => i + 1),
  );
  for (const f of frames) t.true(f.subarray(8).equals(payload.subarray(8)));
  t.true(payload.equals(before), "the caller's bytes are untouched");
});

test('later batches never overwrite bytes already handed to the writer', async (t) => {
  const writes: Buffer[] = [];
  const batcher = new FrameBatcher((b) => writes.push(b));
  const payload = encodeRequest(0, { op: 'ping' });
  // Enough batches to fill several arenas; each batch's bytes are checked after all were written.
  const batchCount = Math.ceil((3 * frameBatcherLimits.arenaSizeBytes) / (50 * (4 + payload.length)));
  for (let b = 0; b < batchCount; b++) {
    for (let i = 0; i < 50; i++) batcher.pushFrame(payload, b * 50 + i + 1);
    await tick();
  }
  t.is(writes.length, batchCount);
  const ids = framesOf(writes).map((f) => readRequestId(f));
  t.deepEqual(
    ids,
    Array.from({ length: batchCount * 50 }, (_, i) => i + 1),
  );
});

test('large chunks go by reference and keep their place; a batch may exceed an arena', async (t) => {
  const writes: Buffer[] = [];
  const batcher = new FrameBatcher((b) => writes.push(b));
  const small = Buffer.from([3, 0, 0, 0, 0x61, 0x62, 0x63]);
  const bigPayload = Buffer.alloc(frameBatcherLimits.copySizeMinBytes * 5, 0x7a);
  const bigHeader = Buffer.alloc(4);
  bigHeader.writeUInt32LE(bigPayload.length, 0);
  batcher.push(small);
  batcher.push(bigHeader);
  batcher.push(bigPayload);
  batcher.push(small);
  const manySmall = Math.ceil((2 * frameBatcherLimits.arenaSizeBytes) / small.length);
  for (let i = 0; i < manySmall; i++) batcher.push(small);
  const large = encodeRequest(0, {
    op: 'append',
    topic: 't',
    records: [{ value: Buffer.alloc(frameBatcherLimits.copySizeMinBytes, 1) }],
  });
  batcher.pushFrame(large, 77);
  await tick();
  t.is(writes.length, 1);
  const frames = framesOf(writes);
  t.is(frames.length, 3 + manySmall + 1);
  t.is(frames[0]!.toString(), 'abc');
  t.true(frames[1]!.equals(bigPayload));
  t.is(frames[2]!.toString(), 'abc');
  const last = frames[frames.length - 1]!;
  t.is(readRequestId(last), 77);
  t.true(last.subarray(8).equals(large.subarray(8)));
  t.is(readRequestId(large), 0, "the large payload's own bytes are untouched");
});

test('clear drops what is pending; the next frames still go out', async (t) => {
  const writes: Buffer[] = [];
  const batcher = new FrameBatcher((b) => writes.push(b));
  const payload = encodeRequest(0, { op: 'ping' });
  batcher.pushFrame(payload, 1);
  batcher.clear();
  t.is(batcher.pendingBytes, 0);
  await tick();
  t.is(writes.length, 0);
  batcher.pushFrame(payload, 2);
  await tick();
  t.deepEqual(
    framesOf(writes).map((f) => readRequestId(f)),
    [2],
  );
});
