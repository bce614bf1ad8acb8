/**
 * Settling quiet active segments, so that a restart after kill -9 reads almost nothing of them:
 * an active segment that took no record for settleQuietPassCount passes, whose records are all
 * durable, gets (1) its index checkpoint rewritten to its end, and (2) the preallocated zeros ahead
 * of its records cut off. Recovery then trusts the checkpoint up to the end of the file and scans
 * nothing; without it, a segment that grew less than indexCheckpointIntervalBytes (32 MiB) since
 * its creation was scanned whole at each restart, zeros ahead included, and 10,000 quiet topics cost
 * minutes. A settled segment's index is also what the index pager may drop (index-pager.ts).
 *
 * Neither step is made durable with an fsync, on purpose: both only help recovery and each is
 * correct either way after a power loss. The checkpoint claims as durable only records that were
 * fdatasync'd before it was written (a lost or torn checkpoint fails its CRC or is an older valid
 * one: recovery scans further); the cut removes only zeros (if it is lost, recovery reads zeros).
 * Segments with records written but not yet durable (policy interval, until its next sync; policy
 * never, always) are left for a later pass.
 */
import { writeFully } from '../storage-io/durable-file.js';
import type { FileIo } from '../storage-io/file-io.js';
import type { Segment, TopicState, WalLogger } from './segment.js';
import { encodeIndexCheckpoint } from './segment-files.js';
import { walErrorFromIo } from './wal-error.js';

/**
 * Segments settled in one pass at most (the rest wait for the next pass): a settle costs ~50-100 µs
 * of the event loop (a small file write and rename, a truncate), so a pass holds it ~10 ms at most.
 */
export const settleCountMaxPerPass = 128;
/** Passes in a row that a segment's end must not move in before it is settled (1 s by default). */
export const settleQuietPassCount = 4;

export class SegmentSettler {
  /** Each active segment's end at the previous pass, and the passes in a row it has not moved for. */
  private lastEnds = new Map<Segment, { end: number; quietPasses: number }>();
  private settledCount = 0;
  /** Active segments still to settle at the end of the last pass (quiet or not). */
  private unsettledCount = 0;
  /** Where checkpoints are encoded (grows to the largest one). */
  private readonly scratch = { buf: Buffer.alloc(64 * 1024) };

  constructor(
    private readonly io: FileIo,
    private readonly logger: WalLogger,
  ) {}

  /** One pass over the topics' active segments; `busy` (a group commit in flight) skips it. */
  pass(topics: Iterable<TopicState>, busy: boolean): void {
    const ends = new Map<Segment, { end: number; quietPasses: number }>();
    let settled = 0;
    let unsettled = 0;
    for (const t of topics) {
      const segment = t.active;
      if (segment === null) continue;
      const last = this.lastEnds.get(segment);
      const quietPasses = last?.end === segment.endPosition ? last.quietPasses + 1 : 0;
      ends.set(segment, { end: segment.endPosition, quietPasses });
      if (!needsSettling(segment)) continue;
      if (
        busy ||
        settled >= settleCountMaxPerPass ||
        quietPasses < settleQuietPassCount ||
        !this.settle(segment)
      ) {
        unsettled += 1;
        continue;
      }
      settled += 1;
    }
    this.lastEnds = ends;
    this.settledCount += settled;
    this.unsettledCount = unsettled;
  }

  stats(): { segmentSettleCount: number; segmentsUnsettled: number } {
    return { segmentSettleCount: this.settledCount, segmentsUnsettled: this.unsettledCount };
  }

  /** Checkpoint to the end, zeros cut; false when it failed (logged; tried again next pass). */
  private settle(segment: Segment): boolean {
    const { io } = this;
    try {
      if (segment.checkpointPosition !== segment.endPosition) {
        const data = encodeIndexCheckpoint(
          {
            segmentId: segment.id,
            baseOffset: segment.baseOffset,
            durableEndOffset: segment.syncedEndOffset,
            durableEndPosition: segment.syncedEndPosition,
            firstTimestampMs: segment.firstTimestampMs,
            lastTimestampMs: segment.lastTimestampMs,
            triples: segment.index.view(),
          },
          this.scratch,
        );
        const temp = `${segment.idxPath}.tmp`;
        const fd = io.open(temp, 'w+');
        try {
          writeFully(io, fd, data, data.length, 0);
        } finally {
          io.close(fd);
        }
        io.rename(temp, segment.idxPath);
        segment.checkpointPosition = segment.endPosition;
      }
      if (segment.preallocatedEnd !== segment.endPosition) {
        io.truncate(segment.fd, segment.endPosition);
        segment.preallocatedEnd = segment.endPosition;
      }
      return true;
    } catch (error) {
      this.logger.warn(
        { topic: segment.topic, segmentId: segment.id, err: walErrorFromIo(error, 'settle').message },
        'Settling a quiet segment failed; it is tried again',
      );
      return false;
    }
  }
}

/** Quiet, durable, idle and not yet settled. */
function needsSettling(s: Segment): boolean {
  return (
    !s.sealed &&
    !s.sealing &&
    !s.truncating &&
    s.failed === null &&
    s.extending === null &&
    s.pending.length === 0 &&
    !s.queuedForFlush &&
    s.syncedEndPosition === s.endPosition &&
    (s.checkpointPosition !== s.endPosition || s.preallocatedEnd !== s.endPosition)
  );
}
