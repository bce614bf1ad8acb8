/**
 * A simulated disk for one node, behind node/storage-io's FileIo, modelling the page cache:
 *
 * - File data: every write lands in the page cache (what reads see) and is queued as unsynced;
 *   fdatasync / fsync make a file's queued writes durable. `writeZerosDurablyAsync` (O_DSYNC) is
 *   durable when it completes. After a failed fdatasync (injected EIO) the queued writes are never
 *   made durable, though reads still see them (Linux "fsyncgate").
 * - Directory entries (create, rename, unlink, mkdir, removeTree) are durable only after an
 *   fsyncDir of every directory they touch.
 * - A crash (`crash`) keeps the durable state plus, as a write-back that got that far, a random
 *   prefix of the unsynced directory operations and, per file, a random prefix of its unsynced
 *   writes, the last one possibly torn at a random byte. Entries left without a parent vanish.
 * - Faults, each decided by the disk's own seeded stream: ENOSPC / EIO on writes, EIO on syncs,
 *   a crash point (the process dies inside a write or a sync, after a torn part of the write), and
 *   bit flips in durable data (`flipBit`).
 *
 * A process reaches the disk through a `SimFileIo` (its descriptors); when the process dies its
 * SimFileIo throws ProcessDead on every call, so nothing it left running can touch the disk again.
 */
import path from 'node:path';
import { Prng } from '../../../node/raft/index.js';
import type { FileIo } from '../../../node/storage-io/index.js';
import { ProcessDead, type SimProcess, type SimScheduler } from './sim-world.js';

/** Delay of an asynchronous fdatasync or zero fill (simulated ms). */
const asyncIoDelayMaxMs = 3;

/** A growable byte array with a logical size. */
class Bytes {
  buf: Buffer;
  size: number;
  constructor(from?: Bytes) {
    this.size = from?.size ?? 0;
    this.buf = Buffer.alloc(Math.max(64, this.size));
    if (from) from.buf.copy(this.buf, 0, 0, from.size);
  }
  private reserve(n: number): void {
    if (n <= this.buf.length) return;
    const next = Buffer.alloc(Math.max(n, this.buf.length * 2));
    this.buf.copy(next, 0, 0, this.size);
    this.buf = next;
  }
  write(pos: number, src: Uint8Array): void {
    this.reserve(pos + src.length);
    if (pos > this.size) this.buf.fill(0, this.size, pos);
    this.buf.set(src, pos);
    this.size = Math.max(this.size, pos + src.length);
  }
  zero(from: number, to: number): void {
    this.reserve(to);
    if (from > this.size) this.buf.fill(0, this.size, from);
    this.buf.fill(0, from, to);
    this.size = Math.max(this.size, to);
  }
  truncate(n: number): void {
    if (n > this.size) this.zero(this.size, n);
    else this.size = n;
  }
}

type DataOp = { kind: 'write'; pos: number; bytes: Buffer } | { kind: 'truncate'; size: number };

export class Inode {
  /** What reads see (the page cache). */
  data = new Bytes();
  /** What survives a crash. */
  synced = new Bytes();
  /** Writes since the last sync, oldest first. */
  pending: DataOp[] = [];
  /**
   * For the replication checks' decoders (replica-view.ts): the lowest byte position of `data` /
   * `synced` changed since the decoder last looked (Infinity: none), so it can go on from where it
   * stopped instead of decoding the file again.
   */
  dataChangedFrom = 0;
  syncedChangedFrom = 0;
}

/** Notes that `b`'s bytes from `pos` on may have changed. */
function touchData(inode: Inode, pos: number): void {
  if (pos < inode.dataChangedFrom) inode.dataChangedFrom = pos;
}

function touchSynced(inode: Inode, pos: number): void {
  if (pos < inode.syncedChangedFrom) inode.syncedChangedFrom = pos;
}

/** The lowest position a data op changes. */
function opFrom(op: DataOp): number {
  return op.kind === 'write' ? op.pos : op.size;
}

export type Entry = { readonly kind: 'dir' } | { readonly kind: 'file'; readonly inode: Inode };
type DirOp =
  | { kind: 'link'; path: string; entry: Entry }
  | { kind: 'unlink'; path: string }
  | { kind: 'rename'; from: string; to: string };

export interface DiskFaults {
  /** Probability that one write fails with ENOSPC (nothing written). */
  writeFullRate: number;
  /** Probability that one write fails with EIO after writing a torn part. */
  writeErrorRate: number;
  /** Probability that one fdatasync / fsync fails with EIO (its writes never become durable). */
  syncErrorRate: number;
  /** Probability that the process dies inside one write or sync. */
  crashPointRate: number;
}

export const noDiskFaults: DiskFaults = {
  writeFullRate: 0,
  writeErrorRate: 0,
  syncErrorRate: 0,
  crashPointRate: 0,
};

export interface DiskStats {
  writes: number;
  syncs: number;
  injectedErrors: number;
  crashPoints: number;
  crashes: number;
  tornWrites: number;
  bitFlips: number;
}

function errno(code: string, what: string): Error {
  return Object.assign(new Error(`${code}: ${what}`), { code });
}

function parentOf(p: string): string {
  return path.dirname(p);
}

function isUnder(p: string, dir: string): boolean {
  return p === dir || p.startsWith(`${dir}/`);
}

/** Moves `from` and everything under it to `to` in `ns`. */
function moveTree(ns: Map<string, Entry>, from: string, to: string): void {
  const moved: [string, Entry][] = [];
  for (const [p, e] of ns) if (isUnder(p, from)) moved.push([p, e]);
  for (const [p] of moved) ns.delete(p);
  for (const [p, e] of moved) ns.set(to + p.slice(from.length), e);
}

function removeTree(ns: Map<string, Entry>, dir: string): void {
  for (const p of [...ns.keys()]) if (isUnder(p, dir)) ns.delete(p);
}

export class SimDisk {
  /** The namespace as the running process sees it. */
  private current = new Map<string, Entry>();
  /** The namespace that survives a crash. */
  private durable = new Map<string, Entry>();
  private pendingDirOps: DirOp[] = [];
  faults: DiskFaults = noDiskFaults;
  readonly stats: DiskStats = {
    writes: 0,
    syncs: 0,
    injectedErrors: 0,
    crashPoints: 0,
    crashes: 0,
    tornWrites: 0,
    bitFlips: 0,
  };
  /** Set by the owner: a crash point killed the running process (resolve the disk, restart later). */
  onCrashPoint: (() => void) | null = null;
  /**
   * For the replication checks, once they set `tracking`: paths whose bytes (page cache or
   * durable) or directory entries changed since they last looked, or `changedAll` (a crash, a
   * wipe, a bit flip).
   */
  tracking = false;
  readonly changedPaths = new Set<string>();
  changedAll = false;

  /** Notes that what `p` holds (or whether it exists) may have changed. */
  noteChange(p: string): void {
    if (this.tracking) this.changedPaths.add(p);
  }

  private noteAll(): void {
    if (this.tracking) this.changedAll = true;
  }

  constructor(
    readonly name: string,
    private readonly prng: Prng,
  ) {
    for (const ns of [this.current, this.durable]) ns.set('/', { kind: 'dir' });
  }

  /** Creates directories durably (what an operator provisions before the first start). */
  provision(dir: string): void {
    for (let d = dir; d !== '/'; d = parentOf(d)) {
      this.current.set(d, { kind: 'dir' });
      this.durable.set(d, { kind: 'dir' });
    }
  }

  /** Erases everything (a wiped data directory). */
  wipe(): void {
    this.wipes++;
    this.noteAll();
    this.current = new Map([['/', { kind: 'dir' }]]);
    this.durable = new Map([['/', { kind: 'dir' }]]);
    this.pendingDirOps = [];
  }

  // ---- namespace ----

  entry(p: string): Entry | undefined {
    return this.current.get(p);
  }

  private requireParent(p: string): void {
    const parent = this.current.get(parentOf(p));
    if (parent?.kind !== 'dir') throw errno('ENOENT', `no directory for ${p}`);
  }

  private dirOp(op: DirOp): void {
    this.pendingDirOps.push(op);
    applyDirOp(this.current, op);
    this.noteOp(op);
  }

  private noteOp(op: DirOp): void {
    if (!this.tracking) return;
    if (op.kind === 'rename') {
      this.changedPaths.add(op.from);
      this.changedPaths.add(op.to);
    } else this.changedPaths.add(op.path);
  }

  link(p: string, entry: Entry): void {
    this.requireParent(p);
    this.dirOp({ kind: 'link', path: p, entry });
  }

  unlink(p: string): void {
    if (!this.current.has(p)) throw errno('ENOENT', `unlink ${p}`);
    this.dirOp({ kind: 'unlink', path: p });
  }

  rename(from: string, to: string): void {
    if (!this.current.has(from)) throw errno('ENOENT', `rename ${from}`);
    this.requireParent(to);
    this.dirOp({ kind: 'rename', from, to });
  }

  mkdirp(dir: string): void {
    const missing: string[] = [];
    for (let d = dir; !this.current.has(d); d = parentOf(d)) missing.push(d);
    for (const d of missing.reverse()) this.dirOp({ kind: 'link', path: d, entry: { kind: 'dir' } });
  }

  list(dir: string): string[] {
    if (this.current.get(dir)?.kind !== 'dir') return [];
    const out: string[] = [];
    for (const p of this.current.keys()) if (p !== dir && parentOf(p) === dir) out.push(path.basename(p));
    return out.sort();
  }

  removeTree(dir: string): void {
    if (!this.current.has(dir)) return;
    this.dirOp({ kind: 'unlink', path: dir });
  }

  fsyncDir(dir: string): void {
    const keep: DirOp[] = [];
    for (const op of this.pendingDirOps) {
      if (touches(op, dir)) {
        applyDirOp(this.durable, op);
        this.noteOp(op);
      } else keep.push(op);
    }
    this.pendingDirOps = keep;
  }

  // ---- data ----

  write(inode: Inode, pos: number, bytes: Buffer): void {
    this.stats.writes++;
    inode.data.write(pos, bytes);
    touchData(inode, pos);
    inode.pending.push({ kind: 'write', pos, bytes });
  }

  truncate(inode: Inode, size: number): void {
    inode.data.truncate(size);
    touchData(inode, size);
    inode.pending.push({ kind: 'truncate', size });
  }

  sync(inode: Inode): void {
    this.stats.syncs++;
    for (const op of inode.pending) applySyncedOp(inode, op);
    inode.pending = [];
  }

  /** A failed sync: the queued writes stay visible but will never be durable. */
  loseUnsynced(inode: Inode): void {
    inode.pending = [];
  }

  /** O_DSYNC zeros: durable at once. */
  zeroDurably(inode: Inode, from: number, to: number): void {
    inode.data.zero(from, to);
    inode.synced.zero(from, to);
    touchData(inode, from);
    touchSynced(inode, from);
  }

  // ---- faults ----

  /** Decides whether this call fails; returns the errno code or null. */
  decide(op: 'write' | 'sync'): 'ENOSPC' | 'EIO' | 'CRASH' | null {
    const f = this.faults;
    if (f === noDiskFaults) return null;
    if (this.prng.chance(f.crashPointRate)) return 'CRASH';
    if (op === 'write') {
      if (this.prng.chance(f.writeFullRate)) return 'ENOSPC';
      if (this.prng.chance(f.writeErrorRate)) return 'EIO';
    } else if (this.prng.chance(f.syncErrorRate)) return 'EIO';
    return null;
  }

  randomInt(n: number): number {
    return this.prng.nextInt(n);
  }

  /**
   * Power loss or kill -9: the page cache goes. Durable state stays; a random prefix of what was
   * not synced may have been written back (the last data write of a file possibly torn).
   */
  crash(): void {
    this.stats.crashes++;
    this.noteAll();
    const ops = this.pendingDirOps;
    const kept = ops.length === 0 ? 0 : this.prng.nextInt(ops.length + 1);
    for (let i = 0; i < kept; i++) applyDirOp(this.durable, ops[i]!);
    this.pendingDirOps = [];
    // Entries whose parent did not make it are unreachable.
    for (const p of [...this.durable.keys()].sort()) {
      if (p !== '/' && this.durable.get(parentOf(p))?.kind !== 'dir') this.durable.delete(p);
    }
    const seen = new Set<Inode>();
    for (const e of this.durable.values()) {
      if (e.kind !== 'file' || seen.has(e.inode)) continue;
      seen.add(e.inode);
      this.resolveFile(e.inode);
    }
    this.current = new Map(this.durable);
  }

  private resolveFile(inode: Inode): void {
    const ops = inode.pending;
    if (ops.length > 0) {
      const kept = this.prng.nextInt(ops.length + 1);
      for (let i = 0; i < kept; i++) applySyncedOp(inode, ops[i]!);
      const torn = ops[kept];
      if (torn?.kind === 'write' && torn.bytes.length > 1 && this.prng.chance(0.5)) {
        this.stats.tornWrites++;
        inode.synced.write(torn.pos, torn.bytes.subarray(0, this.prng.nextInt(torn.bytes.length)));
        touchSynced(inode, torn.pos);
      }
    }
    inode.pending = [];
    inode.data = new Bytes(inode.synced);
    inode.dataChangedFrom = 0;
  }

  /** Flips one bit of durable data in a file whose path passes `filter`; returns the file or null. */
  flipBit(filter: (p: string) => boolean): string | null {
    const files = [...this.durable.entries()]
      .filter(([p, e]) => e.kind === 'file' && e.inode.synced.size > 0 && filter(p))
      .map(([p]) => p)
      .sort();
    if (files.length === 0) return null;
    const file = files[this.prng.nextInt(files.length)]!;
    this.noteAll();
    const inode = (this.durable.get(file) as { inode: Inode }).inode;
    const at = this.prng.nextInt(inode.synced.size);
    const bit = 1 << this.prng.nextInt(8);
    inode.synced.buf[at]! ^= bit;
    touchSynced(inode, at);
    if (at < inode.data.size && inode.pending.length === 0) {
      inode.data.buf[at]! ^= bit;
      touchData(inode, at);
    }
    this.stats.bitFlips++;
    return file;
  }

  /** Durable files (tests of the model). */
  durableFiles(): string[] {
    return [...this.durable.entries()]
      .filter(([, e]) => e.kind === 'file')
      .map(([p]) => p)
      .sort();
  }

  /**
   * The file at `p` as the running process sees it (`durable` false: the page cache) or as a power
   * loss now would leave it at the least (`durable` true: the durable directory entries and the
   * synced bytes, none of the unsynced writes). Undefined when there is no such file. For the
   * replication checks (replica-view.ts), which decode what each node holds.
   */
  fileAt(p: string, durable: boolean): Inode | undefined {
    const e = (durable ? this.durable : this.current).get(p);
    return e?.kind === 'file' ? e.inode : undefined;
  }

  /** How many times the disk was wiped (a cheap way for observers to notice). */
  wipes = 0;

  /** Bytes held in memory (page cache and durable copies). */
  sizeBytes(): number {
    let n = 0;
    const seen = new Set<Inode>();
    for (const ns of [this.current, this.durable]) {
      for (const e of ns.values()) {
        if (e.kind !== 'file' || seen.has(e.inode)) continue;
        seen.add(e.inode);
        n += e.inode.data.size + e.inode.synced.size;
      }
    }
    return n;
  }

  newInode(): Inode {
    return new Inode();
  }
}

function touches(op: DirOp, dir: string): boolean {
  if (op.kind === 'rename') return parentOf(op.from) === dir || parentOf(op.to) === dir;
  return parentOf(op.path) === dir;
}

function applyDirOp(ns: Map<string, Entry>, op: DirOp): void {
  switch (op.kind) {
    case 'link':
      removeTree(ns, op.path);
      ns.set(op.path, op.entry);
      return;
    case 'unlink':
      removeTree(ns, op.path);
      return;
    case 'rename':
      if (!ns.has(op.from)) return; // its creation is not durable: nothing to move
      removeTree(ns, op.to);
      moveTree(ns, op.from, op.to);
      return;
  }
}

function applyDataOp(b: Bytes, op: DataOp): void {
  if (op.kind === 'write') b.write(op.pos, op.bytes);
  else b.truncate(op.size);
}

function applySyncedOp(inode: Inode, op: DataOp): void {
  applyDataOp(inode.synced, op);
  touchSynced(inode, opFrom(op));
}

interface Fd {
  readonly inode: Inode;
  readonly path: string;
  readonly writable: boolean;
}

/** One process's FileIo on a SimDisk: its descriptors, fenced when the process dies. */
export class SimFileIo implements FileIo {
  private readonly fds = new Map<number, Fd>();
  private nextFd = 3;

  constructor(
    private readonly disk: SimDisk,
    private readonly proc: SimProcess,
    private readonly scheduler: SimScheduler,
  ) {}

  private live(): void {
    if (!this.proc.alive) throw new ProcessDead(this.proc.nodeId);
  }

  private fd(fd: number): Fd {
    this.live();
    const f = this.fds.get(fd);
    if (f === undefined) throw errno('EBADF', `fd ${fd}`);
    return f;
  }

  /** A crash point: the process dies here, inside the call. */
  private die(): never {
    this.disk.stats.crashPoints++;
    this.disk.onCrashPoint?.();
    throw new ProcessDead(this.proc.nodeId);
  }

  private fault(op: 'write' | 'sync', what: string, torn?: () => void): void {
    const decided = this.disk.decide(op);
    if (decided === null) return;
    if (decided === 'CRASH') {
      torn?.();
      this.die();
    }
    this.disk.stats.injectedErrors++;
    if (decided === 'EIO') torn?.();
    throw errno(decided, `injected on ${what}`);
  }

  open(file: string, flags: 'r+' | 'w+' | 'wx+' | 'r'): number {
    this.live();
    let e = this.disk.entry(file);
    if (e?.kind === 'dir') throw errno('EISDIR', file);
    if (e === undefined) {
      if (flags === 'r' || flags === 'r+') throw errno('ENOENT', `open ${file}`);
      e = { kind: 'file', inode: this.disk.newInode() };
      this.disk.link(file, e);
    } else if (flags === 'wx+') {
      throw errno('EEXIST', `open ${file}`);
    } else if (flags === 'w+') {
      this.disk.truncate(e.inode, 0);
      this.disk.noteChange(file);
    }
    const fd = this.nextFd++;
    this.fds.set(fd, { inode: e.inode, path: file, writable: flags !== 'r' });
    return fd;
  }

  close(fd: number): void {
    this.fd(fd);
    this.fds.delete(fd);
  }

  write(fd: number, buf: Uint8Array, bufOffset: number, length: number, position: number): number {
    const f = this.fd(fd);
    if (!f.writable) throw errno('EBADF', `fd ${fd} is read-only`);
    const bytes = Buffer.from(buf.subarray(bufOffset, bufOffset + length));
    this.disk.noteChange(f.path);
    this.fault('write', f.path, () => {
      if (bytes.length > 1)
        this.disk.write(f.inode, position, bytes.subarray(0, this.disk.randomInt(bytes.length)));
    });
    this.disk.write(f.inode, position, bytes);
    return length;
  }

  read(fd: number, buf: Uint8Array, bufOffset: number, length: number, position: number): number {
    const f = this.fd(fd);
    const data = f.inode.data;
    const n = Math.max(0, Math.min(length, data.size - position));
    if (n > 0) buf.set(data.buf.subarray(position, position + n), bufOffset);
    return n;
  }

  fdatasync(fd: number): void {
    const f = this.fd(fd);
    this.syncNow(f);
  }

  private syncNow(f: Fd): void {
    this.disk.noteChange(f.path);
    try {
      this.fault('sync', f.path);
    } catch (error) {
      if ((error as { code?: string }).code === 'EIO') this.disk.loseUnsynced(f.inode);
      throw error;
    }
    this.disk.sync(f.inode);
  }

  fdatasyncAsync(fd: number): Promise<void> {
    const f = this.fd(fd);
    return new Promise((resolve, reject) => {
      this.scheduler.setTimeout(() => {
        try {
          this.syncNow(f);
          resolve();
        } catch (error) {
          if (error instanceof ProcessDead) return;
          reject(error);
        }
      }, 1 + this.disk.randomInt(asyncIoDelayMaxMs));
    });
  }

  fsync(fd: number): void {
    this.fdatasync(fd);
  }

  writeZerosDurablyAsync(file: string, from: number, to: number): Promise<void> {
    this.live();
    const e = this.disk.entry(file);
    if (e?.kind !== 'file') return Promise.reject(errno('ENOENT', `open ${file}`));
    return new Promise((resolve, reject) => {
      this.scheduler.setTimeout(() => {
        try {
          this.fault('write', file);
        } catch (error) {
          if (error instanceof ProcessDead) return;
          reject(error);
          return;
        }
        this.disk.zeroDurably(e.inode, from, to);
        this.disk.noteChange(file);
        resolve();
      }, 1 + this.disk.randomInt(asyncIoDelayMaxMs));
    });
  }

  truncate(fd: number, length: number): void {
    const f = this.fd(fd);
    this.disk.truncate(f.inode, length);
    this.disk.noteChange(f.path);
  }

  sizeOf(fd: number): number {
    return this.fd(fd).inode.data.size;
  }

  rename(from: string, to: string): void {
    this.live();
    this.disk.rename(from, to);
  }

  unlink(file: string): void {
    this.live();
    this.disk.unlink(file);
  }

  mkdir(dir: string): void {
    this.live();
    this.disk.mkdirp(dir);
  }

  list(dir: string): string[] {
    this.live();
    return this.disk.list(dir);
  }

  removeTree(dir: string): void {
    this.live();
    this.disk.removeTree(dir);
  }

  exists(file: string): boolean {
    this.live();
    return this.disk.entry(file) !== undefined;
  }

  fsyncDir(dir: string): void {
    this.live();
    if (this.disk.entry(dir)?.kind !== 'dir') throw errno('ENOENT', `open ${dir}`);
    this.disk.fsyncDir(dir);
  }
}

/** A disk's fault stream, derived from the run's seed and the node id. */
export function diskPrng(seed: number, nodeId: number): Prng {
  return new Prng((seed * 7919 + nodeId * 104729) >>> 0);
}
