/**
 * Chunked snapshot transfer (node/metadata/snapshot-transfer.ts) without sockets: round trips over
 * every split, flow control, duplicates, reordering, a missing chunk then the timeout, oversize
 * totals, garbage and corruption (fast-check where natural), and the driver-side SnapshotTransfer
 * (one transfer per follower, reports to Raft, warn-and-count on failure, backoff, abort).
 */
import { silentLogger } from '../../../node/log.js';
import { crc32c } from '@node-rs/crc32';
import test from 'ava';
import fc from 'fast-check';
import { encodeRaftMessage, raftConfMemberCountMax } from '../../../node/metadata/raft-codec.js';
import {
  SnapshotReassembler,
  SnapshotTransfer,
  SnapshotTransferError,
  type SnapshotTransferReason,
  chunkCountOf,
  decodeSnapshotChunk,
  decodeSnapshotChunkAck,
  encodeSnapshotChunk,
  encodeSnapshotChunkAck,
  sendSnapshotInChunks,
  snapshotChunkHeaderBytes,
  snapshotChunkSizeMaxBytes,
  snapshotEnvelopeSizeMaxBytes,
  snapshotTransferLimits,
} from '../../../node/metadata/snapshot-transfer.js';
import { ErrorCode, WalrusError } from '../../../node/protocol/error-codes.js';
import { protocolLimits } from '../../../node/protocol/limits.js';
import { MessageType } from '../../../node/raft/index.js';

function payloadOf(length: number, seed = 7): Buffer {
  const b = Buffer.allocUnsafe(length);
  let x = seed >>> 0 || 1;
  for (let i = 0; i < length; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    b[i] = x & 0xff;
  }
  return b;
}

/** The chunk bodies a sender would send for `payload`. */
function chunksOf(payload: Buffer, chunkSizeBytes: number, key = { term: 3, index: 40 }): Buffer[] {
  const count = chunkCountOf(payload.length, chunkSizeBytes);
  const totalCrc = crc32c(payload);
  return Array.from({ length: count }, (_, seq) => {
    const data = payload.subarray(seq * chunkSizeBytes, Math.min(payload.length, (seq + 1) * chunkSizeBytes));
    return encodeSnapshotChunk({
      ...key,
      totalBytes: payload.length,
      totalCrc,
      chunkSizeBytes,
      seq,
      chunkCrc: crc32c(data),
      data,
    });
  });
}

function reasonOf(run: () => unknown): SnapshotTransferReason | 'accepted' {
  try {
    run();
    return 'accepted';
  } catch (error) {
    if (error instanceof SnapshotTransferError) return error.reason;
    throw error;
  }
}

class FakeClock {
  t = 1_000;
  now = (): number => this.t;
}

function reassembler(clock = new FakeClock(), over: { budget?: number; idleMs?: number } = {}) {
  return new SnapshotReassembler({
    now: clock.now,
    ...(over.budget === undefined
      ? {}
      : { receiveBufferSizeMaxBytes: over.budget, transferSizeMaxBytes: over.budget }),
    ...(over.idleMs === undefined ? {} : { receiveIdleTimeoutMs: over.idleMs }),
  });
}

/** A channel that hands each chunk to a reassembler after a microtask (in order), like one TCP link. */
function loopback(
  r: SnapshotReassembler,
  from: number,
  delivered: Buffer[],
  stats = { inFlight: 0, inFlightMax: 0 },
) {
  return async (_to: number, body: Uint8Array, _timeoutMs: number): Promise<Uint8Array> => {
    stats.inFlight += 1;
    stats.inFlightMax = Math.max(stats.inFlightMax, stats.inFlight);
    await Promise.resolve();
    stats.inFlight -= 1;
    const outcome = r.accept(from, body);
    if (outcome.complete) delivered.push(outcome.payload);
    return outcome.ack;
  };
}

// ---------------------------------------------------------------- limits

test('limits: a chunk with its headers fits a peer frame; every legal MsgSnap fits a transfer', (t) => {
  const L = snapshotTransferLimits;
  t.true(L.chunkSizeBytes + snapshotChunkHeaderBytes + 8 + 4 < protocolLimits.frameSizeMaxBytes);
  t.true(snapshotChunkSizeMaxBytes + snapshotChunkHeaderBytes + 8 <= protocolLimits.frameSizeMaxBytes);
  // The envelope bound holds for the largest configuration.
  const ids = Array.from({ length: raftConfMemberCountMax }, (_, i) => i + 1);
  const data = new Uint8Array(1000);
  const encoded = encodeRaftMessage({
    type: MessageType.Snap,
    from: Number.MAX_SAFE_INTEGER,
    to: 2,
    term: Number.MAX_SAFE_INTEGER,
    logTerm: 0,
    index: 0,
    entries: [],
    commit: 0,
    reject: false,
    rejectHint: 0,
    snapshot: {
      meta: { index: 9, term: 9, conf: { voters: ids.slice(0, 512), learners: ids.slice(512) } },
      data,
    },
    transfer: false,
  });
  t.true(
    encoded.length - data.length <= snapshotEnvelopeSizeMaxBytes,
    `envelope ${encoded.length - data.length}`,
  );
});

// ---------------------------------------------------------------- codec

test('chunk and ack codecs round-trip', (t) => {
  const data = payloadOf(100);
  const body = encodeSnapshotChunk({
    term: 5,
    index: 2 ** 40,
    totalBytes: 1100,
    totalCrc: 0xdeadbeef,
    chunkSizeBytes: 1000,
    seq: 1,
    chunkCrc: crc32c(data),
    data,
  });
  t.is(body.length, snapshotChunkHeaderBytes + 100);
  const c = decodeSnapshotChunk(body);
  t.like(c, {
    term: 5,
    index: 2 ** 40,
    totalBytes: 1100,
    totalCrc: 0xdeadbeef,
    chunkSizeBytes: 1000,
    seq: 1,
  });
  t.deepEqual(Buffer.from(c.data), data);
  t.deepEqual(decodeSnapshotChunkAck(encodeSnapshotChunkAck({ complete: true, next: 7 })), {
    complete: true,
    next: 7,
  });
  t.deepEqual(decodeSnapshotChunkAck(encodeSnapshotChunkAck({ complete: false, next: 0 })), {
    complete: false,
    next: 0,
  });
  t.is(
    reasonOf(() => decodeSnapshotChunkAck(Buffer.from([1, 2, 0, 0, 0, 0]))),
    'MALFORMED',
  );
  t.is(
    reasonOf(() => decodeSnapshotChunkAck(Buffer.from([9, 0, 0, 0, 0, 0]))),
    'MALFORMED',
  );
  t.is(
    reasonOf(() => decodeSnapshotChunkAck(Buffer.alloc(0))),
    'MALFORMED',
  );
});

test('garbage never throws anything but a SnapshotTransferError, and never completes', (t) => {
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 200 }), fc.integer({ min: 1, max: 5 }), (bytes, from) => {
      const r = reassembler();
      const reason = reasonOf(() => r.accept(from, bytes));
      return reason !== 'accepted' || r.transferCount === 1;
    }),
    { numRuns: 2000 },
  );
  // A well-formed header with lies in it.
  const [good] = chunksOf(payloadOf(50), 100);
  const lie = (offset: number, v: number, width: 1 | 4 | 8): Buffer => {
    const b = Buffer.from(good!);
    if (width === 1) b[offset] = v;
    else if (width === 4) b.writeUInt32LE(v, offset);
    else b.writeBigUInt64LE(BigInt(v), offset);
    return b;
  };
  t.is(
    reasonOf(() => decodeSnapshotChunk(lie(0, 2, 1))),
    'MALFORMED',
    'version',
  );
  t.is(
    reasonOf(() => decodeSnapshotChunk(lie(17, 0, 8))),
    'MALFORMED',
    'total 0',
  );
  t.is(
    reasonOf(() => decodeSnapshotChunk(lie(17, 49, 8))),
    'MALFORMED',
    'data longer than the total',
  );
  t.is(
    reasonOf(() => decodeSnapshotChunk(lie(29, 0, 4))),
    'MALFORMED',
    'chunk size 0',
  );
  t.is(
    reasonOf(() => decodeSnapshotChunk(lie(29, snapshotChunkSizeMaxBytes + 1, 4))),
    'MALFORMED',
    'chunk size',
  );
  t.is(
    reasonOf(() => decodeSnapshotChunk(lie(33, 1, 4))),
    'MALFORMED',
    'seq past the end',
  );
  t.is(
    reasonOf(() => decodeSnapshotChunk(lie(41, 51, 4))),
    'MALFORMED',
    'data length past the body',
  );
  t.is(
    reasonOf(() => decodeSnapshotChunk(Buffer.concat([good!, Buffer.from([0])]))),
    'MALFORMED',
    'trailing',
  );
  t.is(
    reasonOf(() => decodeSnapshotChunk(good!.subarray(0, 20))),
    'MALFORMED',
    'truncated',
  );
  t.is(
    reasonOf(() => decodeSnapshotChunk(lie(37, 1, 4))),
    'CORRUPT',
    'chunk checksum',
  );
});

test('a flipped bit anywhere in a chunk is refused, or caught by the total checksum', (t) => {
  const payload = payloadOf(300, 11);
  fc.assert(
    fc.property(
      fc.nat(),
      fc.integer({ min: 0, max: 7 }),
      fc.integer({ min: 0, max: 2 }),
      (at, bit, which) => {
        const chunks = chunksOf(payload, 128);
        const victim = Buffer.from(chunks[which]!);
        const pos = at % victim.length;
        victim[pos]! ^= 1 << bit;
        chunks[which] = victim;
        const r = reassembler();
        const delivered: Buffer[] = [];
        for (const c of chunks) {
          try {
            const o = r.accept(1, c);
            if (o.complete) delivered.push(o.payload);
          } catch (error) {
            if (!(error instanceof SnapshotTransferError)) throw error;
          }
        }
        // Whatever got through is the original snapshot (a flip in the key or sizes just starts another transfer).
        return delivered.every((d) => d.equals(payload));
      },
    ),
    { numRuns: 3000 },
  );
  t.pass();
});

// ---------------------------------------------------------------- round trips

test('round trip over real chunking: every split size, with at most chunksInFlightMax unacknowledged', async (t) => {
  await fc.assert(
    fc.asyncProperty(
      fc.integer({ min: 1, max: 20_000 }),
      fc.integer({ min: 1, max: 4096 }),
      fc.integer({ min: 1, max: 8 }),
      fc.integer({ min: 1, max: 1000 }),
      async (length, chunkSizeBytes, inFlightMax, seed) => {
        const payload = payloadOf(length, seed);
        const r = reassembler();
        const delivered: Buffer[] = [];
        const stats = { inFlight: 0, inFlightMax: 0 };
        const count = await sendSnapshotInChunks({
          channel: loopback(r, 1, delivered, stats),
          to: 2,
          term: 4,
          index: 99,
          payload,
          chunkSizeBytes,
          chunksInFlightMax: inFlightMax,
        });
        return (
          count === Math.ceil(length / chunkSizeBytes) &&
          delivered.length === 1 &&
          delivered[0]!.equals(payload) &&
          stats.inFlightMax <= inFlightMax &&
          r.transferCount === 0 &&
          r.bufferedBytes === 0
        );
      },
    ),
    { numRuns: 300 },
  );
  t.pass();
});

test('split sizes at the edges: one byte, exact multiples, one over, a chunk larger than the total', (t) => {
  for (const [length, size] of [
    [1, 1],
    [1, 1000],
    [1000, 1000],
    [1001, 1000],
    [3000, 1000],
    [2999, 1000],
    [7, 3],
  ] as const) {
    const payload = payloadOf(length, length);
    const chunks = chunksOf(payload, size);
    t.is(chunks.length, Math.ceil(length / size));
    for (const [seq, c] of chunks.entries()) {
      const expected = seq < chunks.length - 1 ? size : length - size * (chunks.length - 1);
      t.is(c.length, snapshotChunkHeaderBytes + expected);
    }
    const r = reassembler();
    const outcomes = chunks.map((c) => r.accept(1, c));
    t.true(outcomes.slice(0, -1).every((o) => !o.complete));
    const last = outcomes.at(-1)!;
    t.true(last.complete && last.payload.equals(payload), `${length}/${size}`);
    t.deepEqual(decodeSnapshotChunkAck(last.ack), { complete: true, next: chunks.length });
  }
});

// ---------------------------------------------------------------- refused chunks

test('duplicates are refused without harming the transfer; chunk 0 again restarts it', (t) => {
  const payload = payloadOf(1000);
  const chunks = chunksOf(payload, 100);
  const r = reassembler();
  r.accept(1, chunks[0]!);
  r.accept(1, chunks[1]!);
  r.accept(1, chunks[2]!);
  t.is(
    reasonOf(() => r.accept(1, chunks[1]!)),
    'DUPLICATE',
  );
  t.is(
    reasonOf(() => r.accept(1, chunks[2]!)),
    'DUPLICATE',
  );
  t.deepEqual(decodeSnapshotChunkAck(r.accept(1, chunks[3]!).ack), { complete: false, next: 4 });
  // The sender started over (same snapshot): accepted from the start.
  for (const c of chunks.slice(0, -1)) t.false(r.accept(1, c).complete);
  const last = r.accept(1, chunks.at(-1)!);
  t.true(last.complete && last.payload.equals(payload));
  t.is(r.bufferedBytes, 0);
});

test('any order, with duplicates and losses, behaves as the in-order model; nothing wrong is ever delivered', (t) => {
  fc.assert(
    fc.property(
      fc
        .integer({ min: 1, max: 10 })
        .chain((n) => fc.tuple(fc.constant(n), fc.array(fc.nat(n - 1), { maxLength: 3 * n }))),
      ([n, sequence]) => {
        const payload = payloadOf(n * 10 - 3, n);
        const chunks = chunksOf(payload, 10);
        const r = reassembler();
        // The model: chunk 0 (re)starts the transfer; then only the next chunk is accepted.
        let active = false;
        let next = 0;
        for (const seq of sequence) {
          let want: SnapshotTransferReason | 'accepted';
          if (seq === 0) want = 'accepted';
          else if (!active || seq > next) want = 'OUT_OF_ORDER';
          else if (seq < next) want = 'DUPLICATE';
          else want = 'accepted';
          let completed: Buffer | null = null;
          const got = reasonOf(() => {
            const o = r.accept(1, chunks[seq]!);
            if (o.complete) completed = o.payload;
          });
          if (got !== want) return false;
          if (want === 'OUT_OF_ORDER') active = false;
          if (want === 'accepted') {
            active = true;
            next = seq + 1;
            if (next === n) {
              active = false;
              if (completed === null || !(completed as Buffer).equals(payload)) return false;
            } else if (completed !== null) return false;
          }
          if (r.transferCount !== (active ? 1 : 0) || r.bufferedBytes !== (active ? payload.length : 0))
            return false;
        }
        return true;
      },
    ),
    { numRuns: 2000 },
  );
  t.pass();
});

test('stale chunks of an older transfer are refused; a newer transfer from the same sender replaces the old', (t) => {
  const payload = payloadOf(500);
  const current = chunksOf(payload, 100, { term: 2, index: 100 });
  const r = reassembler();
  r.accept(1, current[0]!);
  t.is(
    reasonOf(() => r.accept(1, chunksOf(payload, 100, { term: 1, index: 200 })[0]!)),
    'STALE',
  );
  t.is(
    reasonOf(() => r.accept(1, chunksOf(payload, 100, { term: 2, index: 50 })[1]!)),
    'STALE',
  );
  t.is(r.transferCount, 1);
  // Another sender's transfer is independent.
  r.accept(2, chunksOf(payload, 100, { term: 1, index: 7 })[0]!);
  t.is(r.transferCount, 2);
  // A newer snapshot of the same sender must start at chunk 0; then it replaces the old transfer.
  const newer = chunksOf(payload, 100, { term: 2, index: 150 });
  t.is(
    reasonOf(() => r.accept(1, newer[1]!)),
    'OUT_OF_ORDER',
  );
  r.accept(1, newer[0]!);
  t.is(
    reasonOf(() => r.accept(1, current[1]!)),
    'STALE',
  );
  t.is(r.transferCount, 2);
  t.is(r.bufferedBytes, 1000);
});

test('a chunk that contradicts its transfer (size, checksum, chunk size) drops it', (t) => {
  const payload = payloadOf(500);
  const r = reassembler();
  r.accept(1, chunksOf(payload, 100)[0]!);
  const other = chunksOf(payloadOf(600, 3), 100);
  t.is(
    reasonOf(() => r.accept(1, other[1]!)),
    'MISMATCH',
  );
  t.is(r.transferCount, 0);
  r.accept(1, chunksOf(payload, 100)[0]!);
  t.is(
    reasonOf(() => r.accept(1, chunksOf(payload, 50)[1]!)),
    'MISMATCH',
  );
  t.is(r.bufferedBytes, 0);
});

test('the whole-transfer checksum is checked before anything is handed over', (t) => {
  const payload = payloadOf(350);
  // Every chunk is self-consistent, but the announced total checksum is not the payload's.
  const chunks = chunksOf(payload, 100).map((c) => {
    const b = Buffer.from(c);
    b.writeUInt32LE((b.readUInt32LE(25) ^ 1) >>> 0, 25);
    return b;
  });
  const r = reassembler();
  for (const c of chunks.slice(0, -1)) r.accept(1, c);
  const error = t.throws(() => r.accept(1, chunks.at(-1)!), { instanceOf: SnapshotTransferError });
  t.is(error?.reason, 'CORRUPT');
  t.is(error?.code, ErrorCode.CORRUPT_RECORD);
  t.is(r.transferCount, 0);
  t.is(r.bufferedBytes, 0);
});

test('oversize totals are refused before anything is reserved, on both sides', async (t) => {
  const r = reassembler(new FakeClock(), { budget: 1000 });
  const big = chunksOf(payloadOf(1001), 100);
  const error = t.throws(() => r.accept(1, big[0]!), { instanceOf: SnapshotTransferError });
  t.is(error?.reason, 'TOO_LARGE');
  t.is(r.bufferedBytes, 0);
  // The default limit: a header announcing 256 MiB + 64 KiB + 1 is refused without allocating it.
  const head = Buffer.from(chunksOf(payloadOf(10), 10)[0]!);
  head.writeBigUInt64LE(BigInt(snapshotTransferLimits.transferSizeMaxBytes + 1), 17);
  t.is(
    reasonOf(() => reassembler().accept(1, head)),
    'TOO_LARGE',
  );
  const sent = await t.throwsAsync(
    sendSnapshotInChunks({
      channel: () => Promise.reject(new Error('must not be called')),
      to: 2,
      term: 1,
      index: 1,
      payload: payloadOf(2000),
      transferSizeMaxBytes: 1999,
    }),
    { instanceOf: SnapshotTransferError },
  );
  t.is(sent?.reason, 'TOO_LARGE');
});

test('the receive budget: a transfer that does not fit is BUSY unless it evicts older terms', (t) => {
  const r = reassembler(new FakeClock(), { budget: 1000 });
  r.accept(1, chunksOf(payloadOf(800), 100, { term: 2, index: 5 })[0]!);
  t.is(
    reasonOf(() => r.accept(2, chunksOf(payloadOf(300), 100, { term: 2, index: 9 })[0]!)),
    'BUSY',
  );
  t.is(r.bufferedBytes, 800);
  // A newer term wins the room: node 1's transfer (from a deposed leader) is dropped.
  r.accept(2, chunksOf(payloadOf(300), 100, { term: 3, index: 9 })[0]!);
  t.is(r.bufferedBytes, 300);
  t.is(
    reasonOf(() => r.accept(1, chunksOf(payloadOf(800), 100, { term: 2, index: 5 })[1]!)),
    'OUT_OF_ORDER',
  );
});

test('a missing chunk: the receiver abandons the idle transfer; later chunks are refused', (t) => {
  const clock = new FakeClock();
  const r = reassembler(clock, { idleMs: 5_000 });
  const chunks = chunksOf(payloadOf(400), 100);
  r.accept(1, chunks[0]!);
  r.accept(1, chunks[1]!);
  // chunk 2 is lost
  clock.t += 4_999;
  t.deepEqual(r.expire(), []);
  clock.t += 1;
  t.deepEqual(r.expire(), [{ from: 1, term: 3, index: 40, receivedBytes: 200, totalBytes: 400 }]);
  t.is(r.bufferedBytes, 0);
  t.is(
    reasonOf(() => r.accept(1, chunks[3]!)),
    'OUT_OF_ORDER',
  );
});

// ---------------------------------------------------------------- sender failures

test('the sender fails the whole transfer at the first error, timeout or bad acknowledgement', async (t) => {
  const payload = payloadOf(1000);
  const base = { to: 2, term: 1, index: 1, payload, chunkSizeBytes: 100, chunksInFlightMax: 3 };
  // A chunk never acknowledged: the transport's time limit.
  let calls = 0;
  const timeout = await t.throwsAsync(
    sendSnapshotInChunks({
      ...base,
      chunkAckTimeoutMs: 25,
      channel: async (_to, body, timeoutMs) => {
        calls += 1;
        t.is(timeoutMs, 25);
        const seq = decodeSnapshotChunk(body).seq;
        if (seq === 4) {
          await new Promise((r) => setTimeout(r, timeoutMs));
          throw new WalrusError(ErrorCode.TIMEOUT, `no reply within ${timeoutMs} ms`);
        }
        return encodeSnapshotChunkAck({ complete: false, next: seq + 1 });
      },
    }),
    { instanceOf: SnapshotTransferError },
  );
  t.is(timeout?.reason, 'TIMEOUT');
  t.true(calls <= 4 + 3, `no chunk sent past the window after the stall (${calls})`);
  // An error reply from the receiver is passed on as it is.
  const refused = await t.throwsAsync(
    sendSnapshotInChunks({
      ...base,
      channel: async () => {
        throw new SnapshotTransferError('BUSY', 'full');
      },
    }),
  );
  t.is((refused as WalrusError).code, ErrorCode.BUSY);
  // Acknowledgements that do not match what was sent.
  for (const reply of [Buffer.from('junk'), encodeSnapshotChunkAck({ complete: true, next: 1 })]) {
    const bad = await t.throwsAsync(sendSnapshotInChunks({ ...base, channel: async () => reply }), {
      instanceOf: SnapshotTransferError,
    });
    t.true(bad?.reason === 'MALFORMED' || bad?.reason === 'MISMATCH', bad?.message);
  }
  // Cancelled.
  const controller = new AbortController();
  const pending = sendSnapshotInChunks({
    ...base,
    signal: controller.signal,
    channel: () => new Promise(() => {}),
  });
  controller.abort('lost leadership');
  const aborted = await t.throwsAsync(pending, { instanceOf: SnapshotTransferError });
  t.is(aborted?.reason, 'ABORTED');
});

// ---------------------------------------------------------------- the driver's SnapshotTransfer

function driverSide(channel: (to: number, body: Uint8Array, timeoutMs: number) => Promise<Uint8Array>) {
  const clock = new FakeClock();
  const reports: [number, boolean][] = [];
  const warnings: string[] = [];
  const delivered: [number, Buffer][] = [];
  const transfer = new SnapshotTransfer({
    channel,
    deliver: (from, payload) => delivered.push([from, payload]),
    report: (to, ok) => reports.push([to, ok]),
    logger: { ...silentLogger, warn: (_o, m) => warnings.push(m) },
    now: clock.now,
    limits: { chunkSizeBytes: 100, sendsInFlightMax: 2, retryBackoffMs: 1000, receiveIdleTimeoutMs: 30_000 },
  });
  return { clock, reports, warnings, delivered, transfer };
}

async function settled(): Promise<void> {
  for (let i = 0; i < 50; i++) await new Promise((r) => setImmediate(r));
}

test('SnapshotTransfer: sends to a peer SnapshotTransfer, which delivers once; both count; Raft hears of success', async (t) => {
  const receiver = driverSide(() => Promise.reject(new Error('unused')));
  const sender = driverSide(async (to, body) => {
    t.is(to, 2);
    await Promise.resolve();
    return receiver.transfer.receive(1, body);
  });
  const payload = payloadOf(1234);
  let encoded = 0;
  const encode = (): Buffer => {
    encoded += 1;
    return payload;
  };
  t.is(sender.transfer.send(2, 5, 77, encode), 'started');
  t.is(sender.transfer.send(2, 5, 77, encode), 'running', 'one transfer per follower');
  t.true(sender.transfer.isSending(2));
  await settled();
  t.is(encoded, 1, 'a running transfer is not encoded again');
  t.deepEqual(sender.reports, [[2, true]]);
  t.is(receiver.delivered.length, 1);
  t.is(receiver.delivered[0]![0], 1);
  t.true(receiver.delivered[0]![1].equals(payload));
  t.like(sender.transfer.stats(), { sendsStarted: 1, sendsSucceeded: 1, sendsFailed: 0, bytesSent: 1234 });
  t.like(receiver.transfer.stats(), { receivesCompleted: 1, chunksRefused: 0 });
});

test('SnapshotTransfer: a failed transfer is warned, counted, reported to Raft and backed off', async (t) => {
  const side = driverSide(async () => {
    throw new WalrusError(ErrorCode.UNAVAILABLE, 'connection to peer lost');
  });
  t.is(
    side.transfer.send(3, 1, 10, () => payloadOf(500)),
    'started',
  );
  await settled();
  t.deepEqual(side.reports, [[3, false]]);
  t.true(side.warnings.some((w) => w.includes('snapshot transfer failed')));
  t.like(side.transfer.stats(), { sendsFailed: 1, sendsSucceeded: 0 });
  t.is(
    side.transfer.send(3, 1, 10, () => payloadOf(500)),
    'deferred',
    'backing off',
  );
  side.clock.t += 1000;
  t.is(
    side.transfer.send(3, 1, 10, () => payloadOf(500)),
    'started',
  );
  await settled();
  t.like(side.transfer.stats(), { sendsStarted: 2, sendsFailed: 2, sendsDeferred: 1 });
  // An oversize snapshot is a failure too: never silently dropped.
  side.clock.t += 1000;
  t.is(
    side.transfer.send(4, 1, 10, () => Buffer.alloc(snapshotTransferLimits.transferSizeMaxBytes + 1)),
    'started',
  );
  await settled();
  t.deepEqual(side.reports.at(-1), [4, false]);
  t.true(side.warnings.length >= 3);
});

test('SnapshotTransfer: bounded transfers at once; abortSends reports failure; close reports nothing', async (t) => {
  const side = driverSide(() => new Promise(() => {}));
  t.is(
    side.transfer.send(2, 1, 10, () => payloadOf(500)),
    'started',
  );
  t.is(
    side.transfer.send(3, 1, 10, () => payloadOf(500)),
    'started',
  );
  t.is(
    side.transfer.send(4, 1, 10, () => {
      throw new Error('must not encode');
    }),
    'deferred',
  );
  t.true(side.warnings.some((w) => w.includes('too many snapshot transfers')));
  side.transfer.abortSends('this node no longer leads');
  await settled();
  t.deepEqual(
    side.reports.sort((a, b) => a[0] - b[0]),
    [
      [2, false],
      [3, false],
    ],
  );
  t.false(side.transfer.isSending(2));
  side.clock.t += 1000;
  side.transfer.send(2, 1, 10, () => payloadOf(500));
  side.transfer.close();
  await settled();
  t.is(side.reports.length, 2);
  t.is(
    reasonOf(() => side.transfer.receive(1, chunksOf(payloadOf(10), 10)[0]!)),
    'ABORTED',
  );
});

test('SnapshotTransfer: refused chunks are warned and counted; idle partial transfers are abandoned on expire()', (t) => {
  const side = driverSide(() => Promise.reject(new Error('unused')));
  t.throws(() => side.transfer.receive(1, Buffer.from('garbage')), { instanceOf: SnapshotTransferError });
  const chunks = chunksOf(payloadOf(300), 100);
  side.transfer.receive(1, chunks[0]!);
  t.throws(() => side.transfer.receive(1, chunks[2]!), { instanceOf: SnapshotTransferError });
  side.transfer.receive(1, chunks[0]!);
  side.clock.t += 30_000;
  side.transfer.expire();
  t.like(side.transfer.stats(), { chunksRefused: 2, receivesAbandoned: 1, receivesCompleted: 0 });
  t.true(side.warnings.some((w) => w.includes('abandoned a partial snapshot transfer')));
  t.is(side.delivered.length, 0);
});
