/**
 * The node-wide budget of sparse-index entries held in memory. Every segment's OffsetIndex is
 * registered here; when the entries loaded pass `entryCountMax`, the least recently used indexes
 * whose entries are all on disk (the segment's index checkpoint matches it: sealed, or settled,
 * see segment-settle.ts) are dropped, and loaded again from their checkpoint at their next use.
 * Without it the index was ~24 bytes per 4 KiB of data, all in memory: 60 MB for 10 GB, and a
 * node's memory grew with the data it held.
 */
import assert from 'node:assert';

/** What the pager asks of an index it holds. */
export interface PagedIndex {
  /** Entries' memory, in entries (capacity, not count). */
  readonly loadedEntryCount: number;
  /** Whether its entries are all in its segment's checkpoint file, so it may be dropped now. */
  evictable(): boolean;
  /** Drops its entries (it reloads them at its next use). */
  evict(): void;
}

/**
 * Indexes looked at per eviction pass. One that cannot be dropped (its entries are not all in its
 * checkpoint yet) goes to the back of the queue, so the next pass looks at others.
 */
const evictScanCountMax = 256;

export class IndexPager {
  /** Loaded indexes, least recently used first (a Map keeps insertion order). */
  private readonly loaded = new Map<PagedIndex, number>();
  private entryCount = 0;
  private evictionCount = 0;

  constructor(readonly entryCountMax: number) {
    assert(Number.isSafeInteger(entryCountMax) && entryCountMax > 0);
  }

  /** Marks `index` as just used with its current size, then keeps the budget (never evicting it). */
  touch(index: PagedIndex): void {
    const before = this.loaded.get(index);
    if (before !== undefined) this.loaded.delete(index);
    const now = index.loadedEntryCount;
    this.loaded.set(index, now);
    this.entryCount += now - (before ?? 0);
    if (this.entryCount > this.entryCountMax) this.evictOldest(index);
  }

  /** Forgets an index whose segment is closed or deleted. */
  forget(index: PagedIndex): void {
    const before = this.loaded.get(index);
    if (before === undefined) return;
    this.loaded.delete(index);
    this.entryCount -= before;
  }

  stats(): { indexEntriesLoaded: number; indexesLoaded: number; indexEvictionCount: number } {
    return {
      indexEntriesLoaded: this.entryCount,
      indexesLoaded: this.loaded.size,
      indexEvictionCount: this.evictionCount,
    };
  }

  private evictOldest(keep: PagedIndex): void {
    let scanned = 0;
    for (const [index, entries] of this.loaded) {
      if (this.entryCount <= this.entryCountMax || scanned >= evictScanCountMax) return;
      scanned += 1;
      if (index === keep) continue;
      if (!index.evictable()) {
        this.loaded.delete(index);
        this.loaded.set(index, entries);
        continue;
      }
      index.evict();
      this.loaded.delete(index);
      this.entryCount -= entries;
      this.evictionCount += 1;
    }
  }
}
