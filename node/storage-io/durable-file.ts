/**
 * Durable-file helpers over a FileIo, shared by the WAL and the Raft storage: whole writes and
 * reads that loop over short ones, small whole-file reads, the atomic replace (temp file, fsync,
 * rename, directory fsync) that every checkpoint, snapshot and identity file goes through, and
 * directories made durably.
 */
import path from 'node:path';
import type { FileIo } from './file-io.js';

/** Writes all of `buf` at `position`, looping over short writes. */
export function writeFully(io: FileIo, fd: number, buf: Uint8Array, length: number, position: number): void {
  let done = 0;
  while (done < length) {
    const n = io.write(fd, buf, done, length - done, position + done);
    if (n <= 0) throw Object.assign(new Error('write made no progress'), { code: 'EIO' });
    done += n;
  }
}

/** Reads up to `length` bytes at `position`, looping over short reads; returns bytes read (less at EOF). */
export function readFully(io: FileIo, fd: number, buf: Uint8Array, length: number, position: number): number {
  let done = 0;
  while (done < length) {
    const n = io.read(fd, buf, done, length - done, position + done);
    if (n === 0) break;
    done += n;
  }
  return done;
}

/** Reads a whole small file (index checkpoints, seal markers), or null when it does not exist. */
export function readSmallFile(io: FileIo, file: string, sizeMaxBytes: number): Buffer | null {
  if (!io.exists(file)) return null;
  const fd = io.open(file, 'r');
  try {
    const size = io.sizeOf(fd);
    if (size > sizeMaxBytes) return null;
    const buf = Buffer.allocUnsafe(size);
    return buf.subarray(0, readFully(io, fd, buf, size, 0));
  } finally {
    io.close(fd);
  }
}

/**
 * Replaces `file` atomically and durably: write `<file>.tmp` (the parts back to back), fsync it,
 * rename it over `file`, fsync the directory. A failure before the rename leaves the old file and
 * removes the temp file (best effort: openers remove leftover `.tmp` files).
 */
export function writeFileDurably(io: FileIo, file: string, data: Uint8Array | readonly Uint8Array[]): void {
  const temp = `${file}.tmp`;
  const parts = data instanceof Uint8Array ? [data] : data;
  try {
    const fd = io.open(temp, 'w+');
    try {
      let at = 0;
      for (const part of parts) {
        writeFully(io, fd, part, part.length, at);
        at += part.length;
      }
      io.fsync(fd);
    } finally {
      io.close(fd);
    }
  } catch (error) {
    try {
      if (io.exists(temp)) io.unlink(temp);
    } catch {
      // Left for the next opener to remove.
    }
    throw error;
  }
  io.rename(temp, file);
  io.fsyncDir(path.dirname(file));
}

/**
 * Creates `dir` and any missing parents so that they survive a crash: after each directory is
 * made, its parent is fsync'd (a new directory entry is durable only once its parent is).
 */
export function mkdirDurably(io: FileIo, dir: string): void {
  const missing: string[] = [];
  for (let d = path.resolve(dir); !io.exists(d); d = path.dirname(d)) {
    missing.push(d);
    if (path.dirname(d) === d) break;
  }
  for (const d of missing.reverse()) {
    io.mkdir(d);
    io.fsyncDir(path.dirname(d));
  }
}
