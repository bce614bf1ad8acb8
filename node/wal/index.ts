/**
 * node/wal: the storage engine of one node (segments of records with checksums, sparse index,
 * group commit, fsync policy, recovery, retention, and for segment replication: synchronous offsets,
 * resend-tolerant replicated appends, truncation, fence epochs and segment import for repair).
 * Imports only node/storage-io (files, CRC), node/scheduler.ts and node/log.ts; see docs/wal.md.
 */
export type { FsyncPolicy } from './fsync-policy.js';
export { formatFsyncPolicy, parseFsyncPolicy } from './fsync-policy.js';
export type { WalLimits } from './limits.js';
export { walDefaults, walLimits } from './limits.js';
export type {
  AppendResult,
  WalLogger,
  WalRecord,
  WalRecordInput,
  WalSegmentInfo,
  WalStats,
} from './segment.js';
export type { AssignedAppend, SegmentImport, WalOptions, WalReplicatedRecord } from './wal.js';
export { Wal } from './wal.js';
export { WalError, WalErrorCode } from './wal-error.js';
