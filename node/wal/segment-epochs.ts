/**
 * Per-segment fence epochs. When a segment's leader fails, the replication layer fences the
 * segment at a new epoch on every replica; a replica then refuses a stale leader. The epoch must
 * survive a crash (a restarted replica that forgot it would accept the stale leader again), so it
 * is kept in `topics/<topic>/<id:20 digits>.epoch`, replaced atomically and durably (temp file,
 * fsync, rename, directory fsync) before a raise resolves, and only ever raised.
 *
 * An epoch is independent of the segment's data: a replica may be fenced before it received any
 * record, so an epoch may exist for a segment (even a topic) this node holds no data of. The topic
 * directory then holds only epoch files, and recovery keeps it.
 *
 * Memory: one map entry per epoch, at most `segmentEpochCountMax` (new entries beyond it are
 * refused with UNAVAILABLE). Recovery loads every valid file even beyond the limit, because
 * forgetting a fence would be unsafe; it logs when it does.
 */
import path from 'node:path';
import type { FileIo } from '../storage-io/file-io.js';
import { readSmallFile, writeFileDurably } from '../storage-io/durable-file.js';
import { decodeEpochFile, encodeEpochFile, segmentBaseName } from './segment-files.js';
import type { WalLogger } from './segment.js';
import { WalError, WalErrorCode, walErrorFromIo } from './wal-error.js';

/** An epoch file is exactly this long; anything longer is garbage and not read whole. */
const epochFileSizeMaxBytes = 64;

export class SegmentEpochs {
  /** topic → segment id → epoch (> 0; a missing entry is 0). */
  private readonly byTopic = new Map<string, Map<number, number>>();
  private entryCount = 0;

  constructor(
    private readonly io: FileIo,
    private readonly logger: WalLogger,
    private readonly topicsDir: string,
    private readonly entryCountMax: number,
  ) {}

  /** Number of epochs held. */
  get count(): number {
    return this.entryCount;
  }

  /** The segment's fence epoch; 0 when none was ever stored. */
  get(topic: string, segmentId: number): number {
    return this.byTopic.get(topic)?.get(segmentId) ?? 0;
  }

  /** Whether any epoch of the topic is held (its directory must then stay). */
  hasTopic(topic: string): boolean {
    return this.byTopic.has(topic);
  }

  private fileOf(topic: string, segmentId: number): string {
    return path.join(this.topicsDir, topic, `${segmentBaseName(segmentId)}.epoch`);
  }

  /**
   * Loads one epoch file found by recovery. A file that does not decode (or names another
   * segment) is logged and removed: the segment's epoch is then 0, as if it was never fenced.
   * (Files are replaced by rename, so a crash never tears one; garbage means a damaged disk.)
   */
  load(topic: string, segmentId: number): void {
    const file = this.fileOf(topic, segmentId);
    let buf: Buffer | null;
    try {
      buf = readSmallFile(this.io, file, epochFileSizeMaxBytes);
    } catch (error) {
      // Not garbage, unreadable: left in place for the next open (the epoch reads as 0 until then).
      this.logger.error({ topic, segmentId, err: String(error) }, 'Reading a segment epoch file failed');
      return;
    }
    const decoded = buf === null ? null : decodeEpochFile(buf);
    if (decoded === null || decoded.segmentId !== segmentId) {
      this.logger.error({ topic, segmentId }, 'Segment epoch file is corrupt; removed, the epoch reads as 0');
      try {
        this.io.unlink(file);
        this.io.fsyncDir(path.dirname(file));
      } catch {
        // Found and reported again at the next open.
      }
      return;
    }
    if (decoded.epoch === 0) return;
    this.put(topic, segmentId, decoded.epoch);
    if (this.entryCount === this.entryCountMax + 1) {
      this.logger.warn(
        { entryCountMax: this.entryCountMax },
        'More segment epochs on disk than segmentEpochCountMax; all are kept, new ones are refused',
      );
    }
  }

  private put(topic: string, segmentId: number, epoch: number): void {
    let m = this.byTopic.get(topic);
    if (m === undefined) {
      m = new Map();
      this.byTopic.set(topic, m);
    }
    if (!m.has(segmentId)) this.entryCount += 1;
    m.set(segmentId, epoch);
  }

  /**
   * Stores max(current, epoch) durably and returns it. `topicKnown` says the topic directory
   * exists durably already (the WAL holds segments of the topic); otherwise it is made (and the
   * topics directory fsync'd) first. Throws DISK_FULL / UNAVAILABLE (nothing changed then; a
   * leftover temp file is removed at the next open), UNAVAILABLE at the entry limit, or
   * BAD_REQUEST (segment id not a positive integer, epoch not a non-negative one).
   */
  raise(topic: string, segmentId: number, epoch: number, topicKnown: boolean): number {
    if (!Number.isSafeInteger(segmentId) || segmentId < 1)
      throw new WalError(WalErrorCode.BAD_REQUEST, `segment id ${segmentId} is not a positive integer`);
    if (!Number.isSafeInteger(epoch) || epoch < 0)
      throw new WalError(WalErrorCode.BAD_REQUEST, `epoch ${epoch} is not a non-negative integer`);
    const current = this.get(topic, segmentId);
    if (epoch <= current) return current;
    if (current === 0 && this.entryCount >= this.entryCountMax) {
      throw new WalError(
        WalErrorCode.UNAVAILABLE,
        `the WAL holds the maximum number of segment epochs (${this.entryCountMax})`,
      );
    }
    const dir = path.join(this.topicsDir, topic);
    try {
      if (!topicKnown && !this.hasTopic(topic)) {
        this.io.mkdir(dir);
        this.io.fsyncDir(this.topicsDir);
      }
      writeFileDurably(this.io, this.fileOf(topic, segmentId), encodeEpochFile(segmentId, epoch));
    } catch (error) {
      throw walErrorFromIo(error, `storing the epoch of segment ${segmentId} of topic '${topic}'`);
    }
    this.put(topic, segmentId, epoch);
    return epoch;
  }

  /**
   * Deletes the epochs of the topic's segments with ids up to `segmentIdMax` (retention deleted
   * them, and ids grow with offsets). The caller fsyncs the directory.
   */
  deleteUpTo(topic: string, segmentIdMax: number): void {
    const m = this.byTopic.get(topic);
    if (m === undefined) return;
    for (const id of [...m.keys()]) {
      if (id > segmentIdMax) continue;
      const file = this.fileOf(topic, id);
      if (this.io.exists(file)) this.io.unlink(file);
      m.delete(id);
      this.entryCount -= 1;
    }
    if (m.size === 0) this.byTopic.delete(topic);
  }

  /** Forgets the topic's epochs (its directory is being deleted with them). */
  dropTopic(topic: string): void {
    const m = this.byTopic.get(topic);
    if (m === undefined) return;
    this.entryCount -= m.size;
    this.byTopic.delete(topic);
  }
}
