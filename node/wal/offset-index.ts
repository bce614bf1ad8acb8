/**
 * A segment's sparse offset index: one (offset, file position, timestamp) entry every
 * `indexIntervalBytes` of records, in growable typed arrays. Memory is bounded by
 * segment bytes / indexIntervalBytes × 24 bytes; no per-record state. It is a hint: every lookup
 * lands on a record boundary that the reader validates, and a bad checkpoint is simply rebuilt.
 */
import assert from 'node:assert';

const initialCapacity = 16;

export class OffsetIndex {
  private offsets: Float64Array<ArrayBuffer> = new Float64Array(initialCapacity);
  private positions: Float64Array<ArrayBuffer> = new Float64Array(initialCapacity);
  private timestamps: Float64Array<ArrayBuffer> = new Float64Array(initialCapacity);
  private count = 0;

  get length(): number {
    return this.count;
  }

  /** Appends an entry; offsets, positions and timestamps must not decrease. */
  add(offset: number, position: number, timestampMs: number): void {
    if (this.count > 0) {
      assert(offset > this.offsets[this.count - 1]!, 'index offsets increase');
      assert(position > this.positions[this.count - 1]!, 'index positions increase');
    }
    if (this.count === this.offsets.length) {
      const capacity = this.count * 2;
      this.offsets = grow(this.offsets, capacity);
      this.positions = grow(this.positions, capacity);
      this.timestamps = grow(this.timestamps, capacity);
    }
    this.offsets[this.count] = offset;
    this.positions[this.count] = position;
    this.timestamps[this.count] = timestampMs;
    this.count += 1;
  }

  offsetAt(i: number): number {
    return this.offsets[i]!;
  }
  positionAt(i: number): number {
    return this.positions[i]!;
  }
  timestampAt(i: number): number {
    return this.timestamps[i]!;
  }

  /** Index of the last entry with offset <= `offset`, or −1. */
  floorByOffset(offset: number): number {
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
    while (this.count > 0 && this.positions[this.count - 1]! >= position) this.count -= 1;
  }

  /** Entries as (offset, position, timestamp) triples for a checkpoint. */
  toTriples(): Float64Array {
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
