/**
 * A segment's sparse offset index: one (offset, file position, timestamp) entry every
 * `indexIntervalBytes` of records, in growable typed arrays; no per-record state. It is a hint:
 * every lookup lands on a record boundary that the reader validates, and a bad checkpoint is simply
 * rebuilt. Paged (index-pager.ts): with a pager and a source, its entries may be dropped while its
 * segment's checkpoint file holds them all, and every method loads them again first, so the node's
 * index memory is bounded by the pager's budget, not by the data.
 */
import assert from 'node:assert';
import type { IndexPager, PagedIndex } from './index-pager.js';

const initialCapacity = 16;

/** Where a dropped index gets its entries back: (offset, position, timestamp) triples. */
export interface IndexSource {
  /** Whether the checkpoint file holds exactly the entries in memory now. */
  saved(): boolean;
  /** The entries, read back from the checkpoint file (or rebuilt by scanning the segment). */
  load(): Float64Array;
}

export class OffsetIndex implements PagedIndex {
  private offsets: Float64Array<ArrayBuffer> = new Float64Array(initialCapacity);
  private positions: Float64Array<ArrayBuffer> = new Float64Array(initialCapacity);
  private timestamps: Float64Array<ArrayBuffer> = new Float64Array(initialCapacity);
  private count = 0;
  /** Set while the entries are dropped (count is kept: it is what a reload brings back). */
  private dropped = false;
  private readonly pager: IndexPager | null;
  private readonly source: IndexSource | null;

  constructor(paging?: { pager: IndexPager; source: IndexSource }) {
    this.pager = paging?.pager ?? null;
    this.source = paging?.source ?? null;
    this.pager?.touch(this);
  }

  get length(): number {
    this.use();
    return this.count;
  }

  get loadedEntryCount(): number {
    return this.dropped ? 0 : this.offsets.length;
  }

  /** Whether the entries are in memory now (for tests and stats). */
  get loaded(): boolean {
    return !this.dropped;
  }

  evictable(): boolean {
    return !this.dropped && this.source !== null && this.source.saved();
  }

  evict(): void {
    assert(this.source !== null);
    this.dropped = true;
    this.offsets = new Float64Array(0);
    this.positions = new Float64Array(0);
    this.timestamps = new Float64Array(0);
  }

  /** Stops counting this index against the pager's budget (its segment is closed). */
  release(): void {
    this.pager?.forget(this);
  }

  /** Loads dropped entries back and tells the pager it was used. */
  private use(): void {
    if (this.dropped) {
      const triples = this.source!.load();
      const n = triples.length / 3;
      this.dropped = false;
      this.offsets = new Float64Array(Math.max(n, initialCapacity));
      this.positions = new Float64Array(Math.max(n, initialCapacity));
      this.timestamps = new Float64Array(Math.max(n, initialCapacity));
      this.count = 0;
      for (let i = 0; i < n; i++) this.add(triples[i * 3]!, triples[i * 3 + 1]!, triples[i * 3 + 2]!);
    }
    this.pager?.touch(this);
  }

  /** Appends an entry; offsets, positions and timestamps must not decrease. */
  add(offset: number, position: number, timestampMs: number): void {
    if (this.dropped) this.use();
    if (this.count > 0) {
      assert(offset > this.offsets[this.count - 1]!, 'index offsets increase');
      assert(position > this.positions[this.count - 1]!, 'index positions increase');
    }
    if (this.count === this.offsets.length) {
      const capacity = this.count * 2;
      this.offsets = grow(this.offsets, capacity);
      this.positions = grow(this.positions, capacity);
      this.timestamps = grow(this.timestamps, capacity);
      this.pager?.touch(this);
    }
    this.offsets[this.count] = offset;
    this.positions[this.count] = position;
    this.timestamps[this.count] = timestampMs;
    this.count += 1;
  }

  // The accessors by entry number follow a lookup (floorByOffset, length) in the same turn.
  offsetAt(i: number): number {
    if (this.dropped) this.use();
    return this.offsets[i]!;
  }
  positionAt(i: number): number {
    if (this.dropped) this.use();
    return this.positions[i]!;
  }
  timestampAt(i: number): number {
    if (this.dropped) this.use();
    return this.timestamps[i]!;
  }

  /** Index of the last entry with offset <= `offset`, or −1. */
  floorByOffset(offset: number): number {
    this.use();
    let lo = 0;
    let hi = this.count - 1;
    let found = -1;
    while (lo <= hi) {
      const mid = (lo + hi) >>> 1;
      if (this.offsets[mid]! <= offset) {
        found = mid;
        lo = mid + 1;
      } else {
        hi = mid - 1;
      }
    }
    return found;
  }

  /** Index of the last entry with timestamp < `timestampMs`, or −1. */
  lastBeforeTimestamp(timestampMs: number): number {
    this.use();
    let lo = 0;
    let hi = this.count - 1;
    let found = -1;
    while (lo <= hi) {
      const mid = (lo + hi) >>> 1;
      if (this.timestamps[mid]! < timestampMs) {
        found = mid;
        lo = mid + 1;
      } else {
        hi = mid - 1;
      }
    }
    return found;
  }

  /** Drops entries at or beyond `position` (after a tail truncation). */
  truncateFromPosition(position: number): void {
    this.use();
    while (this.count > 0 && this.positions[this.count - 1]! >= position) this.count -= 1;
  }

  /** Entries as (offset, position, timestamp) triples for a checkpoint. */
  toTriples(): Float64Array {
    this.use();
    const out = new Float64Array(this.count * 3);
    for (let i = 0; i < this.count; i++) {
      out[i * 3] = this.offsets[i]!;
      out[i * 3 + 1] = this.positions[i]!;
      out[i * 3 + 2] = this.timestamps[i]!;
    }
    return out;
  }
}

function grow(array: Float64Array, capacity: number): Float64Array<ArrayBuffer> {
  const next = new Float64Array(capacity);
  next.set(array);
  return next;
}
