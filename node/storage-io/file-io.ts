/**
 * The WAL's only door to the filesystem: a small synchronous file API, real (`realFileIo`, over
 * node:fs) or fault-injecting (`FaultInjectingFileIo`, for tests of ENOSPC, EIO and torn writes).
 * Synchronous on purpose: the group commit writes and fdatasyncs in one setImmediate callback
 * (the Redis AOF model), which is faster than the libuv thread pool for small writes. The one
 * asynchronous call, `fdatasyncAsync`, lets a group commit that touched several files sync them
 * in parallel. `statfs` tells the WAL how much space is left (its disk reserve, preallocation
 * back-off); optional, so a FileIo without a file system (the simulator's disk) leaves the WAL to
 * learn of a full disk from ENOSPC alone.
 */
import fs from 'node:fs';

/** Space on the file system that holds a path (statfs: blocks available to the process). */
export interface DiskUsage {
  /** Bytes a write may still take (f_bavail × f_bsize). */
  readonly freeBytes: number;
  /** Size of the file system (f_blocks × f_bsize). */
  readonly sizeBytes: number;
}

export interface FileIo {
  open(file: string, flags: 'r+' | 'w+' | 'wx+' | 'r'): number;
  close(fd: number): void;
  /** Positioned write; returns bytes written (may be short). */
  write(fd: number, buf: Uint8Array, bufOffset: number, length: number, position: number): number;
  /** Positioned read; returns bytes read (short at end of file). */
  read(fd: number, buf: Uint8Array, bufOffset: number, length: number, position: number): number;
  fdatasync(fd: number): void;
  /** fdatasync in the thread pool: several files in one group commit are synced in parallel. */
  fdatasyncAsync(fd: number): Promise<void>;
  fsync(fd: number): void;
  /**
   * Writes zeros over [from, to) of `file` through its own O_DSYNC descriptor, in the thread pool,
   * in chunks of `zeroChunkSizeBytes`: background preallocation that never leaves many dirty pages
   * for the group commit's fdatasync to flush.
   */
  writeZerosDurablyAsync(file: string, from: number, to: number): Promise<void>;
  truncate(fd: number, length: number): void;
  sizeOf(fd: number): number;
  rename(from: string, to: string): void;
  unlink(file: string): void;
  mkdir(dir: string): void;
  /** Names in `dir`, or [] when it does not exist. */
  list(dir: string): string[];
  removeTree(dir: string): void;
  exists(file: string): boolean;
  /** fsync of a directory, so that creates, renames and deletes in it are durable. */
  fsyncDir(dir: string): void;
  /** Free and total space of the file system holding `dir` (absent: not known). */
  statfs?(dir: string): DiskUsage;
}

/**
 * Background preallocation writes this many zeros per O_DSYNC write: few enough device flushes to
 * not compete with the group commit's, small enough that a group commit fdatasync that catches a
 * chunk still dirty flushes little.
 */
export const zeroChunkSizeBytes = 1024 * 1024;
const zeroChunk = Buffer.alloc(zeroChunkSizeBytes);

export const realFileIo: FileIo = {
  open: (file, flags) => fs.openSync(file, flags),
  close: (fd) => fs.closeSync(fd),
  write: (fd, buf, bufOffset, length, position) => fs.writeSync(fd, buf, bufOffset, length, position),
  read: (fd, buf, bufOffset, length, position) => fs.readSync(fd, buf, bufOffset, length, position),
  fdatasync: (fd) => fs.fdatasyncSync(fd),
  fdatasyncAsync: (fd) =>
    new Promise((resolve, reject) => {
      fs.fdatasync(fd, (error) => (error ? reject(error) : resolve()));
    }),
  fsync: (fd) => fs.fsyncSync(fd),
  writeZerosDurablyAsync: async (file, from, to) => {
    const handle = await fs.promises.open(file, fs.constants.O_RDWR | fs.constants.O_DSYNC);
    try {
      for (let pos = from; pos < to; ) {
        const n = Math.min(zeroChunkSizeBytes, to - pos);
        const { bytesWritten } = await handle.write(zeroChunk, 0, n, pos);
        if (bytesWritten <= 0) throw Object.assign(new Error('write made no progress'), { code: 'EIO' });
        pos += bytesWritten;
      }
    } finally {
      await handle.close();
    }
  },
  truncate: (fd, length) => fs.ftruncateSync(fd, length),
  sizeOf: (fd) => fs.fstatSync(fd).size,
  rename: (from, to) => fs.renameSync(from, to),
  unlink: (file) => fs.unlinkSync(file),
  mkdir: (dir) => {
    fs.mkdirSync(dir, { recursive: true });
  },
  list: (dir) => {
    try {
      return fs.readdirSync(dir);
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') return [];
      throw error;
    }
  },
  removeTree: (dir) => fs.rmSync(dir, { recursive: true, force: true }),
  exists: (file) => fs.existsSync(file),
  fsyncDir: (dir) => {
    const fd = fs.openSync(dir, 'r');
    try {
      fs.fsyncSync(fd);
    } finally {
      fs.closeSync(fd);
    }
  },
  statfs: (dir) => {
    const s = fs.statfsSync(dir);
    return { freeBytes: s.bavail * s.bsize, sizeBytes: s.blocks * s.bsize };
  },
};

export type FaultOp = 'write' | 'fdatasync' | 'fsync' | 'truncate' | 'open' | 'rename' | 'unlink' | 'zeros';

export interface Fault {
  op: FaultOp;
  /** errno code to throw, e.g. 'ENOSPC' or 'EIO'. */
  code: string;
  /** How many matching calls fail (default 1). */
  count?: number;
  /** Only calls on files whose path contains this. */
  pathIncludes?: string;
  /** For writes: write this many bytes for real before failing (a torn write). */
  partialBytes?: number;
}

/** A FileIo that fails chosen calls with chosen errno codes; everything else goes to `inner`. */
export class FaultInjectingFileIo implements FileIo {
  private readonly faults: (Fault & { left: number })[] = [];
  private readonly paths = new Map<number, string>();
  /** Calls that failed because of an injected fault. */
  injectedCount = 0;
  /**
   * What `statfs` answers instead of the real file system while set: a test's full or freed disk.
   * Files grown through this FileIo meanwhile take from `freeBytes`, files cut or removed give back.
   */
  diskUsage: { freeBytes: number; sizeBytes: number } | null = null;

  /** Moves `freeBytes` by a file's change of size (only while `diskUsage` is set). */
  private account(sizeBefore: number, sizeAfter: number): void {
    if (this.diskUsage === null) return;
    this.diskUsage.freeBytes = Math.max(0, this.diskUsage.freeBytes - (sizeAfter - sizeBefore));
  }

  private sizeOfPath(file: string): number {
    try {
      return fs.statSync(file).size;
    } catch {
      return 0;
    }
  }

  constructor(private readonly inner: FileIo = realFileIo) {}

  inject(fault: Fault): void {
    this.faults.push({ ...fault, left: fault.count ?? 1 });
  }

  clear(): void {
    this.faults.length = 0;
  }

  private take(op: FaultOp, file: string | undefined): (Fault & { left: number }) | undefined {
    const index = this.faults.findIndex(
      (f) => f.op === op && (f.pathIncludes === undefined || (file?.includes(f.pathIncludes) ?? false)),
    );
    if (index < 0) return undefined;
    const fault = this.faults[index]!;
    fault.left -= 1;
    if (fault.left <= 0) this.faults.splice(index, 1);
    this.injectedCount += 1;
    return fault;
  }

  private fail(fault: Fault, op: string): never {
    throw Object.assign(new Error(`${fault.code}: injected fault on ${op}`), {
      code: fault.code,
      syscall: op,
    });
  }

  open(file: string, flags: 'r+' | 'w+' | 'wx+' | 'r'): number {
    const fault = this.take('open', file);
    if (fault) this.fail(fault, 'open');
    const fd = this.inner.open(file, flags);
    this.paths.set(fd, file);
    return fd;
  }
  close(fd: number): void {
    this.paths.delete(fd);
    this.inner.close(fd);
  }
  write(fd: number, buf: Uint8Array, bufOffset: number, length: number, position: number): number {
    const fault = this.take('write', this.paths.get(fd));
    if (fault) {
      const partial = Math.min(fault.partialBytes ?? 0, length);
      if (partial > 0) this.inner.write(fd, buf, bufOffset, partial, position);
      this.fail(fault, 'write');
    }
    const before = this.diskUsage === null ? 0 : this.inner.sizeOf(fd);
    const n = this.inner.write(fd, buf, bufOffset, length, position);
    this.account(before, Math.max(before, position + n));
    return n;
  }
  read(fd: number, buf: Uint8Array, bufOffset: number, length: number, position: number): number {
    return this.inner.read(fd, buf, bufOffset, length, position);
  }
  fdatasync(fd: number): void {
    const fault = this.take('fdatasync', this.paths.get(fd));
    if (fault) this.fail(fault, 'fdatasync');
    this.inner.fdatasync(fd);
  }
  fdatasyncAsync(fd: number): Promise<void> {
    const fault = this.take('fdatasync', this.paths.get(fd));
    if (fault) {
      return Promise.reject(
        Object.assign(new Error(`${fault.code}: injected fault on fdatasync`), {
          code: fault.code,
          syscall: 'fdatasync',
        }),
      );
    }
    return this.inner.fdatasyncAsync(fd);
  }
  fsync(fd: number): void {
    const fault = this.take('fsync', this.paths.get(fd));
    if (fault) this.fail(fault, 'fsync');
    this.inner.fsync(fd);
  }
  writeZerosDurablyAsync(file: string, from: number, to: number): Promise<void> {
    const fault = this.take('zeros', file);
    if (fault) {
      return Promise.reject(
        Object.assign(new Error(`${fault.code}: injected fault on zero fill`), {
          code: fault.code,
          syscall: 'write',
        }),
      );
    }
    const before = this.diskUsage === null ? 0 : this.sizeOfPath(file);
    return this.inner
      .writeZerosDurablyAsync(file, from, to)
      .then(() => this.account(before, Math.max(before, to)));
  }
  truncate(fd: number, length: number): void {
    const fault = this.take('truncate', this.paths.get(fd));
    if (fault) this.fail(fault, 'ftruncate');
    const before = this.diskUsage === null ? 0 : this.inner.sizeOf(fd);
    this.inner.truncate(fd, length);
    this.account(before, this.diskUsage === null ? 0 : length);
  }
  sizeOf(fd: number): number {
    return this.inner.sizeOf(fd);
  }
  rename(from: string, to: string): void {
    const fault = this.take('rename', to);
    if (fault) this.fail(fault, 'rename');
    this.inner.rename(from, to);
  }
  unlink(file: string): void {
    const fault = this.take('unlink', file);
    if (fault) this.fail(fault, 'unlink');
    const before = this.diskUsage === null ? 0 : this.sizeOfPath(file);
    this.inner.unlink(file);
    this.account(before, 0);
  }
  mkdir(dir: string): void {
    this.inner.mkdir(dir);
  }
  list(dir: string): string[] {
    return this.inner.list(dir);
  }
  removeTree(dir: string): void {
    this.inner.removeTree(dir);
  }
  exists(file: string): boolean {
    return this.inner.exists(file);
  }
  fsyncDir(dir: string): void {
    this.inner.fsyncDir(dir);
  }
  statfs(dir: string): DiskUsage {
    if (this.diskUsage !== null) return { ...this.diskUsage };
    if (this.inner.statfs === undefined)
      throw Object.assign(new Error('statfs is not known'), { code: 'ENOSYS' });
    return this.inner.statfs(dir);
  }
}
