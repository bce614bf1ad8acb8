/** Public surface of the pure Raft core (see docs/raft.md). */
export { applyConfChange, decodeConfEntry, encodeConfEntry } from './conf-codec.js';
export type { ConfEntryData } from './conf-codec.js';
export { Prng } from './prng.js';
export { makeRaftConfig, RaftConfig, raftConfigDefaults, validateRaftConfig } from './raft-config.js';
export type { RaftTestOnlyBugs } from './raft-config.js';
export { RaftCore } from './raft-core.js';
export { committedIndex, quorumSize } from './quorum.js';
export { Inflights, Progress } from './progress.js';
export type { ProgressStatus, RaftStatus, Ready } from './raft-core.js';
export { RaftError, RaftErrorCode } from './raft-error.js';
export { MemoryStorage, entryBytes } from './storage.js';
export type { RaftStorage } from './storage.js';
export * from './types.js';
