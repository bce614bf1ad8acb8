/**
 * node/wal: the storage engine of one node (segments of records with checksums, sparse index,
 * group commit, fsync policy, recovery, retention). Imports nothing else of ours; see docs/wal.md.
 */
export type { FileIo, Fault, FaultOp } from './file-io.js';
export { FaultInjectingFileIo, realFileIo } from './file-io.js';
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
export type { WalOptions, WalReplicatedRecord } from './wal.js';
export { Wal } from './wal.js';
export { WalError, WalErrorCode } from './wal-error.js';
