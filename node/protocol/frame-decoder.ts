/**
 * Incremental decoder of length-prefixed frames over a byte stream. A chunk may hold half a length
 * prefix, several frames, or a slice of one large frame; the decoder keeps the unconsumed chunks
 * and cuts frames out as they complete.
 *
 * Memory bound: the length prefix is checked against `frameSizeMaxBytes` as soon as its 4 bytes are
 * here, before more bytes are kept, so the decoder never holds more than one maximum frame plus one
 * chunk. Nothing is allocated from a length field: a frame is a view into its chunk when it lies in
 * one chunk, and one concatenation of received bytes otherwise.
 *
 * A framing error (zero length, length above the limit) cannot be resynchronised: the decoder
 * fails and stays failed; the connection must be closed.
 *
 * Admission (optional, `FrameAdmission`): when a frame does not arrive whole in what is buffered,
 * its announced length is offered to `reserve` before any more of it is kept (a server's node-wide
 * budget of buffered input), and given back through `release` once the frame is complete (or by
 * `dispose()`). A frame `reserve` refuses is read and dropped as it arrives, keeping only its first
 * `refusedHeadSizeBytes` (enough for a binary header's request id and opcode): it comes out as a
 * `RefusedFrame`, so that the owner answers it (BUSY) and the stream stays in sync.
 */
import assert from 'node:assert';
import { ErrorCode, WalrusError } from './error-codes.js';
import { protocolLimits } from './limits.js';

const prefixSizeBytes = protocolLimits.frameLengthPrefixSizeBytes;

/** A frame whose bytes were dropped as they arrived because `FrameAdmission.reserve` refused it. */
export interface RefusedFrame {
  /** Its first bytes (up to `refusedHeadSizeBytes`), a copy. */
  readonly head: Buffer;
  /** Its announced payload length. */
  readonly length: number;
  /** Its place in the stream: it came before `frames[index]` of the same result. */
  readonly index: number;
}

/** A budget the decoder asks before it keeps the bytes of a frame that has not arrived whole. */
export interface FrameAdmission {
  /** True: `length` bytes are reserved for this frame. False: the frame is refused. */
  reserve(length: number): boolean;
  /** Gives back a reservation (the frame is complete and `completed` is absent, or the decoder disposed). */
  release(length: number): void;
  /**
   * Optional: the frame is complete and handed out. Its reservation, if it had one (`reserved`),
   * passes to the caller instead of being released: a server keeps a request's bytes counted until
   * it has answered it.
   */
  completed?(length: number, reserved: boolean): void;
}

/** Bytes of a refused frame kept for its answer: the 8-byte binary header and some. */
export const refusedHeadSizeBytes = 16;

export interface FrameDecodeResult {
  /** Complete frame payloads, in stream order. Views into received chunks: copy to keep them long. */
  readonly frames: Buffer[];
  /** Frames refused by the admission, with their places among `frames`; absent when none. */
  readonly refused?: RefusedFrame[];
  /** Set when the stream broke framing; frames decoded before the error are still returned. */
  readonly error?: WalrusError;
}

export class FrameDecoder {
  private frameSizeMax: number;
  /** Received, not yet consumed chunks; the first may be partly consumed (see `headOffset`). */
  private readonly chunks: Buffer[] = [];
  private headOffset = 0;
  private bufferedBytes = 0;
  private failure: WalrusError | undefined;
  /** Bytes reserved with the admission for the frame being received; 0 when none. */
  private reservedBytes = 0;
  /** The refused frame being dropped: its announced length, bytes still to drop, its head so far. */
  private skipping: { length: number; remaining: number; head: Buffer[]; headBytes: number } | undefined;

  constructor(
    frameSizeMaxBytes: number = protocolLimits.frameSizeMaxBytes,
    private readonly admission?: FrameAdmission,
  ) {
    assert(Number.isSafeInteger(frameSizeMaxBytes) && frameSizeMaxBytes > 0 && frameSizeMaxBytes < 2 ** 32);
    this.frameSizeMax = frameSizeMaxBytes;
  }

  /** Largest frame payload accepted. */
  get frameSizeMaxBytes(): number {
    return this.frameSizeMax;
  }

  /**
   * Raises the limit and keeps what is buffered: a connecting peer reads small frames until its
   * handshake is done, then full ones. Never lowered (bytes already kept were judged by the old one).
   */
  raiseFrameSizeMax(frameSizeMaxBytes: number): void {
    assert(Number.isSafeInteger(frameSizeMaxBytes) && frameSizeMaxBytes < 2 ** 32);
    assert(frameSizeMaxBytes >= this.frameSizeMax, 'the frame limit is only raised');
    this.frameSizeMax = frameSizeMaxBytes;
  }

  /** Bytes received but not yet returned as frames. */
  bufferedByteCount(): number {
    return this.bufferedBytes;
  }

  /**
   * True when bytes of an incomplete frame are waiting, or a refused frame is being dropped (a
   * stream that ends now was truncated).
   */
  hasPartialFrame(): boolean {
    return this.bufferedBytes > 0 || this.skipping !== undefined;
  }

  /** Bytes reserved with the admission now (0 or the announced length of the frame being received). */
  reservedByteCount(): number {
    return this.reservedBytes;
  }

  /** Gives back any reservation and forgets what is buffered; the decoder is not used after. */
  dispose(): void {
    this.releaseReservation();
    this.chunks.length = 0;
    this.headOffset = 0;
    this.bufferedBytes = 0;
    this.skipping = undefined;
  }

  /** The framing error, once the stream has broken. */
  get error(): WalrusError | undefined {
    return this.failure;
  }

  /** Feeds one chunk; returns the frames it completed, and an error if the stream broke framing. */
  push(chunk: Uint8Array): FrameDecodeResult {
    if (this.failure !== undefined) return { frames: [], error: this.failure };
    const frames: Buffer[] = [];
    let refused: RefusedFrame[] | undefined;
    if (chunk.length > 0) {
      this.chunks.push(
        Buffer.isBuffer(chunk) ? chunk : Buffer.from(chunk.buffer, chunk.byteOffset, chunk.length),
      );
      this.bufferedBytes += chunk.length;
    }
    for (;;) {
      const s = this.skipping;
      if (s !== undefined) {
        const headWanted = Math.min(refusedHeadSizeBytes, s.length) - s.headBytes;
        if (headWanted > 0 && this.bufferedBytes > 0) {
          const n = Math.min(headWanted, this.bufferedBytes);
          s.head.push(Buffer.from(this.take(n)));
          s.headBytes += n;
          s.remaining -= n;
        }
        const dropped = Math.min(s.remaining, this.bufferedBytes);
        this.skip(dropped);
        s.remaining -= dropped;
        if (s.remaining > 0) break;
        this.skipping = undefined;
        refused ??= [];
        refused.push({ head: Buffer.concat(s.head, s.headBytes), length: s.length, index: frames.length });
        continue;
      }
      if (this.bufferedBytes < prefixSizeBytes) break;
      const length = this.peekLength();
      if (length === 0) return this.fail(frames, ErrorCode.BAD_REQUEST, 'frame length is zero');
      if (length > this.frameSizeMax) {
        return this.fail(
          frames,
          ErrorCode.FRAME_TOO_LARGE,
          `frame length ${length} exceeds the limit of ${this.frameSizeMax} bytes`,
        );
      }
      if (this.bufferedBytes < prefixSizeBytes + length) {
        if (this.admission === undefined || this.reservedBytes > 0) break;
        if (this.admission.reserve(length)) {
          this.reservedBytes = length;
          break;
        }
        this.skip(prefixSizeBytes);
        this.skipping = { length, remaining: length, head: [], headBytes: 0 };
        continue;
      }
      this.skip(prefixSizeBytes);
      frames.push(this.take(length));
      const completed = this.admission?.completed;
      if (completed === undefined) {
        this.releaseReservation();
      } else {
        const reserved = this.reservedBytes > 0;
        this.reservedBytes = 0;
        completed.call(this.admission, length, reserved);
      }
    }
    return refused === undefined ? { frames } : { frames, refused };
  }

  private releaseReservation(): void {
    if (this.reservedBytes === 0) return;
    const bytes = this.reservedBytes;
    this.reservedBytes = 0;
    this.admission?.release(bytes);
  }

  private fail(frames: Buffer[], code: ErrorCode, message: string): FrameDecodeResult {
    this.failure = new WalrusError(code, message);
    this.dispose();
    return { frames, error: this.failure };
  }

  /** Reads the u32 LE length prefix across chunk boundaries without consuming it. */
  private peekLength(): number {
    const head = this.chunks[0]!;
    if (head.length - this.headOffset >= prefixSizeBytes) return head.readUInt32LE(this.headOffset);
    let value = 0;
    let chunkIndex = 0;
    let offset = this.headOffset;
    for (let i = 0; i < prefixSizeBytes; i += 1) {
      let chunk = this.chunks[chunkIndex]!;
      while (offset >= chunk.length) {
        chunkIndex += 1;
        offset = 0;
        chunk = this.chunks[chunkIndex]!;
      }
      value += chunk[offset]! * 2 ** (8 * i);
      offset += 1;
    }
    return value;
  }

  private skip(byteCount: number): void {
    let remaining = byteCount;
    while (remaining > 0) {
      const head = this.chunks[0]!;
      const available = head.length - this.headOffset;
      if (available > remaining) {
        this.headOffset += remaining;
        break;
      }
      remaining -= available;
      this.chunks.shift();
      this.headOffset = 0;
    }
    this.bufferedBytes -= byteCount;
  }

  private take(byteCount: number): Buffer {
    const head = this.chunks[0]!;
    if (head.length - this.headOffset >= byteCount) {
      const frame = head.subarray(this.headOffset, this.headOffset + byteCount);
      this.skip(byteCount);
      return frame;
    }
    const frame = Buffer.allocUnsafe(byteCount);
    let written = 0;
    while (written < byteCount) {
      const chunk = this.chunks[0]!;
      const n = Math.min(chunk.length - this.headOffset, byteCount - written);
      chunk.copy(frame, written, this.headOffset, this.headOffset + n);
      written += n;
      this.skip(n);
    }
    return frame;
  }
}
