/**
 * One segment replica on disk: its data file, sparse index, seal marker, the group-commit queue of
 * appends waiting for it, positioned reads, and the detection of corrupt records. Recovery of an
 * existing file lives in segment-recovery.ts, truncation in truncate.ts; the scheduling of flushes
 * and the fsync policy live in wal.ts. All file access is synchronous through the FileIo seam (see file-io.ts for why).
 *
 * Invariants (asserted where cheap):
 *   baseOffset <= syncedEndOffset <= endOffset <= assignedEndOffset
 *   segmentFileHeaderBytes <= syncedEndPosition <= endPosition <= preallocatedEnd (= file size)
 *   every byte in [endPosition, preallocatedEnd) is zero (so a crash never exposes stale records)
 *   only zeros are ever written beyond endPosition (foreground or background preallocation)
 *   records [baseOffset, endOffset) occupy [segmentFileHeaderBytes, endPosition) back to back
 */
import type { Logger } from '../log.js';
import assert from 'node:assert';
import path from 'node:path';
import { ChunkReader, isZeroRange } from './chunk-reader.js';
import type { DiskSpace } from './disk-space.js';
import type { FileIo } from '../storage-io/file-io.js';
import { writeFileDurably, writeFully } from '../storage-io/durable-file.js';
import type { WalLimits } from './limits.js';
import { recordHeaderSizeBytes, walLimits } from './limits.js';
import type { IndexPager } from './index-pager.js';
import { segmentIndexSource } from './index-source.js';
import { OffsetIndex } from './offset-index.js';
import type { RecordHeaders } from './record-codec.js';
import {
  checkRecordAt,
  decodeCheckedRecord,
  encodeRecordInto,
  recordLengthMin,
  recordOffsetAt,
  recordTimestampAt,
  readU64,
} from './record-codec.js';
import {
  encodeFileHeader,
  encodeIndexCheckpoint,
  encodeSealMarker,
  segmentBaseName,
  segmentFileHeaderBytes,
} from './segment-files.js';
import { WalError, WalErrorCode, walErrorFromIo } from './wal-error.js';

/** The node's one Logger (node/log.ts), under this module's name. */
export type WalLogger = Logger;

export interface WalStats {
  corruptRecordCount: number;
  appendCount: number;
  recordCount: number;
  fsyncCount: number;
  bytesWritten: number;
  groupCommitCount: number;
}

/** What every segment shares with its WAL. */
export interface SegmentContext {
  readonly io: FileIo;
  readonly limits: WalLimits;
  /** Largest legal record length field (recordLengthMax(limits.recordSizeMaxBytes)). */
  readonly lengthMax: number;
  readonly logger: WalLogger;
  readonly stats: WalStats;
  /** Called when a background preallocation ends (the WAL flushes appends that waited for it). */
  readonly onExtended: (segment: Segment) => void;
  /** Free space, the reserve, preallocation back-off and rate-limited disk warnings (disk-space.ts). */
  readonly disk: DiskSpace;
  /** The node-wide budget of index entries in memory; null keeps every index loaded. */
  readonly indexPager: IndexPager | null;
}

/**
 * A topic's local segments: wal.ts owns the table, segment-import.ts inserts imported segments
 * into it.
 */
export interface TopicState {
  readonly name: string;
  readonly dir: string;
  /** Ascending by id (and so by offset: ids and offsets grow together). */
  segments: Segment[];
  active: Segment | null;
  /** Timestamp of the last record handed out (monotonic per topic). */
  lastTimestampMs: number;
}

export interface WalRecordInput {
  value: Uint8Array;
  headers?: Readonly<Record<string, string>>;
}

export interface WalRecord {
  offset: number;
  timestampMs: number;
  headers: Readonly<Record<string, string>>;
  value: Uint8Array;
}

export interface WalSegmentInfo {
  topic: string;
  id: number;
  baseOffset: number;
  endOffset: number;
  sealed: boolean;
  sizeBytes: number;
  firstTimestampMs: number | null;
  lastTimestampMs: number | null;
}

export interface AppendResult {
  firstOffset: number;
  lastOffset: number;
  timestampMs: number;
}

/** Offsets [fromOffset, toOffset) whose bytes [startPosition, resumePosition) failed their checksum. */
export interface CorruptRange {
  fromOffset: number;
  toOffset: number;
  startPosition: number;
  resumePosition: number;
}

/** One accepted append waiting for its group commit. */
export class PendingAppend {
  resolve!: (result: AppendResult) => void;
  reject!: (error: WalError) => void;
  readonly promise: Promise<AppendResult>;

  constructor(
    readonly records: readonly WalRecordInput[],
    /** Encoded header bytes per record, or null when no record has headers. */
    readonly headerSizes: number[] | null,
    readonly firstOffset: number,
    /** The timestamp of every record, or of each one (replicated appends). */
    readonly timestampMs: number,
    readonly timestamps: readonly number[] | null,
    /** Encoded bytes of all its records. */
    readonly encodedBytes: number,
  ) {
    this.promise = new Promise<AppendResult>((resolve, reject) => {
      this.resolve = resolve;
      this.reject = reject;
    });
  }
}

/** A batch written to the file but not yet acknowledged. */
export interface BatchWrite {
  readonly segment: Segment;
  readonly appends: PendingAppend[];
  /** File position and bytes of the batch. */
  readonly start: number;
  readonly total: number;
  readonly startOffset: number;
  readonly endOffset: number;
  readonly firstTimestampMs: number | null;
  readonly lastTimestampMs: number | null;
  /** Sparse index entries (offset, position, timestamp triples) to add on commit. */
  readonly entries: number[];
  readonly nextIndexPosition: number;
  /**
   * Set when an earlier batch of the same segment failed while this one was in flight (it was
   * written after it, so it was cut off with it): its appends are rejected already.
   */
  failure: WalError | null;
}

const zeroChunk = Buffer.alloc(1024 * 1024);
/** The `corrupt` map of every segment without corruption (shared, never written: noteCorruption makes its own). */
const noCorruption = new Map<number, CorruptRange>();

export class Segment {
  // The file names are made when asked (opening, sealing, settling), not kept: three strings a
  // segment are ~3 MB for 10,000 topics.
  get walPath(): string {
    return `${this.basePath()}.wal`;
  }
  get idxPath(): string {
    return `${this.basePath()}.idx`;
  }
  get sealPath(): string {
    return `${this.basePath()}.seal`;
  }
  private basePath(): string {
    return path.join(this.dir, segmentBaseName(this.id));
  }
  sealed = false;
  /** Set when an fdatasync or write failed in a way that cannot be retried (EIO): no more appends. */
  failed: WalError | null = null;
  /** End of the records written to the file (readable). */
  endOffset: number;
  endPosition = segmentFileHeaderBytes;
  /** End of the offsets handed out to appends (written or queued). */
  assignedEndOffset: number;
  /** Everything below these was fdatasync'd. */
  syncedEndOffset: number;
  syncedEndPosition = segmentFileHeaderBytes;
  /** Current file size: bytes up to here are allocated (records, then zeros). */
  preallocatedEnd = segmentFileHeaderBytes;
  firstTimestampMs: number | null = null;
  lastTimestampMs: number | null = null;
  readonly index: OffsetIndex;
  /** The next record at or beyond this position gets an index entry. */
  nextIndexPosition = segmentFileHeaderBytes;
  /** endPosition when the index was last checkpointed. */
  checkpointPosition = segmentFileHeaderBytes;
  /** Known corrupt ranges keyed by start position (at most corruptRangeCountMaxPerSegment). */
  corrupt: Map<number, CorruptRange> = noCorruption;
  pending: PendingAppend[] = [];
  pendingBytes = 0;
  /** In the WAL's list of segments to flush. */
  queuedForFlush = false;
  /** Set by sealActive: appends are refused while it waits for the queue to drain. */
  sealing = false;
  /** Set by truncateSegment: appends are refused while it waits for the queue to drain. */
  truncating = false;
  /**
   * Its fdatasync runs in the thread pool, never on the event loop: set for a replicated segment's
   * leader (Wal.appendAssigned), whose loop must keep taking its followers' acknowledgements and new
   * appends meanwhile (a majority may be made of the followers alone).
   */
  syncInPool = false;
  /**
   * Batches written and not yet committed or failed, oldest first (group commits in flight: at most
   * walLimits.groupCommitInFlightMax). The next batch is written after the last of them; readers
   * see only committed ones (endOffset, endPosition).
   */
  written: BatchWrite[] = [];
  /** The last append queued on this segment until it settles (what a resend with nothing new waits for). */
  lastAppend: PendingAppend | null = null;
  /** The background preallocation in flight, if any (never rejects). */
  extending: Promise<void> | null = null;
  /**
   * Whether zeros are written ahead of the records in the background. Off for a segment import
   * (segment-import.ts): it is written in large batches and sealed soon, so zeros would only
   * double its writes.
   */
  preallocateAhead = true;
  /** Size of the next background preallocation (doubles up to segmentPreallocateBytes). */
  private preallocateStepBytes: number;

  constructor(
    private readonly ctx: SegmentContext,
    readonly topic: string,
    readonly dir: string,
    readonly id: number,
    readonly baseOffset: number,
    public fd: number,
  ) {
    this.preallocateStepBytes = Math.min(
      walLimits.segmentPreallocateBytesMin,
      ctx.limits.segmentPreallocateBytes,
    );
    this.endOffset = baseOffset;
    this.assignedEndOffset = baseOffset;
    this.syncedEndOffset = baseOffset;
    this.index =
      ctx.indexPager === null
        ? new OffsetIndex()
        : new OffsetIndex({ pager: ctx.indexPager, source: segmentIndexSource(ctx, this) });
  }

  /** Creates the files of a new, empty, active segment, durably (data file, index, directory). */
  static create(ctx: SegmentContext, topic: string, dir: string, id: number, baseOffset: number): Segment {
    const { io } = ctx;
    const base = path.join(dir, segmentBaseName(id));
    const fd = io.open(`${base}.wal`, 'w+');
    const segment = new Segment(ctx, topic, dir, id, baseOffset, fd);
    try {
      const header = encodeFileHeader(id, baseOffset);
      writeFully(io, fd, header, header.length, 0);
      // Start small: a topic that stays quiet costs 64 KiB, not a full step (creating many topics
      // must not write megabytes of zeros each); busy segments grow by doubling (maybeExtendAhead).
      // None when space is low: the file then grows with its records.
      const first = Math.min(walLimits.segmentPreallocateBytesMin, ctx.limits.segmentPreallocateBytes);
      if (ctx.disk.preallocateBytes(first) >= first) segment.preallocate(segmentFileHeaderBytes + first);
      io.fdatasync(fd);
      ctx.stats.fsyncCount += 1;
      segment.writeCheckpoint();
    } catch (error) {
      io.close(fd);
      // Never acknowledged: remove what was created (best effort; recovery removes a zero file too).
      for (const file of [segment.walPath, segment.idxPath, `${segment.idxPath}.tmp`]) {
        try {
          if (io.exists(file)) io.unlink(file);
        } catch {
          // Left for recovery.
        }
      }
      throw walErrorFromIo(error, `creating segment ${id} of topic '${topic}'`);
    }
    return segment;
  }

  info(): WalSegmentInfo {
    return {
      topic: this.topic,
      id: this.id,
      baseOffset: this.baseOffset,
      endOffset: this.endOffset,
      sealed: this.sealed,
      sizeBytes: this.endPosition,
      firstTimestampMs: this.firstTimestampMs,
      lastTimestampMs: this.lastTimestampMs,
    };
  }

  /**
   * Starts a background preallocation of the next step once less than half of the zeros ahead are
   * left, so that the group commit never writes zeros itself. Steps start at
   * segmentPreallocateBytesMin for every segment (new or reopened) and double up to
   * segmentPreallocateBytes: a quiet topic costs little, a busy one soon extends in big steps.
   * When space is low a step shrinks to what the disk allows (disk-space.ts), and below
   * segmentPreallocateBytesMin none is made: the group commit then grows the file itself.
   */
  maybeExtendAhead(): void {
    let step = this.preallocateStepBytes;
    if (
      !this.preallocateAhead ||
      this.extending !== null ||
      this.sealed ||
      this.sealing ||
      this.truncating ||
      this.failed !== null
    )
      return;
    if (this.preallocatedEnd - this.endPosition > step / 2) return;
    const { disk } = this.ctx;
    const allowed = disk.preallocateBytes(step);
    if (allowed < walLimits.segmentPreallocateBytesMin) {
      // Low on space: start again from the smallest step once there is room.
      this.preallocateStepBytes = Math.min(walLimits.segmentPreallocateBytesMin, step);
      return;
    }
    const from = this.preallocatedEnd;
    const to = Math.floor((from + allowed) / 4096) * 4096;
    if (to <= from) return;
    if (allowed === step) step = Math.min(this.ctx.limits.segmentPreallocateBytes, step * 2);
    this.preallocateStepBytes = step;
    disk.noteGrowth(to - from);
    this.extending = this.ctx.io
      .writeZerosDurablyAsync(this.walPath, from, to)
      .then(
        () => {
          if (this.preallocatedEnd === from) this.preallocatedEnd = to;
        },
        (error: unknown) => {
          // Give back what part of the step was written: nothing was written past `from` meanwhile
          // (writeBatch defers while a preallocation runs), so the file is cut back to it.
          if (this.preallocatedEnd === from && this.fd >= 0) {
            try {
              this.ctx.io.truncate(this.fd, from);
            } catch {
              // Zeros past the end are harmless (recovery tells them from records).
            }
          }
          if (walErrorFromIo(error, 'preallocate').code === WalErrorCode.DISK_FULL) disk.noteEnospc();
          disk.warn(
            'preallocateFailed',
            { topic: this.topic, segmentId: this.id, err: String(error) },
            'Background preallocation failed; the group commit grows the file when needed',
          );
        },
      )
      .finally(() => {
        this.extending = null;
        this.ctx.onExtended(this);
      });
  }

  /**
   * Extends the file with zeros up to at least `end` (rounded up to 4 KiB), synchronously: only at
   * creation, and small. Best effort: on ENOSPC the file is cut back to its previous size and the
   * segment writes into a growing file instead.
   */
  preallocate(end: number): void {
    const { io } = this.ctx;
    const target = Math.ceil(end / 4096) * 4096;
    const from = this.preallocatedEnd;
    if (target <= from) return;
    let pos = from;
    try {
      while (pos < target) {
        const n = Math.min(zeroChunk.length, target - pos);
        writeFully(io, this.fd, zeroChunk, n, pos);
        pos += n;
      }
      this.ctx.disk.noteGrowth(target - from);
      this.preallocatedEnd = target;
    } catch (error) {
      try {
        io.truncate(this.fd, from);
      } catch {
        // The tail holds only zeros, which recovery tells apart from records.
      }
      if (walErrorFromIo(error, 'preallocate').code !== WalErrorCode.DISK_FULL) throw error;
      this.ctx.disk.noteEnospc();
      this.ctx.disk.warn(
        'preallocateFailed',
        { topic: this.topic, segmentId: this.id, bytes: target - from },
        'Segment preallocation hit a full disk; writing without it',
      );
    }
  }

  /**
   * Encodes every queued append into `scratch` (grown when too small) and writes it after the last
   * record; with `fdatasyncNow`, fdatasyncs too. `willSync` says the batch is acknowledged only once
   * durable (policy `always`), which its records' syncedDelta may then claim. Returns null when
   * nothing is queued. On failure the batch is rolled back (see `failBatch`) and the WalError thrown;
   * on success the caller settles it with `commitBatch` (after its fdatasync, when not done here).
   */
  writeBatch(
    scratch: { buf: Buffer },
    fdatasyncNow: boolean,
    willSync: boolean,
  ): BatchWrite | 'deferred' | null {
    const appends = this.pending;
    const total = this.pendingBytes;
    if (appends.length === 0) return null;
    // After the batches still in flight, if any (their records are on file, not yet committed).
    const previous = this.written.length === 0 ? null : this.written[this.written.length - 1]!;
    const start = previous === null ? this.endPosition : previous.start + previous.total;
    // Never write where a background preallocation may still write zeros: wait for it instead.
    if (this.extending !== null && start + total > this.preallocatedEnd) return 'deferred';
    this.pending = [];
    this.pendingBytes = 0;
    if (scratch.buf.length < total) scratch.buf = Buffer.allocUnsafe(Math.max(total, scratch.buf.length * 2));
    const buf = scratch.buf;
    // What the records claim durable (syncedDelta). A batch acknowledged only once durable may claim
    // everything before it, since the one before it is acknowledged first, but not while that one's
    // fdatasync still runs: a crash could tear it and keep this one, and recovery must then see a
    // torn tail, not corruption below a durable mark.
    const syncedEnd = willSync && previous === null ? this.endOffset : this.syncedEndOffset;
    const interval = this.ctx.limits.indexIntervalBytes;
    // Index entries for this batch, added only if the batch commits.
    const entries: number[] = [];
    let nextIndexPosition = previous === null ? this.nextIndexPosition : previous.nextIndexPosition;
    let p = 0;
    const startOffset = previous === null ? this.endOffset : previous.endOffset;
    let offset = startOffset;
    let lastTs = previous === null ? this.lastTimestampMs : previous.lastTimestampMs;
    let firstTs = previous === null ? this.firstTimestampMs : previous.firstTimestampMs;
    for (let a = 0; a < appends.length; a++) {
      const append = appends[a]!;
      // assert.equal costs more than the encoding of a small record: compare, then fail loudly.
      if (append.firstOffset !== offset)
        assert.fail(`queued append at ${append.firstOffset}, expected ${offset}`);
      const { records, headerSizes, timestamps } = append;
      for (let i = 0; i < records.length; i++) {
        const record = records[i]!;
        const ts = timestamps === null ? append.timestampMs : timestamps[i]!;
        if (start + p >= nextIndexPosition) {
          entries.push(offset, start + p, ts);
          nextIndexPosition = start + p + interval;
        }
        p = encodeRecordInto(
          buf,
          p,
          offset,
          ts,
          offset - syncedEnd,
          record.headers,
          headerSizes === null ? 0 : headerSizes[i]!,
          record.value,
          i < records.length - 1,
        );
        offset += 1;
        lastTs = ts;
        if (firstTs === null) firstTs = ts;
      }
    }
    if (p !== total) assert.fail(`encoded ${p} bytes, expected ${total}`);
    const batch: BatchWrite = {
      segment: this,
      appends,
      start,
      total,
      startOffset,
      endOffset: offset,
      firstTimestampMs: firstTs,
      lastTimestampMs: lastTs,
      entries,
      nextIndexPosition,
      failure: null,
    };
    const { io, stats } = this.ctx;
    try {
      // A batch beyond the zeros grows the file (slower fdatasync, this once); the background
      // preallocation that commitBatch starts then gets ahead again. No zeros are written here.
      writeFully(io, this.fd, buf, total, start);
      if (start + total > this.preallocatedEnd) {
        this.ctx.disk.noteGrowth(start + total - this.preallocatedEnd);
        this.preallocatedEnd = start + total;
      }
      if (fdatasyncNow) {
        io.fdatasync(this.fd);
        stats.fsyncCount += 1;
      }
    } catch (error) {
      throw this.failBatch(batch, error);
    }
    this.written.push(batch);
    return batch;
  }

  /** Makes a written batch readable; `synced` when it is durable. Batches commit in write order. */
  commitBatch(batch: BatchWrite, synced: boolean): void {
    if (this.written[0] !== batch) assert.fail('batches of a segment commit in the order they were written');
    this.written.shift();
    const { entries } = batch;
    for (let i = 0; i < entries.length; i += 3) this.index.add(entries[i]!, entries[i + 1]!, entries[i + 2]!);
    this.nextIndexPosition = batch.nextIndexPosition;
    this.endOffset = batch.endOffset;
    this.endPosition = batch.start + batch.total;
    this.lastTimestampMs = batch.lastTimestampMs;
    this.firstTimestampMs = batch.firstTimestampMs;
    if (synced) {
      this.syncedEndOffset = batch.endOffset;
      this.syncedEndPosition = this.endPosition;
    }
    this.ctx.stats.bytesWritten += batch.total;
    this.maybeExtendAhead();
    if (this.endPosition - this.checkpointPosition >= this.ctx.limits.indexCheckpointIntervalBytes) {
      this.checkpointQuietly();
    }
  }

  /**
   * Undoes a failed batch: the file is cut back to the batch's start (no complete record of a
   * partial write may be found later), offsets are handed out again, and appends queued behind it
   * (their offsets followed it) are rejected with it. Returns the error for the batch's appends:
   * DISK_FULL (retry later) or UNAVAILABLE (the segment is marked failed: an EIO is never retried,
   * the page cache may have dropped the data).
   */
  failBatch(batch: BatchWrite, error: unknown): WalError {
    // The batch and those written after it (in flight behind it) leave the file together.
    const at = this.written.indexOf(batch);
    const later = at < 0 ? [] : this.written.splice(at).slice(1);
    if (at < 0)
      assert(
        this.written.length === 0 || this.written[this.written.length - 1]!.endOffset === batch.startOffset,
      );
    const walError = this.rollBack(error, batch.start, batch.startOffset, batch.appends);
    // What a resend with nothing new waits for: the last append of the batches still in flight.
    const before = this.written[this.written.length - 1];
    if (before !== undefined) this.lastAppend = before.appends[before.appends.length - 1]!;
    for (const behind of later) {
      behind.failure = walError;
      for (const append of behind.appends) append.reject(walError);
    }
    const behind = this.pending;
    this.pending = [];
    this.pendingBytes = 0;
    for (const append of behind) append.reject(walError);
    return walError;
  }

  /** Undoes a failed batch write; returns the error to reject its appends with. */
  private rollBack(
    error: unknown,
    start: number,
    startOffset: number,
    batch: readonly PendingAppend[],
  ): WalError {
    const { io, logger } = this.ctx;
    const walError = walErrorFromIo(error, `appending to segment ${this.id} of topic '${this.topic}'`);
    // Offsets from the failed batch on are handed out again (the batches before it stay in flight).
    this.assignedEndOffset = startOffset;
    // Every append queued is rejected: none is left to wait for.
    this.lastAppend = null;
    for (const append of batch) assert(append.firstOffset >= this.endOffset);
    try {
      // Cut off whatever part of the batch reached the file: its complete records must not be
      // found by a later recovery. The file regrows (and is preallocated again) on the next append.
      io.truncate(this.fd, start);
      this.preallocatedEnd = start;
      try {
        io.fdatasync(this.fd);
      } catch {
        // Best effort: the truncated bytes were never acknowledged either way.
      }
    } catch (truncateError) {
      this.failed = walErrorFromIo(truncateError, `cutting back segment ${this.id} of topic '${this.topic}'`);
    }
    if (walError.code !== WalErrorCode.DISK_FULL) {
      this.failed ??= new WalError(
        WalErrorCode.UNAVAILABLE,
        `segment ${this.id} of topic '${this.topic}' failed: ${walError.message}; it takes no more appends until the node restarts`,
        { cause: error },
      );
      logger.error(
        { topic: this.topic, segmentId: this.id, err: walError.message },
        'Segment write or fdatasync failed; segment marked failed',
      );
      return this.failed;
    }
    this.ctx.disk.noteEnospc();
    this.ctx.disk.warn(
      'writeFailed',
      { topic: this.topic, segmentId: this.id, records: batch.length },
      'Disk full: group commit rejected and file cut back',
    );
    return walError;
  }

  /** fdatasync of records written but not yet durable (interval/never policies, seal, close). */
  syncIfDirty(): void {
    if (this.syncedEndPosition === this.endPosition || this.failed !== null) return;
    try {
      this.ctx.io.fdatasync(this.fd);
    } catch (error) {
      this.failed = new WalError(
        WalErrorCode.UNAVAILABLE,
        `fdatasync of segment ${this.id} of topic '${this.topic}' failed; it takes no more appends`,
        { cause: error },
      );
      this.ctx.logger.error(
        { topic: this.topic, segmentId: this.id, err: String(error) },
        'fdatasync failed',
      );
      throw this.failed;
    }
    this.ctx.stats.fsyncCount += 1;
    this.syncedEndOffset = this.endOffset;
    this.syncedEndPosition = this.endPosition;
  }

  /** Makes the records durable and writes the index checkpoint (tmp file + rename + dir fsync). */
  writeCheckpoint(): void {
    this.syncIfDirty();
    const data = encodeIndexCheckpoint({
      segmentId: this.id,
      baseOffset: this.baseOffset,
      durableEndOffset: this.syncedEndOffset,
      durableEndPosition: this.syncedEndPosition,
      firstTimestampMs: this.firstTimestampMs,
      lastTimestampMs: this.lastTimestampMs,
      triples: this.index.toTriples(),
    });
    writeFileDurably(this.ctx.io, this.idxPath, data);
    this.checkpointPosition = this.syncedEndPosition;
  }

  /**
   * `writeCheckpoint`, but a failure (a full disk) is only logged (rate-limited): the index is a
   * hint, and recovery scans further back when it is stale. The records must be durable already
   * when the caller needs them so (a failed fdatasync marks the segment failed either way).
   */
  checkpointQuietly(): void {
    try {
      this.writeCheckpoint();
    } catch (error) {
      if (walErrorFromIo(error, 'checkpoint').code === WalErrorCode.DISK_FULL) this.ctx.disk.noteEnospc();
      this.ctx.disk.warn(
        'checkpointFailed',
        { topic: this.topic, segmentId: this.id, err: String(error) },
        'Index checkpoint failed; the next open scans from the previous one',
      );
    }
  }

  /**
   * Gives the preallocated zeros past the records back to the file system (a full disk). Only when
   * no batch is written but unacknowledged (no group commit in flight), so nothing past
   * endPosition is a record; a background preallocation in flight is left alone (it ends soon,
   * and is cut back if it fails). Not durable on purpose: a crash may
   * bring the zeros back, which recovery tells apart from records. Returns the bytes given back.
   */
  releasePreallocation(): number {
    if (
      this.extending !== null ||
      this.sealed ||
      this.sealing ||
      this.truncating ||
      this.failed !== null ||
      this.fd < 0 ||
      this.written.length > 0 ||
      this.preallocatedEnd <= this.endPosition
    )
      return 0;
    const bytes = this.preallocatedEnd - this.endPosition;
    try {
      this.ctx.io.truncate(this.fd, this.endPosition);
    } catch {
      return 0;
    }
    this.preallocatedEnd = this.endPosition;
    this.preallocateStepBytes = Math.min(walLimits.segmentPreallocateBytesMin, this.preallocateStepBytes);
    return bytes;
  }

  /**
   * Cuts the preallocated zeros off (at close): the next open then finds the end of the records at
   * the end of the file instead of reading megabytes of zeros to prove there is nothing after it.
   */
  trimPreallocation(): void {
    assert(this.extending === null && this.pending.length === 0 && this.written.length === 0);
    if (this.preallocatedEnd === this.endPosition || this.failed !== null) return;
    this.ctx.io.truncate(this.fd, this.endPosition);
    this.preallocatedEnd = this.endPosition;
    this.ctx.io.fdatasync(this.fd);
    this.ctx.stats.fsyncCount += 1;
  }

  /** Seals: durable records, file cut to its records, index checkpoint, then the seal marker. */
  seal(): void {
    assert(!this.sealed && this.pending.length === 0 && this.written.length === 0);
    if (this.failed !== null) throw this.failed;
    const { io } = this.ctx;
    try {
      this.syncIfDirty();
      if (this.preallocatedEnd !== this.endPosition) {
        io.truncate(this.fd, this.endPosition);
        this.preallocatedEnd = this.endPosition;
        io.fdatasync(this.fd);
        this.ctx.stats.fsyncCount += 1;
      }
      this.writeCheckpoint();
      writeFileDurably(
        io,
        this.sealPath,
        encodeSealMarker({
          segmentId: this.id,
          baseOffset: this.baseOffset,
          endOffset: this.endOffset,
          sizeBytes: this.endPosition,
          firstTimestampMs: this.firstTimestampMs,
          lastTimestampMs: this.lastTimestampMs,
        }),
      );
    } catch (error) {
      throw walErrorFromIo(error, `sealing segment ${this.id} of topic '${this.topic}'`);
    }
    this.sealed = true;
  }

  close(): void {
    this.index.release();
    if (this.fd >= 0) {
      this.ctx.io.close(this.fd);
      this.fd = -1;
    }
  }

  /** Deletes the segment's files (data first, so a crash never leaves data without its seal). */
  deleteFiles(): void {
    const { io } = this.ctx;
    this.close();
    for (const file of [this.walPath, this.idxPath, this.sealPath]) {
      if (io.exists(file)) io.unlink(file);
    }
  }

  /** Size of the valid record at `pos`, or −1 when none is there. (Also used by truncate.ts.) */
  recordAt(reader: ChunkReader, pos: number): number {
    let at = reader.view(pos, 8);
    if (at < 0) return -1;
    const length = reader.buf.readUInt32LE(at);
    if (length < recordLengthMin || length > this.ctx.lengthMax) return -1;
    at = reader.view(pos, 8 + length);
    if (at < 0) return -1;
    return checkRecordAt(reader.buf, at, reader.length, this.ctx.lengthMax);
  }

  /**
   * Finds the first valid record in [fromPos, limitPos) whose offset is in [offsetMin, offsetMax]:
   * how reads and recovery resynchronise after a corrupt record. Bounded memory (chunked reads).
   */
  findNextValid(
    fromPos: number,
    limitPos: number,
    offsetMin: number,
    offsetMax: number,
    seen?: { nonZero: boolean },
  ): { position: number; offset: number } | null {
    const reader = new ChunkReader(this.ctx.io, this.fd, limitPos, walLimits.recoveryChunkSizeBytes, false);
    const { lengthMax } = this.ctx;
    const skipBytes = 4096;
    for (let p = fromPos; p + recordHeaderSizeBytes <= limitPos; p++) {
      // A zeroed page (the preallocated tail) holds no record start but maybe in its last 2 bytes.
      if ((p & (skipBytes - 1)) === 0 && p + skipBytes <= limitPos) {
        const page = reader.view(p, skipBytes);
        if (page >= 0 && isZeroRange(reader.buf, page, page + skipBytes)) {
          p += skipBytes - 3;
          continue;
        }
      }
      const at = reader.view(p, 16);
      if (at < 0) break;
      const buf = reader.buf;
      if (buf[at] === 0 && buf[at + 1] === 0 && buf[at + 2] === 0) continue;
      if (seen !== undefined) seen.nonZero = true;
      const length = buf.readUInt32LE(at);
      if (length < recordLengthMin || length > lengthMax) continue;
      const offset = readU64(buf, at + 8);
      if (offset < offsetMin || offset > offsetMax) continue;
      const full = reader.view(p, 8 + length);
      if (full < 0) continue;
      if (checkRecordAt(reader.buf, full, reader.length, lengthMax) > 0) return { position: p, offset };
    }
    return null;
  }

  /** Remembers (bounded) and counts a corrupt range found at `position`, where `expect` should start. */
  discoverCorruption(
    position: number,
    expect: number,
    limitOffset: number,
    limitPosition: number,
  ): CorruptRange {
    const found = this.findNextValid(position + 1, limitPosition, expect + 1, limitOffset - 1);
    const range: CorruptRange = {
      fromOffset: expect,
      toOffset: found?.offset ?? limitOffset,
      startPosition: position,
      resumePosition: found?.position ?? limitPosition,
    };
    this.noteCorruption(range);
    return range;
  }

  noteCorruption(range: CorruptRange): void {
    if (this.corrupt === noCorruption) this.corrupt = new Map();
    if (this.corrupt.size < walLimits.corruptRangeCountMaxPerSegment)
      this.corrupt.set(range.startPosition, range);
    this.ctx.stats.corruptRecordCount += range.toOffset - range.fromOffset;
    this.ctx.logger.error(
      { topic: this.topic, segmentId: this.id, ...range },
      `Checksum mismatch at offset ${range.fromOffset}: records [${range.fromOffset}, ${range.toOffset}) are not served`,
    );
  }

  /** Where to start scanning for `offset`: the nearest index entry at or below it. (Also truncate.ts.) */
  seek(offset: number): { position: number; offset: number } {
    const i = this.index.floorByOffset(offset);
    if (i < 0) return { position: segmentFileHeaderBytes, offset: this.baseOffset };
    return { position: this.index.positionAt(i), offset: this.index.offsetAt(i) };
  }

  /**
   * Appends this segment's records from `offset` (baseOffset <= offset <= endOffset) to `out`.
   * Returns true when it reached the segment's end (the caller may continue into the next
   * segment), false when a limit stopped it. A corrupt record stops the read after the records
   * before it; when it is the first one asked for, the read fails with CORRUPT_RECORD.
   */
  readInto(
    out: WalRecord[],
    offset: number,
    limits: { recordCountMax: number; byteCountMax: number },
    budget: { bytes: number },
  ): boolean {
    const chunkBytes = Math.min(
      walLimits.readChunkSizeBytes,
      Math.max(4096, limits.byteCountMax + this.ctx.limits.indexIntervalBytes + recordHeaderSizeBytes * 8),
    );
    const reader = new ChunkReader(this.ctx.io, this.fd, this.endPosition, chunkBytes, true);
    let { position, offset: expect } = this.seek(offset);
    while (expect < this.endOffset) {
      if (expect >= offset && out.length >= limits.recordCountMax) return false;
      let range = this.corrupt.get(position);
      if (range === undefined) {
        const size = this.recordAt(reader, position);
        const at = size > 0 ? reader.view(position, size) : -1;
        if (at >= 0 && recordOffsetAt(reader.buf, at) === expect) {
          if (expect >= offset) {
            const bytes = size - recordHeaderSizeBytes;
            if (out.length > 0 && budget.bytes + bytes > limits.byteCountMax) return false;
            const record = decodeCheckedRecord(reader.buf, at, size);
            if (record === null) {
              range = this.discoverCorruption(position, expect, this.endOffset, this.endPosition);
            } else {
              out.push({
                offset: record.offset,
                timestampMs: record.timestampMs,
                headers: record.headers,
                value: record.value,
              });
              budget.bytes += bytes;
            }
          }
          if (range === undefined) {
            position += size;
            expect += 1;
            continue;
          }
        } else {
          range = this.discoverCorruption(position, expect, this.endOffset, this.endPosition);
        }
      }
      if (offset < range.toOffset) {
        if (out.length > 0) return false;
        throw new WalError(
          WalErrorCode.CORRUPT_RECORD,
          `record ${Math.max(offset, range.fromOffset)} of topic '${this.topic}' failed its checksum`,
        );
      }
      position = range.resumePosition;
      expect = range.toOffset;
    }
    return true;
  }

  /** First offset in this segment whose timestamp is >= `timestampMs`, or null when none is. */
  offsetForTimestamp(timestampMs: number): number | null {
    if (this.lastTimestampMs === null || this.lastTimestampMs < timestampMs) return null;
    const i = this.index.lastBeforeTimestamp(timestampMs);
    let position = i < 0 ? segmentFileHeaderBytes : this.index.positionAt(i);
    let expect = i < 0 ? this.baseOffset : this.index.offsetAt(i);
    const reader = new ChunkReader(
      this.ctx.io,
      this.fd,
      this.endPosition,
      walLimits.readChunkSizeBytes,
      false,
    );
    while (expect < this.endOffset) {
      let range = this.corrupt.get(position);
      if (range === undefined) {
        const size = this.recordAt(reader, position);
        const at = size > 0 ? reader.view(position, size) : -1;
        if (at >= 0 && recordOffsetAt(reader.buf, at) === expect) {
          if (recordTimestampAt(reader.buf, at) >= timestampMs) return expect;
          position += size;
          expect += 1;
          continue;
        }
        range = this.discoverCorruption(position, expect, this.endOffset, this.endPosition);
      }
      position = range.resumePosition;
      expect = range.toOffset;
    }
    return null;
  }
}

export type { RecordHeaders };
