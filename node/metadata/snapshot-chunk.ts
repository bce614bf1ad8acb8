/**
 * Chunked snapshot transfer between Raft peers: the chunk and acknowledgement format, the limits
 * and the typed refusals (snapshot-sender.ts, snapshot-reassembler.ts and snapshot-transfer.ts use
 * them). A leader's InstallSnapshot message (MsgSnap) holds
 * the whole metadata state and may be far larger than one peer frame (4 MiB + 64 KiB), so it never
 * travels as one message: the encoded MsgSnap is cut into chunks, each sent as a `snapshotChunk`
 * peer request the receiver acknowledges. The receiver reassembles the chunks, keyed by
 * (sender, term, snapshot index), into one buffer reserved from a bounded budget, and hands the
 * MsgSnap to Raft only once it is complete and its checksum holds.
 *
 * Sender: at most `chunksInFlightMax` unacknowledged chunks per transfer (flow control); one
 * transfer per follower, at most `sendsInFlightMax` at once. Any error reply, a lost connection or a
 * chunk not acknowledged within `chunkAckTimeoutMs` fails the whole transfer (chunks are never
 * resent one by one): the failure is logged (warn), counted and reported to the Raft core
 * (`reportSnapshot(to, false)`), which sends the snapshot again later. A success is reported too.
 * After a failure no new transfer to that follower starts for `retryBackoffMs`.
 *
 * Receiver: chunks must arrive in order; stale (an older transfer than the sender's current one),
 * duplicate, out-of-order, inconsistent, corrupt, oversize and malformed chunks are refused with a
 * `SnapshotTransferError` (a WalrusError: its code goes back in the error reply) and never crash the
 * node. A partial transfer that receives nothing for `receiveIdleTimeoutMs` is abandoned (its sender
 * has failed by then: its ack timeout is shorter).
 *
 * Chunk (the body of a `snapshotChunk` request; little-endian; `docs/protocol.md` has the table):
 *   version u8 (1) | term u64 | index u64 | totalBytes u64 | totalCrc32c u32 | chunkSizeBytes u32
 *   | seq u32 | chunkCrc32c u32 | dataLength u32 | data
 * Every chunk but the last holds exactly chunkSizeBytes; the last holds the rest. Reply:
 *   version u8 (1) | status u8 (0 stored, 1 complete: handed to Raft) | next u32
 */
import assert from 'node:assert/strict';
import { crc32c } from '../storage-io/index.js';
import { binaryHeaderSizeBytes } from '../protocol/binary-header.js';
import { ByteReader, ByteWriter } from '../protocol/byte-io.js';
import { ErrorCode, WalrusError } from '../protocol/error-codes.js';
import { protocolLimits } from '../protocol/limits.js';
import { raftConfMemberCountMax, raftSnapshotSizeMaxBytes } from './raft-codec.js';

const kib = 1024;
const mib = 1024 * kib;

/** Format version leading every chunk and every reply. */
export const snapshotChunkVersion = 1;
/** Bytes of a chunk before its data. */
export const snapshotChunkHeaderBytes = 1 + 8 + 8 + 8 + 4 + 4 + 4 + 4 + 4;
/** Bytes of a chunk reply. */
export const snapshotChunkAckBytes = 1 + 1 + 4;
/**
 * Bytes of an encoded MsgSnap besides the state-machine data: the message header, the snapshot's
 * index, term and configuration (at most raftConfMemberCountMax ids of 8 bytes), and length fields.
 */
export const snapshotEnvelopeSizeMaxBytes = 64 * kib;

export const snapshotTransferLimits = {
  /** Snapshot bytes in one chunk (the last one may hold fewer). */
  chunkSizeBytes: 1 * mib,
  /** Chunks sent and not yet acknowledged, per transfer. */
  chunksInFlightMax: 4,
  /** Time for one chunk's acknowledgement; past it the transfer fails and Raft is told. */
  chunkAckTimeoutMs: 10_000,
  /** A whole transfer: the largest snapshot the codec accepts plus its envelope. */
  transferSizeMaxBytes: raftSnapshotSizeMaxBytes + snapshotEnvelopeSizeMaxBytes,
  /** Bytes all partial transfers on a receiver may reserve together. */
  receiveBufferSizeMaxBytes: raftSnapshotSizeMaxBytes + snapshotEnvelopeSizeMaxBytes,
  /** A partial transfer that receives no chunk for this long is abandoned. */
  receiveIdleTimeoutMs: 30_000,
  /** Outgoing transfers at once (each holds its encoded snapshot in memory). */
  sendsInFlightMax: 2,
  /** After a failed transfer to a follower, no new one to it starts for this long. */
  retryBackoffMs: 1_000,
} as const;

export type SnapshotTransferLimits = { -readonly [K in keyof typeof snapshotTransferLimits]: number };

/** Largest chunk a receiver accepts: the largest request body that fits one peer frame. */
export const snapshotChunkSizeMaxBytes =
  protocolLimits.frameSizeMaxBytes - binaryHeaderSizeBytes - snapshotChunkHeaderBytes;

assert.ok(
  snapshotTransferLimits.chunkSizeBytes + snapshotChunkHeaderBytes + binaryHeaderSizeBytes <
    protocolLimits.frameSizeMaxBytes,
  'a snapshot chunk with its headers must fit one peer frame',
);
assert.ok(
  snapshotTransferLimits.chunkSizeBytes <= protocolLimits.frameSizeMaxBytes / 2,
  'a chunk stays well under the frame limit',
);
assert.ok(
  snapshotEnvelopeSizeMaxBytes >= raftConfMemberCountMax * 8 + 1024,
  'the envelope holds the largest configuration plus the fixed fields',
);
assert.ok(
  snapshotTransferLimits.transferSizeMaxBytes <= raftSnapshotSizeMaxBytes + snapshotEnvelopeSizeMaxBytes,
  'a transfer is never larger than the largest snapshot plus its envelope',
);
assert.ok(snapshotTransferLimits.transferSizeMaxBytes < 2 ** 32, 'sizes fit u32 fields');
assert.ok(
  snapshotTransferLimits.receiveBufferSizeMaxBytes >= snapshotTransferLimits.transferSizeMaxBytes,
  'a receiver can hold the largest transfer',
);
assert.ok(
  snapshotTransferLimits.receiveIdleTimeoutMs > snapshotTransferLimits.chunkAckTimeoutMs,
  'a receiver keeps a partial transfer longer than its sender waits for one ack',
);

/** Why a chunk or a transfer was refused; `code` (the shared table) is what crosses the wire. */
export const SnapshotTransferReason = {
  /** Not a chunk: truncated, unknown version, lengths that do not add up, trailing bytes. */
  MALFORMED: 'MALFORMED',
  /** The transfer is larger than transferSizeMaxBytes. */
  TOO_LARGE: 'TOO_LARGE',
  /** A chunk's or the whole transfer's checksum does not hold. */
  CORRUPT: 'CORRUPT',
  /** A chunk of an older transfer than the one in progress from the same sender. */
  STALE: 'STALE',
  /** A chunk already received. */
  DUPLICATE: 'DUPLICATE',
  /** A chunk after a gap, or not the first of a transfer that is not in progress. */
  OUT_OF_ORDER: 'OUT_OF_ORDER',
  /** A chunk whose total size, checksum or chunk size differs from its transfer's. */
  MISMATCH: 'MISMATCH',
  /** The receive budget is taken by transfers of the same or a newer term. */
  BUSY: 'BUSY',
  /** A chunk was not acknowledged in time, or a partial transfer went idle. */
  TIMEOUT: 'TIMEOUT',
  /** The transfer was cancelled (shutdown, lost leadership) or the link failed. */
  ABORTED: 'ABORTED',
} as const;
export type SnapshotTransferReason = (typeof SnapshotTransferReason)[keyof typeof SnapshotTransferReason];

const codeOfReason: Readonly<Record<SnapshotTransferReason, ErrorCode>> = {
  MALFORMED: ErrorCode.BAD_REQUEST,
  TOO_LARGE: ErrorCode.BAD_REQUEST,
  CORRUPT: ErrorCode.CORRUPT_RECORD,
  STALE: ErrorCode.CONFLICT,
  DUPLICATE: ErrorCode.CONFLICT,
  OUT_OF_ORDER: ErrorCode.CONFLICT,
  MISMATCH: ErrorCode.CONFLICT,
  BUSY: ErrorCode.BUSY,
  TIMEOUT: ErrorCode.TIMEOUT,
  ABORTED: ErrorCode.UNAVAILABLE,
};

export class SnapshotTransferError extends WalrusError {
  readonly reason: SnapshotTransferReason;

  constructor(reason: SnapshotTransferReason, message: string, options?: { cause?: unknown }) {
    super(codeOfReason[reason], `snapshot transfer ${reason}: ${message}`, options);
    this.name = 'SnapshotTransferError';
    this.reason = reason;
  }
}

// ---------------------------------------------------------------- chunk codec

export interface SnapshotChunk {
  readonly term: number;
  readonly index: number;
  readonly totalBytes: number;
  readonly totalCrc: number;
  readonly chunkSizeBytes: number;
  readonly seq: number;
  readonly chunkCrc: number;
  /** A view into the request body. */
  readonly data: Buffer;
}

export interface SnapshotChunkAck {
  readonly complete: boolean;
  /** The next chunk the receiver expects (chunk count once complete). */
  readonly next: number;
}

export function chunkCountOf(totalBytes: number, chunkSizeBytes: number): number {
  return Math.ceil(totalBytes / chunkSizeBytes);
}

export function encodeSnapshotChunk(c: Omit<SnapshotChunk, 'data'> & { data: Uint8Array }): Buffer {
  const w = new ByteWriter(snapshotChunkHeaderBytes + c.data.length);
  w.u8(snapshotChunkVersion);
  w.u64(c.term);
  w.u64(c.index);
  w.u64(c.totalBytes);
  w.u32(c.totalCrc);
  w.u32(c.chunkSizeBytes);
  w.u32(c.seq);
  w.u32(c.chunkCrc);
  w.bytes32(c.data);
  return w.finish();
}

/**
 * Decodes and checks one chunk on its own (not against a transfer): lengths, version, sizes,
 * sequence number, data length and chunk checksum. Throws SnapshotTransferError, never anything else.
 */
export function decodeSnapshotChunk(
  body: Uint8Array,
  limits: { transferSizeMaxBytes: number } = snapshotTransferLimits,
): SnapshotChunk {
  const buf = Buffer.isBuffer(body) ? body : Buffer.from(body.buffer, body.byteOffset, body.byteLength);
  let chunk: SnapshotChunk;
  try {
    const r = new ByteReader(buf);
    const version = r.u8('version');
    if (version !== snapshotChunkVersion) r.fail(`chunk version ${version} is not supported`);
    const term = r.u64('term');
    const index = r.u64('snapshot index');
    const totalBytes = r.u64('total bytes');
    const totalCrc = r.u32('total checksum');
    const chunkSizeBytes = r.u32('chunk size');
    const seq = r.u32('chunk sequence number');
    const chunkCrc = r.u32('chunk checksum');
    const data = r.bytes32('chunk data', snapshotChunkSizeMaxBytes);
    r.end('snapshot chunk');
    chunk = { term, index, totalBytes, totalCrc, chunkSizeBytes, seq, chunkCrc, data };
  } catch (error) {
    throw new SnapshotTransferError('MALFORMED', (error as Error).message, { cause: error });
  }
  const { totalBytes, chunkSizeBytes, seq, data } = chunk;
  if (totalBytes > limits.transferSizeMaxBytes) {
    throw new SnapshotTransferError(
      'TOO_LARGE',
      `${totalBytes} bytes, above the limit of ${limits.transferSizeMaxBytes}`,
    );
  }
  if (totalBytes === 0) throw new SnapshotTransferError('MALFORMED', 'a transfer of 0 bytes');
  if (chunkSizeBytes === 0 || chunkSizeBytes > snapshotChunkSizeMaxBytes) {
    throw new SnapshotTransferError(
      'MALFORMED',
      `chunk size ${chunkSizeBytes} outside [1, ${snapshotChunkSizeMaxBytes}]`,
    );
  }
  const count = chunkCountOf(totalBytes, chunkSizeBytes);
  if (seq >= count) throw new SnapshotTransferError('MALFORMED', `chunk ${seq} of ${count}`);
  const expected = seq < count - 1 ? chunkSizeBytes : totalBytes - chunkSizeBytes * (count - 1);
  if (data.length !== expected) {
    throw new SnapshotTransferError('MALFORMED', `chunk ${seq} holds ${data.length} bytes, not ${expected}`);
  }
  if (crc32c(data) !== chunk.chunkCrc) {
    throw new SnapshotTransferError('CORRUPT', `chunk ${seq} of snapshot ${chunk.index} fails its checksum`);
  }
  return chunk;
}

export function encodeSnapshotChunkAck(ack: SnapshotChunkAck): Buffer {
  const out = Buffer.allocUnsafe(snapshotChunkAckBytes);
  out[0] = snapshotChunkVersion;
  out[1] = ack.complete ? 1 : 0;
  out.writeUInt32LE(ack.next, 2);
  return out;
}

export function decodeSnapshotChunkAck(reply: Uint8Array): SnapshotChunkAck {
  if (reply.length !== snapshotChunkAckBytes || reply[0] !== snapshotChunkVersion || reply[1]! > 1) {
    throw new SnapshotTransferError('MALFORMED', `not a chunk acknowledgement (${reply.length} bytes)`);
  }
  const view = Buffer.from(reply.buffer, reply.byteOffset, reply.byteLength);
  return { complete: reply[1] === 1, next: view.readUInt32LE(2) };
}
