/**
 * Durable, group-committed command log for the metadata state machine of a node that runs alone
 * (`raft_meta/entries.log` + `raft_meta/snapshot.bin`, the seed's file names). Commands proposed in
 * one event-loop turn share one write and one fdatasync; a command is applied to the state only
 * after it is durable, and its promise resolves after that.
 *
 * Recovery: the snapshot is loaded (a checksum failure refuses start-up), then the log replayed.
 * A torn or corrupt LAST record is a crash mid-write and is truncated; a corrupt record followed
 * by valid ones is damage, and start-up is refused with the file and position (never skipped).
 * When the log passes `metaLogCompactBytes` the state is written to a new snapshot (temp file,
 * fsync, rename, fsync dir) and the log restarted empty.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { crc32c } from '@node-rs/crc32';
import { type MetaCommand, MetadataState, type MetadataSnapshot } from './metadata-state.js';

export const metaLogLimits = {
  /** Rewrite a snapshot and restart the log beyond this size; also bounds what recovery reads. */
  compactBytes: 8 * 1024 * 1024,
  /** Commands waiting for one group commit; proposals beyond it are refused (BUSY). */
  pendingCountMax: 100_000,
  recordSizeMaxBytes: 1024 * 1024,
} as const;

const recordHeaderBytes = 16; // len u32, crc u32, index u64
const snapshotMagic = 0x31534d57; // "WMS1" little-endian

export class MetaLogError extends Error {
  constructor(
    readonly code: 'CORRUPT_RECORD' | 'DISK_FULL' | 'UNAVAILABLE' | 'BUSY',
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
    this.name = 'MetaLogError';
  }
}

interface Pending {
  readonly command: MetaCommand;
  readonly resolve: (index: number) => void;
  readonly reject: (error: Error) => void;
}

function fsyncDir(dir: string): void {
  const fd = fs.openSync(dir, 'r');
  try {
    fs.fsyncSync(fd);
  } finally {
    fs.closeSync(fd);
  }
}

function writeFileDurably(file: string, data: Uint8Array): void {
  const tmp = `${file}.tmp`;
  const fd = fs.openSync(tmp, 'w');
  try {
    fs.writeSync(fd, data);
    fs.fsyncSync(fd);
  } finally {
    fs.closeSync(fd);
  }
  fs.renameSync(tmp, file);
  fsyncDir(path.dirname(file));
}

function encodeRecord(index: number, command: MetaCommand): Buffer {
  const json = Buffer.from(JSON.stringify(command), 'utf8');
  const buf = Buffer.allocUnsafe(recordHeaderBytes + json.length);
  buf.writeUInt32LE(json.length + 8, 0);
  buf.writeBigUInt64LE(BigInt(index), 8);
  json.copy(buf, recordHeaderBytes);
  buf.writeUInt32LE(crc32c(buf.subarray(8)), 4);
  return buf;
}

export class MetaLog {
  readonly state: MetadataState;
  private readonly dir: string;
  private readonly logPath: string;
  private fd: number;
  private sizeBytes: number;
  private pending: Pending[] = [];
  private flushScheduled = false;
  private closed = false;
  /** Called after each command is applied (the broker reacts to segment changes). */
  onApply: ((command: MetaCommand) => void) | null = null;

  private constructor(dir: string, state: MetadataState, fd: number, sizeBytes: number) {
    this.dir = dir;
    this.logPath = path.join(dir, 'entries.log');
    this.state = state;
    this.fd = fd;
    this.sizeBytes = sizeBytes;
  }

  /** Opens (creating if missing) and recovers the log in `dir` (the node's raft_meta/). */
  static open(
    dir: string,
    onTruncate?: (info: { file: string; fromBytes: number; toBytes: number }) => void,
  ): MetaLog {
    fs.mkdirSync(dir, { recursive: true });
    const snapshotPath = path.join(dir, 'snapshot.bin');
    const state = fs.existsSync(snapshotPath) ? loadSnapshot(snapshotPath) : new MetadataState();
    const logPath = path.join(dir, 'entries.log');
    const fd = fs.openSync(logPath, fs.existsSync(logPath) ? 'r+' : 'w+');
    fsyncDir(dir);
    const size = fs.fstatSync(fd).size;
    if (size > metaLogLimits.compactBytes * 2) {
      fs.closeSync(fd);
      throw new MetaLogError(
        'CORRUPT_RECORD',
        `${logPath} is ${size} bytes, beyond any size this node writes`,
      );
    }
    const buf = Buffer.alloc(size);
    if (size > 0) fs.readSync(fd, buf, 0, size, 0);
    let pos = 0;
    while (pos < size) {
      const problem = recordProblem(buf, pos, size);
      if (problem !== undefined) {
        if (problem.torn || !hasValidRecordAfter(buf, pos + 1, size)) {
          fs.ftruncateSync(fd, pos);
          fs.fsyncSync(fd);
          onTruncate?.({ file: logPath, fromBytes: size, toBytes: pos });
          break;
        }
        fs.closeSync(fd);
        throw new MetaLogError(
          'CORRUPT_RECORD',
          `${logPath}: record at byte ${pos} fails its checksum and valid records follow; refusing to start (restore raft_meta/ from a replica or backup)`,
        );
      }
      const length = buf.readUInt32LE(pos);
      const index = Number(buf.readBigUInt64LE(pos + 8));
      const command = JSON.parse(
        buf.toString('utf8', pos + recordHeaderBytes, pos + 8 + length),
      ) as MetaCommand;
      if (index > state.appliedIndex) {
        if (index !== state.appliedIndex + 1) {
          fs.closeSync(fd);
          throw new MetaLogError(
            'CORRUPT_RECORD',
            `${logPath}: index ${index} follows ${state.appliedIndex}`,
          );
        }
        state.apply(index, command);
      }
      pos += 8 + length;
    }
    return new MetaLog(dir, state, fd, pos);
  }

  /** Logs the command durably, applies it, and resolves with its index. */
  propose(command: MetaCommand): Promise<number> {
    if (this.closed) return Promise.reject(new MetaLogError('UNAVAILABLE', 'metadata log is closed'));
    if (this.pending.length >= metaLogLimits.pendingCountMax) {
      return Promise.reject(new MetaLogError('BUSY', 'too many metadata changes waiting for disk'));
    }
    return new Promise<number>((resolve, reject) => {
      this.pending.push({ command, resolve, reject });
      if (!this.flushScheduled) {
        this.flushScheduled = true;
        setImmediate(() => this.flush());
      }
    });
  }

  private flush(): void {
    this.flushScheduled = false;
    const batch = this.pending;
    this.pending = [];
    if (batch.length === 0) return;
    const firstIndex = this.state.appliedIndex + 1;
    const buffers = batch.map((p, i) => encodeRecord(firstIndex + i, p.command));
    const data = Buffer.concat(buffers);
    try {
      fs.writeSync(this.fd, data, 0, data.length, this.sizeBytes);
      fs.fdatasyncSync(this.fd);
    } catch (error) {
      try {
        fs.ftruncateSync(this.fd, this.sizeBytes);
      } catch {
        // The failed write stays beyond sizeBytes; the next write overwrites it, recovery truncates it.
      }
      const code = (error as NodeJS.ErrnoException).code === 'ENOSPC' ? 'DISK_FULL' : 'UNAVAILABLE';
      const failure = new MetaLogError(code, `metadata log write failed: ${(error as Error).message}`, {
        cause: error,
      });
      for (const p of batch) p.reject(failure);
      return;
    }
    this.sizeBytes += data.length;
    for (let i = 0; i < batch.length; i++) {
      this.state.apply(firstIndex + i, batch[i]!.command);
      this.onApply?.(batch[i]!.command);
      batch[i]!.resolve(firstIndex + i);
    }
    if (this.sizeBytes > metaLogLimits.compactBytes) this.compact();
  }

  /** Writes a snapshot of the applied state and restarts the log empty. */
  compact(): void {
    const snapshot = Buffer.from(JSON.stringify(this.state.toSnapshot()), 'utf8');
    const framed = Buffer.allocUnsafe(12 + snapshot.length);
    framed.writeUInt32LE(snapshotMagic, 0);
    framed.writeUInt32LE(snapshot.length, 8);
    snapshot.copy(framed, 12);
    framed.writeUInt32LE(crc32c(framed.subarray(8)), 4);
    writeFileDurably(path.join(this.dir, 'snapshot.bin'), framed);
    // Entries up to the snapshot index are skipped on replay, so a crash here is harmless.
    writeFileDurably(this.logPath, new Uint8Array(0));
    fs.closeSync(this.fd);
    this.fd = fs.openSync(this.logPath, 'r+');
    this.sizeBytes = 0;
  }

  close(): void {
    if (this.closed) return;
    this.flush();
    this.closed = true;
    fs.closeSync(this.fd);
  }
}

function recordProblem(buf: Buffer, pos: number, size: number): { torn: boolean } | undefined {
  if (pos + recordHeaderBytes > size) return { torn: true };
  const length = buf.readUInt32LE(pos);
  if (length < 8 || length > metaLogLimits.recordSizeMaxBytes) return { torn: false };
  if (pos + 8 + length > size) return { torn: true };
  if (crc32c(buf.subarray(pos + 8, pos + 8 + length)) !== buf.readUInt32LE(pos + 4)) return { torn: false };
  return undefined;
}

/** True when some later position holds a record whose checksum verifies: the damage is not a tail. */
function hasValidRecordAfter(buf: Buffer, from: number, size: number): boolean {
  for (let pos = from; pos + recordHeaderBytes <= size; pos++) {
    if (recordProblem(buf, pos, size) === undefined) return true;
  }
  return false;
}

function loadSnapshot(file: string): MetadataState {
  const buf = fs.readFileSync(file);
  if (buf.length < 12 || buf.readUInt32LE(0) !== snapshotMagic) {
    throw new MetaLogError('CORRUPT_RECORD', `${file} is not a Walrus-TS metadata snapshot`);
  }
  const length = buf.readUInt32LE(8);
  if (12 + length !== buf.length || crc32c(buf.subarray(8)) !== buf.readUInt32LE(4)) {
    throw new MetaLogError('CORRUPT_RECORD', `${file} fails its checksum; refusing to start`);
  }
  const snapshot = JSON.parse(buf.toString('utf8', 12)) as MetadataSnapshot;
  assert.ok(Number.isSafeInteger(snapshot.appliedIndex));
  return MetadataState.fromSnapshot(snapshot);
}
