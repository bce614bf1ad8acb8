/**
 * What each simulated node holds of each segment, read from its SimDisk as the replication checks
 * need it (replication-checks.ts): the records of a segment copy's data file, decoded the way WAL
 * recovery keeps them (the file header must check; records follow back to back, each checksummed
 * and at the next offset; a trailing append batch cut short does not count), either
 *
 * - as the running process sees the file (`durable` false: the page cache), or
 * - as a power loss right now would leave it at the least (`durable` true: only directory entries
 *   made durable and bytes fdatasync'd; none of the writes a crash may or may not have written back).
 *
 * Decoding is incremental: each inode notes the lowest position changed since it was last decoded
 * (sim-disk.ts), so appending records costs only the new ones; a cut or overwrite below what was
 * decoded starts the file again. A record is reduced to a key (value, headers, timestamp) that is
 * equal on every replica holding the same record, whatever its batching or sync state.
 */
import path from 'node:path';
import { checkRecordAt, decodeCheckedRecord, recordLengthMax } from '../../../node/wal/record-codec.js';
import { decodeEpochFile, decodeFileHeader, segmentBaseName } from '../../../node/wal/segment-files.js';
import { walLimits } from '../../../node/wal/limits.js';
import type { Inode, SimDisk } from './sim-disk.js';

const headerBytes = 64;
const lengthMax = recordLengthMax(walLimits.recordSizeMaxBytesLimit);

/** One record as every replica holding it stores it (batching and sync deltas left out). */
export function recordKey(
  value: Uint8Array,
  headers: Readonly<Record<string, string>>,
  timestampMs: number,
): string {
  const v = Buffer.from(value.buffer, value.byteOffset, value.byteLength).toString('latin1');
  const keys = Object.keys(headers);
  if (keys.length === 0) return `${v}\u0000${timestampMs}`;
  keys.sort();
  return `${v}\u0000${timestampMs}${JSON.stringify(keys.map((k) => [k, headers[k]]))}`;
}

/** The value part of a record key (what the clients' oracle knows). */
export function keyValue(key: string): string {
  return key.slice(0, key.indexOf('\u0000'));
}

/** A decoded segment copy: records [baseOffset, end), one key each. */
export interface CopyView {
  readonly segmentId: number;
  readonly baseOffset: number;
  /** End of the whole append batches found. */
  readonly end: number;
  /** keys[i] is the record at baseOffset + i (only i < end − baseOffset count). */
  readonly keys: readonly string[];
}

interface Decoded {
  segmentId: number;
  baseOffset: number;
  /** Position after the last record decoded. */
  pos: number;
  /** Offsets decoded (keys.length = decoded − base), whole batches or not. */
  keys: string[];
  /** The end of the last whole batch, and the position after it. */
  end: number;
  endPos: number;
  /** False when the header did not check (the file holds no copy yet). */
  valid: boolean;
}

export class ReplicaView {
  private readonly pageCache = new WeakMap<Inode, Decoded>();
  private readonly synced = new WeakMap<Inode, Decoded>();
  decodedRecords = 0;

  /** The topics directory of a node's WAL. */
  static topicsDir(nodeDir: string): string {
    return path.join(nodeDir, 'user_data', 'topics');
  }

  private readonly dirs = new Map<string, string>();

  private fileOf(nodeDir: string, topic: string, segmentId: number, ext: string): string {
    let dir = this.dirs.get(nodeDir);
    if (dir === undefined) {
      dir = ReplicaView.topicsDir(nodeDir);
      this.dirs.set(nodeDir, dir);
    }
    return `${dir}/${topic}/${segmentBaseName(segmentId)}.${ext}`;
  }

  /** The node's copy of a segment, or null when it holds none (no file, or no valid header). */
  copy(disk: SimDisk, nodeDir: string, topic: string, segmentId: number, durable: boolean): CopyView | null {
    const file = this.fileOf(nodeDir, topic, segmentId, 'wal');
    const inode = disk.fileAt(file, durable);
    if (inode === undefined) return null;
    const d = this.decode(inode, durable);
    if (!d.valid || d.segmentId !== segmentId) return null;
    return { segmentId, baseOffset: d.baseOffset, end: d.end, keys: d.keys };
  }

  /** The durable fence epoch of a segment on a node (0: none). */
  durableEpoch(disk: SimDisk, nodeDir: string, topic: string, segmentId: number): number {
    const file = this.fileOf(nodeDir, topic, segmentId, 'epoch');
    const inode = disk.fileAt(file, true);
    if (inode === undefined) return 0;
    const bytes = inode.synced.buf.subarray(0, inode.synced.size);
    const decoded = decodeEpochFile(Buffer.from(bytes));
    return decoded === null || decoded.segmentId !== segmentId ? 0 : decoded.epoch;
  }

  private decode(inode: Inode, durable: boolean): Decoded {
    const cache = durable ? this.synced : this.pageCache;
    const bytes = durable ? inode.synced : inode.data;
    const changedFrom = durable ? inode.syncedChangedFrom : inode.dataChangedFrom;
    let d = cache.get(inode);
    if (d !== undefined && changedFrom === Number.POSITIVE_INFINITY) return d;
    if (durable) inode.syncedChangedFrom = Number.POSITIVE_INFINITY;
    else inode.dataChangedFrom = Number.POSITIVE_INFINITY;
    if (d === undefined || !d.valid || changedFrom < d.endPos) {
      const header = bytes.size >= headerBytes ? decodeFileHeader(bytes.buf.subarray(0, headerBytes)) : null;
      d = {
        segmentId: header?.segmentId ?? 0,
        baseOffset: header?.baseOffset ?? 0,
        pos: headerBytes,
        keys: [],
        end: header?.baseOffset ?? 0,
        endPos: headerBytes,
        valid: header !== null,
      };
      cache.set(inode, d);
      if (!d.valid) return d;
    }
    // Records after the last whole batch are decoded again (their batch may be complete now).
    if (d.pos > d.endPos) {
      d.keys.length = d.end - d.baseOffset;
      d.pos = d.endPos;
    }
    const buf = bytes.buf;
    const size = bytes.size;
    for (;;) {
      const n = checkRecordAt(buf, d.pos, size, lengthMax);
      if (n <= 0) break;
      const r = decodeCheckedRecord(buf, d.pos, n);
      const expected = d.baseOffset + d.keys.length;
      if (r === null || r.offset !== expected) break;
      this.decodedRecords++;
      d.keys.push(recordKey(r.value, r.headers, r.timestampMs));
      d.pos += n;
      if (!r.batchContinues) {
        d.end = expected + 1;
        d.endPos = d.pos;
      }
    }
    return d;
  }
}
