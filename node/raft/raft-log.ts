/**
 * RaftLog: the log as the core sees it = durable part (RaftStorage) + an in-memory unstable tail
 * (entries and possibly a snapshot that a Ready hands to the driver to persist), plus the commit
 * and applied indexes. Invariants: applied <= committed <= lastIndex; unstable entries are
 * contiguous from unstableOffset; the log never changes at or below committed.
 */
import assert from 'node:assert/strict';
import type { RaftStorage } from './storage.js';
import { entryBytes } from './storage.js';
import type { Entry, Snapshot } from './types.js';

export class RaftLog {
  readonly storage: RaftStorage;
  /** A snapshot received from the leader, not yet persisted. */
  unstableSnapshot: Snapshot | null = null;
  /** Entries not yet persisted; unstable[k].index === unstableOffset + k. */
  unstable: Entry[] = [];
  unstableOffset: number;
  committed: number;
  applied: number;

  constructor(storage: RaftStorage) {
    this.storage = storage;
    this.unstableOffset = storage.lastIndex() + 1;
    const snapIndex = storage.firstIndex() - 1;
    this.committed = snapIndex;
    this.applied = snapIndex;
  }

  firstIndex(): number {
    if (this.unstableSnapshot) return this.unstableSnapshot.meta.index + 1;
    return this.storage.firstIndex();
  }

  lastIndex(): number {
    if (this.unstable.length > 0) return this.unstableOffset + this.unstable.length - 1;
    if (this.unstableSnapshot) return this.unstableSnapshot.meta.index;
    return this.storage.lastIndex();
  }

  /** Last index that is durable (persisted by the driver and advanced). */
  stableLastIndex(): number {
    if (this.unstableSnapshot) return this.storage.lastIndex();
    return Math.min(this.unstableOffset - 1, this.storage.lastIndex());
  }

  /** Term of entry i, or undefined when i is compacted or beyond the log. */
  term(i: number): number | undefined {
    const off = this.unstableOffset;
    const n = this.unstable.length;
    if (n > 0 && i >= off) return i < off + n ? this.unstable[i - off]!.term : undefined;
    const snap = this.unstableSnapshot;
    if (snap) {
      if (i === snap.meta.index) return snap.meta.term;
      return undefined;
    }
    if (i >= off) return undefined;
    return this.storage.term(i);
  }

  lastTerm(): number {
    const t = this.term(this.lastIndex());
    assert.ok(t !== undefined, 'term of the last index must be known');
    return t;
  }

  matchTerm(i: number, term: number): boolean {
    return this.term(i) === term;
  }

  /** True when a log ending at (lastIndex, lastTerm) is at least as up to date as ours (§5.4.1). */
  isUpToDate(lastIndex: number, lastTerm: number): boolean {
    const myTerm = this.lastTerm();
    return lastTerm > myTerm || (lastTerm === myTerm && lastIndex >= this.lastIndex());
  }

  /** Entries [lo, hi), at most maxBytes (at least one). Requires firstIndex <= lo. */
  slice(lo: number, hi: number, maxBytes: number): Entry[] {
    assert.ok(lo >= this.firstIndex() && hi <= this.lastIndex() + 1, `slice [${lo}, ${hi}) out of range`);
    if (lo >= hi) return [];
    const off = this.unstableOffset;
    let out: Entry[] = [];
    let bytes = 0;
    if (lo < off) {
      out = this.storage.entries(lo, Math.min(hi, off), maxBytes);
      for (const e of out) bytes += entryBytes(e);
      if (out.length < Math.min(hi, off) - lo) return out;
    }
    for (let i = Math.max(lo, off); i < hi; i++) {
      const e = this.unstable[i - off]!;
      bytes += entryBytes(e);
      if (out.length > 0 && bytes > maxBytes) break;
      out.push(e);
    }
    return out;
  }

  /**
   * The index of the first entry of `ents` that conflicts with (or is beyond) our log, or 0 when
   * all of them are already present with the same terms.
   */
  findConflict(ents: readonly Entry[]): number {
    for (const e of ents) {
      if (!this.matchTerm(e.index, e.term)) return e.index;
    }
    return 0;
  }

  /**
   * Fast back-tracking: the largest index <= `index` whose term is <= `term` (or the first index
   * whose term is unknown), with its term (0 when unknown).
   */
  findConflictByTerm(index: number, term: number): { index: number; term: number } {
    for (let i = index; ; i--) {
      const t = this.term(i);
      if (t === undefined) return { index: i, term: 0 };
      if (t <= term) return { index: i, term: t };
    }
  }

  /** Appends entries to the unstable tail, truncating any conflicting suffix above committed. */
  append(ents: readonly Entry[]): void {
    if (ents.length === 0) return;
    const after = ents[0]!.index;
    assert.ok(after > this.committed, `append at ${after} would overwrite committed ${this.committed}`);
    assert.ok(after <= this.lastIndex() + 1, `append at ${after} leaves a gap after ${this.lastIndex()}`);
    const off = this.unstableOffset;
    if (after === off + this.unstable.length) {
      for (const e of ents) this.unstable.push(e);
    } else if (after <= off) {
      this.unstableOffset = after;
      this.unstable = ents.slice();
    } else {
      this.unstable = this.unstable.slice(0, after - off);
      for (const e of ents) this.unstable.push(e);
    }
  }

  commitTo(index: number): void {
    if (index <= this.committed) return;
    assert.ok(index <= this.lastIndex(), `commit ${index} beyond last index ${this.lastIndex()}`);
    this.committed = index;
  }

  /** Replaces the log by a snapshot received from the leader. */
  restore(snap: Snapshot): void {
    assert.ok(snap.meta.index > this.committed, 'restore must move the log forward');
    this.unstableSnapshot = snap;
    this.unstable = [];
    this.unstableOffset = snap.meta.index + 1;
    this.committed = snap.meta.index;
  }

  /** The driver persisted everything handed out so far (entries and snapshot). */
  stableAll(): void {
    const next = this.lastIndex() + 1;
    this.unstableSnapshot = null;
    this.unstableOffset = next;
    this.unstable = [];
  }

  /** Committed entries not yet handed to the application, bounded by maxBytes. */
  nextCommitted(maxBytes: number): Entry[] {
    const lo = Math.max(this.applied + 1, this.firstIndex());
    if (lo > this.committed) return [];
    return this.slice(lo, this.committed + 1, maxBytes);
  }

  hasNextCommitted(): boolean {
    return this.committed > Math.max(this.applied, this.firstIndex() - 1);
  }
}
