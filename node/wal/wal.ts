/**
 * The WAL of one storage node: topics → local segments, the group commit, the fsync policy,
 * reads across local segments, timestamps, retention and topic deletion.
 *
 * Group commit: `append` validates, hands out offsets and a timestamp, queues the records on the
 * topic's active segment and returns a promise. The first append of an event-loop turn schedules
 * one `setImmediate` flush; it encodes each touched segment's queue into one buffer, writes it
 * with one positioned write and (policy `always`) one fdatasync per file, synchronously (the Redis
 * AOF model), then settles the promises. A queue that reaches groupCommitSizeMaxBytes or
 * groupCommitAppendCountMax is flushed at once, so memory stays bounded.
 *
 * Layout under rootDir: `topics/<topic>/<id:20 digits>.{wal,idx,seal}` and `trash/` (topics being
 * deleted: renamed there first, so a crash never leaves half a topic).
 */
import assert from 'node:assert';
import path from 'node:path';
import type { FileIo } from '../storage-io/file-io.js';
import { realFileIo } from '../storage-io/file-io.js';
import { type Scheduler, type TimerHandle, realScheduler } from '../scheduler.js';
import type { FsyncPolicy } from './fsync-policy.js';
import type { WalLimits } from './limits.js';
import { recordHeaderSizeBytes, resolveWalLimits, walLimits } from './limits.js';
import { headersSizeBytes, recordLengthMax } from './record-codec.js';
import type {
  AppendResult,
  SegmentContext,
  WalLogger,
  WalRecord,
  WalRecordInput,
  WalSegmentInfo,
  WalStats,
} from './segment.js';
import type { BatchWrite } from './segment.js';
import { PendingAppend, Segment } from './segment.js';
import { parseSegmentFileName } from './segment-files.js';
import { openSegment } from './segment-recovery.js';
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
  /** Clock for record timestamps. Default Date.now. */
  nowMs?: () => number;
  logger?: WalLogger;
  /** File access; tests pass a FaultInjectingFileIo. Default the real filesystem. */
  fileIo?: FileIo;
  /** Timers of the group commit and the interval policy. Default the real ones (the simulator's own). */
  scheduler?: Scheduler;
}

/** A record that already has its offset and timestamp (a follower replica's append). */
export interface WalReplicatedRecord extends WalRecordInput {
  offset: number;
  timestampMs: number;
}

/** Rounds of waiting for in-flight group commits before `drain` gives up (each round settles one). */
const drainRoundCountMax = 1_000_000;

const topicNamePattern = /^[A-Za-z0-9._-]{1,200}$/;

function assertTopicName(topic: string): void {
  assert(topicNamePattern.test(topic) && topic !== '.' && topic !== '..', `invalid topic name '${topic}'`);
}

const silentLogger: WalLogger = { info() {}, warn() {}, error() {} };

interface TopicState {
  readonly name: string;
  readonly dir: string;
  /** Ascending by id. */
  segments: Segment[];
  active: Segment | null;
  /** Timestamp of the last record handed out (monotonic per topic). */
  lastTimestampMs: number;
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
  /** Segments with queued appends, in the order they got their first one. */
  private queued: Segment[] = [];
  private queuedBytes = 0;
  private queuedAppends = 0;
  private flushScheduled = false;
  /** Segments whose queued appends wait for a background preallocation to end. */
  private readonly deferred = new Set<Segment>();
  /** The multi-file group commit whose fdatasyncs are running, if any. */
  private inFlight: Promise<void> | null = null;
  private readonly scratch = { buf: Buffer.allocUnsafe(1024 * 1024) };
  private intervalTimer: TimerHandle | null = null;
  private readonly scheduler: Scheduler;
  private closed = false;
  private readonly flushBound = () => this.flush();

  private constructor(private readonly options: WalOptions) {
    this.limits = resolveWalLimits(options);
    this.io = options.fileIo ?? realFileIo;
    this.nowMs = options.nowMs ?? Date.now;
    this.scheduler = options.scheduler ?? realScheduler;
    this.logger = options.logger ?? silentLogger;
    this.ctx = {
      io: this.io,
      limits: this.limits,
      // Decoding accepts every size the WAL may ever have been configured with (see limits.ts).
      lengthMax: recordLengthMax(walLimits.recordSizeMaxBytesLimit),
      logger: this.logger,
      stats: this.stat,
      onExtended: (segment) => this.onExtended(segment),
    };
    this.topicsDir = path.join(options.rootDir, 'topics');
    this.trashDir = path.join(options.rootDir, 'trash');
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
    const byId = new Map<number, Set<string>>();
    for (const file of io.list(dir)) {
      const parsed = parseSegmentFileName(file);
      if (parsed === null) {
        if (file.endsWith('.tmp')) io.unlink(path.join(dir, file));
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
      const segment = openSegment(this.ctx, name, dir, id);
      if (segment !== null) segments.push(segment);
    }
    if (segments.length === 0) {
      io.removeTree(dir);
      io.fsyncDir(this.topicsDir);
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
        segment.seal();
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

  /** Creates a new active segment. The topic must have no active one; ids and offsets only grow. */
  async createSegment(topic: string, segmentId: number, baseOffset: number): Promise<void> {
    assertTopicName(topic);
    this.assertOpen();
    assert(Number.isSafeInteger(segmentId) && segmentId >= 1, 'segment ids start at 1');
    assert(Number.isSafeInteger(baseOffset) && baseOffset >= 0, 'base offsets are non-negative');
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
        // A topic exists here only with a segment.
        this.topicMap.delete(topic);
        try {
          this.io.removeTree(t.dir);
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
   * or the segment failed).
   */
  append(topic: string, records: readonly WalRecordInput[]): Promise<AppendResult> {
    const t = this.topicMap.get(topic);
    const segment = this.activeFor(topic, t);
    if (segment instanceof WalError) return Promise.reject(segment);
    const checked = this.checkBatch(records, segment);
    if (checked instanceof WalError) return Promise.reject(checked);
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
    return pending.promise;
  }

  /**
   * Appends records that already carry offsets and timestamps (a follower replica) to the active
   * segment `segmentId`: offsets must continue the segment with no gap, timestamps must not go back.
   * Rejects with BAD_REQUEST otherwise.
   */
  appendReplicated(
    topic: string,
    segmentId: number,
    records: readonly WalReplicatedRecord[],
  ): Promise<AppendResult> {
    const segment = this.activeFor(topic, this.topicMap.get(topic));
    if (segment instanceof WalError) return Promise.reject(segment);
    if (segment.id !== segmentId) {
      return Promise.reject(
        new WalError(
          WalErrorCode.BAD_REQUEST,
          `segment ${segmentId} is not the active segment of '${topic}'`,
        ),
      );
    }
    const checked = this.checkBatch(records, segment);
    if (checked instanceof WalError) return Promise.reject(checked);
    const t = this.topicMap.get(topic)!;
    const timestamps: number[] = [];
    let previous = t.lastTimestampMs;
    for (let i = 0; i < records.length; i++) {
      const r = records[i]!;
      if (r.offset !== segment.assignedEndOffset + i) {
        return Promise.reject(
          new WalError(
            WalErrorCode.BAD_REQUEST,
            `replicated record ${i} has offset ${r.offset}; expected ${segment.assignedEndOffset + i}`,
          ),
        );
      }
      if (!Number.isSafeInteger(r.timestampMs) || r.timestampMs < previous) {
        return Promise.reject(
          new WalError(
            WalErrorCode.BAD_REQUEST,
            `replicated record ${r.offset} has a timestamp that goes back`,
          ),
        );
      }
      previous = r.timestampMs;
      timestamps.push(r.timestampMs);
    }
    t.lastTimestampMs = previous;
    const firstOffset = segment.assignedEndOffset;
    segment.assignedEndOffset += records.length;
    const pending = new PendingAppend(
      records,
      checked.headerSizes,
      firstOffset,
      previous,
      timestamps,
      checked.bytes,
    );
    this.enqueue(segment, pending);
    return pending.promise;
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
    if (this.queueFull() || segment.pendingBytes >= walLimits.groupCommitSizeMaxBytes) {
      return new WalError(WalErrorCode.UNAVAILABLE, 'the group commit queue is full; retry shortly');
    }
    return segment;
  }

  /** Limits of one append; returns its encoded size and header sizes, or the error. */
  private checkBatch(
    records: readonly WalRecordInput[],
    segment: Segment,
  ): { bytes: number; headerSizes: number[] | null } | WalError {
    const n = records.length;
    const { limits } = this;
    if (n === 0) return new WalError(WalErrorCode.BAD_REQUEST, 'an append needs at least one record');
    if (n > limits.batchRecordCountMax) {
      return new WalError(
        WalErrorCode.BATCH_TOO_LARGE,
        `${n} records exceed the batch limit of ${limits.batchRecordCountMax}`,
      );
    }
    if (segment.assignedEndOffset - segment.baseOffset + n > walLimits.segmentRecordCountMax) {
      return new WalError(
        WalErrorCode.UNAVAILABLE,
        `segment ${segment.id} holds the maximum number of records`,
      );
    }
    let bytes = 0;
    let headerSizes: number[] | null = null;
    for (let i = 0; i < n; i++) {
      const record = records[i]!;
      const value = record.value;
      if (!(value instanceof Uint8Array))
        return new WalError(WalErrorCode.BAD_REQUEST, `record ${i} has no byte value`);
      let size = value.length;
      const headers = record.headers;
      if (headers !== undefined) {
        const h = headersSizeBytes(headers);
        if (h < 0) {
          return new WalError(
            WalErrorCode.BAD_REQUEST,
            `record ${i} headers exceed the limits (${walLimits.headerCountMax} headers, keys ` +
              `${walLimits.headerKeySizeMaxBytes} B, values ${walLimits.headerValueSizeMaxBytes} B)`,
          );
        }
        if (h > 0) {
          headerSizes ??= new Array<number>(n).fill(0);
          headerSizes[i] = h;
          size += h;
        }
      }
      if (size > limits.recordSizeMaxBytes) {
        return new WalError(
          WalErrorCode.RECORD_TOO_LARGE,
          `record ${i} is ${size} bytes; the limit is ${limits.recordSizeMaxBytes}`,
        );
      }
      bytes += size;
    }
    if (bytes > limits.batchSizeMaxBytes) {
      return new WalError(
        WalErrorCode.BATCH_TOO_LARGE,
        `the batch is ${bytes} bytes; the limit is ${limits.batchSizeMaxBytes}`,
      );
    }
    return { bytes: bytes + n * recordHeaderSizeBytes, headerSizes };
  }

  private enqueue(segment: Segment, pending: PendingAppend): void {
    if (!segment.queuedForFlush && !this.deferred.has(segment)) {
      segment.queuedForFlush = true;
      this.queued.push(segment);
    }
    segment.pending.push(pending);
    segment.pendingBytes += pending.encodedBytes;
    this.queuedBytes += pending.encodedBytes;
    this.queuedAppends += 1;
    if (
      this.inFlight === null &&
      (this.queuedBytes >= walLimits.groupCommitSizeMaxBytes ||
        this.queuedAppends >= walLimits.groupCommitAppendCountMax)
    ) {
      this.flush();
    } else if (!this.flushScheduled && this.inFlight === null) {
      this.flushScheduled = true;
      this.scheduler.setImmediate(this.flushBound);
    }
  }

  /** Whether the queue is full while a multi-file group commit is in flight (appends are refused). */
  private queueFull(): boolean {
    return (
      this.inFlight !== null &&
      (this.queuedBytes >= walLimits.groupCommitSizeMaxBytes ||
        this.queuedAppends >= walLimits.groupCommitAppendCountMax)
    );
  }

  /**
   * The group commit: one write per segment with queued appends, then (policy `always`) one
   * fdatasync per file: synchronously when one file was touched, in parallel in the thread pool when
   * several were (then the next group commit waits for this one: at most one is in flight).
   */
  private flush(): void {
    this.flushScheduled = false;
    if (this.inFlight !== null) return;
    const segments = this.queued;
    if (segments.length === 0) return;
    this.queued = [];
    this.queuedBytes = 0;
    this.queuedAppends = 0;
    const sync = this.options.fsyncPolicy.kind === 'always';
    const parallel = sync && segments.length > 1;
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
    if (written.length > 0) this.inFlight = this.syncInParallel(written);
  }

  /**
   * fdatasyncs the files of one group commit in parallel: all but the first in the thread pool,
   * the first on this thread meanwhile (it has nothing else to do: every append waits for these).
   */
  private async syncInParallel(written: BatchWrite[]): Promise<void> {
    const pooled = written.slice(1).map((b) => this.io.fdatasyncAsync(b.segment.fd));
    let first: PromiseSettledResult<void>;
    try {
      this.io.fdatasync(written[0]!.segment.fd);
      first = { status: 'fulfilled', value: undefined };
    } catch (error) {
      first = { status: 'rejected', reason: error };
    }
    const results = [first, ...(await Promise.allSettled(pooled))];
    this.stat.fsyncCount += written.length;
    for (let i = 0; i < written.length; i++) {
      const batch = written[i]!;
      const result = results[i]!;
      if (result.status === 'fulfilled') {
        batch.segment.commitBatch(batch, true);
        this.acknowledge(batch);
      } else {
        const error = batch.segment.failBatch(batch, result.reason);
        for (const append of batch.appends) append.reject(error);
      }
    }
    this.inFlight = null;
    if (this.queued.length > 0) this.flush();
  }

  private acknowledge(batch: BatchWrite): void {
    const stat = this.stat;
    const appends = batch.appends;
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
    if (!this.flushScheduled && this.inFlight === null) {
      this.flushScheduled = true;
      this.scheduler.setImmediate(this.flushBound);
    }
  }

  /** Resolves once no group commit is in flight and nothing is queued (everything accepted is settled). */
  private async drain(): Promise<void> {
    for (let round = 0; round < drainRoundCountMax; round++) {
      if (this.inFlight !== null) {
        await this.inFlight;
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
    if (segment.sealing) throw new WalError(WalErrorCode.UNAVAILABLE, `topic '${topic}' is already sealing`);
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
      this.io.fsyncDir(t.dir);
      if (t.segments.length === 0) this.dropTopicState(t);
    }
    return deleted;
  }

  private dropTopicState(t: TopicState): void {
    this.topicMap.delete(t.name);
    this.io.removeTree(t.dir);
    this.io.fsyncDir(this.topicsDir);
  }

  /** Deletes every local segment of the topic. Queued appends to it are written first. */
  async deleteTopic(topic: string): Promise<void> {
    this.assertOpen();
    const t = this.topicMap.get(topic);
    if (t === undefined) return;
    // Appends accepted before this call are written first; later ones are refused.
    if (t.active !== null) t.active.sealing = true;
    await this.drain();
    for (const s of t.segments) while (s.extending !== null) await s.extending;
    if (this.topicMap.get(topic) !== t) return;
    for (const s of t.segments) s.close();
    this.topicMap.delete(topic);
    const trash = path.join(this.trashDir, `${topic}-${this.nowMs()}`);
    try {
      this.io.rename(t.dir, trash);
      this.io.fsyncDir(this.topicsDir);
      this.io.fsyncDir(this.trashDir);
      this.io.removeTree(trash);
    } catch (error) {
      throw walErrorFromIo(error, `deleting topic '${topic}'`);
    }
  }

  stats(): WalStats {
    return { ...this.stat };
  }

  /** Writes queued appends, makes everything durable, checkpoints indexes, closes files. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.drain();
    for (const t of this.topicMap.values())
      for (const s of t.segments) while (s.extending !== null) await s.extending;
    if (this.intervalTimer !== null) this.scheduler.clearInterval(this.intervalTimer);
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
