/**
 * The checks of one append batch before anything is queued: its limits (record count, record and
 * batch bytes, headers, segment record count) and, for a follower's replicated batch, its offsets
 * and timestamps. A batch that fails one is refused whole and writes nothing. They return the
 * batch's encoded size so the group commit can size its buffer.
 */
import type { WalLimits } from './limits.js';
import { recordHeaderSizeBytes, walLimits } from './limits.js';
import { headersSizeBytes } from './record-codec.js';
import type { Segment, WalRecordInput } from './segment.js';
import { WalError, WalErrorCode } from './wal-error.js';

/** A record that already has its offset and timestamp (a follower replica's append). */
export interface WalReplicatedRecord extends WalRecordInput {
  offset: number;
  timestampMs: number;
}

/** Encoded bytes of the batch and per-record header bytes (null when no record has headers). */
export interface CheckedBatch {
  bytes: number;
  headerSizes: number[] | null;
}

/** Limits of one append to `segment`; returns its encoded size and header sizes, or the error. */
export function checkBatch(
  records: readonly WalRecordInput[],
  segment: Segment,
  limits: WalLimits,
): CheckedBatch | WalError {
  const n = records.length;
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

/**
 * Timestamp of the last record the active segment holds or has queued (0 when none): a replicated
 * batch may not go below it. Not the topic's high-water mark, which stays where appends that
 * failed (their offsets given back) or records truncated away left it: a follower must accept
 * the new leader's records after those.
 */
export function lastLogTimestampMs(active: Segment): number {
  const last = active.lastAppend;
  // Offsets handed out but not written: the last append queued holds the last of them.
  if (last !== null && active.assignedEndOffset > active.endOffset) return last.timestampMs;
  // Only the segment itself: each segment has one leader stamping with its own clock, and a new
  // segment's leader may be behind the previous one's (a replica refusing it would never complete
  // its copy: found by the whole-node simulator, defect B).
  return active.lastTimestampMs ?? 0;
}

/**
 * Checks a replicated batch for `segment` (the last record of its log has timestamp
 * `lastTimestampMs`): consecutive offsets, no gap after the segment's assigned end (else
 * BAD_REQUEST with `expectedOffset`), timestamps that do not go back, and the limits. Records below the end (an
 * overlapping resend) are left out of `fresh`; null when that is all of them.
 */
export function checkReplicatedBatch(
  records: readonly WalReplicatedRecord[],
  segment: Segment,
  lastTimestampMs: number,
  limits: WalLimits,
): { fresh: readonly WalReplicatedRecord[]; checked: CheckedBatch; timestamps: number[] } | WalError | null {
  if (records.length === 0)
    return new WalError(WalErrorCode.BAD_REQUEST, 'an append needs at least one record');
  const end = segment.assignedEndOffset;
  const first = records[0]!.offset;
  for (let i = 0; i < records.length; i++) {
    const offset = records[i]!.offset;
    if (!Number.isSafeInteger(offset) || offset !== first + i) {
      return new WalError(
        WalErrorCode.BAD_REQUEST,
        `replicated record ${i} has offset ${offset}; expected ${first + i}`,
      );
    }
  }
  if (first > end) {
    return new WalError(
      WalErrorCode.BAD_REQUEST,
      `replicated record 0 has offset ${first}; expected ${end} (resend from there)`,
      { expectedOffset: end },
    );
  }
  if (end - first >= records.length) return null;
  const fresh = first === end ? records : records.slice(end - first);
  const checked = checkBatch(fresh, segment, limits);
  if (checked instanceof WalError) return checked;
  const timestamps: number[] = [];
  let previous = lastTimestampMs;
  for (const r of fresh) {
    if (!Number.isSafeInteger(r.timestampMs) || r.timestampMs < previous) {
      return new WalError(
        WalErrorCode.BAD_REQUEST,
        `replicated record ${r.offset} has a timestamp that goes back`,
      );
    }
    previous = r.timestampMs;
    timestamps.push(r.timestampMs);
  }
  return { fresh, checked, timestamps };
}
