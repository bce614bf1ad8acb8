/**
 * Segment import: how a repaired replica receives a copy of an old sealed segment while it already
 * holds later ones, or replaces its own incomplete or corrupt sealed copy. `Wal.importSegment`
 * returns a `SegmentImport`; its records go to temporary files that no reader sees, and `finish`
 * seals them and puts the segment in place among the topic's local segments, in id order, never
 * as the active segment. wal.ts keeps the topic table; this file owns the import's files, the
 * placement rules, the commit protocol, and its recovery at open.
 *
 * Files: `topics/<topic>/<id:20 digits>.import/<id>.{wal,idx,seal}`: the same names and formats as
 * a segment's, in a directory recovery never reads as segments. The data file is written like a
 * segment's (one positioned write per append, fdatasync in the thread pool, no zeros ahead).
 *
 * Commit protocol of `finish`, chosen so that a crash at any point leaves the old state or the new
 * one, and an existing copy is only replaced once the new one is durable:
 *
 *   1. seal in the import directory: records durable, file cut to them, index checkpoint, then the
 *      seal marker (temp + fsync + rename + directory fsync). A valid seal marker of the segment in
 *      its import directory is the commit point;
 *   2. rename the data file and the index over `<id>.wal` / `<id>.idx` of the topic directory
 *      (replacing an old copy's), fsync both directories;
 *   3. rename the seal marker last, fsync the topic directory;
 *   4. remove the import directory, fsync the topic directory.
 *
 * Recovery (`recoverImports`, before the topic's segments are opened): an import directory holding
 * a valid seal marker of its segment is completed (2 to 4, skipping what was moved already); any
 * other is removed. The `<id>.epoch` file is never touched.
 */
import assert from 'node:assert';
import path from 'node:path';
import { readSmallFile } from '../storage-io/durable-file.js';
import type { FileIo } from '../storage-io/file-io.js';
import { type WalReplicatedRecord, checkReplicatedBatch } from './batch-check.js';
import { walLimits } from './limits.js';
import type { SegmentContext, TopicState, WalSegmentInfo } from './segment.js';
import { PendingAppend, Segment } from './segment.js';
import { decodeSealMarker, importDirName, parseImportDirName, segmentBaseName } from './segment-files.js';
import { openSegment } from './segment-recovery.js';
import { WalError, WalErrorCode, walErrorFromIo } from './wal-error.js';

/** A seal marker is 72 bytes: a bigger file in an import directory is not one. */
const sealFileSizeMaxBytes = 4096;

/** What imports need of their WAL (wal.ts passes its own fields). */
export interface ImportHost {
  readonly ctx: SegmentContext;
  readonly topicsDir: string;
  readonly topicMap: Map<string, TopicState>;
  /** The group commit's encode buffer: shared, every use of it is synchronous. */
  readonly scratch: { buf: Buffer };
  isClosed(): boolean;
  /** Whether fence epochs of the topic are held (its directory then stays without segments). */
  hasEpochs(topic: string): boolean;
}

/** Closes a segment's descriptor; a failing close (a dead disk) releases it all the same. */
function closeQuietly(segment: Segment): void {
  try {
    segment.close();
  } catch {
    // The descriptor is released either way.
  }
}

function keyOf(topic: string, segmentId: number): string {
  // Topic names never hold '/'.
  return `${topic}/${segmentId}`;
}

/**
 * Steps 2 to 4 of the commit (see the file header): moves a sealed import's files over the
 * segment's names in the topic directory, the seal marker last, then removes the import directory.
 * What was moved already is skipped, so recovery may run it again after a crash.
 */
function moveIntoPlace(io: FileIo, dir: string, importDir: string, segmentId: number): void {
  const base = segmentBaseName(segmentId);
  const move = (ext: string): void => {
    const from = path.join(importDir, `${base}.${ext}`);
    if (io.exists(from)) io.rename(from, path.join(dir, `${base}.${ext}`));
  };
  move('wal');
  move('idx');
  // Both durable before the commit point leaves the import directory.
  io.fsyncDir(dir);
  io.fsyncDir(importDir);
  move('seal');
  io.fsyncDir(dir);
  io.removeTree(importDir);
  io.fsyncDir(dir);
}

/**
 * At open, before the topic's segments are read: completes every import in `dir` that committed
 * (a valid seal marker of its segment in its directory) and removes every other one.
 */
export function recoverImports(ctx: SegmentContext, topic: string, dir: string): void {
  const { io, logger } = ctx;
  for (const name of io.list(dir)) {
    const segmentId = parseImportDirName(name);
    if (segmentId === null) continue;
    const importDir = path.join(dir, name);
    const sealPath = path.join(importDir, `${segmentBaseName(segmentId)}.seal`);
    const sealBuf = readSmallFile(io, sealPath, sealFileSizeMaxBytes);
    const seal = sealBuf === null ? null : decodeSealMarker(sealBuf);
    if (seal !== null && seal.segmentId === segmentId) {
      logger.warn(
        { topic, segmentId, endOffset: seal.endOffset },
        'Completing a segment import interrupted by a crash',
      );
      moveIntoPlace(io, dir, importDir, segmentId);
    } else {
      logger.warn({ topic, segmentId }, 'Removing an unfinished segment import');
      io.removeTree(importDir);
      io.fsyncDir(dir);
    }
  }
}

/** The imports of one WAL: their limit, where a segment may go, and putting it there. */
export class SegmentImports {
  private readonly running = new Map<string, SegmentImport>();
  /**
   * Imports that committed but whose files could not all be moved into place (an I/O error): the
   * next open completes them; until then the segment is not served and not imported again.
   */
  private readonly unplaced = new Set<string>();

  constructor(readonly host: ImportHost) {}

  /** Whether files of an import of the topic exist (its directory must then stay). */
  hasTopic(topic: string): boolean {
    for (const imp of this.running.values()) if (imp.topic === topic) return true;
    for (const key of this.unplaced) if (key.startsWith(`${topic}/`)) return true;
    return false;
  }

  /** `Wal.importSegment`: checks, then creates the import's directory and empty data file. */
  start(topic: string, segmentId: number, baseOffset: number): SegmentImport {
    const { ctx, topicsDir, topicMap } = this.host;
    const { io } = ctx;
    if (!Number.isSafeInteger(segmentId) || segmentId < 1)
      throw new WalError(WalErrorCode.BAD_REQUEST, `segment id ${segmentId} is not a positive integer`);
    if (!Number.isSafeInteger(baseOffset) || baseOffset < 0)
      throw new WalError(WalErrorCode.BAD_REQUEST, `base offset ${baseOffset} is not a non-negative integer`);
    const key = keyOf(topic, segmentId);
    if (this.running.has(key)) {
      throw new WalError(
        WalErrorCode.UNAVAILABLE,
        `an import of segment ${segmentId} of '${topic}' is already in progress`,
      );
    }
    if (this.unplaced.has(key)) {
      throw new WalError(
        WalErrorCode.UNAVAILABLE,
        `segment ${segmentId} of '${topic}' was imported; it is put in place at the next open`,
      );
    }
    if (this.running.size >= walLimits.segmentImportCountMax) {
      throw new WalError(
        WalErrorCode.UNAVAILABLE,
        `${walLimits.segmentImportCountMax} segment imports are in progress already`,
      );
    }
    const refused = this.placement(topic, segmentId, baseOffset, baseOffset);
    if (refused instanceof WalError) throw refused;
    const dir = path.join(topicsDir, topic);
    const importDir = path.join(dir, importDirName(segmentId));
    let segment: Segment;
    try {
      if (!topicMap.has(topic)) {
        io.mkdir(dir);
        io.fsyncDir(topicsDir);
      }
      // Left by an abort whose removal failed: never committed (committed ones are in `unplaced`).
      if (io.exists(importDir)) io.removeTree(importDir);
      io.mkdir(importDir);
      io.fsyncDir(dir);
      segment = Segment.create(ctx, topic, importDir, segmentId, baseOffset);
    } catch (error) {
      this.removeFiles(topic, importDir);
      throw walErrorFromIo(error, `starting the import of segment ${segmentId} of topic '${topic}'`);
    }
    segment.preallocateAhead = false;
    const imp = new SegmentImport(this, segment, dir, importDir);
    this.running.set(key, imp);
    return imp;
  }

  /**
   * Where segment `segmentId` holding [baseOffset, endOffset) would go among the topic's local
   * segments: the local copy it replaces (null: none), or why it cannot go there now:
   * BAD_REQUEST when it overlaps the offsets of the segments next to it by id, or is not below the
   * active segment (an active segment is the topic's newest: none may follow it); UNAVAILABLE at
   * a limit or while the copy it would replace is being truncated.
   */
  placement(
    topic: string,
    segmentId: number,
    baseOffset: number,
    endOffset: number,
  ): Segment | null | WalError {
    const t = this.host.topicMap.get(topic);
    if (t === undefined) {
      if (this.host.topicMap.size < walLimits.topicCountMax) return null;
      return new WalError(WalErrorCode.UNAVAILABLE, 'the WAL holds the maximum number of topics');
    }
    if (t.active !== null && segmentId >= t.active.id) {
      return new WalError(
        WalErrorCode.BAD_REQUEST,
        `segment ${segmentId} of '${topic}' cannot be imported: the active segment is ${t.active.id}` +
          (segmentId === t.active.id ? '' : ' and none may follow it'),
      );
    }
    let previous: Segment | undefined;
    let same: Segment | undefined;
    let next: Segment | undefined;
    for (const s of t.segments) {
      if (s.id < segmentId) previous = s;
      else if (s.id === segmentId) same = s;
      else {
        next = s;
        break;
      }
    }
    const overlapped =
      previous !== undefined && previous.endOffset > baseOffset
        ? previous
        : next !== undefined && endOffset > next.baseOffset
          ? next
          : undefined;
    if (overlapped !== undefined) {
      return new WalError(
        WalErrorCode.BAD_REQUEST,
        `segment ${segmentId} of '${topic}' at [${baseOffset}, ${endOffset}) overlaps local segment ` +
          `${overlapped.id} at [${overlapped.baseOffset}, ${overlapped.endOffset})`,
      );
    }
    if (same?.truncating) {
      return new WalError(
        WalErrorCode.UNAVAILABLE,
        `segment ${segmentId} of '${topic}' is being truncated; import it afterwards`,
      );
    }
    if (same === undefined && t.segments.length >= walLimits.segmentCountMaxPerTopic) {
      return new WalError(
        WalErrorCode.UNAVAILABLE,
        `topic '${topic}' holds the maximum number of local segments`,
      );
    }
    return same ?? null;
  }

  /** Puts a finished import (opened from its final files) in the topic's list, for `replaced`. */
  place(topic: string, dir: string, segment: Segment, replaced: Segment | null): void {
    const { topicMap } = this.host;
    let t = topicMap.get(topic);
    if (t === undefined) {
      t = { name: topic, dir, segments: [], active: null, lastTimestampMs: 0 };
      topicMap.set(topic, t);
    }
    if (replaced !== null) {
      const i = t.segments.indexOf(replaced);
      assert(i >= 0, 'the replaced copy is still listed');
      t.segments[i] = segment;
      closeQuietly(replaced);
    } else {
      const i = t.segments.findIndex((s) => s.id > segment.id);
      t.segments.splice(i < 0 ? t.segments.length : i, 0, segment);
    }
    // Local appends never stamp below a record the topic holds.
    t.lastTimestampMs = Math.max(t.lastTimestampMs, segment.lastTimestampMs ?? 0);
  }

  /**
   * An import committed but its files are not all in place: the old copy's files are being
   * replaced, so it is no longer served (nor deleted by path); the next open completes the import.
   */
  leaveUnplaced(imp: SegmentImport, replaced: Segment | null): void {
    this.unplaced.add(keyOf(imp.topic, imp.segmentId));
    if (replaced === null) return;
    const t = this.host.topicMap.get(imp.topic)!;
    t.segments.splice(t.segments.indexOf(replaced), 1);
    closeQuietly(replaced);
    // Without segments the topic is not listed, but its directory stays (hasTopic).
    if (t.segments.length === 0) this.host.topicMap.delete(imp.topic);
  }

  /** An import ended: it no longer counts. */
  ended(imp: SegmentImport): void {
    this.running.delete(keyOf(imp.topic, imp.segmentId));
  }

  /**
   * Removes an import's directory, and the topic directory when nothing else keeps it. Best
   * effort: what is left is removed at the next open (or the next import of the segment).
   */
  removeFiles(topic: string, importDir: string): void {
    const { ctx, topicsDir, topicMap } = this.host;
    const { io } = ctx;
    const dir = path.dirname(importDir);
    try {
      io.removeTree(importDir);
      io.fsyncDir(dir);
      if (!topicMap.has(topic) && !this.host.hasEpochs(topic) && !this.hasTopic(topic)) {
        io.removeTree(dir);
        io.fsyncDir(topicsDir);
      }
    } catch (error) {
      ctx.logger.warn(
        { topic, importDir, err: String(error) },
        'Removing the files of a segment import failed; the next open removes them',
      );
    }
  }

  /**
   * `deleteTopic`: ends the topic's imports at once (their later calls are refused; their files go
   * with the topic directory, a descriptor in use is closed once its call settled), and forgets
   * those waiting for the next open (their files go too). Returns whether there were any.
   */
  cancelTopic(topic: string): boolean {
    let any = false;
    for (const key of [...this.unplaced]) {
      if (!key.startsWith(`${topic}/`)) continue;
      this.unplaced.delete(key);
      any = true;
    }
    const reason = new WalError(WalErrorCode.UNAVAILABLE, `topic '${topic}' was deleted`);
    for (const imp of [...this.running.values()]) {
      if (imp.topic !== topic) continue;
      // Never rejects (ending swallows what fails).
      void imp.cancel(reason, false);
      any = true;
    }
    return any;
  }

  /** `Wal.close`: ends every import and removes its files. */
  async closeAll(): Promise<void> {
    const reason = new WalError(WalErrorCode.UNAVAILABLE, 'the WAL is closed');
    await Promise.all([...this.running.values()].map((imp) => imp.cancel(reason, true)));
  }
}

/**
 * One segment import (see the file header). Calls run one after another in the order made, each
 * after the previous one settled. Once it ended (finished, aborted, a failed `finish`, its topic
 * deleted, the WAL closed) every call but `abort` is refused.
 */
export class SegmentImport {
  /** Why calls are refused: set when it ends, or when a cancel is queued. */
  private refusal: WalError | null = null;
  private isEnded = false;
  private tail: Promise<void> = Promise.resolve();

  constructor(
    private readonly owner: SegmentImports,
    private readonly segment: Segment,
    private readonly dir: string,
    private readonly importDir: string,
  ) {}

  get topic(): string {
    return this.segment.topic;
  }

  get segmentId(): number {
    return this.segment.id;
  }

  get baseOffset(): number {
    return this.segment.baseOffset;
  }

  /** The end of the records held: the offset the next record must carry. */
  get endOffset(): number {
    return this.segment.endOffset;
  }

  /**
   * Writes records with consecutive offsets from `endOffset` on and timestamps that do not go
   * back (within the import), in one positioned write, and resolves once they are durable. Records
   * below `endOffset` (a resend) are skipped. Rejects, writing nothing, with BAD_REQUEST (a gap:
   * `expectedOffset` is the end; bad offsets or timestamps; an end beyond the base of the next
   * local segment), RECORD_TOO_LARGE / BATCH_TOO_LARGE (the append limits), DISK_FULL (retry
   * later) or UNAVAILABLE (ended, closed, an I/O error: the import takes no more records, abort it).
   */
  append(records: readonly WalReplicatedRecord[]): Promise<void> {
    return this.serial(() => this.appendNow(records));
  }

  /**
   * Seals the import, which must hold exactly [baseOffset, endOffset), and puts it in place (see
   * the file header); resolves with its info. BAD_REQUEST (another end, an overlap with the local
   * segments next to it, not below the active segment) leaves the import open: append, retry or
   * abort; so does UNAVAILABLE for an import an earlier I/O error failed (abort it). A failure of
   * finish itself ends the import: UNAVAILABLE or DISK_FULL before the commit point (its files are
   * removed, nothing changed), or UNAVAILABLE after it (the segment is not served until the next
   * open puts it in place; importing it again is refused until then).
   */
  finish(endOffset: number): Promise<WalSegmentInfo> {
    return this.serial(async () => this.finishNow(endOffset));
  }

  /** Ends the import and removes its files (a no-op once ended). */
  abort(): Promise<void> {
    return this.serial(async () => {
      if (this.isEnded) return;
      this.end(new WalError(WalErrorCode.BAD_REQUEST, `${this.describe()} was aborted`), true);
    });
  }

  /**
   * Refuses later calls and stops counting at once; closes (and with `removeFiles` removes) the
   * files once the call running settled.
   */
  cancel(reason: WalError, removeFiles: boolean): Promise<void> {
    this.refusal ??= reason;
    this.owner.ended(this);
    return this.serial(async () => {
      if (!this.isEnded) this.end(reason, removeFiles);
    });
  }

  private serial<T>(op: () => Promise<T>): Promise<T> {
    const result = this.tail.then(op);
    this.tail = result.then(
      () => undefined,
      () => undefined,
    );
    return result;
  }

  private describe(): string {
    return `the import of segment ${this.segmentId} of '${this.topic}'`;
  }

  private checkUsable(): void {
    if (this.refusal !== null) throw this.refusal;
    if (this.owner.host.isClosed()) throw new WalError(WalErrorCode.UNAVAILABLE, 'the WAL is closed');
    if (this.segment.failed !== null) throw this.segment.failed;
  }

  private end(reason: WalError, removeFiles: boolean): void {
    this.refusal ??= reason;
    this.isEnded = true;
    closeQuietly(this.segment);
    this.owner.ended(this);
    if (removeFiles) this.owner.removeFiles(this.topic, this.importDir);
  }

  private async appendNow(records: readonly WalReplicatedRecord[]): Promise<void> {
    this.checkUsable();
    const { segment } = this;
    const { ctx, scratch } = this.owner.host;
    const plan = checkReplicatedBatch(records, segment, segment.lastTimestampMs ?? 0, ctx.limits);
    if (plan instanceof WalError) throw plan;
    if (plan === null) return;
    const { fresh, checked, timestamps } = plan;
    const end = segment.endOffset;
    // Refused now rather than at finish, after copying the rest.
    const refused = this.owner.placement(this.topic, segment.id, segment.baseOffset, end + fresh.length);
    if (refused instanceof WalError) throw refused;
    segment.assignedEndOffset = end + fresh.length;
    segment.pending.push(
      new PendingAppend(
        fresh,
        checked.headerSizes,
        end,
        timestamps[timestamps.length - 1]!,
        timestamps,
        checked.bytes,
      ),
    );
    segment.pendingBytes += checked.bytes;
    // Rolled back (file cut, offsets given back) when it throws; EIO also marks the segment failed.
    const batch = segment.writeBatch(scratch, false, true);
    assert(batch !== null && batch !== 'deferred', 'an import writes its batch at once');
    try {
      await ctx.io.fdatasyncAsync(segment.fd);
    } catch (error) {
      throw segment.failBatch(batch, error);
    }
    ctx.stats.fsyncCount += 1;
    // Ended meanwhile (topic deleted, WAL closed): its files may already belong to a new import.
    if (this.refusal !== null) throw this.refusal;
    segment.commitBatch(batch, true);
  }

  private finishNow(endOffset: number): WalSegmentInfo {
    this.checkUsable();
    const { segment, owner, topic, dir } = this;
    const { ctx } = owner.host;
    if (!Number.isSafeInteger(endOffset) || endOffset !== segment.endOffset) {
      throw new WalError(
        WalErrorCode.BAD_REQUEST,
        `${this.describe()} holds [${segment.baseOffset}, ${segment.endOffset}), not [${segment.baseOffset}, ${endOffset})`,
      );
    }
    // Synchronous from here to the end: nothing else changes the topic's segments meanwhile.
    const replaced = owner.placement(topic, segment.id, segment.baseOffset, endOffset);
    if (replaced instanceof WalError) throw replaced;
    try {
      segment.seal();
    } catch (error) {
      const walError = walErrorFromIo(error, `sealing ${this.describe()}`);
      // Not committed, unless a seal marker reached the disk: removing the directory undoes that.
      this.end(walError, true);
      throw walError;
    }
    // Committed: a crash from here on completes the import at the next open.
    closeQuietly(segment);
    let placed: Segment | null = null;
    try {
      moveIntoPlace(ctx.io, dir, this.importDir, segment.id);
      placed = openSegment(ctx, topic, dir, segment.id);
      if (placed === null || !placed.sealed || placed.endOffset !== endOffset) {
        throw new Error(`the segment read back holds [${placed?.baseOffset}, ${placed?.endOffset})`);
      }
    } catch (error) {
      if (placed !== null) closeQuietly(placed);
      owner.leaveUnplaced(this, replaced);
      const walError = new WalError(
        WalErrorCode.UNAVAILABLE,
        `${this.describe()} committed but could not be put in place (${walErrorFromIo(error, 'moving').message}); ` +
          'the segment is served after the next open',
        { cause: error },
      );
      this.end(walError, false);
      ctx.logger.error(
        { topic, segmentId: segment.id, err: walError.message },
        'Segment import not in place',
      );
      throw walError;
    }
    owner.place(topic, dir, placed, replaced);
    this.end(new WalError(WalErrorCode.BAD_REQUEST, `${this.describe()} has finished`), false);
    ctx.logger.info(
      {
        topic,
        segmentId: segment.id,
        baseOffset: segment.baseOffset,
        endOffset,
        replaced: replaced !== null,
      },
      'Segment imported',
    );
    return placed.info();
  }
}
