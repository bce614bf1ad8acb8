/**
 * The on-disk record frame. Pure: bytes in, bytes out; no I/O. All integers little-endian.
 *
 *   0  u32 length        bytes after the crc field (the record is 8 + length bytes long)
 *   4  u32 crc32c        CRC-32C of bytes [8, 8 + length)
 *   8  u64 offset        the record's offset in its topic (< 2^53)
 *  16  u64 timestampMs   set by the WAL (monotonic per topic)
 *  24  u32 syncedDelta   offset − syncedEndOffset: every offset below offset − syncedDelta was
 *                        durable (fdatasync'd) when this record was written; recovery uses it to tell
 *                        a torn tail from corruption (docs/wal.md)
 *  28  u16 headerCount   bit 15 set: "the append batch continues": every record of a batch but its
 *                        last has it, so recovery can drop a batch a crash cut short (docs/wal.md)
 *  30  headerCount × { u16 keyLength, key UTF-8, u32 valueLength, value UTF-8 }
 *  ..  value bytes (the rest)
 *
 * A zero-filled region never decodes (length 0 is below the minimum), and an interrupted write never
 * decodes either: the checksum covers every byte after it.
 */
import { crc32cRange } from '../storage-io/crc32c.js';
import { headerEntryOverheadBytes, recordHeaderSizeBytes, walLimits } from './limits.js';

const twoPow32 = 0x1_0000_0000;
/** Smallest value of the length field: an empty record without headers. */
export const recordLengthMin = recordHeaderSizeBytes - 8;

export type RecordHeaders = Readonly<Record<string, string>>;

const noHeaders: RecordHeaders = Object.freeze({});

/** Bit 15 of the headerCount field: more records of the same append batch follow this one. */
const batchContinuesFlag = 0x8000;
const headerCountMask = 0x7fff;

/** Encoded size of a header map's entries (without the u16 count), or −1 when a limit is broken. */
export function headersSizeBytes(headers: RecordHeaders): number {
  let size = 0;
  let count = 0;
  for (const key in headers) {
    const value = headers[key];
    if (typeof value !== 'string') return -1;
    const keySize = Buffer.byteLength(key, 'utf8');
    const valueSize = Buffer.byteLength(value, 'utf8');
    if (keySize > walLimits.headerKeySizeMaxBytes || valueSize > walLimits.headerValueSizeMaxBytes) return -1;
    count += 1;
    if (count > walLimits.headerCountMax) return -1;
    size += headerEntryOverheadBytes + keySize + valueSize;
  }
  return size;
}

/** Total encoded bytes of a record with `headersBytes` of header entries and a value of `valueBytes`. */
export function encodedRecordSizeBytes(headersBytes: number, valueBytes: number): number {
  return recordHeaderSizeBytes + headersBytes + valueBytes;
}

/** Little-endian u32 store without bounds checks (callers size the buffer). */
export function writeU32(buf: Uint8Array, pos: number, value: number): void {
  buf[pos] = value;
  buf[pos + 1] = value >>> 8;
  buf[pos + 2] = value >>> 16;
  buf[pos + 3] = value >>> 24;
}

export function writeU64(buf: Uint8Array, pos: number, value: number): void {
  writeU32(buf, pos, value >>> 0);
  writeU32(buf, pos + 4, value < twoPow32 ? 0 : Math.floor(value / twoPow32));
}

export function readU64(buf: Buffer, pos: number): number {
  return buf.readUInt32LE(pos) + buf.readUInt32LE(pos + 4) * twoPow32;
}

/**
 * Encodes one record at `pos` of `buf` (which must have room) and returns the position after it.
 * `headersBytes` is `headersSizeBytes(headers)` (0 when there are none); `batchContinues` is true
 * for every record of an append batch but its last.
 */
export function encodeRecordInto(
  buf: Buffer,
  pos: number,
  offset: number,
  timestampMs: number,
  syncedDelta: number,
  headers: RecordHeaders | undefined,
  headersBytes: number,
  value: Uint8Array,
  batchContinues = false,
): number {
  const end = pos + recordHeaderSizeBytes + headersBytes + value.length;
  writeU32(buf, pos, end - pos - 8);
  writeU64(buf, pos + 8, offset);
  writeU64(buf, pos + 16, timestampMs);
  writeU32(buf, pos + 24, syncedDelta);
  let p = pos + recordHeaderSizeBytes;
  const flags = batchContinues ? batchContinuesFlag : 0;
  if (headersBytes === 0 || headers === undefined) {
    buf.writeUInt16LE(flags, pos + 28);
  } else {
    let count = 0;
    for (const key in headers) {
      const value = headers[key] as string;
      const keySize = buf.write(key, p + 2, 'utf8');
      buf.writeUInt16LE(keySize, p);
      p += 2 + keySize;
      const valueSize = buf.write(value, p + 4, 'utf8');
      buf.writeUInt32LE(valueSize, p);
      p += 4 + valueSize;
      count += 1;
    }
    buf.writeUInt16LE(count | flags, pos + 28);
  }
  buf.set(value, p);
  writeU32(buf, pos + 4, crc32cRange(buf, pos + 8, end));
  return end;
}

/**
 * Checks the frame at `pos` (bytes valid up to `end`). Returns the record's total size in bytes when
 * its length is plausible and its checksum holds, 0 when more bytes are needed to decide (the
 * frame may continue past `end`), and −1 when no record starts here.
 * `lengthMax` bounds the length field (a larger one is garbage, not a big record).
 */
export function checkRecordAt(buf: Buffer, pos: number, end: number, lengthMax: number): number {
  if (end - pos < 8) return 0;
  const length = buf.readUInt32LE(pos);
  if (length < recordLengthMin || length > lengthMax) return -1;
  if (end - pos < 8 + length) return 0;
  const crc = buf.readUInt32LE(pos + 4);
  if (crc32cRange(buf, pos + 8, pos + 8 + length) !== crc) return -1;
  return 8 + length;
}

/** The offset field of a frame already checked by `checkRecordAt` (or at least 16 bytes long). */
export function recordOffsetAt(buf: Buffer, pos: number): number {
  return readU64(buf, pos + 8);
}

export function recordTimestampAt(buf: Buffer, pos: number): number {
  return readU64(buf, pos + 16);
}

export function recordSyncedDeltaAt(buf: Buffer, pos: number): number {
  return buf.readUInt32LE(pos + 24);
}

/** Whether more records of the same append batch follow the (checked) frame at `pos`. */
export function recordBatchContinuesAt(buf: Buffer, pos: number): boolean {
  return (buf.readUInt16LE(pos + 28) & batchContinuesFlag) !== 0;
}

export interface DecodedRecord {
  offset: number;
  timestampMs: number;
  syncedDelta: number;
  headers: RecordHeaders;
  /** More records of the same append batch follow this one. */
  batchContinues: boolean;
  /** A view into `buf` (no copy). */
  value: Uint8Array;
}

/**
 * Decodes a frame of `size` bytes that `checkRecordAt` accepted. Returns null when the checksum held
 * but the header block is malformed (a bug or a 2^-32 accident): callers treat it as corrupt.
 */
export function decodeCheckedRecord(buf: Buffer, pos: number, size: number): DecodedRecord | null {
  const end = pos + size;
  const count = buf.readUInt16LE(pos + 28) & headerCountMask;
  let p = pos + recordHeaderSizeBytes;
  let headers = noHeaders;
  if (count > 0) {
    if (count > walLimits.headerCountMax) return null;
    const map: Record<string, string> = Object.create(null) as Record<string, string>;
    for (let i = 0; i < count; i++) {
      if (end - p < 2) return null;
      const keySize = buf.readUInt16LE(p);
      if (end - p - 2 < keySize + 4) return null;
      const key = buf.toString('utf8', p + 2, p + 2 + keySize);
      p += 2 + keySize;
      const valueSize = buf.readUInt32LE(p);
      if (end - p - 4 < valueSize) return null;
      map[key] = buf.toString('utf8', p + 4, p + 4 + valueSize);
      p += 4 + valueSize;
    }
    headers = Object.freeze(map);
  }
  return {
    offset: readU64(buf, pos + 8),
    timestampMs: readU64(buf, pos + 16),
    syncedDelta: buf.readUInt32LE(pos + 24),
    headers,
    batchContinues: recordBatchContinuesAt(buf, pos),
    value: buf.subarray(p, end),
  };
}

/** Decodes the record at `pos` if one starts there: the codec's whole contract in one call (for tests and tools). */
export function decodeRecordAt(
  buf: Buffer,
  pos: number,
  end: number,
  lengthMax: number,
): { kind: 'record'; record: DecodedRecord; size: number } | { kind: 'short' } | { kind: 'invalid' } {
  const size = checkRecordAt(buf, pos, end, lengthMax);
  if (size === 0) return { kind: 'short' };
  if (size < 0) return { kind: 'invalid' };
  const record = decodeCheckedRecord(buf, pos, size);
  return record === null ? { kind: 'invalid' } : { kind: 'record', record, size };
}

/** The largest legal length field for a WAL whose records are at most `recordSizeMaxBytes`. */
export function recordLengthMax(recordSizeMaxBytes: number): number {
  return recordLengthMin + recordSizeMaxBytes + walLimits.headerCountMax * headerEntryOverheadBytes;
}
