/**
 * Bounds-checked primitive readers and writers for the binary protocol: little-endian integers,
 * length-prefixed UTF-8 strings and byte strings. Every length read from the wire is checked
 * against the bytes that remain (and against its named limit) before a slice is taken, so garbage
 * can never drive an allocation; decoding fails with a `WalrusError` (BAD_REQUEST by default).
 *
 * u64 fields carry offsets, timestamps and sizes; JS numbers hold them exactly only below 2^53, so
 * the reader rejects larger values instead of rounding them.
 */
import { ErrorCode, WalrusError } from './error-codes.js';

const utf8Decoder = new TextDecoder('utf-8', { fatal: true });
const twoPow32 = 2 ** 32;

export class ByteReader {
  private readonly bytes: Buffer;
  private position: number;
  private readonly errorCode: ErrorCode;

  constructor(bytes: Buffer, start = 0, errorCode: ErrorCode = ErrorCode.BAD_REQUEST) {
    this.bytes = bytes;
    this.position = start;
    this.errorCode = errorCode;
  }

  remaining(): number {
    return this.bytes.length - this.position;
  }

  fail(message: string, code: ErrorCode = this.errorCode): never {
    throw new WalrusError(code, message);
  }

  private need(byteCount: number, what: string): void {
    if (byteCount > this.remaining()) {
      this.fail(`truncated message: ${what} needs ${byteCount} bytes, ${this.remaining()} remain`);
    }
  }

  u8(what: string): number {
    this.need(1, what);
    const v = this.bytes[this.position]!;
    this.position += 1;
    return v;
  }

  bool(what: string): boolean {
    const v = this.u8(what);
    if (v > 1) this.fail(`${what} must be 0 or 1, got ${v}`);
    return v === 1;
  }

  u16(what: string): number {
    this.need(2, what);
    const v = this.bytes.readUInt16LE(this.position);
    this.position += 2;
    return v;
  }

  u32(what: string): number {
    this.need(4, what);
    const v = this.bytes.readUInt32LE(this.position);
    this.position += 4;
    return v;
  }

  /** u64 little-endian that must be a safe integer (< 2^53). */
  u64(what: string): number {
    this.need(8, what);
    const lo = this.bytes.readUInt32LE(this.position);
    const hi = this.bytes.readUInt32LE(this.position + 4);
    if (hi > 0x1fffff) this.fail(`${what} is above 2^53-1`);
    this.position += 8;
    return hi * twoPow32 + lo;
  }

  /** `byteCount` raw bytes as a view into the message (no copy). */
  bytesView(byteCount: number, what: string): Buffer {
    this.need(byteCount, what);
    const view = this.bytes.subarray(this.position, this.position + byteCount);
    this.position += byteCount;
    return view;
  }

  /** u32 length + raw bytes, length at most `sizeMaxBytes`. */
  bytes32(what: string, sizeMaxBytes: number): Buffer {
    const length = this.u32(`${what} length`);
    if (length > sizeMaxBytes) this.fail(`${what} is ${length} bytes, above the limit of ${sizeMaxBytes}`);
    return this.bytesView(length, what);
  }

  /** `view` as UTF-8 text; fails unless it is valid UTF-8. */
  utf8(view: Buffer, what: string): string {
    try {
      return utf8Decoder.decode(view);
    } catch {
      return this.fail(`${what} is not valid UTF-8`);
    }
  }

  /** u8 length + bytes as a view into the message, length in [minBytes, sizeMaxBytes]. */
  view8(what: string, sizeMaxBytes: number, minBytes = 0): Buffer {
    const length = this.u8(`${what} length`);
    if (length < minBytes) this.fail(`${what} is empty`);
    if (length > sizeMaxBytes) this.fail(`${what} is ${length} bytes, above the limit of ${sizeMaxBytes}`);
    return this.bytesView(length, what);
  }

  /** u8 length + UTF-8, length in [minBytes, sizeMaxBytes]. */
  str8(what: string, sizeMaxBytes: number, minBytes = 0): string {
    return this.utf8(this.view8(what, sizeMaxBytes, minBytes), what);
  }

  /** u16 length + UTF-8, length in [minBytes, sizeMaxBytes]. */
  str16(what: string, sizeMaxBytes: number, minBytes = 0): string {
    const length = this.u16(`${what} length`);
    if (length < minBytes) this.fail(`${what} is empty`);
    if (length > sizeMaxBytes) this.fail(`${what} is ${length} bytes, above the limit of ${sizeMaxBytes}`);
    return this.utf8(this.bytesView(length, what), what);
  }

  /** Fails unless every byte was consumed (trailing garbage is a malformed message). */
  end(what: string): void {
    if (this.remaining() !== 0) this.fail(`${what} has ${this.remaining()} unexpected trailing bytes`);
  }
}

/** A growable little-endian writer; `finish()` returns a view of the written bytes. */
export class ByteWriter {
  private buffer: Buffer;
  private position = 0;

  constructor(initialSizeBytes = 256) {
    this.buffer = Buffer.allocUnsafe(initialSizeBytes);
  }

  private ensure(byteCount: number): void {
    const needed = this.position + byteCount;
    if (needed <= this.buffer.length) return;
    let size = this.buffer.length * 2;
    while (size < needed) size *= 2;
    const next = Buffer.allocUnsafe(size);
    this.buffer.copy(next, 0, 0, this.position);
    this.buffer = next;
  }

  u8(v: number): void {
    this.ensure(1);
    this.buffer[this.position] = v;
    this.position += 1;
  }

  bool(v: boolean): void {
    this.u8(v ? 1 : 0);
  }

  u16(v: number): void {
    this.ensure(2);
    this.buffer.writeUInt16LE(v, this.position);
    this.position += 2;
  }

  u32(v: number): void {
    this.ensure(4);
    this.buffer.writeUInt32LE(v, this.position);
    this.position += 4;
  }

  u64(v: number): void {
    this.ensure(8);
    writeU64At(this.buffer, this.position, v);
    this.position += 8;
  }

  raw(bytes: Uint8Array): void {
    this.ensure(bytes.length);
    this.buffer.set(bytes, this.position);
    this.position += bytes.length;
  }

  bytes32(bytes: Uint8Array): void {
    this.u32(bytes.length);
    this.raw(bytes);
  }

  str8(s: string): void {
    const bytes = Buffer.from(s, 'utf8');
    this.u8(bytes.length);
    this.raw(bytes);
  }

  str16(s: string): void {
    const bytes = Buffer.from(s, 'utf8');
    this.u16(bytes.length);
    this.raw(bytes);
  }

  /** Overwrites a u32 at an earlier position (used to patch counts). */
  patchU32(position: number, v: number): void {
    this.buffer.writeUInt32LE(v, position);
  }

  get length(): number {
    return this.position;
  }

  finish(): Buffer {
    return this.buffer.subarray(0, this.position);
  }
}

/** Writes `v` (a safe integer) as u64 little-endian at `at`: for encoders that size their buffer exactly. */
export function writeU64At(buffer: Buffer, at: number, v: number): void {
  buffer.writeUInt32LE(v % twoPow32, at);
  buffer.writeUInt32LE(Math.floor(v / twoPow32), at + 4);
}
