/**
 * Names and small binary formats of a segment's files, all pure encode/decode with a CRC-32C:
 *
 *   <id>.wal   64-byte file header (magic, version, segment id, base offset) then records
 *   <id>.idx   sparse-index checkpoint: entries plus the durable end it was taken at (a hint)
 *   <id>.seal  seal marker: the segment's final end offset and byte size (authoritative)
 *   <id>.epoch the segment's fence epoch (segment-epochs.ts); may exist without the other three
 *   <id>.import/  a segment import in progress (segment-import.ts): its own <id>.wal, .idx, .seal,
 *                 never read as a segment; completed or removed when the WAL opens
 *
 * `<id>` is the segment id zero-padded to 20 digits so that names sort like ids. Decoders return
 * null on anything malformed; callers fall back to scanning (index) or treat the segment as active
 * (seal) and log it.
 */
import assert from 'node:assert';
import os from 'node:os';
import { crc32c } from '../storage-io/index.js';

export const segmentFileHeaderBytes = 64;
assert.equal(os.endianness(), 'LE', 'index checkpoints store native doubles, which must be little-endian');
const fileMagic = 'WALRUSWL';
const indexMagic = 'WALRUSIX';
const sealMagic = 'WALRUSSL';
const formatVersion = 1;
const indexFixedBytes = 64;
const indexEntryBytes = 24;
const sealBytes = 72;
const epochMagic = 'WALRUSEP';
const epochBytes = 36;

export function segmentBaseName(segmentId: number): string {
  return String(segmentId).padStart(20, '0');
}

/** Parses `<20 digits>.<ext>`; returns null for other names. */
export function parseSegmentFileName(name: string): { id: number; ext: string } | null {
  const match = /^(\d{20})\.(wal|idx|seal)$/.exec(name);
  if (match === null) return null;
  const id = Number(match[1]);
  return Number.isSafeInteger(id) ? { id, ext: match[2]! } : null;
}

/** Parses `<20 digits>.epoch` (a fence epoch file, not part of a segment); returns the id or null. */
export function parseEpochFileName(name: string): number | null {
  const match = /^(\d{20})\.epoch$/.exec(name);
  if (match === null) return null;
  const id = Number(match[1]);
  return Number.isSafeInteger(id) && id >= 1 ? id : null;
}

/** The directory of an import of segment `segmentId` in progress: `<20 digits>.import`. */
export function importDirName(segmentId: number): string {
  return `${segmentBaseName(segmentId)}.import`;
}

/** Parses `<20 digits>.import` (a segment import directory); returns the id or null. */
export function parseImportDirName(name: string): number | null {
  const match = /^(\d{20})\.import$/.exec(name);
  if (match === null) return null;
  const id = Number(match[1]);
  return Number.isSafeInteger(id) && id >= 1 ? id : null;
}

function sealWithCrc(buf: Buffer): Buffer {
  buf.writeUInt32LE(crc32c(buf.subarray(0, buf.length - 4)), buf.length - 4);
  return buf;
}

function crcHolds(buf: Buffer): boolean {
  return buf.length >= 4 && crc32c(buf.subarray(0, buf.length - 4)) === buf.readUInt32LE(buf.length - 4);
}

export function encodeFileHeader(segmentId: number, baseOffset: number): Buffer {
  const buf = Buffer.alloc(segmentFileHeaderBytes);
  buf.write(fileMagic, 0, 'latin1');
  buf.writeUInt32LE(formatVersion, 8);
  buf.writeDoubleLE(segmentId, 16);
  buf.writeDoubleLE(baseOffset, 24);
  return sealWithCrc(buf);
}

export function decodeFileHeader(buf: Buffer): { segmentId: number; baseOffset: number } | null {
  if (buf.length < segmentFileHeaderBytes) return null;
  const header = buf.subarray(0, segmentFileHeaderBytes);
  if (!crcHolds(header) || header.toString('latin1', 0, 8) !== fileMagic) return null;
  if (header.readUInt32LE(8) !== formatVersion) return null;
  const segmentId = header.readDoubleLE(16);
  const baseOffset = header.readDoubleLE(24);
  if (!Number.isSafeInteger(segmentId) || segmentId < 1) return null;
  if (!Number.isSafeInteger(baseOffset) || baseOffset < 0) return null;
  return { segmentId, baseOffset };
}

export interface IndexCheckpoint {
  segmentId: number;
  baseOffset: number;
  /** Every record below this offset / file position was durable when the checkpoint was written. */
  durableEndOffset: number;
  durableEndPosition: number;
  firstTimestampMs: number | null;
  lastTimestampMs: number | null;
  /** (offset, position, timestamp) triples. */
  triples: Float64Array;
}

/**
 * The checkpoint's bytes; with `scratch` (grown when too small) encoded into it, not into a new
 * buffer: settling 10,000 segments must not leave 10,000 buffers for the collector.
 */
export function encodeIndexCheckpoint(c: IndexCheckpoint, scratch?: { buf: Buffer }): Buffer {
  const entryCount = c.triples.length / 3;
  const size = indexFixedBytes + entryCount * indexEntryBytes + 4;
  let buf: Buffer;
  if (scratch === undefined) {
    buf = Buffer.alloc(size);
  } else {
    if (scratch.buf.length < size) scratch.buf = Buffer.alloc(Math.max(size, scratch.buf.length * 2));
    buf = scratch.buf.subarray(0, size);
    buf.fill(0, 0, indexFixedBytes);
  }
  buf.write(indexMagic, 0, 'latin1');
  buf.writeUInt32LE(formatVersion, 8);
  buf.writeUInt32LE(entryCount, 12);
  buf.writeDoubleLE(c.segmentId, 16);
  buf.writeDoubleLE(c.baseOffset, 24);
  buf.writeDoubleLE(c.durableEndOffset, 32);
  buf.writeDoubleLE(c.durableEndPosition, 40);
  buf.writeDoubleLE(c.firstTimestampMs ?? -1, 48);
  buf.writeDoubleLE(c.lastTimestampMs ?? -1, 56);
  // Entries are copied as raw little-endian doubles (asserted below): one memcpy, not one call each.
  Buffer.from(c.triples.buffer, c.triples.byteOffset, c.triples.byteLength).copy(buf, indexFixedBytes);
  return sealWithCrc(buf);
}

export function decodeIndexCheckpoint(buf: Buffer): IndexCheckpoint | null {
  if (buf.length < indexFixedBytes + 4 || !crcHolds(buf)) return null;
  if (buf.toString('latin1', 0, 8) !== indexMagic || buf.readUInt32LE(8) !== formatVersion) return null;
  const entryCount = buf.readUInt32LE(12);
  if (buf.length !== indexFixedBytes + entryCount * indexEntryBytes + 4) return null;
  const triples = new Float64Array(entryCount * 3);
  Buffer.from(triples.buffer).set(buf.subarray(indexFixedBytes, indexFixedBytes + triples.byteLength));
  const first = buf.readDoubleLE(48);
  const last = buf.readDoubleLE(56);
  return {
    segmentId: buf.readDoubleLE(16),
    baseOffset: buf.readDoubleLE(24),
    durableEndOffset: buf.readDoubleLE(32),
    durableEndPosition: buf.readDoubleLE(40),
    firstTimestampMs: first < 0 ? null : first,
    lastTimestampMs: last < 0 ? null : last,
    triples,
  };
}

export interface SealMarker {
  segmentId: number;
  baseOffset: number;
  endOffset: number;
  sizeBytes: number;
  firstTimestampMs: number | null;
  lastTimestampMs: number | null;
}

export function encodeSealMarker(s: SealMarker): Buffer {
  const buf = Buffer.alloc(sealBytes);
  buf.write(sealMagic, 0, 'latin1');
  buf.writeUInt32LE(formatVersion, 8);
  buf.writeDoubleLE(s.segmentId, 16);
  buf.writeDoubleLE(s.baseOffset, 24);
  buf.writeDoubleLE(s.endOffset, 32);
  buf.writeDoubleLE(s.sizeBytes, 40);
  buf.writeDoubleLE(s.firstTimestampMs ?? -1, 48);
  buf.writeDoubleLE(s.lastTimestampMs ?? -1, 56);
  return sealWithCrc(buf);
}

export function decodeSealMarker(buf: Buffer): SealMarker | null {
  if (buf.length !== sealBytes || !crcHolds(buf)) return null;
  if (buf.toString('latin1', 0, 8) !== sealMagic || buf.readUInt32LE(8) !== formatVersion) return null;
  const first = buf.readDoubleLE(48);
  const last = buf.readDoubleLE(56);
  return {
    segmentId: buf.readDoubleLE(16),
    baseOffset: buf.readDoubleLE(24),
    endOffset: buf.readDoubleLE(32),
    sizeBytes: buf.readDoubleLE(40),
    firstTimestampMs: first < 0 ? null : first,
    lastTimestampMs: last < 0 ? null : last,
  };
}

/** Fence epoch file: magic, version, segment id, epoch, CRC-32C (36 bytes). */
export function encodeEpochFile(segmentId: number, epoch: number): Buffer {
  const buf = Buffer.alloc(epochBytes);
  buf.write(epochMagic, 0, 'latin1');
  buf.writeUInt32LE(formatVersion, 8);
  buf.writeDoubleLE(segmentId, 16);
  buf.writeDoubleLE(epoch, 24);
  return sealWithCrc(buf);
}

export function decodeEpochFile(buf: Buffer): { segmentId: number; epoch: number } | null {
  if (buf.length !== epochBytes || !crcHolds(buf)) return null;
  if (buf.toString('latin1', 0, 8) !== epochMagic || buf.readUInt32LE(8) !== formatVersion) return null;
  const segmentId = buf.readDoubleLE(16);
  const epoch = buf.readDoubleLE(24);
  if (!Number.isSafeInteger(segmentId) || segmentId < 1) return null;
  if (!Number.isSafeInteger(epoch) || epoch < 0) return null;
  return { segmentId, epoch };
}
