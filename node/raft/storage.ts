/**
 * RaftStorage: the read-only view the core has of what the driver persisted (log entries, the last
 * snapshot, hard state). The core never writes to it: the driver writes what a Ready tells it to
 * and then calls advance(). MemoryStorage is the in-memory implementation used by the simulator
 * and tests; the disk-backed one lives in node/cluster.
 *
 * Index layout: the snapshot covers [1, snapshot.index]; entries are (snapshot.index, lastIndex].
 * term(snapshot.index) is the snapshot's term; term(i) is undefined for compacted or absent i.
 */
import assert from 'node:assert/strict';
import type { ConfState, Entry, HardState, Snapshot } from './types.js';

export interface RaftStorage {
  /** The durable hard state (term, vote, commit) as last written. */
  hardState(): HardState;
  /** The last snapshot (index 0 with the bootstrap configuration when none was taken). */
  snapshot(): Snapshot;
  /** snapshot().meta.index + 1. */
  firstIndex(): number;
  /** Index of the last durable entry (snapshot index when the log is empty). */
  lastIndex(): number;
  /** Term of entry i for i in [firstIndex-1, lastIndex]; undefined otherwise. */
  term(i: number): number | undefined;
  /** Entries [lo, hi) with firstIndex <= lo <= hi <= lastIndex+1; stops after maxBytes (at least one). */
  entries(lo: number, hi: number, maxBytes: number): Entry[];
}

export function entryBytes(e: Entry): number {
  return e.data.length + 24;
}

const emptyBytes = new Uint8Array(0);

export class MemoryStorage implements RaftStorage {
  private hard: HardState = { term: 0, vote: 0, commit: 0 };
  private snap: Snapshot;
  /** ents[k] has index snap.meta.index + 1 + k. */
  private ents: Entry[] = [];

  /** A new member's storage: empty log; `conf` is the bootstrap configuration (empty for a joiner). */
  constructor(conf: ConfState = { voters: [], learners: [] }) {
    this.snap = { meta: { index: 0, term: 0, conf }, data: emptyBytes };
  }

  hardState(): HardState {
    return this.hard;
  }
  snapshot(): Snapshot {
    return this.snap;
  }
  firstIndex(): number {
    return this.snap.meta.index + 1;
  }
  lastIndex(): number {
    return this.snap.meta.index + this.ents.length;
  }
  term(i: number): number | undefined {
    const base = this.snap.meta.index;
    if (i === base) return this.snap.meta.term;
    if (i < base || i > base + this.ents.length) return undefined;
    return this.ents[i - base - 1]!.term;
  }
  entries(lo: number, hi: number, maxBytes: number): Entry[] {
    const base = this.snap.meta.index;
    assert.ok(lo > base && hi <= this.lastIndex() + 1 && lo <= hi, `entries [${lo}, ${hi}) out of range`);
    const out: Entry[] = [];
    let bytes = 0;
    for (let i = lo; i < hi; i++) {
      const e = this.ents[i - base - 1]!;
      bytes += entryBytes(e);
      if (out.length > 0 && bytes > maxBytes) break;
      out.push(e);
    }
    return out;
  }

  // ---- write side, used by the driver only ----

  setHardState(hs: HardState): void {
    this.hard = hs;
  }

  /** Appends entries, first discarding any existing suffix from entries[0].index on. */
  append(entries: readonly Entry[]): void {
    if (entries.length === 0) return;
    const first = entries[0]!.index;
    const base = this.snap.meta.index;
    assert.ok(first > base, `append at ${first} below the snapshot ${base}`);
    assert.ok(first <= this.lastIndex() + 1, `append at ${first} leaves a gap after ${this.lastIndex()}`);
    this.ents.length = first - base - 1;
    for (const e of entries) this.ents.push(e);
  }

  /** Replaces log and snapshot with a snapshot received from the leader. */
  applySnapshot(snap: Snapshot): void {
    assert.ok(snap.meta.index >= this.snap.meta.index, 'applySnapshot would go backwards');
    this.snap = snap;
    this.ents = [];
  }

  /** Installs a locally created snapshot and discards the entries it covers. */
  compact(snap: Snapshot): void {
    const base = this.snap.meta.index;
    const idx = snap.meta.index;
    assert.ok(
      idx > base && idx <= this.lastIndex(),
      `compact at ${idx} outside (${base}, ${this.lastIndex()}]`,
    );
    assert.equal(this.term(idx), snap.meta.term, 'compact: snapshot term does not match the log');
    this.ents = this.ents.slice(idx - base);
    this.snap = snap;
  }

  /** A copy (for tests that compare before/after). */
  clone(): MemoryStorage {
    const c = new MemoryStorage(this.snap.meta.conf);
    c.snap = this.snap;
    c.hard = this.hard;
    c.ents = this.ents.slice();
    return c;
  }
}
