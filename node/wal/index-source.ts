/**
 * Where a segment's dropped sparse index comes back from (index-pager.ts): its index checkpoint
 * file when that matches the segment now, else a scan of the segment's records (a checkpoint lost
 * or torn by a crash, or changed by a truncation). The index is a hint either way: a scan that stops
 * at a corrupt record leaves the records after it to the reader's resynchronisation.
 */
import { readSmallFile } from '../storage-io/durable-file.js';
import { ChunkReader } from './chunk-reader.js';
import { walLimits } from './limits.js';
import type { IndexSource } from './offset-index.js';
import { recordOffsetAt, recordTimestampAt } from './record-codec.js';
import type { Segment, SegmentContext } from './segment.js';
import { decodeIndexCheckpoint, segmentFileHeaderBytes } from './segment-files.js';

/** Index checkpoints bigger than this are not loaded (as in segment-recovery.ts). */
const indexFileSizeMaxBytes = 64 + walLimits.indexEntryCountMax * 24 + 4;

export function segmentIndexSource(ctx: SegmentContext, segment: Segment): IndexSource {
  return {
    // The checkpoint was taken at the segment's end: it holds every entry in memory.
    saved: () =>
      segment.checkpointPosition === segment.endPosition && segment.syncedEndPosition === segment.endPosition,
    load: () => loadTriples(ctx, segment),
  };
}

function loadTriples(ctx: SegmentContext, segment: Segment): Float64Array {
  let buf: Buffer | null = null;
  try {
    buf = readSmallFile(ctx.io, segment.idxPath, indexFileSizeMaxBytes);
  } catch {
    // Rebuilt below.
  }
  const c = buf === null ? null : decodeIndexCheckpoint(buf);
  if (
    c !== null &&
    c.segmentId === segment.id &&
    c.baseOffset === segment.baseOffset &&
    c.durableEndPosition === segment.checkpointPosition &&
    inside(c.triples, segment)
  )
    return c.triples;
  ctx.logger.warn(
    { topic: segment.topic, segmentId: segment.id },
    'Index checkpoint does not match its segment; rebuilding the index by scanning',
  );
  return scanTriples(ctx, segment);
}

/** Entries increase and lie below the segment's end. */
function inside(triples: Float64Array, segment: Segment): boolean {
  let offset = segment.baseOffset - 1;
  let position = segmentFileHeaderBytes - 1;
  for (let i = 0; i < triples.length; i += 3) {
    if (!(triples[i]! > offset && triples[i + 1]! > position)) return false;
    offset = triples[i]!;
    position = triples[i + 1]!;
  }
  return offset < segment.endOffset && position < segment.endPosition;
}

function scanTriples(ctx: SegmentContext, segment: Segment): Float64Array {
  const out: number[] = [];
  const reader = new ChunkReader(
    ctx.io,
    segment.fd,
    segment.endPosition,
    walLimits.recoveryChunkSizeBytes,
    false,
  );
  const interval = ctx.limits.indexIntervalBytes;
  let position = segmentFileHeaderBytes;
  let next = position;
  for (let expect = segment.baseOffset; expect < segment.endOffset; expect++) {
    const size = segment.recordAt(reader, position);
    const at = size > 0 ? reader.view(position, size) : -1;
    if (at < 0 || recordOffsetAt(reader.buf, at) !== expect) break;
    if (position >= next) {
      out.push(expect, position, recordTimestampAt(reader.buf, at));
      next = position + interval;
    }
    position += size;
  }
  return Float64Array.from(out);
}
