/**
 * Positioned, chunked reads of one segment file: `view(pos, n)` makes bytes [pos, pos + n) available
 * in a buffer, reading a chunk at `pos` when they are not. Memory is one chunk (or one record, when
 * a record is larger). With `freshBuffers`, each refill allocates a new buffer so that views handed
 * out earlier (record values returned by a read) stay valid.
 */
import type { FileIo } from '../storage-io/file-io.js';
import { readFully } from '../storage-io/durable-file.js';

export class ChunkReader {
  buf: Buffer = Buffer.alloc(0);
  /** File position of buf[0]. */
  start = 0;
  /** Valid bytes in buf. */
  length = 0;

  constructor(
    private readonly io: FileIo,
    private readonly fd: number,
    /** Bytes beyond this file position are never read. */
    private readonly end: number,
    private readonly chunkBytes: number,
    private readonly freshBuffers: boolean,
  ) {}

  /**
   * Ensures bytes [pos, pos + n) are in `buf` and returns their index in it, or −1 when they lie
   * (partly) beyond the end.
   */
  view(pos: number, n: number): number {
    if (pos + n > this.end) return -1;
    if (pos >= this.start && pos + n <= this.start + this.length) return pos - this.start;
    const want = Math.min(Math.max(n, this.chunkBytes), this.end - pos);
    if (this.freshBuffers || this.buf.length < want) this.buf = Buffer.allocUnsafe(want);
    this.start = pos;
    this.length = readFully(this.io, this.fd, this.buf, want, pos);
    return this.length >= n ? 0 : -1;
  }
}

const zeros = Buffer.alloc(64 * 1024);

/** Whether buf[start, end) is all zero bytes (native compares, 64 KiB at a time). */
export function isZeroRange(buf: Buffer, start: number, end: number): boolean {
  for (let p = start; p < end; p += zeros.length) {
    const n = Math.min(zeros.length, end - p);
    if (buf.compare(zeros, 0, n, p, p + n) !== 0) return false;
  }
  return true;
}
