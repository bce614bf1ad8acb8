/**
 * node/storage-io: the one door to the filesystem for the WAL and the Raft storage: a small
 * synchronous file API (real, or fault-injecting for tests and the simulator) and CRC-32C.
 * Imports nothing else of ours.
 */
export type { DiskUsage, FileIo, Fault, FaultOp } from './file-io.js';
export { FaultInjectingFileIo, realFileIo } from './file-io.js';
export { crc32c, crc32cRange } from './crc32c.js';
export { mkdirDurably, readFully, readSmallFile, writeFileDurably, writeFully } from './durable-file.js';
