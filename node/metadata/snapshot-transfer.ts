/**
 * Chunked snapshot transfer between Raft peers. A leader's InstallSnapshot message (MsgSnap) holds
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
import type { Logger } from '../log.js';
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

// ---------------------------------------------------------------- sender

/** Sends one chunk request to a peer; resolves with its reply, rejects on an error reply or timeout. */
export type SnapshotChunkChannel = (to: number, body: Uint8Array, timeoutMs: number) => Promise<Uint8Array>;

export interface SendSnapshotOptions {
  readonly channel: SnapshotChunkChannel;
  readonly to: number;
  readonly term: number;
  readonly index: number;
  /** The whole encoded MsgSnap. */
  readonly payload: Uint8Array;
  readonly chunkSizeBytes?: number;
  readonly chunksInFlightMax?: number;
  readonly chunkAckTimeoutMs?: number;
  readonly transferSizeMaxBytes?: number;
  readonly signal?: AbortSignal;
}

/**
 * Sends `payload` in chunks with at most `chunksInFlightMax` unacknowledged; resolves with the chunk
 * count once the receiver acknowledged the last chunk as complete (handed to its Raft). Rejects with
 * a SnapshotTransferError (or the channel's WalrusError) at the first failure; never resends a chunk.
 */
export function sendSnapshotInChunks(o: SendSnapshotOptions): Promise<number> {
  const L = snapshotTransferLimits;
  const chunkSizeBytes = o.chunkSizeBytes ?? L.chunkSizeBytes;
  const inFlightMax = o.chunksInFlightMax ?? L.chunksInFlightMax;
  const ackTimeoutMs = o.chunkAckTimeoutMs ?? L.chunkAckTimeoutMs;
  const sizeMax = o.transferSizeMaxBytes ?? L.transferSizeMaxBytes;
  assert.ok(chunkSizeBytes > 0 && chunkSizeBytes <= snapshotChunkSizeMaxBytes && inFlightMax > 0);
  const payload = Buffer.from(o.payload.buffer, o.payload.byteOffset, o.payload.byteLength);
  if (payload.length > sizeMax) {
    return Promise.reject(
      new SnapshotTransferError('TOO_LARGE', `${payload.length} bytes, above the limit of ${sizeMax}`),
    );
  }
  if (payload.length === 0) return Promise.reject(new SnapshotTransferError('MALFORMED', 'empty snapshot'));
  const count = chunkCountOf(payload.length, chunkSizeBytes);
  const totalCrc = crc32c(payload);
  return new Promise<number>((resolve, reject) => {
    let nextSeq = 0;
    /** The oldest chunk not acknowledged yet: chunks up to base + inFlightMax - 1 may be out. */
    let base = 0;
    const acked = new Uint8Array(count);
    let done = false;
    const finish = (error: Error | null): void => {
      if (done) return;
      done = true;
      o.signal?.removeEventListener('abort', onAbort);
      if (error === null) resolve(count);
      else reject(error);
    };
    const onAbort = (): void =>
      finish(
        new SnapshotTransferError(
          'ABORTED',
          `transfer to node ${o.to} cancelled: ${String(o.signal?.reason)}`,
        ),
      );
    const onReply = (seq: number, reply: Uint8Array): void => {
      if (done) return;
      let ack: SnapshotChunkAck;
      try {
        ack = decodeSnapshotChunkAck(reply);
      } catch (error) {
        finish(error as Error);
        return;
      }
      const last = seq === count - 1;
      if (ack.next !== seq + 1 || ack.complete !== last) {
        finish(
          new SnapshotTransferError(
            'MISMATCH',
            `node ${o.to} answered chunk ${seq}/${count} with next ${ack.next}, complete ${ack.complete}`,
          ),
        );
        return;
      }
      acked[seq] = 1;
      while (base < count && acked[base] === 1) base += 1;
      if (last) finish(null);
      else pump();
    };
    const onError = (seq: number, error: unknown): void => {
      if (done) return;
      if (error instanceof WalrusError) {
        finish(
          error.code === ErrorCode.TIMEOUT
            ? new SnapshotTransferError('TIMEOUT', `chunk ${seq}/${count}: ${error.message}`, {
                cause: error,
              })
            : error,
        );
      } else {
        finish(
          new SnapshotTransferError('ABORTED', `chunk ${seq}/${count}: ${String(error)}`, { cause: error }),
        );
      }
    };
    const pump = (): void => {
      while (!done && nextSeq < count && nextSeq < base + inFlightMax) {
        const seq = nextSeq++;
        const data = payload.subarray(
          seq * chunkSizeBytes,
          Math.min(payload.length, (seq + 1) * chunkSizeBytes),
        );
        const body = encodeSnapshotChunk({
          term: o.term,
          index: o.index,
          totalBytes: payload.length,
          totalCrc,
          chunkSizeBytes,
          seq,
          chunkCrc: crc32c(data),
          data,
        });
        let sent: Promise<Uint8Array>;
        try {
          sent = o.channel(o.to, body, ackTimeoutMs);
        } catch (error) {
          sent = Promise.reject(error);
        }
        sent.then(
          (reply) => onReply(seq, reply),
          (error: unknown) => onError(seq, error),
        );
      }
    };
    if (o.signal?.aborted) {
      onAbort();
      return;
    }
    o.signal?.addEventListener('abort', onAbort, { once: true });
    pump();
  });
}

// ---------------------------------------------------------------- receiver

interface Assembly {
  readonly from: number;
  readonly term: number;
  readonly index: number;
  readonly totalBytes: number;
  readonly totalCrc: number;
  readonly chunkSizeBytes: number;
  readonly count: number;
  readonly buffer: Buffer;
  next: number;
  lastChunkAt: number;
  readonly startedAt: number;
}

export interface ReassemblerOptions {
  readonly now: () => number;
  readonly transferSizeMaxBytes?: number;
  readonly receiveBufferSizeMaxBytes?: number;
  readonly receiveIdleTimeoutMs?: number;
}

export type ChunkOutcome =
  | { readonly complete: false; readonly ack: Buffer }
  | {
      readonly complete: true;
      readonly ack: Buffer;
      readonly payload: Buffer;
      readonly chunks: number;
      readonly ms: number;
    };

export interface AbandonedTransfer {
  readonly from: number;
  readonly term: number;
  readonly index: number;
  readonly receivedBytes: number;
  readonly totalBytes: number;
}

/** Newer transfer first by term, then by snapshot index. */
function compareKeys(a: { term: number; index: number }, b: { term: number; index: number }): number {
  return a.term !== b.term ? a.term - b.term : a.index - b.index;
}

/**
 * Reassembles chunked transfers: at most one per sender (a newer one replaces it), each in one
 * buffer of its announced size, all within one byte budget. Never throws anything but
 * SnapshotTransferError.
 */
export class SnapshotReassembler {
  private readonly assemblies = new Map<number, Assembly>();
  private reservedBytes = 0;
  private readonly now: () => number;
  private readonly sizeMax: number;
  private readonly budget: number;
  private readonly idleMs: number;

  constructor(o: ReassemblerOptions) {
    this.now = o.now;
    this.sizeMax = o.transferSizeMaxBytes ?? snapshotTransferLimits.transferSizeMaxBytes;
    this.budget = o.receiveBufferSizeMaxBytes ?? snapshotTransferLimits.receiveBufferSizeMaxBytes;
    this.idleMs = o.receiveIdleTimeoutMs ?? snapshotTransferLimits.receiveIdleTimeoutMs;
    assert.ok(this.sizeMax > 0 && this.budget >= this.sizeMax && this.idleMs > 0);
  }

  /** Bytes reserved by partial transfers. */
  get bufferedBytes(): number {
    return this.reservedBytes;
  }

  get transferCount(): number {
    return this.assemblies.size;
  }

  /** One chunk from `from` (the authenticated peer). Throws SnapshotTransferError when refused. */
  accept(from: number, body: Uint8Array): ChunkOutcome {
    const chunk = decodeSnapshotChunk(body, { transferSizeMaxBytes: this.sizeMax });
    const count = chunkCountOf(chunk.totalBytes, chunk.chunkSizeBytes);
    const what = `chunk ${chunk.seq}/${count} of snapshot (term ${chunk.term}, index ${chunk.index}) from node ${from}`;
    let a = this.assemblies.get(from);
    const order = a === undefined ? 1 : compareKeys(chunk, a);
    if (a !== undefined && order < 0) {
      throw new SnapshotTransferError(
        'STALE',
        `${what}: a newer transfer (term ${a.term}, index ${a.index}) is in progress`,
      );
    }
    if (a !== undefined && order === 0) {
      if (
        a.totalBytes !== chunk.totalBytes ||
        a.totalCrc !== chunk.totalCrc ||
        a.chunkSizeBytes !== chunk.chunkSizeBytes
      ) {
        this.drop(a);
        throw new SnapshotTransferError(
          'MISMATCH',
          `${what}: differs from the transfer in progress; dropped it`,
        );
      }
      if (chunk.seq === 0)
        a.next = 0; // the sender started this transfer again
      else if (chunk.seq < a.next) {
        throw new SnapshotTransferError('DUPLICATE', `${what}: already received`);
      } else if (chunk.seq > a.next) {
        this.drop(a);
        throw new SnapshotTransferError(
          'OUT_OF_ORDER',
          `${what}: expected chunk ${a.next}; dropped the transfer`,
        );
      }
    } else {
      if (chunk.seq !== 0) {
        throw new SnapshotTransferError('OUT_OF_ORDER', `${what}: no such transfer in progress`);
      }
      a = this.start(from, chunk, count, what);
    }
    chunk.data.copy(a.buffer, chunk.seq * a.chunkSizeBytes);
    a.next = chunk.seq + 1;
    a.lastChunkAt = this.now();
    if (a.next < a.count)
      return { complete: false, ack: encodeSnapshotChunkAck({ complete: false, next: a.next }) };
    this.drop(a);
    if (crc32c(a.buffer) !== a.totalCrc) {
      throw new SnapshotTransferError(
        'CORRUPT',
        `snapshot (term ${a.term}, index ${a.index}) from node ${from} fails its checksum`,
      );
    }
    return {
      complete: true,
      ack: encodeSnapshotChunkAck({ complete: true, next: a.count }),
      payload: a.buffer,
      chunks: a.count,
      ms: this.now() - a.startedAt,
    };
  }

  /** Abandons partial transfers idle for receiveIdleTimeoutMs; returns them. */
  expire(): AbandonedTransfer[] {
    const now = this.now();
    const out: AbandonedTransfer[] = [];
    for (const a of [...this.assemblies.values()]) {
      if (now - a.lastChunkAt < this.idleMs) continue;
      this.drop(a);
      out.push(this.describe(a));
    }
    return out;
  }

  /** Drops every partial transfer. */
  clear(): void {
    this.assemblies.clear();
    this.reservedBytes = 0;
  }

  private start(from: number, chunk: SnapshotChunk, count: number, what: string): Assembly {
    const replaced = this.assemblies.get(from);
    if (replaced !== undefined) this.drop(replaced);
    if (this.reservedBytes + chunk.totalBytes > this.budget) {
      // Transfers of older terms come from deposed leaders: the newer one wins the room.
      for (const other of [...this.assemblies.values()]) {
        if (other.term < chunk.term) this.drop(other);
      }
    }
    if (this.reservedBytes + chunk.totalBytes > this.budget) {
      throw new SnapshotTransferError(
        'BUSY',
        `${what}: ${chunk.totalBytes} bytes do not fit; ${this.reservedBytes} of ${this.budget} are reserved`,
      );
    }
    const now = this.now();
    const a: Assembly = {
      from,
      term: chunk.term,
      index: chunk.index,
      totalBytes: chunk.totalBytes,
      totalCrc: chunk.totalCrc,
      chunkSizeBytes: chunk.chunkSizeBytes,
      count,
      buffer: Buffer.allocUnsafe(chunk.totalBytes),
      next: 0,
      lastChunkAt: now,
      startedAt: now,
    };
    this.assemblies.set(from, a);
    this.reservedBytes += a.totalBytes;
    return a;
  }

  private drop(a: Assembly): void {
    if (this.assemblies.get(a.from) !== a) return;
    this.assemblies.delete(a.from);
    this.reservedBytes -= a.totalBytes;
  }

  private describe(a: Assembly): AbandonedTransfer {
    return {
      from: a.from,
      term: a.term,
      index: a.index,
      receivedBytes: Math.min(a.totalBytes, a.next * a.chunkSizeBytes),
      totalBytes: a.totalBytes,
    };
  }
}

// ---------------------------------------------------------------- the driver's side

/** The node's one Logger (node/log.ts), under this module's name. */
export type SnapshotTransferLogger = Logger;

export interface SnapshotTransferStats {
  /** Transfers started / acknowledged complete by the follower / failed (logged at warn). */
  sendsStarted: number;
  sendsSucceeded: number;
  sendsFailed: number;
  /** MsgSnaps not sent because of the retry backoff or the limit of transfers at once. */
  sendsDeferred: number;
  bytesSent: number;
  /** Complete, checksummed snapshots handed to Raft on this node. */
  receivesCompleted: number;
  chunksRefused: number;
  /** Partial transfers dropped after going idle. */
  receivesAbandoned: number;
}

export interface SnapshotTransferOptions {
  readonly channel: SnapshotChunkChannel;
  /** A complete, checksummed transfer: the encoded MsgSnap, for the driver to step. */
  readonly deliver: (from: number, payload: Buffer) => void;
  /** The outcome of a transfer this node sent (wired to RaftCore.reportSnapshot). */
  readonly report: (to: number, ok: boolean) => void;
  readonly logger: SnapshotTransferLogger;
  /** Milliseconds, monotonic. */
  readonly now: () => number;
  readonly limits?: Partial<SnapshotTransferLimits>;
}

interface OutgoingTransfer {
  readonly term: number;
  readonly index: number;
  readonly abort: AbortController;
}

/**
 * What the Raft driver holds: sends the MsgSnaps its core emits in chunks (one transfer per
 * follower), receives chunks into a SnapshotReassembler, and keeps the counts.
 */
export class SnapshotTransfer {
  private readonly o: SnapshotTransferOptions;
  private readonly limits: SnapshotTransferLimits;
  private readonly reassembler: SnapshotReassembler;
  private readonly sending = new Map<number, OutgoingTransfer>();
  /** Follower → time before which no new transfer to it starts. */
  private readonly backoffUntil = new Map<number, number>();
  private readonly counts: SnapshotTransferStats = {
    sendsStarted: 0,
    sendsSucceeded: 0,
    sendsFailed: 0,
    sendsDeferred: 0,
    bytesSent: 0,
    receivesCompleted: 0,
    chunksRefused: 0,
    receivesAbandoned: 0,
  };
  private closed = false;

  constructor(o: SnapshotTransferOptions) {
    this.o = o;
    this.limits = { ...snapshotTransferLimits, ...o.limits };
    const l = this.limits;
    assert.ok(l.chunkSizeBytes > 0 && l.chunkSizeBytes <= snapshotChunkSizeMaxBytes, 'chunk fits a frame');
    assert.ok(l.chunksInFlightMax > 0 && l.sendsInFlightMax > 0 && l.chunkAckTimeoutMs > 0);
    assert.ok(l.transferSizeMaxBytes <= snapshotTransferLimits.transferSizeMaxBytes);
    this.reassembler = new SnapshotReassembler({
      now: o.now,
      transferSizeMaxBytes: l.transferSizeMaxBytes,
      receiveBufferSizeMaxBytes: l.receiveBufferSizeMaxBytes,
      receiveIdleTimeoutMs: l.receiveIdleTimeoutMs,
    });
  }

  stats(): SnapshotTransferStats {
    return { ...this.counts };
  }

  /** True while a transfer to `to` is running. */
  isSending(to: number): boolean {
    return this.sending.has(to);
  }

  /**
   * The core emitted a MsgSnap for `to`. `encode` is called only when a transfer starts (a running
   * transfer to `to` already carries a snapshot; a deferred one is sent again by Raft's snapshot
   * timeout). Never throws.
   */
  send(
    to: number,
    term: number,
    index: number,
    encode: () => Uint8Array,
  ): 'started' | 'running' | 'deferred' | 'failed' {
    if (this.closed) return 'deferred';
    if (this.sending.has(to)) return 'running';
    const now = this.o.now();
    const until = this.backoffUntil.get(to);
    if (until !== undefined && now < until) {
      this.counts.sendsDeferred += 1;
      return 'deferred';
    }
    this.backoffUntil.delete(to);
    if (this.sending.size >= this.limits.sendsInFlightMax) {
      this.counts.sendsDeferred += 1;
      this.o.logger.warn(
        { to, term, index, sending: [...this.sending.keys()] },
        'snapshot not sent yet: too many snapshot transfers at once; Raft will send it again',
      );
      return 'deferred';
    }
    const payload = encode();
    const transfer: OutgoingTransfer = { term, index, abort: new AbortController() };
    this.sending.set(to, transfer);
    this.counts.sendsStarted += 1;
    const startedAt = now;
    const settle = (error: unknown, chunks: number): void => {
      if (this.sending.get(to) === transfer) this.sending.delete(to);
      if (this.closed) return;
      const detail = {
        to,
        term,
        index,
        bytes: payload.length,
        chunks,
        ms: Math.round(this.o.now() - startedAt),
      };
      if (error === null) {
        this.counts.sendsSucceeded += 1;
        this.counts.bytesSent += payload.length;
        this.o.logger.info(detail, 'Sent a snapshot in chunks');
        this.o.report(to, true);
        return;
      }
      this.counts.sendsFailed += 1;
      this.backoffUntil.set(to, this.o.now() + this.limits.retryBackoffMs);
      const code = error instanceof WalrusError ? error.code : ErrorCode.INTERNAL;
      const reason = error instanceof SnapshotTransferError ? error.reason : undefined;
      this.o.logger.warn(
        { ...detail, code, reason, err: error instanceof Error ? error.message : String(error) },
        'snapshot transfer failed; Raft will send it again',
      );
      this.o.report(to, false);
    };
    sendSnapshotInChunks({
      channel: this.o.channel,
      to,
      term,
      index,
      payload,
      chunkSizeBytes: this.limits.chunkSizeBytes,
      chunksInFlightMax: this.limits.chunksInFlightMax,
      chunkAckTimeoutMs: this.limits.chunkAckTimeoutMs,
      transferSizeMaxBytes: this.limits.transferSizeMaxBytes,
      signal: transfer.abort.signal,
    }).then(
      (chunks) => settle(null, chunks),
      (error: unknown) => settle(error, 0),
    );
    return 'started';
  }

  /** Cancels every outgoing transfer (this node lost leadership); each is reported failed. */
  abortSends(why: string): void {
    for (const t of this.sending.values()) t.abort.abort(why);
  }

  /** A chunk request from `from`; resolves the reply, throws SnapshotTransferError when refused. */
  receive(from: number, body: Uint8Array): Buffer {
    if (this.closed) throw new SnapshotTransferError('ABORTED', 'this node is shutting down');
    let outcome: ChunkOutcome;
    try {
      outcome = this.reassembler.accept(from, body);
    } catch (error) {
      this.counts.chunksRefused += 1;
      const e =
        error instanceof SnapshotTransferError
          ? error
          : new SnapshotTransferError('MALFORMED', String(error), { cause: error });
      this.o.logger.warn(
        { from, code: e.code, reason: e.reason, err: e.message },
        'refused a snapshot chunk',
      );
      throw e;
    }
    if (outcome.complete) {
      this.counts.receivesCompleted += 1;
      this.o.logger.info(
        { from, bytes: outcome.payload.length, chunks: outcome.chunks, ms: Math.round(outcome.ms) },
        'Received a snapshot in chunks',
      );
      this.o.deliver(from, outcome.payload);
    }
    return outcome.ack;
  }

  /** Abandons idle partial transfers (called on the driver's tick). */
  expire(): void {
    for (const a of this.reassembler.expire()) {
      this.counts.receivesAbandoned += 1;
      this.o.logger.warn(
        { ...a, idleMs: this.limits.receiveIdleTimeoutMs },
        'abandoned a partial snapshot transfer: no chunk arrived in time',
      );
    }
  }

  /** Cancels outgoing transfers (no reports) and drops partial incoming ones. */
  close(): void {
    this.closed = true;
    for (const t of this.sending.values()) t.abort.abort('shutting down');
    this.sending.clear();
    this.reassembler.clear();
  }
}
