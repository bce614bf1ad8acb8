/**
 * Truncating one segment replica at an offset: what a replica does when a new leader fences the
 * segment and cuts it at the quorum end (records at or beyond it were never committed and must
 * never be served again). wal.ts decides when (after the segment's queued appends settled); this
 * file does the cut on disk and in memory.
 *
 * Order on disk, chosen so that a crash at any point recovers the old or the new state (rules of
 * segment-recovery.ts), and never the new end with the old records behind it:
 *
 *   1. records below the cut are made durable (fdatasync, policies other than `always`);
 *   2. the index checkpoint is replaced (temp + fsync + rename + dir fsync) by one ending at the
 *      cut: recovery trusts it up to the cut and then scans on, so while the data file still holds
 *      the old records they are found again (old state);
 *   3. a sealed segment's seal marker is replaced by one with the new end, size and last
 *      timestamp: from here recovery scans a sealed file only up to the marker's size (new state)
 *      and cuts a longer file back to it;
 *   4. the data file is cut (ftruncate) at the cut's position and fdatasync'd.
 *
 * A failure before 2 changes nothing. A failure after it leaves the in-memory segment at the new
 * end (nothing at or beyond the cut is served again) and failed (no more appends or truncations
 * until a restart recovers what the disk holds: old or new); the caller may retry after it.
 */
import assert from 'node:assert';
import { writeFileDurably } from '../storage-io/durable-file.js';
import { ChunkReader } from './chunk-reader.js';
import { walLimits } from './limits.js';
import { recordOffsetAt, recordTimestampAt } from './record-codec.js';
import type { CorruptRange, Segment, SegmentContext } from './segment.js';
import { encodeIndexCheckpoint, encodeSealMarker, segmentFileHeaderBytes } from './segment-files.js';
import { WalError, WalErrorCode, walErrorFromIo } from './wal-error.js';

/** Where record `endOffset` starts, and the timestamp of the last readable record below it. */
interface Cut {
  position: number;
  lastTimestampMs: number | null;
}

/**
 * Finds the file position of record `endOffset` (baseOffset < endOffset < segment end) by walking
 * the records from the index entry at or below its predecessor. A cut inside a corrupt range has
 * no known record boundary: CORRUPT_RECORD (cutting at the range's first offset works).
 */
function locateCut(ctx: SegmentContext, segment: Segment, endOffset: number): Cut {
  let { position, offset: expect } = segment.seek(endOffset - 1);
  const i = segment.index.floorByOffset(endOffset - 1);
  let lastTimestampMs: number | null = i < 0 ? segment.firstTimestampMs : segment.index.timestampAt(i);
  const reader = new ChunkReader(
    ctx.io,
    segment.fd,
    segment.endPosition,
    walLimits.readChunkSizeBytes,
    false,
  );
  while (expect < endOffset) {
    let range: CorruptRange | undefined = segment.corrupt.get(position);
    if (range === undefined) {
      const size = segment.recordAt(reader, position);
      const at = size > 0 ? reader.view(position, size) : -1;
      if (at >= 0 && recordOffsetAt(reader.buf, at) === expect) {
        lastTimestampMs = recordTimestampAt(reader.buf, at);
        position += size;
        expect += 1;
        continue;
      }
      range = segment.discoverCorruption(position, expect, segment.endOffset, segment.endPosition);
    }
    if (range.toOffset > endOffset) {
      throw new WalError(
        WalErrorCode.CORRUPT_RECORD,
        `segment ${segment.id} of topic '${segment.topic}' cannot be cut at ${endOffset}: records ` +
          `[${range.fromOffset}, ${range.toOffset}) failed their checksum`,
      );
    }
    position = range.resumePosition;
    expect = range.toOffset;
  }
  assert.equal(expect, endOffset, 'the walk stops at the cut');
  return { position, lastTimestampMs };
}

/** BAD_REQUEST when `endOffset` is not an integer in [baseOffset, end] of `segment`, else null. */
export function cutOutside(segment: Segment, endOffset: number, end: number): WalError | null {
  if (Number.isSafeInteger(endOffset) && endOffset >= segment.baseOffset && endOffset <= end) return null;
  return new WalError(
    WalErrorCode.BAD_REQUEST,
    `cannot truncate segment ${segment.id} of '${segment.topic}' at ${endOffset}: it holds ` +
      `[${segment.baseOffset}, ${end})`,
  );
}

/**
 * Removes every record at or beyond `endOffset` from `segment`, durably (see the file header).
 * The segment has nothing queued and no background preallocation in flight; baseOffset <=
 * endOffset <= endOffset of the segment. Throws a WalError (CORRUPT_RECORD, DISK_FULL,
 * UNAVAILABLE).
 */
export function truncateSegmentAt(ctx: SegmentContext, segment: Segment, endOffset: number): void {
  assert(segment.pending.length === 0 && segment.extending === null, 'nothing in flight on a cut segment');
  assert(endOffset >= segment.baseOffset && endOffset <= segment.endOffset, 'the cut lies in the segment');
  if (segment.failed !== null) throw segment.failed;
  if (endOffset === segment.endOffset) return;
  const { io, logger } = ctx;
  const oldEndOffset = segment.endOffset;
  const cut: Cut =
    endOffset === segment.baseOffset
      ? { position: segmentFileHeaderBytes, lastTimestampMs: null }
      : locateCut(ctx, segment, endOffset);
  const endPosition = cut.position;
  const firstTimestampMs = endOffset === segment.baseOffset ? null : segment.firstTimestampMs;
  const all = segment.index.toTriples();
  let kept = all.length / 3;
  while (kept > 0 && all[(kept - 1) * 3 + 1]! >= endPosition) kept -= 1;
  const triples = all.subarray(0, kept * 3);
  // 1 and 2: nothing on disk changes meaning before the new checkpoint is in place.
  try {
    segment.syncIfDirty();
    writeFileDurably(
      io,
      segment.idxPath,
      encodeIndexCheckpoint({
        segmentId: segment.id,
        baseOffset: segment.baseOffset,
        durableEndOffset: endOffset,
        durableEndPosition: endPosition,
        firstTimestampMs,
        lastTimestampMs: cut.lastTimestampMs,
        triples,
      }),
    );
  } catch (error) {
    throw walErrorFromIo(error, `truncating segment ${segment.id} of topic '${segment.topic}'`);
  }
  let failure: unknown = null;
  try {
    if (segment.sealed) {
      writeFileDurably(
        io,
        segment.sealPath,
        encodeSealMarker({
          segmentId: segment.id,
          baseOffset: segment.baseOffset,
          endOffset,
          sizeBytes: endPosition,
          firstTimestampMs,
          lastTimestampMs: cut.lastTimestampMs,
        }),
      );
    }
    io.truncate(segment.fd, endPosition);
    segment.preallocatedEnd = endPosition;
    io.fdatasync(segment.fd);
    ctx.stats.fsyncCount += 1;
  } catch (error) {
    failure = error;
  }
  // The new end in memory, whatever happened after the checkpoint: nothing beyond it is served.
  segment.index.truncateFromPosition(endPosition);
  segment.nextIndexPosition =
    segment.index.length === 0
      ? segmentFileHeaderBytes
      : segment.index.positionAt(segment.index.length - 1) + ctx.limits.indexIntervalBytes;
  for (const [start, range] of segment.corrupt) {
    if (start >= endPosition || range.fromOffset >= endOffset) segment.corrupt.delete(start);
  }
  segment.endOffset = endOffset;
  segment.assignedEndOffset = endOffset;
  segment.syncedEndOffset = endOffset;
  segment.endPosition = endPosition;
  segment.syncedEndPosition = endPosition;
  segment.checkpointPosition = endPosition;
  segment.firstTimestampMs = firstTimestampMs;
  segment.lastTimestampMs = cut.lastTimestampMs;
  segment.lastAppend = null;
  if (failure !== null) {
    const walError = walErrorFromIo(failure, `truncating segment ${segment.id} of topic '${segment.topic}'`);
    segment.failed = new WalError(
      WalErrorCode.UNAVAILABLE,
      `segment ${segment.id} of topic '${segment.topic}' failed while truncating: ${walError.message}; ` +
        'it takes no more appends until the node restarts',
      { cause: failure },
    );
    logger.error(
      { topic: segment.topic, segmentId: segment.id, endOffset, err: walError.message },
      'Truncation failed after its checkpoint; segment marked failed',
    );
    throw segment.failed;
  }
  logger.info(
    { topic: segment.topic, segmentId: segment.id, from: oldEndOffset, to: endOffset },
    'Segment truncated',
  );
}
