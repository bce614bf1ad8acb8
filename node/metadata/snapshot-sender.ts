/**
 * The sending side of a chunked snapshot transfer (snapshot-chunk.ts describes the transfer): cuts
 * an encoded MsgSnap into chunks and sends them with at most `chunksInFlightMax` unacknowledged;
 * any failure fails the whole transfer.
 */
import assert from 'node:assert/strict';
import { crc32c } from '../storage-io/index.js';
import { ErrorCode, WalrusError } from '../protocol/error-codes.js';
import {
  type SnapshotChunkAck,
  SnapshotTransferError,
  chunkCountOf,
  decodeSnapshotChunkAck,
  encodeSnapshotChunk,
  snapshotChunkSizeMaxBytes,
  snapshotTransferLimits,
} from './snapshot-chunk.js';

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
