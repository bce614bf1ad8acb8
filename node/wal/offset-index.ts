/**
 * A segment's sparse offset index: one (offset, file position, timestamp) entry every
 * `indexIntervalBytes` of records, interleaved in one growable Float64Array (the layout of the
 * checkpoint file, so loading one is a copy, not a loop); no per-record state. It is a hint: every
 * lookup lands on a record boundary that the reader validates, and a bad checkpoint is simply
 * rebuilt. Paged (index-pager.ts): with a pager and a source, its entries may be dropped while its
 * segment's checkpoint file holds them all, and every method loads them again first, so the node's
 * index memory is bounded by the pager's budget, not by the data.
 */
import assert from 'node:assert';
import type { IndexPager, PagedIndex } from './index-pager.js';

const initialCapacity = 16;
/** The entries of every empty or dropped index (shared; never written: add allocates its own). */
const noEntries = new Float64Array(0);

/** Where a dropped index gets its entries back: (offset, position, timestamp) triples. */
export interface IndexSource {
  /** Whether the checkpoint file holds exactly the entries in memory now. */
  saved(): boolean;
  /** The entries, read back from the checkpoint file (or rebuilt by scanning the segment). */
  load(): Float64Array;
}

export class OffsetIndex implements PagedIndex {
  /** Entry i is data[3i] (offset), data[3i + 1] (position), data[3i + 2] (timestamp). */
  private data: Float64Array = noEntries;
  private count = 0;
  /** Set while the entries are dropped. */
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
    return this.dropped ? 0 : this.data.length / 3;
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
    this.data = noEntries;
    this.count = 0;
  }

  /** Stops counting this index against the pager's budget (its segment is closed). */
  release(): void {
    this.pager?.forget(this);
  }

  /**
   * Takes `triples` (checked increasing by the caller, e.g. a validated checkpoint) as the whole
   * index, without a copy: the caller hands it over.
   */
  adopt(triples: Float64Array): void {
    assert(triples.length % 3 === 0);
    this.dropped = false;
    this.data = triples;
    this.count = triples.length / 3;
    this.pager?.touch(this);
  }

  /** Loads dropped entries back and tells the pager it was used. */
  private use(): void {
    if (this.dropped) this.adopt(this.source!.load());
    else this.pager?.touch(this);
  }

  /** Appends an entry; offsets, positions and timestamps must not decrease. */
  add(offset: number, position: number, timestampMs: number): void {
    if (this.dropped) this.use();
    const n = this.count;
    if (n > 0) {
      assert(offset > this.data[(n - 1) * 3]!, 'index offsets increase');
      assert(position > this.data[(n - 1) * 3 + 1]!, 'index positions increase');
    }
    if ((n + 1) * 3 > this.data.length) {
      const next = new Float64Array(Math.max(initialCapacity, n * 2) * 3);
      next.set(this.data.subarray(0, n * 3));
      this.data = next;
      this.pager?.touch(this);
    }
    this.data[n * 3] = offset;
    this.data[n * 3 + 1] = position;
    this.data[n * 3 + 2] = timestampMs;
    this.count = n + 1;
  }

  // The accessors by entry number follow a lookup (floorByOffset, length) in the same turn.
  offsetAt(i: number): number {
    if (this.dropped) this.use();
    return this.data[i * 3]!;
  }
  positionAt(i: number): number {
    if (this.dropped) this.use();
    return this.data[i * 3 + 1]!;
  }
  timestampAt(i: number): number {
    if (this.dropped) this.use();
    return this.data[i * 3 + 2]!;
  }

  /** Index of the last entry with offset <= `offset`, or −1. */
  floorByOffset(offset: number): number {
    return this.lastWhere(0, (v) => v <= offset);
  }

  /** Index of the last entry with timestamp < `timestampMs`, or −1. */
  lastBeforeTimestamp(timestampMs: number): number {
    return this.lastWhere(2, (v) => v < timestampMs);
  }

  /** Binary search: the last entry whose field `field` satisfies `holds` (monotonic), or −1. */
  private lastWhere(field: number, holds: (value: number) => boolean): number {
    this.use();
    const data = this.data;
    let lo = 0;
    let hi = this.count - 1;
    let found = -1;
    while (lo <= hi) {
      const mid = (lo + hi) >>> 1;
      if (holds(data[mid * 3 + field]!)) {
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
    while (this.count > 0 && this.data[(this.count - 1) * 3 + 1]! >= position) this.count -= 1;
  }

  /** The entries as triples, without a copy: valid until the index changes (encode it at once). */
  view(): Float64Array {
    this.use();
    return this.data.subarray(0, this.count * 3);
  }

  /** Entries as (offset, position, timestamp) triples for a checkpoint (a copy). */
  toTriples(): Float64Array {
    this.use();
    return this.data.slice(0, this.count * 3);
  }
}
