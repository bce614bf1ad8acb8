/**
 * RaftDiskStorage: the durable RaftStorage of one node, in `<dir>/raft_meta/` (seed 004 names):
 *
 * - `snapshot.bin`: one record holding the last snapshot (index, term, configuration, state-machine
 *   bytes). Always replaced atomically (temp file, fsync, rename, fsync dir). A brand-new node writes
 *   the bootstrap configuration here as the snapshot at index 0, so the configuration survives restarts.
 * - `entries.log`: a HEAD record (the snapshot (index, term) the log follows, and the hard state at the
 *   time the file was written), then one BATCH record per `persist()`: the Ready's entries and its hard
 *   state together, under ONE checksum, written with one write and one fdatasync. A batch is therefore
 *   all-or-nothing: a crash can never leave a durable commit index without the entries it covers, and
 *   only the last batch (the one whose fdatasync had not returned) can be torn.
 * - `identity.bin` (the node's incarnation and cluster id) is owned by raft-identity.ts, which reuses
 *   this file's record framing and durable replace (exported below).
 *
 * Record framing: length u32 | ~length u32 | crc32c(body) u32 | body (type u8 | …). The inverted
 * length tells a damaged header from a torn one. Recovery reads the whole log (bounded by
 * raftLogFileSizeMaxBytes; the driver compacts it every few thousand entries), keeps it in memory, and
 * truncates a TORN last record (cut short by the end of the file, or a zero or garbage tail where
 * the length header is incomplete or invalid) with a warning. Bit rot is not a torn write: a
 * complete record whose checksum fails (the last one included), damage before the last record, a
 * damaged snapshot or HEAD refuse to start (CORRUPT_RECORD): such a node may have lost votes or
 * acknowledged entries and must not vote; the message says how to rebuild it from the cluster.
 *
 * The in-memory view is a MemoryStorage (the same index arithmetic the simulator checks); this file
 * owns only what reaches the disk and the order in which it does.
 */
import { type Logger, silentLogger } from '../log.js';
import assert from 'node:assert/strict';
import path from 'node:path';
import { ByteReader, ByteWriter } from '../protocol/byte-io.js';
import { ErrorCode, WalrusError } from '../protocol/error-codes.js';
import type { ConfState, Entry, HardState, RaftStorage, Snapshot } from '../raft/index.js';
import { MemoryStorage } from '../raft/index.js';
import {
  type FileIo,
  crc32c,
  readFully,
  realFileIo,
  writeFileDurably,
  writeFully,
} from '../storage-io/index.js';
import { decodeEntry, decodeSnapshot, encodeEntry, encodeSnapshot, entryHeaderBytes } from './raft-codec.js';
import { raftSnapshotSizeMaxBytes } from './raft-codec.js';

export const raftMetaDirName = 'raft_meta';
export const raftEntriesFileName = 'entries.log';
export const raftSnapshotFileName = 'snapshot.bin';
/** entries.log is read whole at open; a bigger file is refused (the driver compacts long before). */
export const raftLogFileSizeMaxBytes = 1024 * 1024 * 1024;
/** One record body (one Ready's entries); a leader's Ready holds at most uncommittedBytesMax (64 MiB). */
export const raftRecordSizeMaxBytes = 256 * 1024 * 1024;
/** snapshot.bin: the snapshot plus its framing. */
export const raftSnapshotFileSizeMaxBytes = raftSnapshotSizeMaxBytes + 64 * 1024;
/** A compaction rewrites entries.log when its dead prefix exceeds this AND the live part. */
export const raftLogRewriteDeadBytesMin = 1024 * 1024;
/** Batches written when a log is rewritten are cut at this size. */
const rewriteBatchSizeMaxBytes = 16 * 1024 * 1024;

assert.ok(
  raftRecordSizeMaxBytes < raftLogFileSizeMaxBytes && rewriteBatchSizeMaxBytes < raftRecordSizeMaxBytes,
);

const recordHeaderBytes = 12;
const formatVersion = 1;
/** Record types of every raft_meta file (identity.bin is written by raft-identity.ts). */
export const RecordType = { Head: 1, Batch: 2, Snapshot: 3, Identity: 4 } as const;
const batchFlagHardState = 1;

export type RaftStorageErrorCode = 'CORRUPT_RECORD' | 'DISK_FULL' | 'UNAVAILABLE';

/** Operating errors of the Raft storage; codes are spelled as in node/protocol/error-codes.ts. */
export class RaftStorageError extends Error {
  readonly code: RaftStorageErrorCode;
  constructor(code: RaftStorageErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options?.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'RaftStorageError';
    this.code = code;
  }
}

/** The node's one Logger (node/log.ts), under this module's name. */
export type RaftStorageLogger = Logger;

const zeroHardState: HardState = { term: 0, vote: 0, commit: 0 };

/** `dir` itself when it is a raft_meta/ directory, else `dir`/raft_meta (never raft_meta/raft_meta). */
export function raftMetaDirOf(dir: string): string {
  return path.basename(path.resolve(dir)) === raftMetaDirName ? dir : path.join(dir, raftMetaDirName);
}

interface LogBase {
  readonly index: number;
  readonly term: number;
}

export class RaftDiskStorage implements RaftStorage {
  /** True when open() found no previous state (a brand-new node). */
  readonly fresh: boolean;
  private readonly io: FileIo;
  private readonly logger: RaftStorageLogger;
  private readonly metaDir: string;
  private readonly logFile: string;
  private readonly snapFile: string;
  private mem: MemoryStorage;
  private fd: number;
  /** Bytes of entries.log that are durable and valid; the next record is written here. */
  private logSize: number;
  /** Set when the files may no longer match memory (a failure after a rename): reopen required. */
  private broken: string | null = null;
  private closed = false;

  private constructor(fields: OpenedFields) {
    this.io = fields.io;
    this.logger = fields.logger;
    this.metaDir = fields.metaDir;
    this.logFile = path.join(fields.metaDir, raftEntriesFileName);
    this.snapFile = path.join(fields.metaDir, raftSnapshotFileName);
    this.mem = fields.mem;
    this.fd = fields.fd;
    this.logSize = fields.logSize;
    this.fresh = fields.fresh;
  }

  /**
   * Opens or creates raft_meta/ in `dir`, recovering from a crash at any point. `bootstrap` is the
   * configuration used only when the directory is brand new. `io` is for fault-injection tests.
   * `dir` may also be the raft_meta/ directory itself (walrus-node passes `<node dir>/raft_meta`):
   * the files never end up in raft_meta/raft_meta/.
   */
  static open(
    dir: string,
    bootstrap: ConfState,
    logger: RaftStorageLogger = silentLogger,
    io: FileIo = realFileIo,
  ): RaftDiskStorage {
    const metaDir = raftMetaDirOf(dir);
    try {
      return new RaftDiskStorage(openIn(metaDir, bootstrap, logger, io));
    } catch (error) {
      throw toStorageError(error, `opening ${metaDir}`);
    }
  }

  // ---- RaftStorage (reads, from memory) ----

  hardState(): HardState {
    return this.mem.hardState();
  }
  snapshot(): Snapshot {
    return this.mem.snapshot();
  }
  firstIndex(): number {
    return this.mem.firstIndex();
  }
  lastIndex(): number {
    return this.mem.lastIndex();
  }
  term(i: number): number | undefined {
    return this.mem.term(i);
  }
  entries(lo: number, hi: number, maxBytes: number): Entry[] {
    return this.mem.entries(lo, hi, maxBytes);
  }

  // ---- writes ----

  /**
   * Step 1 of the Ready contract, synchronously: install `snapshot` (drops the whole log), write
   * `entries` (replacing any suffix from entries[0].index), write `hardState`; durable on return.
   * Without a snapshot this is one appended record and ONE fdatasync. Throws RaftStorageError
   * (DISK_FULL, UNAVAILABLE) and then leaves the files and memory as they were.
   */
  persist(rd: { hardState: HardState | null; entries: readonly Entry[]; snapshot: Snapshot | null }): void {
    this.checkUsable();
    if (rd.snapshot) {
      this.installSnapshot(rd.snapshot, rd.entries, rd.hardState);
      return;
    }
    if (rd.entries.length === 0 && rd.hardState === null) return;
    checkEntries(rd.entries, this.mem.snapshot().meta.index, this.mem.lastIndex());
    const record = frame(batchBody(rd.hardState, rd.entries));
    const at = this.logSize;
    try {
      writeFully(this.io, this.fd, record, record.length, at);
      this.io.fdatasync(this.fd);
    } catch (error) {
      this.truncateBack(at);
      throw toStorageError(error, `appending ${record.length} bytes to ${this.logFile}`);
    }
    this.logSize = at + record.length;
    this.mem.append(rd.entries);
    if (rd.hardState) this.mem.setHardState(rd.hardState);
  }

  /**
   * Log compaction: the application created `snapshot` (core.compact(...) returned it) at an index in
   * (snapshot index, lastIndex] whose term matches the log; store it durably and drop the entries it
   * covers. entries.log is rewritten when its dead prefix is large, so it stays bounded.
   */
  installCompaction(snapshot: Snapshot): void {
    this.checkUsable();
    const { index, term } = snapshot.meta;
    const base = this.mem.snapshot().meta.index;
    assert.ok(
      index > base && index <= this.mem.lastIndex(),
      `compact at ${index} outside (${base}, lastIndex]`,
    );
    assert.equal(this.mem.term(index), term, 'installCompaction: snapshot term does not match the log');
    // entries.log still holds (index, term), so recovery keeps the entries after it whether or not
    // the rewrite below happens.
    this.writeSnapshotFile(snapshot);
    this.mem.compact(snapshot);
    const live = this.liveLogBytes();
    const dead = this.logSize - live;
    if (dead > raftLogRewriteDeadBytesMin && dead > live) {
      try {
        this.rewriteLog({ index, term }, this.mem.hardState(), this.liveEntries());
      } catch (error) {
        if (this.broken !== null) throw toStorageError(error, `rewriting ${this.logFile}`);
        // Before the rename nothing changed: the old log is still valid, only longer than needed.
        this.logger.warn(
          { file: this.logFile, err: String(error) },
          'raft log rewrite failed; kept the old log',
        );
      }
    }
  }

  /** Bytes of entries.log (for the driver's compaction policy). */
  logSizeBytes(): number {
    return this.logSize;
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.io.close(this.fd);
  }

  // ---- internals ----

  private checkUsable(): void {
    assert.ok(!this.closed, 'RaftDiskStorage used after close()');
    if (this.broken !== null) {
      throw new RaftStorageError(
        'UNAVAILABLE',
        `${this.metaDir}: an earlier write failed half-way (${this.broken}); restart the node to recover`,
      );
    }
  }

  /** A snapshot from the leader: replaces the whole log. */
  private installSnapshot(snap: Snapshot, entries: readonly Entry[], hard: HardState | null): void {
    const { index, term } = snap.meta;
    assert.ok(index >= this.mem.snapshot().meta.index, 'persist: snapshot would go backwards');
    checkEntries(entries, index, index);
    const nextHard = hard ?? this.mem.hardState();
    this.writeSnapshotFile(snap);
    // From here the disk holds the new snapshot; a log rewrite that fails leaves files that recovery
    // reads correctly (a log that does not hold (index, term) is dropped), but memory would disagree.
    try {
      this.rewriteLog({ index, term }, nextHard, entries);
    } catch (error) {
      this.broken ??= `snapshot ${index} installed but ${raftEntriesFileName} not rewritten`;
      throw toStorageError(error, `rewriting ${this.logFile} after installing snapshot ${index}`);
    }
    const mem = new MemoryStorage(snap.meta.conf);
    mem.applySnapshot(snap);
    mem.append(entries);
    mem.setHardState(nextHard);
    this.mem = mem;
  }

  private writeSnapshotFile(snap: Snapshot): void {
    const w = new ByteWriter(64 + snap.data.length);
    w.u8(RecordType.Snapshot);
    w.u8(formatVersion);
    encodeSnapshot(w, snap);
    try {
      replaceFileDurably(this.io, this.snapFile, [frame(w.finish())]);
    } catch (error) {
      throw toStorageError(error, `writing ${this.snapFile}`);
    }
  }

  /** Writes a complete new entries.log next to the old one and renames it over. */
  private rewriteLog(base: LogBase, hard: HardState, entries: readonly Entry[]): void {
    const records = [frame(headBody(base, hard))];
    for (let k = 0; k < entries.length; ) {
      const chunk: Entry[] = [];
      let bytes = 0;
      for (; k < entries.length && (chunk.length === 0 || bytes < rewriteBatchSizeMaxBytes); k++) {
        const e = entries[k]!;
        bytes += entryHeaderBytes + e.data.length;
        chunk.push(e);
      }
      records.push(frame(batchBody(null, chunk)));
    }
    replaceFileDurably(this.io, this.logFile, records);
    // Renamed: the new file is the log. Failures from here on leave memory behind the disk.
    try {
      this.io.close(this.fd);
      this.fd = this.io.open(this.logFile, 'r+');
      this.logSize = this.io.sizeOf(this.fd);
    } catch (error) {
      this.broken = `reopening ${raftEntriesFileName} after a rewrite failed`;
      throw error;
    }
  }

  private truncateBack(size: number): void {
    try {
      this.io.truncate(this.fd, size);
      this.io.fdatasync(this.fd);
    } catch (error) {
      this.broken = `could not truncate ${raftEntriesFileName} back to ${size} bytes: ${String(error)}`;
    }
  }

  private liveEntries(): Entry[] {
    const first = this.mem.firstIndex();
    const last = this.mem.lastIndex();
    return last < first ? [] : this.mem.entries(first, last + 1, Number.MAX_SAFE_INTEGER);
  }

  private liveLogBytes(): number {
    let bytes = 2 * recordHeaderBytes + 64;
    for (const e of this.liveEntries()) bytes += entryHeaderBytes + e.data.length;
    return bytes;
  }
}

// ---- open and recovery ----

interface OpenedFields {
  readonly io: FileIo;
  readonly logger: RaftStorageLogger;
  readonly metaDir: string;
  readonly mem: MemoryStorage;
  readonly fd: number;
  readonly logSize: number;
  readonly fresh: boolean;
}

function openIn(metaDir: string, bootstrap: ConfState, logger: RaftStorageLogger, io: FileIo): OpenedFields {
  const parent = path.dirname(metaDir);
  const parentExisted = io.exists(parent);
  if (!io.exists(metaDir)) {
    io.mkdir(metaDir);
    io.fsyncDir(parent);
    if (!parentExisted) io.fsyncDir(path.dirname(parent));
  }
  const logFile = path.join(metaDir, raftEntriesFileName);
  const snapFile = path.join(metaDir, raftSnapshotFileName);
  for (const leftover of [`${logFile}.tmp`, `${snapFile}.tmp`]) {
    if (io.exists(leftover)) io.unlink(leftover);
  }
  const hasLog = io.exists(logFile);
  const hasSnap = io.exists(snapFile);
  // A caller may have created raft_meta/ itself without making its directory entry durable.
  if (!hasLog && !hasSnap) io.fsyncDir(parent);
  if (hasLog && !hasSnap) {
    throw corrupt(snapFile, `is missing while ${raftEntriesFileName} exists`);
  }
  let snap: Snapshot;
  if (hasSnap) {
    snap = readSnapshotFile(io, snapFile);
  } else {
    snap = { meta: { index: 0, term: 0, conf: bootstrap }, data: new Uint8Array(0) };
    const w = new ByteWriter(64);
    w.u8(RecordType.Snapshot);
    w.u8(formatVersion);
    encodeSnapshot(w, snap);
    replaceFileDurably(io, snapFile, [frame(w.finish())]);
  }
  let fresh = false;
  if (!hasLog) {
    // Only a crash between creating snapshot.bin and entries.log of a brand-new node leaves this.
    if (snap.meta.index !== 0)
      throw corrupt(logFile, `is missing while ${raftSnapshotFileName} is at index ${snap.meta.index}`);
    replaceFileDurably(io, logFile, [frame(headBody({ index: 0, term: 0 }, zeroHardState))]);
    fresh = true;
  }
  const fd = io.open(logFile, 'r+');
  try {
    const { mem, logSize } = recoverLog(io, fd, logFile, snap, logger);
    return { io, logger, metaDir, mem, fd, logSize, fresh };
  } catch (error) {
    io.close(fd);
    throw error;
  }
}

function readSnapshotFile(io: FileIo, file: string): Snapshot {
  const buf = readWhole(io, file, raftSnapshotFileSizeMaxBytes);
  const scan = scanRecord(buf, 0);
  if (scan.kind !== 'ok' || scan.end !== buf.length) {
    throw corrupt(
      file,
      `fails its checksum or framing (${scan.kind === 'ok' ? 'trailing bytes' : scan.reason})`,
    );
  }
  const r = new ByteReader(scan.body, 0, ErrorCode.CORRUPT_RECORD);
  try {
    if (r.u8('record type') !== RecordType.Snapshot) r.fail('not a snapshot record');
    const version = r.u8('format version');
    if (version !== formatVersion) r.fail(`format version ${version} is not supported`);
    const snap = decodeSnapshot(r);
    r.end('snapshot record');
    return snap;
  } catch (error) {
    throw corrupt(file, `cannot be decoded: ${errorMessage(error)}`);
  }
}

function recoverLog(
  io: FileIo,
  fd: number,
  file: string,
  snap: Snapshot,
  logger: RaftStorageLogger,
): { mem: MemoryStorage; logSize: number } {
  const size = io.sizeOf(fd);
  if (size > raftLogFileSizeMaxBytes) {
    throw corrupt(
      file,
      `is ${size} bytes, above the limit of ${raftLogFileSizeMaxBytes} (the driver compacts long before)`,
    );
  }
  const buf = Buffer.allocUnsafe(size);
  const got = readFully(io, fd, buf, buf.length, 0);
  if (got !== size)
    throw new RaftStorageError('UNAVAILABLE', `${file}: short read (${got} of ${size} bytes)`);

  let base: LogBase = { index: 0, term: 0 };
  let hard: HardState = zeroHardState;
  const ents: Entry[] = [];
  let pos = 0;
  while (pos < size) {
    const scan = scanRecord(buf, pos);
    if (scan.kind === 'torn') {
      if (pos === 0) throw corrupt(file, `its first record is incomplete (${scan.reason})`);
      logger.warn(
        { file, fromByte: pos, toByte: size, reason: scan.reason },
        'raft log: truncating a torn last record',
      );
      io.truncate(fd, pos);
      io.fdatasync(fd);
      break;
    }
    if (scan.kind === 'corrupt') throw corrupt(file, scan.reason);
    const r = new ByteReader(scan.body, 0, ErrorCode.CORRUPT_RECORD);
    try {
      const type = r.u8('record type');
      if (pos === 0) {
        if (type !== RecordType.Head) r.fail('the first record is not a HEAD record');
        const version = r.u8('format version');
        if (version !== formatVersion) r.fail(`format version ${version} is not supported`);
        base = { index: r.u64('base index'), term: r.u64('base term') };
        hard = readHardState(r);
      } else {
        if (type !== RecordType.Batch) r.fail(`unexpected record type ${type}`);
        const flags = r.u8('batch flags');
        if (flags & batchFlagHardState) hard = readHardState(r);
        const count = r.u32('entry count');
        if (count * entryHeaderBytes > r.remaining()) r.fail(`${count} entries do not fit the record`);
        const batch: Entry[] = [];
        for (let i = 0; i < count; i++) batch.push(decodeEntry(r));
        const first = batch[0];
        if (first) {
          const last = base.index + ents.length;
          if (first.index <= base.index || first.index > last + 1) {
            r.fail(`batch starts at entry ${first.index}, outside (${base.index}, ${last + 1}]`);
          }
          batch.forEach((e, k) => {
            if (e.index !== first.index + k)
              r.fail(`entry ${e.index} does not follow entry ${first.index + k - 1}`);
          });
          ents.length = first.index - base.index - 1;
          for (const e of batch) ents.push(e);
        }
      }
      r.end('record');
    } catch (error) {
      throw corrupt(
        file,
        `record at byte ${pos} passes its checksum but cannot be decoded: ${errorMessage(error)}`,
      );
    }
    pos = scan.end;
  }

  // Reconcile with snapshot.bin, which is always written before the log that follows it.
  const s = snap.meta;
  if (s.index < base.index) {
    throw corrupt(file, `follows snapshot ${base.index} but ${raftSnapshotFileName} is at ${s.index}`);
  }
  if (s.index === base.index && s.term !== base.term) {
    throw corrupt(
      file,
      `follows snapshot (${base.index}, term ${base.term}) but ${raftSnapshotFileName} has term ${s.term}`,
    );
  }
  if (s.index > base.index) {
    const k = s.index - base.index - 1;
    // A compaction keeps the entries after the snapshot (the log holds it); a snapshot from the leader
    // whose log rewrite did not happen supersedes the whole log.
    ents.splice(0, k < ents.length && ents[k]!.term === s.term ? k + 1 : ents.length);
  }
  const lastIndex = s.index + ents.length;
  // A snapshot only holds committed entries (its hard state may have been lost with the log rewrite).
  const commit = Math.max(hard.commit, s.index);
  if (commit > lastIndex) {
    throw corrupt(file, `the hard state commits index ${commit} but the log ends at ${lastIndex}`);
  }
  const mem = new MemoryStorage(s.conf);
  mem.applySnapshot(snap);
  mem.append(ents);
  mem.setHardState({ term: hard.term, vote: hard.vote, commit });
  return { mem, logSize: pos };
}

function readHardState(r: ByteReader): HardState {
  return {
    term: r.u64('hard state term'),
    vote: r.u64('hard state vote'),
    commit: r.u64('hard state commit'),
  };
}

export type Scan =
  | { kind: 'ok'; body: Buffer; end: number }
  | { kind: 'torn'; reason: string }
  | { kind: 'corrupt'; reason: string };

/**
 * Classifies the record at `pos`, telling a torn write from bit rot:
 *
 * - torn (the last write of the file did not fully land; recovery truncates it): the record is cut
 *   short by the end of the file, or its length header (length | ~length) is incomplete or invalid
 *   and what follows is zeros or garbage holding no valid record;
 * - corrupt (refuse to start): a complete record (its whole length present, its length header
 *   intact) whose body fails its checksum, whether records follow it or not; a damaged length header
 *   whose record is still recognisable (one of the two length fields frames a body that passes the
 *   checksum); a damaged header with a valid record after it.
 *
 * A write is appended whole and fdatasync'd before anything depends on it, so a complete record
 * that fails its checksum was durable once and has rotted since: it may hold a vote.
 */
export function scanRecord(buf: Buffer, pos: number): Scan {
  const size = buf.length;
  if (size - pos < recordHeaderBytes) return { kind: 'torn', reason: 'incomplete record header' };
  const length = buf.readUInt32LE(pos);
  const inverse = buf.readUInt32LE(pos + 4);
  if (~length >>> 0 !== inverse) {
    if (allZero(buf, pos)) return { kind: 'torn', reason: 'zeros where a record header should be' };
    if (framesValidBody(buf, pos, length) || framesValidBody(buf, pos, ~inverse >>> 0)) {
      return {
        kind: 'corrupt',
        reason: `record at byte ${pos} is complete and passes its checksum but its length header is damaged`,
      };
    }
    const next = nextValidRecord(buf, pos + 1);
    if (next >= 0) {
      return {
        kind: 'corrupt',
        reason: `record header at byte ${pos} is damaged (length check fails) and a record follows at byte ${next}`,
      };
    }
    return { kind: 'torn', reason: 'garbage where a record header should be' };
  }
  if (length > raftRecordSizeMaxBytes) {
    return {
      kind: 'corrupt',
      reason: `record at byte ${pos} claims ${length} bytes, above ${raftRecordSizeMaxBytes}`,
    };
  }
  const end = pos + recordHeaderBytes + length;
  if (end > size)
    return { kind: 'torn', reason: `record of ${length} bytes extends past the end of the file` };
  const body = buf.subarray(pos + recordHeaderBytes, end);
  if (crc32c(body) !== buf.readUInt32LE(pos + 8)) {
    return {
      kind: 'corrupt',
      reason:
        `record at bytes [${pos}, ${end}) is complete but fails its checksum ` +
        (end === size ? '(it is the last record: bit rot, not a torn write)' : 'and records follow it'),
    };
  }
  return { kind: 'ok', body, end };
}

/** True when `length` frames a record at `pos` that fits the file and whose body passes its checksum. */
function framesValidBody(buf: Buffer, pos: number, length: number): boolean {
  if (length > raftRecordSizeMaxBytes || pos + recordHeaderBytes + length > buf.length) return false;
  const body = buf.subarray(pos + recordHeaderBytes, pos + recordHeaderBytes + length);
  return crc32c(body) === buf.readUInt32LE(pos + 8);
}

/**
 * The first position at or after `from` where a whole valid record starts (intact length header,
 * inside the file, checksum good), or -1. Only runs on a damaged header, so its cost (one header
 * check per byte, a checksum only where a header checks out) is paid only on damage.
 */
function nextValidRecord(buf: Buffer, from: number): number {
  for (let at = from; at + recordHeaderBytes <= buf.length; at++) {
    const length = buf.readUInt32LE(at);
    if (~length >>> 0 !== buf.readUInt32LE(at + 4)) continue;
    if (framesValidBody(buf, at, length)) return at;
  }
  return -1;
}

function allZero(buf: Buffer, from: number): boolean {
  for (let i = from; i < buf.length; i++) if (buf[i] !== 0) return false;
  return true;
}

export function corrupt(file: string, what: string): RaftStorageError {
  return new RaftStorageError(
    'CORRUPT_RECORD',
    `${file}: ${what}; refusing to start as a voter (this node may have lost votes or acknowledged ` +
      'entries: remove it from the cluster with `walrus-cli remove-node <its id>` on a healthy node, ' +
      `delete its ${raftMetaDirName}/ directory and start it again with --join, so it is added back as a ` +
      'learner and copies the log from the leader)',
  );
}

// ---- encoding ----

export function frame(body: Buffer): Buffer {
  assert.ok(body.length <= raftRecordSizeMaxBytes, `raft record of ${body.length} bytes above the limit`);
  const out = Buffer.allocUnsafe(recordHeaderBytes + body.length);
  out.writeUInt32LE(body.length, 0);
  out.writeUInt32LE(~body.length >>> 0, 4);
  out.writeUInt32LE(crc32c(body), 8);
  body.copy(out, recordHeaderBytes);
  return out;
}

function headBody(base: LogBase, hard: HardState): Buffer {
  const w = new ByteWriter(64);
  w.u8(RecordType.Head);
  w.u8(formatVersion);
  w.u64(base.index);
  w.u64(base.term);
  writeHardState(w, hard);
  return w.finish();
}

function batchBody(hard: HardState | null, entries: readonly Entry[]): Buffer {
  let bytes = 64;
  for (const e of entries) bytes += entryHeaderBytes + e.data.length;
  const w = new ByteWriter(bytes);
  w.u8(RecordType.Batch);
  w.u8(hard ? batchFlagHardState : 0);
  if (hard) writeHardState(w, hard);
  w.u32(entries.length);
  for (const e of entries) encodeEntry(w, e);
  return w.finish();
}

function writeHardState(w: ByteWriter, hard: HardState): void {
  w.u64(hard.term);
  w.u64(hard.vote);
  w.u64(hard.commit);
}

function checkEntries(entries: readonly Entry[], snapIndex: number, lastIndex: number): void {
  const first = entries[0];
  if (!first) return;
  assert.ok(
    first.index > snapIndex && first.index <= lastIndex + 1,
    `persist: entries start at ${first.index}, outside (${snapIndex}, ${lastIndex + 1}]`,
  );
  for (let k = 1; k < entries.length; k++) {
    assert.equal(entries[k]!.index, first.index + k, 'persist: entries are not consecutive');
  }
}

// ---- file helpers ----

export function readWhole(io: FileIo, file: string, sizeMaxBytes: number): Buffer {
  const fd = io.open(file, 'r');
  try {
    const size = io.sizeOf(fd);
    if (size > sizeMaxBytes) throw corrupt(file, `is ${size} bytes, above the limit of ${sizeMaxBytes}`);
    const buf = Buffer.allocUnsafe(size);
    return buf.subarray(0, readFully(io, fd, buf, buf.length, 0));
  } finally {
    io.close(fd);
  }
}

/** The Raft storage's atomic replace: storage-io's, whose temp-file cleanup the open() repeats. */
export function replaceFileDurably(io: FileIo, file: string, records: readonly Buffer[]): void {
  writeFileDurably(io, file, records);
}

export function errorMessage(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

export function toStorageError(error: unknown, what: string): RaftStorageError {
  if (error instanceof RaftStorageError) return error;
  if (error instanceof WalrusError && error.code === ErrorCode.CORRUPT_RECORD) {
    return new RaftStorageError('CORRUPT_RECORD', `${what}: ${error.message}`, { cause: error });
  }
  const errno = (error as NodeJS.ErrnoException | undefined)?.code;
  const code = errno === 'ENOSPC' || errno === 'EDQUOT' ? 'DISK_FULL' : 'UNAVAILABLE';
  return new RaftStorageError(code, `${what}: ${errorMessage(error)}`, { cause: error });
}
