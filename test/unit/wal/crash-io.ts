/**
 * Crashes on real files, at a chosen point, with or without losing what was not durable.
 *
 * FaultInjectingFileIo fails chosen calls but cannot take back a write that was never synced, so
 * a power loss cannot be modelled with it. `CrashFileIo` wraps a FileIo (real files, real fsyncs)
 * and remembers, for every change it passes on, how to undo it and whether it is durable yet:
 *
 * - data changes (write, ftruncate, open 'w+' of an existing file) become durable at the next
 *   fdatasync / fsync of the file;
 * - name changes (create, rename, unlink, mkdir, removeTree) become durable at the next fsyncDir of
 *   a directory they touch (as in test/sim/whole-node/sim-disk.ts).
 *
 * `crashAt(n)` makes the n-th mutating call from now on die instead (a write writes a torn half
 * first); from then on every call throws and the descriptors are closed: the process is gone.
 * `loseUnsynced(keep)` is the power loss after it: every change not durable but the first `keep`
 * of them is undone, newest first (what a write-back that got that far leaves). A test then opens
 * a new WAL on the directory with the real FileIo, as a restarted process would.
 */
import fs from 'node:fs';
import path from 'node:path';
import type { FileIo } from '../../../node/storage-io/index.js';
import { realFileIo } from '../../../node/storage-io/index.js';

interface Change {
  /** 'data': undone on the file `file`; 'name': durable once one of `dirs` is fsync'd. */
  readonly kind: 'data' | 'name';
  file: string;
  readonly dirs: readonly string[];
  durable: boolean;
  readonly undo: () => void;
}

/** A snapshot of a file or a directory tree, to put back. */
type Snapshot = { kind: 'file'; bytes: Buffer } | { kind: 'dir'; entries: Map<string, Snapshot> };

function snapshot(p: string): Snapshot {
  if (fs.statSync(p).isDirectory()) {
    const entries = new Map<string, Snapshot>();
    for (const name of fs.readdirSync(p)) entries.set(name, snapshot(path.join(p, name)));
    return { kind: 'dir', entries };
  }
  return { kind: 'file', bytes: fs.readFileSync(p) };
}

function restore(p: string, s: Snapshot): void {
  fs.rmSync(p, { recursive: true, force: true });
  if (s.kind === 'file') {
    fs.writeFileSync(p, s.bytes);
    return;
  }
  fs.mkdirSync(p);
  for (const [name, child] of s.entries) restore(path.join(p, name), child);
}

function readRange(file: string, from: number, to: number): Buffer {
  const buf = Buffer.alloc(Math.max(0, to - from));
  if (buf.length === 0) return buf;
  const fd = fs.openSync(file, 'r');
  try {
    fs.readSync(fd, buf, 0, buf.length, from);
  } finally {
    fs.closeSync(fd);
  }
  return buf;
}

function writeRange(file: string, at: number, bytes: Buffer): void {
  const fd = fs.openSync(file, 'r+');
  try {
    fs.writeSync(fd, bytes, 0, bytes.length, at);
  } finally {
    fs.closeSync(fd);
  }
}

export class SimulatedCrash extends Error {
  readonly code = 'ECRASH';
  constructor() {
    super('simulated crash: the process died here');
  }
}

export class CrashFileIo implements FileIo {
  private readonly changes: Change[] = [];
  private readonly fdPaths = new Map<number, string>();
  /** Mutating calls left before the crash (Infinity: none armed). */
  private callsLeft = Number.POSITIVE_INFINITY;
  dead = false;
  /** Mutating calls passed on since the last `crashAt` / `countCalls`. */
  callCount = 0;

  constructor(private readonly inner: FileIo = realFileIo) {}

  /** The `n`-th mutating call from now (0: the next one) dies instead of running. */
  crashAt(n: number): void {
    this.callsLeft = n;
    this.callCount = 0;
  }

  /** Counts mutating calls from now on without crashing. */
  countCalls(): void {
    this.callsLeft = Number.POSITIVE_INFINITY;
    this.callCount = 0;
  }

  /** Changes passed on that are not durable (what a power loss may take back). */
  unsyncedCount(): number {
    return this.changes.filter((c) => !c.durable).length;
  }

  /** The process dies now (if it has not already). */
  kill(): void {
    if (this.dead) return;
    this.dead = true;
    for (const fd of this.fdPaths.keys()) {
      try {
        this.inner.close(fd);
      } catch {
        // Already closed.
      }
    }
    this.fdPaths.clear();
  }

  /** Power loss: undoes, newest first, every change not durable but the first `keep` of them. */
  loseUnsynced(keep = 0): void {
    this.kill();
    const lost = this.changes.filter((c) => !c.durable).slice(keep);
    for (let i = lost.length - 1; i >= 0; i--) lost[i]!.undo();
    this.changes.length = 0;
  }

  private alive(): void {
    if (this.dead) throw new SimulatedCrash();
  }

  /** Before a mutating call: dies when it is the chosen one. */
  private step(torn?: () => void): void {
    this.alive();
    if (this.callsLeft === this.callCount) {
      torn?.();
      this.kill();
      throw new SimulatedCrash();
    }
    this.callCount += 1;
  }

  private pathOf(fd: number): string {
    const file = this.fdPaths.get(fd);
    if (file === undefined) throw new Error(`CrashFileIo: unknown fd ${fd}`);
    return file;
  }

  private dataChange(file: string, undo: () => void): void {
    this.changes.push({ kind: 'data', file, dirs: [], durable: false, undo });
  }

  private nameChange(dirs: string[], undo: () => void): void {
    this.changes.push({ kind: 'name', file: '', dirs, durable: false, undo });
  }

  /** Records a change of bytes [pos, pos + length) and of the size of `file`, then makes it. */
  private changeBytes(file: string, pos: number, length: number, make: () => void): void {
    const sizeBefore = fs.statSync(file).size;
    const before = readRange(file, pos, Math.min(pos + length, sizeBefore));
    make();
    this.dataChange(file, () => {
      if (!fs.existsSync(file)) return;
      writeRange(file, pos, before);
      fs.truncateSync(file, sizeBefore);
    });
  }

  open(file: string, flags: 'r+' | 'w+' | 'wx+' | 'r'): number {
    const creates = flags === 'w+' || flags === 'wx+';
    if (creates) this.step();
    else this.alive();
    const existed = fs.existsSync(file);
    let fd = -1;
    if (creates && existed) {
      // 'w+' of an existing file empties it: a data change.
      const before = fs.readFileSync(file);
      fd = this.inner.open(file, flags);
      this.dataChange(file, () => {
        if (fs.existsSync(file)) fs.writeFileSync(file, before);
      });
    } else {
      fd = this.inner.open(file, flags);
      if (creates) {
        this.nameChange([path.dirname(file)], () => fs.rmSync(file, { force: true }));
      }
    }
    this.fdPaths.set(fd, file);
    return fd;
  }

  close(fd: number): void {
    this.alive();
    this.fdPaths.delete(fd);
    this.inner.close(fd);
  }

  write(fd: number, buf: Uint8Array, bufOffset: number, length: number, position: number): number {
    this.alive();
    const file = this.pathOf(fd);
    this.step(() => {
      const half = Math.floor(length / 2);
      if (half > 0) {
        this.changeBytes(file, position, half, () => this.inner.write(fd, buf, bufOffset, half, position));
      }
    });
    let n = 0;
    this.changeBytes(file, position, length, () => {
      n = this.inner.write(fd, buf, bufOffset, length, position);
    });
    return n;
  }

  read(fd: number, buf: Uint8Array, bufOffset: number, length: number, position: number): number {
    this.alive();
    return this.inner.read(fd, buf, bufOffset, length, position);
  }

  private synced(fd: number): void {
    const file = this.fdPaths.get(fd);
    for (const c of this.changes) if (c.kind === 'data' && c.file === file) c.durable = true;
  }

  fdatasync(fd: number): void {
    this.alive();
    this.pathOf(fd);
    this.step();
    this.inner.fdatasync(fd);
    this.synced(fd);
  }

  async fdatasyncAsync(fd: number): Promise<void> {
    this.step();
    await this.inner.fdatasyncAsync(fd);
    this.synced(fd);
  }

  fsync(fd: number): void {
    this.step();
    this.inner.fsync(fd);
    this.synced(fd);
  }

  /** O_DSYNC zeros beyond the records: durable when done (not undone). */
  writeZerosDurablyAsync(file: string, from: number, to: number): Promise<void> {
    this.alive();
    return this.inner.writeZerosDurablyAsync(file, from, to);
  }

  truncate(fd: number, length: number): void {
    this.alive();
    const file = this.pathOf(fd);
    this.step();
    const sizeBefore = fs.statSync(file).size;
    this.changeBytes(file, length, Math.max(0, sizeBefore - length), () => this.inner.truncate(fd, length));
  }

  sizeOf(fd: number): number {
    this.alive();
    return this.inner.sizeOf(fd);
  }

  rename(from: string, to: string): void {
    this.step();
    const replaced = fs.existsSync(to) ? snapshot(to) : null;
    this.inner.rename(from, to);
    this.moveOpenPaths(from, to);
    this.nameChange([path.dirname(from), path.dirname(to)], () => {
      if (fs.existsSync(to)) fs.renameSync(to, from);
      this.moveOpenPaths(to, from);
      if (replaced !== null) restore(to, replaced);
    });
  }

  /** Data changes and descriptors follow a rename (so that fdatasync and undo find them). */
  private moveOpenPaths(from: string, to: string): void {
    const moved = (p: string): string =>
      p === from || p.startsWith(`${from}${path.sep}`) ? to + p.slice(from.length) : p;
    for (const c of this.changes) if (c.kind === 'data') c.file = moved(c.file);
    for (const [fd, p] of this.fdPaths) this.fdPaths.set(fd, moved(p));
  }

  unlink(file: string): void {
    this.step();
    const before = snapshot(file);
    this.inner.unlink(file);
    this.nameChange([path.dirname(file)], () => restore(file, before));
  }

  mkdir(dir: string): void {
    this.step();
    const missing: string[] = [];
    for (let d = path.resolve(dir); !fs.existsSync(d); d = path.dirname(d)) missing.push(d);
    this.inner.mkdir(dir);
    for (const d of missing.reverse()) {
      this.nameChange([path.dirname(d)], () => fs.rmSync(d, { recursive: true, force: true }));
    }
  }

  list(dir: string): string[] {
    this.alive();
    return this.inner.list(dir);
  }

  removeTree(dir: string): void {
    this.step();
    const before = fs.existsSync(dir) ? snapshot(dir) : null;
    this.inner.removeTree(dir);
    if (before !== null) this.nameChange([path.dirname(dir)], () => restore(dir, before));
  }

  exists(file: string): boolean {
    this.alive();
    return this.inner.exists(file);
  }

  fsyncDir(dir: string): void {
    this.step();
    this.inner.fsyncDir(dir);
    const resolved = path.resolve(dir);
    for (const c of this.changes) {
      if (c.kind === 'name' && c.dirs.some((d) => path.resolve(d) === resolved)) c.durable = true;
    }
  }
}
