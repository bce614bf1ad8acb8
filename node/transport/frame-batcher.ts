/**
 * Collects the bytes of whole frames during one event-loop turn and writes them as ONE buffer:
 * profiling showed per-chunk writev overhead dominating at high message rates, on both the servers
 * and the connections.
 *
 * Small frames are copied as they come into an arena (one allocation of `arenaSizeBytes` serves
 * many frames and many batches: written bytes are never touched again, the next batch goes on
 * after them), so a frame costs no allocation of its own: no length-prefix buffer, no copy to set
 * a request id (`pushFrame` writes the prefix, the payload and the id straight into the arena).
 * A chunk of `copySizeMinBytes` or more is not copied: it goes out by reference, in order.
 *
 * When the batch leaves is the owner's choice (`FlushSchedule`):
 * - `nextTick`: right after the current callback. Raft sends the messages of one Ready
 *   synchronously, so this catches them all at no added latency (peer links and peer servers).
 * - `setImmediate`: after the poll phase. A gateway handles each HTTP request in its own I/O
 *   callback, and only a flush after the poll phase gathers all of them into one write (+18%
 *   gateway appends/s measured; client connections).
 */
import assert from 'node:assert';
import { binaryHeaderSizeBytes, binaryRequestIdOffset } from '../protocol/binary-header.js';
import { protocolLimits } from '../protocol/limits.js';

export type FlushSchedule = 'nextTick' | 'setImmediate';

export const frameBatcherLimits = {
  /** Size of one arena; a batch larger than what is left of it starts a new one (at least its size). */
  arenaSizeBytes: 64 * 1024,
  /** Chunks this large go out by reference (copying them would cost more than a write of their own). */
  copySizeMinBytes: 16 * 1024,
} as const;

assert(frameBatcherLimits.copySizeMinBytes <= frameBatcherLimits.arenaSizeBytes);

const prefixSizeBytes = protocolLimits.frameLengthPrefixSizeBytes;

export class FrameBatcher {
  /** Parts of the batch in order: arena slices and large chunks by reference. */
  private chunks: Buffer[] = [];
  private bytes = 0;
  private scheduled = false;
  private arena: Buffer | undefined;
  /** Where the current batch's bytes begin in the arena (bytes before it were handed out). */
  private arenaStart = 0;
  private arenaEnd = 0;

  /** `write` gets the concatenation; the owner decides what happens when the socket is backed up. */
  constructor(
    private readonly write: (batch: Buffer) => void,
    private readonly schedule: FlushSchedule = 'nextTick',
  ) {}

  /** Bytes pushed and not yet written. */
  get pendingBytes(): number {
    return this.bytes;
  }

  /** Adds bytes of frames (a whole frame, or a length prefix and then its payload). */
  push(chunk: Uint8Array): void {
    if (chunk.length >= frameBatcherLimits.copySizeMinBytes) {
      this.closeArenaSlice();
      this.chunks.push(
        Buffer.isBuffer(chunk) ? chunk : Buffer.from(chunk.buffer, chunk.byteOffset, chunk.length),
      );
    } else {
      const at = this.reserve(chunk.length);
      this.arena!.set(chunk, at);
    }
    this.added(chunk.length);
  }

  /** Adds one frame: the length prefix, then `payload` (copied unless large). */
  pushPayload(payload: Uint8Array): void {
    if (payload.length >= frameBatcherLimits.copySizeMinBytes) {
      const prefix = Buffer.allocUnsafe(prefixSizeBytes);
      prefix.writeUInt32LE(payload.length, 0);
      this.push(prefix);
      this.push(payload);
      return;
    }
    const size = prefixSizeBytes + payload.length;
    const at = this.reserve(size);
    this.arena!.writeUInt32LE(payload.length, at);
    this.arena!.set(payload, at + prefixSizeBytes);
    this.added(size);
  }

  /**
   * Adds one frame: the length prefix, then `payload`, a binary message whose request id (bytes
   * 4-7) is set to `requestId` in the copy that is sent. `payload` itself is never changed, so one
   * encoding serves every attempt of a request.
   */
  pushFrame(payload: Uint8Array, requestId: number): void {
    assert(payload.length >= binaryHeaderSizeBytes);
    if (payload.length >= frameBatcherLimits.copySizeMinBytes) {
      const head = Buffer.allocUnsafe(prefixSizeBytes + binaryHeaderSizeBytes);
      head.writeUInt32LE(payload.length, 0);
      head.set(payload.subarray(0, binaryHeaderSizeBytes), prefixSizeBytes);
      head.writeUInt32LE(requestId, prefixSizeBytes + binaryRequestIdOffset);
      this.push(head);
      this.push(payload.subarray(binaryHeaderSizeBytes));
      return;
    }
    const size = prefixSizeBytes + payload.length;
    const at = this.reserve(size);
    const arena = this.arena!;
    arena.writeUInt32LE(payload.length, at);
    arena.set(payload, at + prefixSizeBytes);
    arena.writeUInt32LE(requestId, at + prefixSizeBytes + binaryRequestIdOffset);
    this.added(size);
  }

  /** Writes what is pending now (also called by the flush scheduled in push). */
  flush(): void {
    this.scheduled = false;
    if (this.bytes === 0) return;
    this.closeArenaSlice();
    const chunks = this.chunks;
    const batch = chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks, this.bytes);
    this.chunks = [];
    this.bytes = 0;
    this.write(batch);
  }

  /** Drops what is pending (the socket is gone). */
  clear(): void {
    this.chunks = [];
    this.bytes = 0;
    this.arenaStart = this.arenaEnd;
  }

  private added(size: number): void {
    this.bytes += size;
    if (this.scheduled) return;
    this.scheduled = true;
    if (this.schedule === 'nextTick') process.nextTick(() => this.flush());
    else setImmediate(() => this.flush());
  }

  /** Room for `size` bytes at the end of the arena; returns where. */
  private reserve(size: number): number {
    if (this.arena === undefined || this.arenaEnd + size > this.arena.length) {
      this.closeArenaSlice();
      this.arena = Buffer.allocUnsafeSlow(Math.max(frameBatcherLimits.arenaSizeBytes, size));
      this.arenaStart = 0;
      this.arenaEnd = 0;
    }
    const at = this.arenaEnd;
    this.arenaEnd += size;
    return at;
  }

  /** Ends the arena's part of the batch so far as one chunk (before a chunk by reference, or a flush). */
  private closeArenaSlice(): void {
    if (this.arena === undefined || this.arenaEnd === this.arenaStart) return;
    this.chunks.push(this.arena.subarray(this.arenaStart, this.arenaEnd));
    this.arenaStart = this.arenaEnd;
  }
}
