/**
 * The WAL's named limits and defaults, with their relations asserted at load (and again on the
 * effective options in `resolveWalLimits`). Every buffer, queue and map in node/wal is bounded by
 * one of these; docs/wal.md lists them with the reasons.
 */
import assert from 'node:assert';

/** Fixed bytes of one record before its headers: length, crc, offset, timestamp, syncedDelta, headerCount. */
export const recordHeaderSizeBytes = 30;
/** Bytes of one header entry besides its key and value: u16 key length + u32 value length. */
export const headerEntryOverheadBytes = 6;

export const walDefaults = {
  /** Largest record (value bytes + encoded header bytes). */
  recordSizeMaxBytes: 1024 * 1024,
  /** Most records in one `append` call. */
  batchRecordCountMax: 10_000,
  /** Most bytes (sum of record sizes) in one `append` call. */
  batchSizeMaxBytes: 16 * 1024 * 1024,
  /** A sparse-index entry every this many bytes of records. */
  indexIntervalBytes: 4096,
  /** Largest background preallocation step (zero-written bytes ahead of the records; steps double from 64 KiB). */
  segmentPreallocateBytes: 8 * 1024 * 1024,
  /** The sparse index is checkpointed to disk after every this many appended bytes (and on seal/close). */
  indexCheckpointIntervalBytes: 32 * 1024 * 1024,
  /**
   * Segment fence epochs held (one per segment replica ever fenced on this node and not yet deleted;
   * see segment-epochs.ts). A few dozen bytes each in memory plus one small file.
   */
  segmentEpochCountMax: 1_000_000,
  /**
   * Sparse-index entries held in memory node-wide (24 bytes each: 6 MiB, the index of 1 GiB of
   * records at the default interval). Beyond it, the least recently used indexes already in their
   * checkpoint files are dropped and read back at their next use (index-pager.ts): one small file
   * read (~6 KiB for a 1 MiB segment) at the next read of a cold segment.
   */
  indexEntryCountMaxLoaded: 256 * 1024,
  /**
   * Every this many ms, a pass settles active segments that took no record for its last 4 passes:
   * index checkpoint to the end, preallocated zeros cut off, so a restart scans nothing of them
   * (segment-settle.ts).
   */
  segmentSettleIntervalMs: 250,
  /**
   * While a group commit is in flight, the next one starts before it ends only with at least this
   * many bytes queued: a small one would pay a thread-pool round trip (~50 µs of the event loop
   * here) for few records, and those wait for the one in flight anyway when the load is light.
   */
  groupCommitOverlapBytesMin: 8 * 1024,
} as const;

export const walLimits = {
  /**
   * The largest recordSizeMaxBytes a WAL may be configured with. Recovery and reads accept any
   * record up to this size whatever the current option, so lowering the option never makes stored
   * records look corrupt.
   */
  recordSizeMaxBytesLimit: 16 * 1024 * 1024,
  /** Most headers on one record. */
  /** One more than the protocol allows a record: the broker adds its producer header (broker.ts). */
  headerCountMax: 65,
  /** Longest header key, UTF-8 bytes. */
  headerKeySizeMaxBytes: 256,
  /** Longest header value, UTF-8 bytes. */
  headerValueSizeMaxBytes: 64 * 1024,
  /** Bytes queued for one group commit before it is flushed at once instead of on setImmediate. */
  groupCommitSizeMaxBytes: 32 * 1024 * 1024,
  /** Append calls queued for one group commit before it is flushed at once. */
  groupCommitAppendCountMax: 100_000,
  /**
   * Group commits whose fdatasyncs run in the thread pool at once. With two, the next batch is
   * written and its fdatasync issued while the previous one's runs: the disk takes overlapping
   * flushes faster than back-to-back ones (16 KiB batches here: 2,165 flushes/s one at a time,
   * 2,842/s two at a time), and appends that arrive during a flush no longer wait for it to end
   * before theirs starts. They settle in order; a failure fails the later ones on the same file.
   */
  groupCommitInFlightMax: 2,
  /** Bytes read from a segment file in one positioned read (grows to one record when larger). */
  readChunkSizeBytes: 64 * 1024,
  /** Recovery scans the tail in reads of this size. */
  recoveryChunkSizeBytes: 1024 * 1024,
  /** Corrupt ranges remembered per segment (beyond it, corruption is re-detected on each read). */
  corruptRangeCountMaxPerSegment: 1024,
  /** Records in one segment: the record's syncedDelta field is a u32. */
  segmentRecordCountMax: 0xffff_ffff,
  /** Local segments per topic. */
  segmentCountMaxPerTopic: 100_000,
  /** Topics in one WAL. */
  topicCountMax: 100_000,
  /**
   * Segment imports in progress at once (segment-import.ts): each holds an open file, its sparse
   * index (24 bytes per indexIntervalBytes of records) and a temporary directory until it ends.
   */
  segmentImportCountMax: 16,
  /** Largest segment id / offset we accept (offsets are JS numbers). */
  offsetMax: Number.MAX_SAFE_INTEGER,
  /** Sparse index entries loaded from a checkpoint (bigger files are treated as corrupt hints). */
  indexEntryCountMax: 64 * 1024 * 1024,
  /** Smallest allowed preallocation step and index interval. */
  segmentPreallocateBytesMin: 64 * 1024,
  indexIntervalBytesMin: 256,
} as const;

export interface WalLimits {
  recordSizeMaxBytes: number;
  batchRecordCountMax: number;
  batchSizeMaxBytes: number;
  indexIntervalBytes: number;
  segmentPreallocateBytes: number;
  indexCheckpointIntervalBytes: number;
  segmentEpochCountMax: number;
  indexEntryCountMaxLoaded: number;
  segmentSettleIntervalMs: number;
  groupCommitOverlapBytesMin: number;
}

function assertLimits(l: WalLimits): void {
  for (const [name, value] of Object.entries(l)) {
    assert(Number.isSafeInteger(value) && value > 0, `WAL limit ${name} must be a positive integer`);
  }
  assert(l.recordSizeMaxBytes <= l.batchSizeMaxBytes, 'a batch must fit its largest record');
  assert(l.batchSizeMaxBytes <= walLimits.groupCommitSizeMaxBytes, 'a batch must fit one group commit');
  assert(l.batchRecordCountMax <= walLimits.groupCommitAppendCountMax, 'a batch must fit one group commit');
  assert(l.recordSizeMaxBytes <= walLimits.recordSizeMaxBytesLimit, 'recordSizeMaxBytes is at most 16 MiB');
  assert(l.indexIntervalBytes >= walLimits.indexIntervalBytesMin, 'index interval too small');
  assert(l.segmentPreallocateBytes >= walLimits.segmentPreallocateBytesMin, 'preallocation step too small');
  assert(l.indexCheckpointIntervalBytes >= l.indexIntervalBytes, 'checkpoints are rarer than entries');
}

assertLimits({ ...walDefaults });
assert(walLimits.headerCountMax <= 0x7fff, 'header count is 15 bits of a u16 (bit 15 flags a batch)');
assert(walLimits.headerKeySizeMaxBytes <= 0xffff, 'header key length is a u16');
assert(walLimits.readChunkSizeBytes >= recordHeaderSizeBytes);

/** The effective limits for a WAL: defaults overridden by options, relations asserted. */
export function resolveWalLimits(options: Partial<WalLimits>): WalLimits {
  const limits: WalLimits = {
    recordSizeMaxBytes: options.recordSizeMaxBytes ?? walDefaults.recordSizeMaxBytes,
    batchRecordCountMax: options.batchRecordCountMax ?? walDefaults.batchRecordCountMax,
    batchSizeMaxBytes:
      options.batchSizeMaxBytes ??
      Math.max(walDefaults.batchSizeMaxBytes, options.recordSizeMaxBytes ?? walDefaults.recordSizeMaxBytes),
    indexIntervalBytes: options.indexIntervalBytes ?? walDefaults.indexIntervalBytes,
    segmentPreallocateBytes: options.segmentPreallocateBytes ?? walDefaults.segmentPreallocateBytes,
    indexCheckpointIntervalBytes:
      options.indexCheckpointIntervalBytes ?? walDefaults.indexCheckpointIntervalBytes,
    segmentEpochCountMax: options.segmentEpochCountMax ?? walDefaults.segmentEpochCountMax,
    indexEntryCountMaxLoaded: options.indexEntryCountMaxLoaded ?? walDefaults.indexEntryCountMaxLoaded,
    segmentSettleIntervalMs: options.segmentSettleIntervalMs ?? walDefaults.segmentSettleIntervalMs,
    groupCommitOverlapBytesMin: options.groupCommitOverlapBytesMin ?? walDefaults.groupCommitOverlapBytesMin,
  };
  assertLimits(limits);
  return limits;
}
