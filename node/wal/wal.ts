/**
 * The WAL of one storage node: topics → local segments, the group commit, the fsync policy,
 * reads across local segments, timestamps, retention, topic deletion, and what segment
 * replication needs of storage: offsets known synchronously (`appendAssigned`), a follower's
 * append that tolerates resends (`appendReplicated`), truncation (`truncateSegment`; the cut is
 * truncate.ts), per-segment fence epochs (`raiseSegmentEpoch`; stored by segment-epochs.ts), and
 * segment repair: `importSegment` puts a copy of an old sealed segment among the local ones
 * (segment-import.ts).
 *
 * Group commit: `append` / `appendAssigned` validate, hand out offsets and a timestamp, queue the
 * records on the topic's active segment and return a promise (appendAssigned also the offsets, at
 * once). The first append of an event-loop turn schedules one `setImmediate` flush; it encodes
 * each touched segment's queue into one buffer, writes it with one positioned write and (policy
 * `always`) one fdatasync per file, synchronously (the Redis AOF model), then settles the promises.
 * Several files, or a replicated segment's leader (`syncInPool`), sync in the thread pool instead,
 * up to groupCommitInFlightMax group commits in flight, settled in order (docs/wal.md). A queue
 * that reaches groupCommitSizeMaxBytes or groupCommitAppendCountMax is flushed at once, so memory
 * stays bounded.
 *
 * Layout under rootDir: `topics/<topic>/<id:20 digits>.{wal,idx,seal,epoch}`, imports in progress in
 * `topics/<topic>/<id:20 digits>.import/`, and `trash/` (topics being deleted: renamed there first,
 * so a crash never leaves half a topic).
 */
import assert from 'node:assert';
import path from 'node:path';
import type { FileIo } from '../storage-io/file-io.js';
import { realFileIo } from '../storage-io/file-io.js';
import { type Scheduler, type TimerHandle, realScheduler } from '../scheduler.js';
import type { FsyncPolicy } from './fsync-policy.js';
import type { WalLimits } from './limits.js';
import { resolveWalLimits, walLimits } from './limits.js';
import { recordLengthMax } from './record-codec.js';
import {
  type WalReplicatedRecord,
  checkBatch,
  checkReplicatedBatch,
  lastLogTimestampMs,
} from './batch-check.js';
import type {
  AppendResult,
  SegmentContext,
  TopicState,
  WalLogger,
  WalRecord,
  WalRecordInput,
  WalSegmentInfo,
  WalStats,
} from './segment.js';
import type { BatchWrite } from './segment.js';
import { PendingAppend, Segment } from './segment.js';
import { parseEpochFileName, parseSegmentFileName } from './segment-files.js';
import { SegmentEpochs } from './segment-epochs.js';
import { DiskSpace, type DiskSpaceStatus, diskSpaceLimits } from './disk-space.js';
import { IndexPager } from './index-pager.js';
import { SegmentSettler } from './segment-settle.js';
import { type SegmentImport, SegmentImports, recoverImports } from './segment-import.js';
import { openSegment } from './segment-recovery.js';
import { cutOutside, truncateSegmentAt } from './truncate.js';
import { WalError, WalErrorCode, walErrorFromIo } from './wal-error.js';

export interface WalOptions {
  /** `<data-dir>/node_<id>/user_data`; created when missing. */
  rootDir: string;
  fsyncPolicy: FsyncPolicy;
  /** Largest record: value bytes + encoded header bytes. Default 1 MiB. */
  recordSizeMaxBytes?: number;
  /** Most records in one append. Default 10,000. */
  batchRecordCountMax?: number;
  /** Most record bytes in one append. Default 16 MiB (at least recordSizeMaxBytes). */
  batchSizeMaxBytes?: number;
  /** Sparse index granularity. Default 4 KiB. */
  indexIntervalBytes?: number;
  /** Largest background preallocation step (steps double from 64 KiB). Default 8 MiB. */
  segmentPreallocateBytes?: number;
  /** Index checkpoint after this many appended bytes (also on seal and close). Default 32 MiB. */
  indexCheckpointIntervalBytes?: number;
  /** Called once per group commit with the appends and bytes it takes (metrics; must be cheap). */
  onGroupCommit?: (appendCount: number, byteCount: number) => void;
  /** Most segment fence epochs held (see segment-epochs.ts). Default 1,000,000. */
  segmentEpochCountMax?: number;
  /**
   * Bytes kept free on the file system: below it new appends and new segments are refused with
   * DISK_FULL (disk-space.ts). Default min(64 MiB, 1% of the file system); 0 for none.
   */
  diskReserveBytes?: number;
  /** Sparse-index entries held in memory node-wide (index-pager.ts). Default 262,144 (6 MiB). */
  indexEntryCountMaxLoaded?: number;
  /** Quiet active segments are settled by a pass every this many ms (segment-settle.ts). Default 250. */
  segmentSettleIntervalMs?: number;
  /**
   * Bytes queued before a group commit starts while another is in flight (limits.ts). Default
   * 8 KiB; the whole-node simulator sets 1 so that commits overlap as often as they can.
   */
  groupCommitOverlapBytesMin?: number;
  /** Clock for record timestamps. Default Date.now. */
  nowMs?: () => number;
  logger?: WalLogger;
  /** File access; tests pass a FaultInjectingFileIo. Default the real filesystem. */
  fileIo?: FileIo;
  /** Timers of the group commit and the interval policy. Default the real ones (the simulator's own). */
  scheduler?: Scheduler;
}

export type { DiskSpaceStatus, SegmentImport, WalReplicatedRecord };

/** An append whose offsets and timestamp are known at once; `durable` settles like `append`'s promise. */
export interface AssignedAppend extends AppendResult {
  durable: Promise<AppendResult>;
}

/** Rounds of waiting for in-flight group commits before `drain` gives up (each round settles one). */
const drainRoundCountMax = 1_000_000;

const topicNamePattern = /^[A-Za-z0-9._-]{1,200}$/;

function assertTopicName(topic: string): void {
  assert(topicNamePattern.test(topic) && topic !== '.' && topic !== '..', `invalid topic name '${topic}'`);
}

const silentLogger: WalLogger = { info() {}, warn() {}, error() {} };

/**
 * Seals an older segment a crash left unsealed. On a full disk it is sealed in memory only (its
 * records are durable: openSegment made them so): the next open finds it unsealed and older than
 * the newest again, and writes the marker then. Serving what is on disk needs no free space.
 */
function sealOnOpen(segment: Segment, disk: DiskSpace): void {
  try {
    segment.seal();
  } catch (error) {
    if (!(error instanceof WalError) || error.code !== WalErrorCode.DISK_FULL) throw error;
    disk.noteEnospc();
    disk.warn(
      'checkpointFailed',
      { topic: segment.topic, segmentId: segment.id },
      'Disk full: an older segment is sealed in memory; its seal marker is written at a later open',
    );
    segment.sealed = true;
  }
}

export class Wal {
  private readonly topicMap = new Map<string, TopicState>();
  private readonly ctx: SegmentContext;
  private readonly limits: WalLimits;
  private readonly io: FileIo;
  private readonly nowMs: () => number;
  private readonly logger: WalLogger;
  private readonly stat: WalStats = {
    corruptRecordCount: 0,
    appendCount: 0,
    recordCount: 0,
    fsyncCount: 0,
    bytesWritten: 0,
    groupCommitCount: 0,
  };
  private readonly topicsDir: string;
  private readonly trashDir: string;
  private readonly epochs: SegmentEpochs;
  private readonly imports: SegmentImports;
  /** Segments with queued appends, in the order they got their first one. */
  private queued: Segment[] = [];
  private queuedBytes = 0;
  private queuedAppends = 0;
  private flushScheduled = false;
  /** Segments whose queued appends wait for a background preallocation to end. */
  private readonly deferred = new Set<Segment>();
  /** Group commits whose fdatasyncs run in the thread pool (at most groupCommitInFlightMax). */
  private inFlightCount = 0;
  /** Settles when the newest group commit in flight has (they settle in order; never rejects). */
  private inFlightTail: Promise<void> = Promise.resolve();
  private readonly scratch = { buf: Buffer.allocUnsafe(1024 * 1024) };
  private intervalTimer: TimerHandle | null = null;
  private settleTimer: TimerHandle | null = null;
  private readonly indexPager: IndexPager;
  private readonly settler: SegmentSettler;
  private readonly scheduler: Scheduler;
  private closed = false;
  private readonly flushBound = () => this.flush();
  private readonly disk: DiskSpace;
  /** Preallocated zeros are to be given back (the disk was found full) at the next safe point. */
  private giveBackDue = false;
  private givenBackAtMs = Number.NEGATIVE_INFINITY;

  private constructor(private readonly options: WalOptions) {
    this.limits = resolveWalLimits(options);
    this.io = options.fileIo ?? realFileIo;
    this.nowMs = options.nowMs ?? Date.now;
    this.scheduler = options.scheduler ?? realScheduler;
    this.logger = options.logger ?? silentLogger;
    const reserve = options.diskReserveBytes;
    assert(reserve === undefined || (Number.isSafeInteger(reserve) && reserve >= 0), 'disk reserve in bytes');
    this.disk = new DiskSpace(
      this.io,
      options.rootDir,
      reserve ?? null,
      // Not `nowMs` (the records' clock, which tests script): checks are timed on the monotonic one.
      () => this.scheduler.monotonicMs(),
      this.logger,
      () => {
        this.giveBackDue = true;
      },
    );
    this.indexPager = new IndexPager(this.limits.indexEntryCountMaxLoaded);
    this.settler = new SegmentSettler(this.io, this.logger);
    this.ctx = {
      io: this.io,
      limits: this.limits,
      // Decoding accepts every size the WAL may ever have been configured with (see limits.ts).
      lengthMax: recordLengthMax(walLimits.recordSizeMaxBytesLimit),
      logger: this.logger,
      stats: this.stat,
      onExtended: (segment) => this.onExtended(segment),
      disk: this.disk,
      indexPager: this.indexPager,
    };
    this.topicsDir = path.join(options.rootDir, 'topics');
    this.trashDir = path.join(options.rootDir, 'trash');
    this.epochs = new SegmentEpochs(this.io, this.logger, this.topicsDir, this.limits.segmentEpochCountMax);
    this.imports = new SegmentImports({
      ctx: this.ctx,
      topicsDir: this.topicsDir,
      topicMap: this.topicMap,
      scratch: this.scratch,
      isClosed: () => this.closed,
      hasEpochs: (topic) => this.epochs.hasTopic(topic),
    });
  }

  /** Opens (creating rootDir when missing) and recovers every segment of every topic. */
  static async open(options: WalOptions): Promise<Wal> {
    const wal = new Wal(options);
    wal.recoverAll();
    const policy = options.fsyncPolicy;
    if (policy.kind === 'interval') {
      assert(
        Number.isSafeInteger(policy.intervalMs) && policy.intervalMs > 0,
        'fsync interval must be positive',
      );
      wal.intervalTimer = wal.scheduler.setInterval(() => wal.syncDirty(), policy.intervalMs);
      wal.intervalTimer.unref?.();
    }
    wal.settleTimer = wal.scheduler.setInterval(
      () => wal.settler.pass(wal.topicMap.values(), wal.inFlightCount > 0 || wal.closed),
      wal.limits.segmentSettleIntervalMs,
    );
    wal.settleTimer.unref?.();
    return wal;
  }

  private recoverAll(): void {
    const { io } = this;
    try {
      io.mkdir(this.topicsDir);
      io.mkdir(this.trashDir);
      for (const name of io.list(this.trashDir)) io.removeTree(path.join(this.trashDir, name));
      io.fsyncDir(this.options.rootDir);
    } catch (error) {
      throw walErrorFromIo(error, `opening WAL directory '${this.options.rootDir}'`);
    }
    for (const name of io.list(this.topicsDir).sort()) {
      if (!topicNamePattern.test(name) || name === '.' || name === '..') {
        this.logger.warn({ name }, 'Ignoring a directory that is not a topic name');
        continue;
      }
      this.recoverTopic(name);
    }
    this.logger.info(
      { topics: this.topicMap.size, corruptRecordCount: this.stat.corruptRecordCount },
      'WAL recovered',
    );
  }

  private recoverTopic(name: string): void {
    const { io, logger } = this;
    const dir = path.join(this.topicsDir, name);
    // Before the segments: a committed import replaces or adds one. (One listing when there is
    // none: a directory listing is most of what opening a quiet topic costs.)
    let files = io.list(dir);
    if (files.some((file) => file.endsWith('.import'))) {
      recoverImports(this.ctx, name, dir);
      files = io.list(dir);
    }
    const byId = new Map<number, Set<string>>();
    const epochIds: number[] = [];
    for (const file of files) {
      const parsed = parseSegmentFileName(file);
      if (parsed === null) {
        const epochId = parseEpochFileName(file);
        if (epochId !== null) epochIds.push(epochId);
        else if (file.endsWith('.tmp')) io.unlink(path.join(dir, file));
        continue;
      }
      const exts = byId.get(parsed.id) ?? new Set<string>();
      byId.set(parsed.id, exts);
      exts.add(parsed.ext);
    }
    const segments: Segment[] = [];
    for (const id of [...byId.keys()].sort((a, b) => a - b)) {
      const exts = byId.get(id)!;
      if (!exts.has('wal')) {
        // Left by a retention delete that removed the data file first.
        for (const ext of exts) io.unlink(path.join(dir, `${String(id).padStart(20, '0')}.${ext}`));
        io.fsyncDir(dir);
        continue;
      }
      const segment = openSegment(this.ctx, name, dir, id, exts);
      if (segment !== null) segments.push(segment);
    }
    for (const id of epochIds) this.epochs.load(name, id);
    if (segments.length === 0) {
      // A replica fenced before it got any record keeps its epochs (and so the directory).
      if (!this.epochs.hasTopic(name)) {
        io.removeTree(dir);
        io.fsyncDir(this.topicsDir);
      }
      return;
    }
    // Only the newest segment may stay active; an older unsealed one lost its seal marker in a crash.
    for (let i = 0; i < segments.length - 1; i++) {
      const segment = segments[i]!;
      if (!segment.sealed) {
        logger.warn(
          { topic: name, segmentId: segment.id },
          'Sealing an older segment left unsealed by a crash',
        );
        sealOnOpen(segment, this.disk);
      }
    }
    const last = segments[segments.length - 1]!;
    let lastTimestampMs = 0;
    for (const s of segments) lastTimestampMs = Math.max(lastTimestampMs, s.lastTimestampMs ?? 0);
    this.topicMap.set(name, { name, dir, segments, active: last.sealed ? null : last, lastTimestampMs });
  }

  /** Topics that have at least one local segment, sorted. */
  topics(): string[] {
    return [...this.topicMap.keys()].sort();
  }

  /** The topic's local segments, ascending by id; [] for an unknown topic. */
  segments(topic: string): WalSegmentInfo[] {
    return this.topicMap.get(topic)?.segments.map((s) => s.info()) ?? [];
  }

  /** The local segment `segmentId` of the topic, or undefined when this node does not hold it. */
  segmentInfo(topic: string, segmentId: number): WalSegmentInfo | undefined {
    return this.topicMap
      .get(topic)
      ?.segments.find((s) => s.id === segmentId)
      ?.info();
  }

  /**
   * Creates a new active segment. The topic must have no active one; ids only grow, and the base
   * is at or above the previous segment's end (after `truncateSegment`, its new end).
   */
  async createSegment(topic: string, segmentId: number, baseOffset: number): Promise<void> {
    assertTopicName(topic);
    this.assertOpen();
    assert(Number.isSafeInteger(segmentId) && segmentId >= 1, 'segment ids start at 1');
    assert(Number.isSafeInteger(baseOffset) && baseOffset >= 0, 'base offsets are non-negative');
    // A new segment costs a file, its first preallocation and an index: none goes into the reserve.
    const refused = this.refuseFull(
      walLimits.segmentPreallocateBytesMin,
      `creating segment ${segmentId} of topic '${topic}'`,
    );
    if (refused !== null) throw refused;
    let t = this.topicMap.get(topic);
    if (t !== undefined) {
      assert(t.active === null, `topic '${topic}' already has an active segment`);
      const last = t.segments[t.segments.length - 1];
      if (last !== undefined) {
        assert(segmentId > last.id, 'segment ids increase');
        assert(baseOffset >= last.endOffset, 'segments do not overlap');
      }
      if (t.segments.length >= walLimits.segmentCountMaxPerTopic) {
        throw new WalError(
          WalErrorCode.UNAVAILABLE,
          `topic '${topic}' holds the maximum number of local segments`,
        );
      }
    } else {
      if (this.topicMap.size >= walLimits.topicCountMax) {
        throw new WalError(WalErrorCode.UNAVAILABLE, 'the WAL holds the maximum number of topics');
      }
      const dir = path.join(this.topicsDir, topic);
      try {
        this.io.mkdir(dir);
        this.io.fsyncDir(this.topicsDir);
      } catch (error) {
        throw walErrorFromIo(error, `creating topic directory '${topic}'`);
      }
      t = { name: topic, dir, segments: [], active: null, lastTimestampMs: 0 };
      this.topicMap.set(topic, t);
    }
    let segment: Segment;
    try {
      segment = Segment.create(this.ctx, topic, t.dir, segmentId, baseOffset);
    } catch (error) {
      if (t.segments.length === 0) {
        // A topic exists here only with a segment (its directory also with an epoch).
        this.topicMap.delete(topic);
        try {
          if (!this.topicDirKept(topic)) this.io.removeTree(t.dir);
        } catch {
          // An empty topic directory is removed at the next open.
        }
      }
      throw error;
    }
    t.segments.push(segment);
    t.active = segment;
  }

  /**
   * Appends records to the topic's active segment. Resolves (policy `always`: after fdatasync;
   * otherwise after the write) with the offsets and the timestamp given to every record.
   * Rejects with RECORD_TOO_LARGE / BATCH_TOO_LARGE / BAD_REQUEST (writing nothing), DISK_FULL
   * (nothing written, retry later), TOPIC_NOT_FOUND, or UNAVAILABLE (no active segment, closed,
   * sealing or truncating, or the segment failed).
   */
  append(topic: string, records: readonly WalRecordInput[]): Promise<AppendResult> {
    const pending = this.assign(topic, records);
    return pending instanceof WalError ? Promise.reject(pending) : pending.promise;
  }

  /**
   * `append` with the offsets and the timestamp returned at once: a replication leader sends the
   * records to its followers with them in the same turn, before the local group commit runs.
   * What `append` rejects with before writing (RECORD_TOO_LARGE, BATCH_TOO_LARGE, BAD_REQUEST,
   * TOPIC_NOT_FOUND, UNAVAILABLE) is thrown here as a WalError and nothing is queued; `durable`
   * settles like `append`'s promise (same offsets and timestamp; DISK_FULL or UNAVAILABLE when the
   * write fails). The caller must handle `durable`: an unhandled rejection ends the process.
   */
  appendAssigned(
    topic: string,
    records: readonly WalRecordInput[],
    options: { syncInPool?: boolean } = {},
  ): AssignedAppend {
    const pending = this.assign(topic, records, options.syncInPool === true);
    if (pending instanceof WalError) throw pending;
    const { firstOffset, timestampMs } = pending;
    return {
      firstOffset,
      lastOffset: firstOffset + records.length - 1,
      timestampMs,
      durable: pending.promise,
    };
  }

  /** `append` and `appendAssigned`: validates, hands out offsets and a timestamp, queues. */
  private assign(
    topic: string,
    records: readonly WalRecordInput[],
    syncInPool = false,
  ): PendingAppend | WalError {
    const t = this.topicMap.get(topic);
    const segment = this.activeFor(topic, t);
    if (segment instanceof WalError) return segment;
    if (syncInPool) segment.syncInPool = true;
    const checked = checkBatch(records, segment, this.limits);
    if (checked instanceof WalError) return checked;
    const refused = this.refuseFull(checked.bytes, `appending to topic '${topic}'`);
    if (refused !== null) return refused;
    const topicState = t!;
    const timestampMs = Math.max(this.nowMs(), topicState.lastTimestampMs);
    topicState.lastTimestampMs = timestampMs;
    const firstOffset = segment.assignedEndOffset;
    segment.assignedEndOffset = firstOffset + records.length;
    const pending = new PendingAppend(
      records,
      checked.headerSizes,
      firstOffset,
      timestampMs,
      null,
      checked.bytes,
    );
    this.enqueue(segment, pending);
    return pending;
  }

  /**
   * Appends records that already carry consecutive offsets and timestamps that do not go back (from
   * the log's last record: a follower replica) to the active segment `segmentId`. Records below the segment's assigned end
   * (a resend that overlaps) are skipped: one writer per segment makes them identical. Resolves
   * like `append`: firstOffset is the first offset added, lastOffset + 1 the segment's end; when
   * all were below the end, once the appends queued before are durable, with firstOffset = end and
   * lastOffset = end − 1. Rejects with BAD_REQUEST for a gap (first offset above the end; the
   * error's `expectedOffset` is the end, to resend from), another segment, or bad offsets or
   * timestamps; otherwise like `append`.
   */
  appendReplicated(
    topic: string,
    segmentId: number,
    records: readonly WalReplicatedRecord[],
  ): Promise<AppendResult> {
    const t = this.topicMap.get(topic);
    const segment = this.activeFor(topic, t);
    if (segment instanceof WalError) return Promise.reject(segment);
    if (segment.id !== segmentId) {
      const message = `segment ${segmentId} is not the active segment of '${topic}'`;
      return Promise.reject(new WalError(WalErrorCode.BAD_REQUEST, message));
    }
    const logTimestampMs = lastLogTimestampMs(segment);
    const plan = checkReplicatedBatch(records, segment, logTimestampMs, this.limits);
    if (plan instanceof WalError) return Promise.reject(plan);
    if (plan === null) return this.afterQueued(segment, logTimestampMs);
    const { fresh, checked, timestamps } = plan;
    const refused = this.refuseFull(checked.bytes, `replicating to segment ${segmentId} of topic '${topic}'`);
    if (refused !== null) return Promise.reject(refused);
    const end = segment.assignedEndOffset;
    const previous = timestamps[timestamps.length - 1]!;
    t!.lastTimestampMs = Math.max(t!.lastTimestampMs, previous);
    segment.assignedEndOffset += fresh.length;
    const pending = new PendingAppend(fresh, checked.headerSizes, end, previous, timestamps, checked.bytes);
    this.enqueue(segment, pending);
    return pending.promise;
  }

  /** A resend with nothing new: settles with the end once the segment's last queued append does. */
  private async afterQueued(segment: Segment, timestampMs: number): Promise<AppendResult> {
    const end = segment.assignedEndOffset;
    const last = segment.lastAppend;
    // It settles last (a failed batch fails those queued behind it). A rejected one gave its
    // offsets back (the end moved below it): nothing to wait for.
    if (last !== null && last.firstOffset < end) await last.promise;
    return { firstOffset: end, lastOffset: end - 1, timestampMs };
  }

  private activeFor(topic: string, t: TopicState | undefined): Segment | WalError {
    if (this.closed) return new WalError(WalErrorCode.UNAVAILABLE, 'the WAL is closed');
    if (t === undefined)
      return new WalError(WalErrorCode.TOPIC_NOT_FOUND, `topic '${topic}' has no local segments`);
    const segment = t.active;
    if (segment === null)
      return new WalError(WalErrorCode.UNAVAILABLE, `topic '${topic}' has no active segment`);
    if (segment.failed !== null) return segment.failed;
    if (segment.sealing)
      return new WalError(WalErrorCode.UNAVAILABLE, `topic '${topic}' is sealing its segment`);
    if (segment.truncating)
      return new WalError(WalErrorCode.UNAVAILABLE, `topic '${topic}' is truncating its segment`);
    if (this.queueFull() || segment.pendingBytes >= walLimits.groupCommitSizeMaxBytes) {
      return new WalError(WalErrorCode.UNAVAILABLE, 'the group commit queue is full; retry shortly');
    }
    return segment;
  }

  private enqueue(segment: Segment, pending: PendingAppend): void {
    if (!segment.queuedForFlush && !this.deferred.has(segment)) {
      segment.queuedForFlush = true;
      this.queued.push(segment);
    }
    segment.pending.push(pending);
    segment.lastAppend = pending;
    segment.pendingBytes += pending.encodedBytes;
    this.queuedBytes += pending.encodedBytes;
    this.queuedAppends += 1;
    if (
      this.canFlush() &&
      (this.queuedBytes >= walLimits.groupCommitSizeMaxBytes ||
        this.queuedAppends >= walLimits.groupCommitAppendCountMax)
    ) {
      this.flush();
    } else if (!this.flushScheduled && this.canFlush()) {
      this.flushScheduled = true;
      this.scheduler.setImmediate(this.flushBound);
    }
  }

  /** Whether another group commit may start now. */
  private canFlush(): boolean {
    return (
      this.inFlightCount === 0 ||
      (this.inFlightCount < walLimits.groupCommitInFlightMax &&
        this.queuedBytes >= this.limits.groupCommitOverlapBytesMin)
    );
  }

  /** Whether the queue is full while no group commit can start (appends are refused). */
  private queueFull(): boolean {
    return (
      !this.canFlush() &&
      (this.queuedBytes >= walLimits.groupCommitSizeMaxBytes ||
        this.queuedAppends >= walLimits.groupCommitAppendCountMax)
    );
  }

  /**
   * The group commit: one write per segment with queued appends, then (policy `always`) one
   * fdatasync per file: synchronously when one file was touched, in parallel in the thread pool when
   * several were or a segment syncs in the pool. Up to groupCommitInFlightMax of those run at
   * once: the next is written (after the batches in flight) and its fdatasyncs issued while the
   * previous ones' run; they settle in order (syncInParallel).
   */
  private flush(): void {
    this.flushScheduled = false;
    if (!this.canFlush()) return;
    if (this.giveBackDue) this.giveBackPreallocation();
    const segments = this.queued;
    if (segments.length === 0) return;
    this.options.onGroupCommit?.(this.queuedAppends, this.queuedBytes);
    this.queued = [];
    this.queuedBytes = 0;
    this.queuedAppends = 0;
    const sync = this.options.fsyncPolicy.kind === 'always';
    // Behind a group commit in flight, a segment's batch must settle after its earlier one: in order.
    const parallel = sync && (this.inFlightCount > 0 || segments.length > 1 || segments[0]!.syncInPool);
    this.stat.groupCommitCount += 1;
    const written: BatchWrite[] = [];
    for (let s = 0; s < segments.length; s++) {
      const segment = segments[s]!;
      segment.queuedForFlush = false;
      const queued = segment.pending;
      let batch: BatchWrite | 'deferred' | null;
      try {
        batch = segment.writeBatch(this.scratch, sync && !parallel, sync);
      } catch (error) {
        const walError = walErrorFromIo(error, `group commit of topic '${segment.topic}'`);
        for (const append of queued) append.reject(walError);
        continue;
      }
      if (batch === null) continue;
      if (batch === 'deferred') {
        this.deferred.add(segment);
        continue;
      }
      if (parallel) {
        written.push(batch);
      } else {
        segment.commitBatch(batch, sync);
        this.acknowledge(batch);
      }
    }
    if (written.length > 0) {
      this.inFlightCount += 1;
      this.inFlightTail = this.syncInParallel(written, this.inFlightTail);
    }
  }

  /**
   * fdatasyncs the files of one group commit in parallel: in the thread pool, except one file
   * (the first not marked `syncInPool`) on this thread meanwhile: the appends of this group commit
   * wait for all of them anyway. Then, once the group commit before it (`previous`) has settled,
   * acknowledges each batch, or fails it: a batch that an earlier one's failure cut off is failed
   * already (a later fdatasync's success says nothing of pages an earlier one failed to write).
   */
  private async syncInParallel(written: BatchWrite[], previous: Promise<void>): Promise<void> {
    const inline = written.findIndex((b) => !b.segment.syncInPool);
    const pending = written.map((b, i) => (i === inline ? null : this.io.fdatasyncAsync(b.segment.fd)));
    let inlineResult: PromiseSettledResult<void> = { status: 'fulfilled', value: undefined };
    if (inline >= 0) {
      try {
        this.io.fdatasync(written[inline]!.segment.fd);
      } catch (error) {
        inlineResult = { status: 'rejected', reason: error };
      }
    }
    const settled = await Promise.allSettled(pending.map((p) => p ?? Promise.resolve()));
    await previous;
    const results = settled.map((r, i) => (i === inline ? inlineResult : r));
    this.stat.fsyncCount += written.length;
    for (let i = 0; i < written.length; i++) {
      const batch = written[i]!;
      const result = results[i]!;
      if (batch.failure !== null) continue;
      if (result.status === 'fulfilled') {
        batch.segment.commitBatch(batch, true);
        this.acknowledge(batch);
      } else {
        const error = batch.segment.failBatch(batch, result.reason);
        for (const append of batch.appends) append.reject(error);
      }
    }
    this.inFlightCount -= 1;
    if (this.giveBackDue) this.giveBackPreallocation();
    if (this.queued.length > 0) this.flush();
  }

  /**
   * DISK_FULL when `bytes` more would go into the disk reserve (disk-space.ts), else null. A full
   * disk also gives the preallocated zeros of every active segment back (at most once per
   * diskCheckIntervalMs), so that what is freed goes to appends, not to zeros ahead of them.
   */
  private refuseFull(bytes: number, what: string): WalError | null {
    const refused = this.disk.refuse(bytes, what);
    if (refused === null) return null;
    const now = this.scheduler.monotonicMs();
    if (now - this.givenBackAtMs >= diskSpaceLimits.diskCheckIntervalMs) this.giveBackDue = true;
    if (this.giveBackDue) this.giveBackPreallocation();
    return refused;
  }

  /**
   * Truncates the preallocated zeros of every active segment (Segment.releasePreallocation), only
   * while no parallel group commit is in flight: its batches are written past endPosition and not
   * yet committed. Otherwise it stays due and runs when that group commit ends.
   */
  private giveBackPreallocation(): void {
    if (this.inFlightCount > 0 || this.closed) return;
    this.giveBackDue = false;
    this.givenBackAtMs = this.scheduler.monotonicMs();
    let bytes = 0;
    for (const t of this.topicMap.values()) if (t.active !== null) bytes += t.active.releasePreallocation();
    if (bytes > 0) {
      this.disk.refresh(true);
      this.logger.info({ bytes }, 'Disk full: preallocated space given back');
    }
  }

  /** Free space, the reserve, and whether appends are refused for a full disk (METRICS). */
  diskSpace(): DiskSpaceStatus {
    return this.disk.status();
  }

  private acknowledge(batch: BatchWrite): void {
    const stat = this.stat;
    const appends = batch.appends;
    // Settled: nothing waits for it any more (and its records are not kept alive).
    if (batch.segment.lastAppend === appends[appends.length - 1]) batch.segment.lastAppend = null;
    stat.appendCount += appends.length;
    for (let i = 0; i < appends.length; i++) {
      const append = appends[i]!;
      const n = append.records.length;
      stat.recordCount += n;
      append.resolve({
        firstOffset: append.firstOffset,
        lastOffset: append.firstOffset + n - 1,
        timestampMs: append.timestampMs,
      });
    }
  }

  /** A background preallocation ended: appends that waited for it go into the next group commit. */
  private onExtended(segment: Segment): void {
    if (!this.deferred.delete(segment) || segment.pending.length === 0 || segment.queuedForFlush) return;
    segment.queuedForFlush = true;
    this.queued.push(segment);
    if (!this.flushScheduled && this.canFlush()) {
      this.flushScheduled = true;
      this.scheduler.setImmediate(this.flushBound);
    }
  }

  /** Resolves once no group commit is in flight and nothing is queued (everything accepted is settled). */
  private async drain(): Promise<void> {
    for (let round = 0; round < drainRoundCountMax; round++) {
      if (this.inFlightCount > 0) {
        await this.inFlightTail;
        continue;
      }
      if (this.deferred.size > 0) {
        await Promise.all([...this.deferred].map((segment) => segment.extending));
        continue;
      }
      if (this.queued.length === 0) return;
      this.flush();
    }
    throw new WalError(WalErrorCode.UNAVAILABLE, 'the group commit queue did not drain');
  }

  /** Policy `interval`: fdatasync every segment with written but not yet durable records. */
  private syncDirty(): void {
    for (const t of this.topicMap.values()) {
      const segment = t.active;
      if (segment === null) continue;
      try {
        segment.syncIfDirty();
      } catch {
        // Logged and recorded on the segment (failed); later appends to it are rejected.
      }
    }
  }

  /**
   * Seals the topic's active segment once every append already accepted for it is written and
   * durable; afterwards it takes no appends. Returns the sealed segment.
   */
  async sealActive(topic: string): Promise<WalSegmentInfo> {
    this.assertOpen();
    const t = this.topicMap.get(topic);
    if (t === undefined)
      throw new WalError(WalErrorCode.TOPIC_NOT_FOUND, `topic '${topic}' has no local segments`);
    const segment = t.active;
    if (segment === null)
      throw new WalError(WalErrorCode.UNAVAILABLE, `topic '${topic}' has no active segment`);
    if (segment.sealing || segment.truncating)
      throw new WalError(WalErrorCode.UNAVAILABLE, `topic '${topic}' is already sealing or truncating`);
    // From here new appends are refused; those already accepted are written and made durable.
    segment.sealing = true;
    try {
      await this.drain();
      while (segment.extending !== null) await segment.extending;
      if (t.active !== segment || this.closed) {
        throw new WalError(WalErrorCode.UNAVAILABLE, `topic '${topic}' changed while sealing`);
      }
      assert.equal(segment.pending.length, 0, 'nothing is queued on a sealing segment after the drain');
      segment.seal();
    } finally {
      segment.sealing = false;
    }
    t.active = null;
    return segment.info();
  }

  /**
   * Removes every record at offset >= endOffset from the local segment `segmentId` (active or
   * sealed), durably and crash-safely (truncate.ts), after the appends already accepted for it
   * settled (new ones are refused meanwhile with UNAVAILABLE). An active segment then takes
   * appends from endOffset on; a sealed one stays sealed with the new end (its seal marker is
   * rewritten), so a next segment may start at endOffset. Truncating to the end is a no-op.
   * Rejects with TOPIC_NOT_FOUND, BAD_REQUEST (segment not held here, endOffset outside
   * [baseOffset, end]), UNAVAILABLE (closed, already sealing or truncating, changed meanwhile, the
   * segment failed), CORRUPT_RECORD (endOffset inside corrupt records) or DISK_FULL (nothing
   * changed). Returns the segment's new info.
   */
  async truncateSegment(topic: string, segmentId: number, endOffset: number): Promise<WalSegmentInfo> {
    this.assertOpen();
    const t = this.topicMap.get(topic);
    if (t === undefined)
      throw new WalError(WalErrorCode.TOPIC_NOT_FOUND, `topic '${topic}' has no local segments`);
    const segment = t.segments.find((s) => s.id === segmentId);
    if (segment === undefined)
      throw new WalError(WalErrorCode.BAD_REQUEST, `segment ${segmentId} of '${topic}' is not stored here`);
    const outside = cutOutside(segment, endOffset, segment.assignedEndOffset);
    if (outside !== null) throw outside;
    if (segment.sealing || segment.truncating)
      throw new WalError(
        WalErrorCode.UNAVAILABLE,
        `segment ${segmentId} of '${topic}' is busy sealing or truncating`,
      );
    segment.truncating = true;
    try {
      await this.drain();
      while (segment.extending !== null) await segment.extending;
      if (this.closed || this.topicMap.get(topic) !== t || !t.segments.includes(segment))
        throw new WalError(WalErrorCode.UNAVAILABLE, `segment ${segmentId} of '${topic}' changed meanwhile`);
      assert.equal(segment.pending.length, 0, 'nothing is queued on a truncating segment after the drain');
      // Appends it waited for may have failed (their offsets were given back).
      const stillOutside = cutOutside(segment, endOffset, segment.endOffset);
      if (stillOutside !== null) throw stillOutside;
      truncateSegmentAt(this.ctx, segment, endOffset);
    } finally {
      segment.truncating = false;
    }
    return segment.info();
  }

  /** The segment's fence epoch: the highest `raiseSegmentEpoch` stored; 0 when none ever was. */
  segmentEpoch(topic: string, segmentId: number): number {
    return this.epochs.get(topic, segmentId);
  }

  /**
   * Stores max(current, epoch) as the segment's fence epoch, durably before resolving, and
   * resolves with it. Works whether or not this node holds data of the topic or the segment.
   * Rejects with BAD_REQUEST (epoch or id not a non-negative / positive integer), UNAVAILABLE
   * (closed, segmentEpochCountMax epochs held, I/O error) or DISK_FULL; nothing changed then.
   */
  async raiseSegmentEpoch(topic: string, segmentId: number, epoch: number): Promise<number> {
    assertTopicName(topic);
    this.assertOpen();
    return this.epochs.raise(topic, segmentId, epoch, this.topicMap.has(topic));
  }

  /**
   * Starts an import of segment `segmentId` of the topic from `baseOffset` (segment repair: a copy
   * of a sealed segment from another replica). The returned SegmentImport takes the records into
   * temporary files no reader sees; its `finish(endOffset)` seals them and puts the segment in
   * place: in id order among the local segments (below the active one, if any), replacing a local
   * sealed copy of the same id, keeping its epoch; `abort()` removes them. Works whether or not
   * the node holds data of the topic. Crash-safe: the next open completes a committed import and
   * removes any other (segment-import.ts). Rejects with BAD_REQUEST (id or base not an integer, the
   * base inside the previous local segment, the id not below the active segment's), UNAVAILABLE
   * (closed, segmentImportCountMax imports in progress, this segment being imported already, limits
   * on topics or segments) or DISK_FULL.
   */
  async importSegment(topic: string, segmentId: number, baseOffset: number): Promise<SegmentImport> {
    assertTopicName(topic);
    this.assertOpen();
    return this.imports.start(topic, segmentId, baseOffset);
  }

  /**
   * Records from `offset`: from the local segment holding it, continuing into the next local
   * segment when it is contiguous. [] when offset is the end (or not yet written);
   * OFFSET_OUT_OF_RANGE below the first stored offset, above the end, or in a gap between local
   * segments. At least one record when one exists, even beyond byteCountMax (value + header bytes).
   */
  read(topic: string, offset: number, limits: { recordCountMax: number; byteCountMax: number }): WalRecord[] {
    const t = this.topicMap.get(topic);
    if (t === undefined)
      throw new WalError(WalErrorCode.TOPIC_NOT_FOUND, `topic '${topic}' has no local segments`);
    if (!Number.isSafeInteger(offset))
      throw new WalError(WalErrorCode.BAD_REQUEST, 'offset must be an integer');
    if (!(limits.recordCountMax >= 1)) {
      throw new WalError(WalErrorCode.BAD_REQUEST, 'recordCountMax must be at least 1');
    }
    const segments = t.segments;
    const first = segments[0]!;
    const end = this.endOf(t);
    if (offset < first.baseOffset || offset > end) {
      throw new WalError(
        WalErrorCode.OFFSET_OUT_OF_RANGE,
        `offset ${offset} of topic '${topic}' is outside the local range [${first.baseOffset}, ${end}]`,
      );
    }
    // The last segment whose base is at or below offset holds it (later empty segments win ties).
    let i = segments.length - 1;
    while (i > 0 && segments[i]!.baseOffset > offset) i--;
    let segment = segments[i]!;
    if (offset >= segment.endOffset) {
      if (segment === t.active || (offset === segment.endOffset && i === segments.length - 1)) return [];
      throw new WalError(
        WalErrorCode.OFFSET_OUT_OF_RANGE,
        `offset ${offset} of topic '${topic}' is not stored on this node`,
      );
    }
    const out: WalRecord[] = [];
    const budget = { bytes: 0 };
    let from = offset;
    for (;;) {
      const complete = segment.readInto(out, from, limits, budget);
      if (!complete || out.length >= limits.recordCountMax) break;
      const next = segments[i + 1];
      if (next === undefined || next.baseOffset !== segment.endOffset) break;
      i += 1;
      from = next.baseOffset;
      segment = next;
    }
    return out;
  }

  private endOf(t: TopicState): number {
    const last = t.segments[t.segments.length - 1]!;
    return t.active !== null ? t.active.assignedEndOffset : last.endOffset;
  }

  /** First locally stored offset; 0 for a topic with no local segments. */
  startOffset(topic: string): number {
    const t = this.topicMap.get(topic);
    return t === undefined ? 0 : t.segments[0]!.baseOffset;
  }

  /** The next offset the topic hands out (written or queued); 0 for a topic with no local segments. */
  endOffset(topic: string): number {
    const t = this.topicMap.get(topic);
    return t === undefined ? 0 : this.endOf(t);
  }

  /** First offset with timestamp >= timestampMs (endOffset when none). */
  offsetForTimestamp(topic: string, timestampMs: number): number {
    const t = this.topicMap.get(topic);
    if (t === undefined)
      throw new WalError(WalErrorCode.TOPIC_NOT_FOUND, `topic '${topic}' has no local segments`);
    for (const segment of t.segments) {
      if (segment.lastTimestampMs === null || segment.lastTimestampMs < timestampMs) continue;
      if (segment.firstTimestampMs !== null && segment.firstTimestampMs >= timestampMs)
        return segment.baseOffset;
      const found = segment.offsetForTimestamp(timestampMs);
      if (found !== null) return found;
    }
    return this.endOf(t);
  }

  /**
   * Deletes the leading sealed segments that end at or below `startOffset` (retention decided
   * elsewhere and committed to the metadata). Never the active segment. Returns their ids.
   */
  async deleteSegmentsBelow(topic: string, startOffset: number): Promise<number[]> {
    this.assertOpen();
    const t = this.topicMap.get(topic);
    if (t === undefined) return [];
    const deleted: number[] = [];
    while (t.segments.length > 0) {
      const oldest = t.segments[0]!;
      if (!oldest.sealed || oldest === t.active || oldest.endOffset > startOffset) break;
      try {
        oldest.deleteFiles();
      } catch (error) {
        throw walErrorFromIo(error, `deleting segment ${oldest.id} of topic '${topic}'`);
      }
      t.segments.shift();
      deleted.push(oldest.id);
      this.logger.info(
        { topic, segmentId: oldest.id, endOffset: oldest.endOffset },
        'Retention deleted a segment',
      );
    }
    if (deleted.length > 0) {
      try {
        // Their epochs too, and those of lower ids held without data (their offsets are lower).
        this.epochs.deleteUpTo(topic, deleted[deleted.length - 1]!);
        this.io.fsyncDir(t.dir);
      } catch (error) {
        throw walErrorFromIo(error, `deleting segment epochs of topic '${topic}'`);
      }
      if (t.segments.length === 0) this.dropTopicState(t);
    }
    return deleted;
  }

  private dropTopicState(t: TopicState): void {
    this.topicMap.delete(t.name);
    if (this.topicDirKept(t.name)) return;
    this.io.removeTree(t.dir);
    this.io.fsyncDir(this.topicsDir);
  }

  /** Whether a topic without segments keeps its directory: it holds fence epochs or import files. */
  private topicDirKept(topic: string): boolean {
    return this.epochs.hasTopic(topic) || this.imports.hasTopic(topic);
  }

  /**
   * Deletes every local segment of the topic, its segment epochs and its imports in progress
   * (their later calls fail with UNAVAILABLE). Queued appends to it are written first.
   */
  async deleteTopic(topic: string): Promise<void> {
    this.assertOpen();
    const hadImports = this.imports.cancelTopic(topic);
    const t = this.topicMap.get(topic);
    if (t === undefined) {
      if (this.epochs.hasTopic(topic) || hadImports)
        this.trashTopicDir(topic, path.join(this.topicsDir, topic));
      return;
    }
    // Appends accepted before this call are written first; later ones are refused.
    if (t.active !== null) t.active.sealing = true;
    await this.drain();
    for (const s of t.segments) while (s.extending !== null) await s.extending;
    if (this.topicMap.get(topic) !== t) return;
    for (const s of t.segments) s.close();
    this.topicMap.delete(topic);
    this.trashTopicDir(topic, t.dir);
  }

  /** Renames the topic's directory into trash/ (durably: one step), then removes it. */
  private trashTopicDir(topic: string, dir: string): void {
    const trash = path.join(this.trashDir, `${topic}-${this.nowMs()}`);
    try {
      this.io.rename(dir, trash);
      this.io.fsyncDir(this.topicsDir);
      this.io.fsyncDir(this.trashDir);
      // Forgotten only once gone for good: memory never says less than the disk.
      this.epochs.dropTopic(topic);
      this.io.removeTree(trash);
    } catch (error) {
      throw walErrorFromIo(error, `deleting topic '${topic}'`);
    }
  }

  stats(): WalStats {
    return { ...this.stat };
  }

  /** The index pager's and the settler's figures (what the index costs in memory now). */
  memoryStats(): {
    indexEntriesLoaded: number;
    indexesLoaded: number;
    indexEvictionCount: number;
    segmentSettleCount: number;
    segmentsUnsettled: number;
  } {
    return { ...this.indexPager.stats(), ...this.settler.stats() };
  }

  /**
   * Writes queued appends, makes everything durable, checkpoints indexes, closes files. Imports in
   * progress end (their files are removed).
   */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.imports.closeAll();
    await this.drain();
    for (const t of this.topicMap.values())
      for (const s of t.segments) while (s.extending !== null) await s.extending;
    if (this.intervalTimer !== null) this.scheduler.clearInterval(this.intervalTimer);
    if (this.settleTimer !== null) this.scheduler.clearInterval(this.settleTimer);
    for (const t of this.topicMap.values()) {
      for (const s of t.segments) {
        if (!s.sealed && s.failed === null) {
          try {
            if (s.checkpointPosition !== s.endPosition) s.writeCheckpoint();
            s.trimPreallocation();
          } catch (error) {
            this.logger.error(
              { topic: t.name, segmentId: s.id, err: String(error) },
              'Checkpoint at close failed',
            );
          }
        }
        s.close();
      }
    }
    this.topicMap.clear();
  }

  private assertOpen(): void {
    if (this.closed) throw new WalError(WalErrorCode.UNAVAILABLE, 'the WAL is closed');
  }
}
