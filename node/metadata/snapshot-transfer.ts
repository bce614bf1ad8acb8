/**
 * The Raft driver's side of chunked snapshot transfers (snapshot-chunk.ts describes them): one
 * object that sends a MsgSnap to a follower through snapshot-sender.ts, receives chunks through
 * snapshot-reassembler.ts, reports outcomes to the Raft core, backs off after failures and counts
 * everything for METRICS.
 */
import type { Logger } from '../log.js';
import assert from 'node:assert/strict';
import { ErrorCode, WalrusError } from '../protocol/error-codes.js';
import {
  SnapshotTransferError,
  type SnapshotTransferLimits,
  snapshotChunkSizeMaxBytes,
  snapshotTransferLimits,
} from './snapshot-chunk.js';
import { type SnapshotChunkChannel, sendSnapshotInChunks } from './snapshot-sender.js';
import { type ChunkOutcome, SnapshotReassembler } from './snapshot-reassembler.js';

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

export * from './snapshot-chunk.js';
export * from './snapshot-sender.js';
export * from './snapshot-reassembler.js';
