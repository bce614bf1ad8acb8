/**
 * Opening an existing segment after a clean stop or a kill -9. The rules (also in docs/wal.md):
 *
 * 1. The file header must check; a file with a bad header is skipped (and deleted when it holds
 *    nothing but zeros: a create that crashed before it was acknowledged).
 * 2. A valid index checkpoint is trusted up to its durable end after its last entry is verified
 *    to be a record with the right offset; otherwise the scan starts after the file header.
 * 3. The tail is scanned record by record. At a record that fails (length, checksum or offset), the
 *    scan resynchronises on the next record whose checksum holds and whose offset is higher.
 * 4. The durable watermark D is the largest of: the checkpoint's durable end, the seal marker's
 *    end, and (last valid record's offset − its syncedDelta). A failing range that starts at or
 *    above D is a torn tail: the segment ends where it starts, everything after it is dropped and
 *    the file is zeroed from there. A failing range below D was durable once, so it is corruption:
 *    counted, logged, never served, and the records after it stay readable.
 * 5. Bytes after the end of the records of an active segment are made zero, so a later crash can
 *    never expose an old record past a newer, shorter end.
 * 6. A sealed file longer than its seal marker says, whose records reach exactly the marker's end
 *    at the marker's size, is a truncation (truncate.ts) interrupted after it rewrote the marker:
 *    the file is cut back to the marker's size.
 * 7. Recovery needs no free space to serve what is on disk: the index checkpoint it writes is a
 *    hint (on a full disk it is skipped, and the next open scans again), and a tail that cannot be
 *    zeroed for want of space (a hole in a sparse file) is cut off instead.
 */
import { ChunkReader, isZeroRange } from './chunk-reader.js';
import { WalErrorCode, walErrorFromIo } from './wal-error.js';
import { readFully, readSmallFile, writeFully } from '../storage-io/durable-file.js';
import type { FileIo } from '../storage-io/file-io.js';
import { walLimits } from './limits.js';
import {
  checkRecordAt,
  recordBatchContinuesAt,
  recordOffsetAt,
  recordSyncedDeltaAt,
  recordTimestampAt,
} from './record-codec.js';
import type { CorruptRange, SegmentContext } from './segment.js';
import { Segment } from './segment.js';
import type { IndexCheckpoint, SealMarker } from './segment-files.js';
import {
  decodeFileHeader,
  decodeIndexCheckpoint,
  decodeSealMarker,
  segmentBaseName,
  segmentFileHeaderBytes,
} from './segment-files.js';

/** Index checkpoints bigger than this are not loaded (they are hints: the scan covers for them). */
const indexFileSizeMaxBytes = 64 + walLimits.indexEntryCountMax * 24 + 4;

interface Gap extends CorruptRange {
  /** Timestamp of the last valid record before the gap (null when none). */
  lastTimestampBefore: number | null;
  /** Where the last whole append batch before the gap ends. */
  batchEndBefore: BatchEnd;
}

/** The end of a whole append batch: its last record had no "batch continues" flag. */
interface BatchEnd {
  offset: number;
  position: number;
  /** Timestamp of that last record (what the segment's lastTimestampMs is if it ends there). */
  lastTimestampMs: number | null;
}

/**
 * Opens segment `id` in `dir`. Returns null when its data file has no valid header (logged).
 * Sealed or not is decided by a valid seal marker. `present`: the extensions of this segment's
 * files, when the caller has just listed the directory (a restart opens every topic's segments:
 * two existence checks a segment were a tenth of its time); otherwise each file is looked for.
 */
export function openSegment(
  ctx: SegmentContext,
  topic: string,
  dir: string,
  id: number,
  present?: ReadonlySet<string>,
): Segment | null {
  const { io, logger } = ctx;
  const base = `${dir}/${segmentBaseName(id)}`;
  const fd = io.open(`${base}.wal`, 'r+');
  let segment: Segment | null = null;
  try {
    const headerBuf = Buffer.alloc(segmentFileHeaderBytes);
    const got = readFully(io, fd, headerBuf, segmentFileHeaderBytes, 0);
    const header = decodeFileHeader(headerBuf.subarray(0, got));
    const fileSize = io.sizeOf(fd);
    if (header === null || header.segmentId !== id) {
      if (isAllZero(ctx, fd, fileSize)) {
        logger.warn({ topic, segmentId: id }, 'Removing a segment file whose creation did not finish');
        io.close(fd);
        for (const ext of ['wal', 'idx', 'seal'])
          if (io.exists(`${base}.${ext}`)) io.unlink(`${base}.${ext}`);
        io.fsyncDir(dir);
      } else {
        logger.error({ topic, segmentId: id }, 'Segment file header is corrupt; segment not served');
        io.close(fd);
      }
      return null;
    }
    segment = new Segment(ctx, topic, dir, id, header.baseOffset, fd);
    const sealBuf = present?.has('seal') === false ? null : readSmallFile(io, `${base}.seal`, 4096);
    let seal = sealBuf === null ? null : decodeSealMarker(sealBuf);
    if (sealBuf !== null && seal === null) {
      logger.error({ topic, segmentId: id }, 'Seal marker is corrupt; recovering the segment as active');
    }
    if (seal !== null && (seal.segmentId !== id || seal.baseOffset !== header.baseOffset)) {
      logger.error({ topic, segmentId: id }, 'Seal marker belongs to another segment; ignored');
      seal = null;
    }
    const idxBuf =
      present?.has('idx') === false ? null : readCheckpointFile(io, `${base}.idx`, present !== undefined);
    const checkpoint =
      idxBuf === null ? null : validCheckpoint(ctx, segment, decodeIndexCheckpoint(idxBuf), fileSize);
    if (idxBuf !== null && checkpoint === null) {
      logger.warn(
        { topic, segmentId: id },
        'Index checkpoint is missing or invalid; rebuilding it by scanning',
      );
    }
    recover(ctx, segment, checkpoint, seal, fileSize);
    return segment;
  } catch (error) {
    if (segment === null) io.close(fd);
    else segment.close();
    throw error;
  }
}

/** Where index checkpoints are read at open (most fit: a 1 MiB segment's is ~6 KiB). */
const checkpointScratch = Buffer.allocUnsafe(64 * 1024);

/**
 * The checkpoint file's bytes, or null when absent or too big. One that fits the scratch buffer is
 * read into it (valid until the next call; decodeIndexCheckpoint copies what it keeps): opening
 * 10,000 segments then costs no size query and no buffer each.
 */
function readCheckpointFile(io: FileIo, file: string, known: boolean): Buffer | null {
  if (!known && !io.exists(file)) return null;
  const fd = io.open(file, 'r');
  try {
    // One read: FileIo reads are short only at the end of the file (were one not, the CRC fails
    // and the segment is scanned, as for any bad checkpoint).
    const n = io.read(fd, checkpointScratch, 0, checkpointScratch.length, 0);
    if (n < checkpointScratch.length) return checkpointScratch.subarray(0, n);
  } finally {
    io.close(fd);
  }
  return readSmallFile(io, file, indexFileSizeMaxBytes);
}

function isAllZero(ctx: SegmentContext, fd: number, fileSize: number): boolean {
  const reader = new ChunkReader(ctx.io, fd, fileSize, walLimits.recoveryChunkSizeBytes, false);
  for (let pos = 0; pos < fileSize; ) {
    const n = Math.min(walLimits.recoveryChunkSizeBytes, fileSize - pos);
    const at = reader.view(pos, n);
    if (at < 0) return false;
    if (!isZeroRange(reader.buf, at, at + n)) return false;
    pos += n;
  }
  return true;
}

/** The checkpoint if it agrees with the file: ids, bounds, monotonic entries, last entry a real record. */
function validCheckpoint(
  ctx: SegmentContext,
  segment: Segment,
  c: IndexCheckpoint | null,
  fileSize: number,
): IndexCheckpoint | null {
  if (c === null || c.segmentId !== segment.id || c.baseOffset !== segment.baseOffset) return null;
  if (c.durableEndPosition < segmentFileHeaderBytes || c.durableEndPosition > fileSize) return null;
  if (c.durableEndOffset < c.baseOffset) return null;
  const n = c.triples.length / 3;
  let previousOffset = c.baseOffset - 1;
  let previousPosition = segmentFileHeaderBytes - 1;
  for (let i = 0; i < n; i++) {
    const offset = c.triples[i * 3]!;
    const position = c.triples[i * 3 + 1]!;
    if (!(offset > previousOffset && position > previousPosition && offset < c.durableEndOffset)) return null;
    if (!(position < c.durableEndPosition)) return null;
    previousOffset = offset;
    previousPosition = position;
  }
  if (n > 0) {
    const position = c.triples[(n - 1) * 3 + 1]!;
    const reader = new ChunkReader(ctx.io, segment.fd, fileSize, 4096, false);
    const at = reader.view(position, 8);
    if (at < 0) return null;
    const full = reader.view(position, 8 + reader.buf.readUInt32LE(at));
    if (full < 0 || checkRecordAt(reader.buf, full, reader.length, ctx.lengthMax) <= 0) return null;
    if (recordOffsetAt(reader.buf, full) !== c.triples[(n - 1) * 3]!) return null;
  }
  return c;
}

function recover(
  ctx: SegmentContext,
  segment: Segment,
  checkpoint: IndexCheckpoint | null,
  seal: SealMarker | null,
  fileSize: number,
): void {
  const { io, logger } = ctx;
  // Start from the checkpoint when there is one.
  let position = segmentFileHeaderBytes;
  let expect = segment.baseOffset;
  let durable = segment.baseOffset;
  if (checkpoint !== null) {
    const t = checkpoint.triples;
    // Validated (validCheckpoint): taken whole, not entry by entry (10,000 segments' indexes at start-up).
    segment.index.adopt(t);
    if (t.length > 0) segment.nextIndexPosition = t[t.length - 2]! + ctx.limits.indexIntervalBytes;
    position = checkpoint.durableEndPosition;
    expect = checkpoint.durableEndOffset;
    durable = checkpoint.durableEndOffset;
    segment.firstTimestampMs = checkpoint.firstTimestampMs;
    segment.lastTimestampMs = checkpoint.lastTimestampMs;
  }
  const sealedComplete =
    seal !== null &&
    checkpoint !== null &&
    checkpoint.durableEndOffset === seal.endOffset &&
    seal.sizeBytes === fileSize;
  if (sealedComplete) {
    setEnd(segment, checkpoint.durableEndOffset, checkpoint.durableEndPosition, fileSize);
    segment.sealed = true;
    return;
  }
  if (seal !== null) {
    durable = Math.max(durable, seal.endOffset);
    // Longer: maybe an interrupted truncation, judged after the scan.
    if (seal.sizeBytes > fileSize) {
      logger.error(
        { topic: segment.topic, segmentId: segment.id, expectedBytes: seal.sizeBytes, fileBytes: fileSize },
        'Sealed segment file has the wrong size',
      );
    }
  }
  const scanEnd = seal !== null ? Math.min(seal.sizeBytes, fileSize) : fileSize;
  // Scan the tail.
  const gaps: Gap[] = [];
  const reader = new ChunkReader(io, segment.fd, scanEnd, walLimits.recoveryChunkSizeBytes, false);
  let lastClaim = durable;
  const interval = ctx.limits.indexIntervalBytes;
  let scannedCount = 0;
  // Whether any non-zero byte lies after the records (else the tail needs no zeroing).
  const seen = { nonZero: false };
  // Where the last whole batch ends, as scalars (an object per scanned record would be garbage on
  // start-up's longest loop). The scan starts at a batch boundary (a checkpoint's durable end, or
  // the file's first record).
  let batchEndOffset = expect;
  let batchEndPosition = position;
  let batchEndTimestampMs = segment.lastTimestampMs;
  for (;;) {
    const at8 = reader.view(position, 8);
    let size = -1;
    let at = -1;
    if (at8 >= 0) {
      const length = reader.buf.readUInt32LE(at8);
      if (length <= ctx.lengthMax) {
        at = reader.view(position, 8 + length);
        if (at >= 0) size = checkRecordAt(reader.buf, at, reader.length, ctx.lengthMax);
      }
    }
    if (size > 0 && recordOffsetAt(reader.buf, at) === expect) {
      const ts = recordTimestampAt(reader.buf, at);
      if (position >= segment.nextIndexPosition) {
        segment.index.add(expect, position, ts);
        segment.nextIndexPosition = position + interval;
      }
      segment.firstTimestampMs ??= ts;
      segment.lastTimestampMs = ts;
      lastClaim = Math.max(lastClaim, expect - recordSyncedDeltaAt(reader.buf, at));
      position += size;
      expect += 1;
      scannedCount += 1;
      if (!recordBatchContinuesAt(reader.buf, at)) {
        batchEndOffset = expect;
        batchEndPosition = position;
        batchEndTimestampMs = ts;
      }
      continue;
    }
    if (position + 8 > scanEnd || gaps.length >= walLimits.corruptRangeCountMaxPerSegment) {
      if (position < scanEnd) seen.nonZero = true;
      break;
    }
    const offsetMax = expect + Math.ceil((scanEnd - position) / 30) + 1;
    const found = segment.findNextValid(position + 1, scanEnd, expect + 1, offsetMax, seen);
    if (found === null) {
      // Bytes [position, position + 8) are the first not to form a record: check them too.
      const at = reader.view(position, Math.min(8, scanEnd - position));
      if (at < 0 || !isZeroRange(reader.buf, at, at + Math.min(8, scanEnd - position))) seen.nonZero = true;
      break;
    }
    seen.nonZero = true;
    gaps.push({
      fromOffset: expect,
      toOffset: found.offset,
      startPosition: position,
      resumePosition: found.position,
      lastTimestampBefore: segment.lastTimestampMs,
      batchEndBefore: {
        offset: batchEndOffset,
        position: batchEndPosition,
        lastTimestampMs: batchEndTimestampMs,
      },
    });
    position = found.position;
    expect = found.offset;
    // Past corruption, where a batch starts is unknown: count the resume point as a boundary.
    batchEndOffset = expect;
    batchEndPosition = position;
    batchEndTimestampMs = segment.lastTimestampMs;
  }
  // The resync scan stops short of the file's last bytes (too few for a record): check them too.
  if (!seen.nonZero && position < scanEnd) {
    const from = Math.max(position, scanEnd - 64);
    const at = reader.view(from, scanEnd - from);
    if (at < 0 || !isZeroRange(reader.buf, at, at + scanEnd - from)) seen.nonZero = true;
  }
  // Decide torn tail versus corruption.
  let endOffset = expect;
  let endPosition = position;
  const cutTo = (offset: number, at: number, lastTimestampMs: number | null): void => {
    endOffset = offset;
    endPosition = at;
    segment.index.truncateFromPosition(endPosition);
    segment.nextIndexPosition =
      segment.index.length === 0
        ? segmentFileHeaderBytes
        : segment.index.positionAt(segment.index.length - 1) + interval;
    segment.lastTimestampMs = lastTimestampMs;
    if (endOffset === segment.baseOffset) segment.firstTimestampMs = null;
  };
  let lastBatchEnd: BatchEnd = {
    offset: batchEndOffset,
    position: batchEndPosition,
    lastTimestampMs: batchEndTimestampMs,
  };
  for (const gap of gaps) {
    if (gap.fromOffset >= lastClaim) {
      cutTo(gap.fromOffset, gap.startPosition, gap.lastTimestampBefore);
      lastBatchEnd = gap.batchEndBefore;
      logger.warn(
        {
          topic: segment.topic,
          segmentId: segment.id,
          fromOffset: gap.fromOffset,
          position: gap.startPosition,
        },
        'Torn tail after a crash: records from here were never durable and are dropped',
      );
      break;
    }
    segment.noteCorruption(gap);
  }
  // An append batch is written whole, in one write, and acknowledged only once durable; a crash
  // can still leave its first records on disk without its last. Such a batch was never
  // acknowledged (nothing claims it durable), and a batch is all or nothing: it is dropped too.
  if (seal === null && lastBatchEnd.offset < endOffset && lastBatchEnd.offset >= lastClaim) {
    logger.warn(
      {
        topic: segment.topic,
        segmentId: segment.id,
        fromOffset: lastBatchEnd.offset,
        toOffset: endOffset,
        position: lastBatchEnd.position,
      },
      'Unfinished batch after a crash: its records were never acknowledged and are dropped',
    );
    cutTo(lastBatchEnd.offset, lastBatchEnd.position, lastBatchEnd.lastTimestampMs);
    seen.nonZero = true;
  }
  if (seal !== null) {
    const truncationInterrupted =
      fileSize > seal.sizeBytes && endOffset === seal.endOffset && endPosition === seal.sizeBytes;
    if (endOffset < seal.endOffset) {
      segment.noteCorruption({
        fromOffset: endOffset,
        toOffset: seal.endOffset,
        startPosition: endPosition,
        resumePosition: seal.sizeBytes,
      });
      endOffset = seal.endOffset;
      endPosition = seal.sizeBytes;
    }
    if (truncationInterrupted) {
      logger.warn(
        { topic: segment.topic, segmentId: segment.id, endOffset, fileBytes: fileSize },
        'Completing a truncation interrupted by a crash: the sealed file is cut to its seal marker',
      );
      io.truncate(segment.fd, endPosition);
      io.fdatasync(segment.fd);
      ctx.stats.fsyncCount += 1;
    } else if (fileSize > seal.sizeBytes) {
      logger.error(
        { topic: segment.topic, segmentId: segment.id, expectedBytes: seal.sizeBytes, fileBytes: fileSize },
        'Sealed segment file has the wrong size',
      );
    }
    setEnd(segment, endOffset, endPosition, truncationInterrupted ? endPosition : fileSize);
    segment.sealed = true;
  } else {
    const size =
      endPosition < fileSize && (seen.nonZero || gaps.length > 0)
        ? zeroTail(ctx, segment, endPosition, fileSize)
        : fileSize;
    setEnd(segment, endOffset, endPosition, size);
  }
  // What recovery kept may be in the page cache only (a kill -9 with the machine still up): it is
  // made durable before the WAL serves or reports it (and before a checkpoint claims it), or a
  // restarted replica would acknowledge records a power loss could still take (found by the
  // whole-node simulator, defect K). Not when every record kept lies below the checkpoint's durable
  // end with nothing after it: those were fdatasync'd before the checkpoint was written. An
  // fdatasync costs ~1 ms even on a clean file: one per active segment made a restart with 10,000
  // quiet topics take 10 s.
  const tailClean =
    checkpoint !== null &&
    scannedCount === 0 &&
    gaps.length === 0 &&
    !seen.nonZero &&
    endPosition === checkpoint.durableEndPosition;
  if (seal === null && !tailClean) {
    io.fdatasync(segment.fd);
    ctx.stats.fsyncCount += 1;
  }
  if (scannedCount > 0 || gaps.length > 0) {
    logger.info(
      { topic: segment.topic, segmentId: segment.id, scannedCount, endOffset, sealed: segment.sealed },
      'Segment recovered by scanning its tail',
    );
    // Records are durable (openSegment fdatasyncs what it keeps); the index is a hint.
    segment.checkpointQuietly();
  }
}

function setEnd(segment: Segment, endOffset: number, endPosition: number, fileSize: number): void {
  segment.endOffset = endOffset;
  segment.assignedEndOffset = endOffset;
  segment.syncedEndOffset = endOffset;
  segment.endPosition = endPosition;
  segment.syncedEndPosition = endPosition;
  segment.checkpointPosition = endPosition;
  segment.preallocatedEnd = Math.max(fileSize, endPosition);
}

/**
 * Zeroes every non-zero byte in [from, fileSize), then fdatasyncs: no stale record survives past
 * the end. Returns the file's size after it (`from` when a full disk made it cut the tail instead).
 */
function zeroTail(ctx: SegmentContext, segment: Segment, from: number, fileSize: number): number {
  const { io } = ctx;
  const chunk = walLimits.recoveryChunkSizeBytes;
  const reader = new ChunkReader(io, segment.fd, fileSize, chunk, false);
  const zeros = Buffer.alloc(chunk);
  let wrote = false;
  for (let pos = from; pos < fileSize; pos += chunk) {
    const n = Math.min(chunk, fileSize - pos);
    const at = reader.view(pos, n);
    if (at < 0 || !isZeroRange(reader.buf, at, at + n)) {
      try {
        writeFully(io, segment.fd, zeros, n, pos);
      } catch (error) {
        if (walErrorFromIo(error, 'zeroing a tail').code !== WalErrorCode.DISK_FULL) throw error;
        // No space to overwrite (a hole in the file): cut the tail off instead, which needs none.
        ctx.disk.noteEnospc();
        ctx.logger.warn(
          { topic: segment.topic, segmentId: segment.id, position: from },
          'Disk full: the tail after the records is cut off instead of zeroed',
        );
        io.truncate(segment.fd, from);
        io.fdatasync(segment.fd);
        ctx.stats.fsyncCount += 1;
        return from;
      }
      wrote = true;
    }
  }
  if (wrote) {
    io.fdatasync(segment.fd);
    ctx.stats.fsyncCount += 1;
  }
  return fileSize;
}
