/**
 * The node-wide budget of buffered client input: bytes of frames announced and not yet complete
 * (partial frames, reserved at their announced length before they are kept), of requests received
 * whole and not yet answered, and of replies written and not yet taken by the kernel. One per client FrameServer, so one per node; the peer
 * port has none (Raft and replication frames are never refused for what clients hold).
 *
 * Why a reserve for small frames: once large frames have spent `bytesMax − smallFrameReserveBytes`,
 * small ones (METRICS, a PING, a small append) still get through, so a partial-frame flood cannot
 * lock operators out. When the whole budget is spent, new connections are refused BUSY too.
 * Replies are never refused (they are owed); they count, and can take the figure past `bytesMax`.
 */
import assert from 'node:assert';

export interface InputBudgetStats {
  /** Bytes held now: partial frames (announced lengths) plus unflushed replies. */
  readonly bufferedInputBytes: number;
  readonly bufferedInputBytesMax: number;
  /** The most held at once since start. */
  readonly bufferedInputBytesPeak: number;
  /** Frames refused BUSY because the budget was spent. */
  readonly bufferedInputRefusals: number;
  /** Connections refused BUSY because the budget was spent. */
  readonly bufferedInputConnectionRefusals: number;
}

export class InputBudget {
  private usedBytes = 0;
  private peakBytes = 0;
  private frameRefusals = 0;
  private connectionRefusals = 0;

  /**
   * @param bytesMax the budget, bytes.
   * @param smallFrameSizeMaxBytes frames up to this size may use the reserve.
   * @param smallFrameReserveBytes bytes large frames leave to small ones.
   */
  constructor(
    readonly bytesMax: number,
    readonly smallFrameSizeMaxBytes: number,
    readonly smallFrameReserveBytes: number,
  ) {
    assert(Number.isSafeInteger(bytesMax) && bytesMax > 0);
    assert(smallFrameReserveBytes >= 0 && smallFrameReserveBytes < bytesMax);
    assert(smallFrameSizeMaxBytes > 0);
  }

  /** Reserves `bytes` for a frame being received; false (and counted) when the budget is spent. */
  tryReserveFrame(bytes: number): boolean {
    const limit =
      bytes <= this.smallFrameSizeMaxBytes ? this.bytesMax : this.bytesMax - this.smallFrameReserveBytes;
    if (this.usedBytes + bytes > limit) {
      this.frameRefusals += 1;
      return false;
    }
    this.add(bytes);
    return true;
  }

  /** Counts bytes that cannot be refused (replies owed to a client). */
  charge(bytes: number): void {
    this.add(bytes);
  }

  release(bytes: number): void {
    this.usedBytes -= bytes;
    assert(this.usedBytes >= 0, 'released more input budget than was taken');
  }

  /** True when nothing is left at all (replies can take the figure past bytesMax). */
  spent(): boolean {
    return this.usedBytes >= this.bytesMax;
  }

  /** True when nothing is left at all: a new connection is refused. Counts the refusal. */
  refuseConnection(): boolean {
    if (this.usedBytes < this.bytesMax) return false;
    this.connectionRefusals += 1;
    return true;
  }

  stats(): InputBudgetStats {
    return {
      bufferedInputBytes: this.usedBytes,
      bufferedInputBytesMax: this.bytesMax,
      bufferedInputBytesPeak: this.peakBytes,
      bufferedInputRefusals: this.frameRefusals,
      bufferedInputConnectionRefusals: this.connectionRefusals,
    };
  }

  private add(bytes: number): void {
    this.usedBytes += bytes;
    if (this.usedBytes > this.peakBytes) this.peakBytes = this.usedBytes;
  }
}
