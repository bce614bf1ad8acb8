/**
 * The receiving side of a chunked snapshot transfer (snapshot-chunk.ts describes the transfer):
 * reassembles in-order chunks per (sender, term, index) into a buffer reserved from a bounded
 * budget, refuses anything else with a typed error, and abandons idle partial transfers.
 */
import assert from 'node:assert/strict';
import { crc32c } from '../storage-io/index.js';
import {
  type SnapshotChunk,
  SnapshotTransferError,
  chunkCountOf,
  decodeSnapshotChunk,
  encodeSnapshotChunkAck,
  snapshotTransferLimits,
} from './snapshot-chunk.js';

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
