/**
 * Peer frames on the raft port and the per-turn write batcher both ends share.
 *
 * Every peer frame is a length-prefixed binary-protocol message (frame.ts, binary-header.ts):
 * u32 length | 0xB1 | version 1 | opcode | flags | u32 request id | body. Encoding builds the whole
 * frame (prefix included) in one allocation, so a batch is one Buffer.concat of frames.
 *
 * Why one concatenated write per turn: Raft sends many small messages; profiling showed per-chunk
 * writev overhead dominating at high message rates, while one memcpy into one buffer is cheap.
 */
import {
  BinaryFlag,
  binaryFlagsKnownMask,
  binaryHeaderSizeBytes,
  binaryRequestIdOffset,
} from '../protocol/binary-header.js';
import { ByteWriter } from '../protocol/byte-io.js';
import { writeErrorBody } from '../protocol/binary-bodies.js';
import { ErrorCode, WalrusError } from '../protocol/error-codes.js';
import { binaryMarker } from '../protocol/frame.js';
import { protocolLimits } from '../protocol/limits.js';
import type { ErrorReply } from '../protocol/messages.js';

const prefixSizeBytes = protocolLimits.frameLengthPrefixSizeBytes;
/** Bytes a frame adds around its body: length prefix + binary header. */
export const peerFrameOverheadBytes = prefixSizeBytes + binaryHeaderSizeBytes;
/** Offset of the u32 request id in a whole frame (length prefix included). */
export const peerFrameRequestIdOffset = prefixSizeBytes + binaryRequestIdOffset;

export const peerWireLimits = {
  /** Largest handshake frame payload; a stranger cannot make a node buffer more before auth. */
  handshakeFrameSizeMaxBytes: 256,
  /**
   * Largest frame payload a connecting node reads before the handshake is done: a refusal carries
   * the operator's instructions (IDENTITY_MISMATCH), longer than a handshake frame.
   */
  handshakeReplySizeMaxBytes: 4096,
} as const;

export interface PeerHeader {
  readonly opcode: number;
  readonly flags: number;
  readonly requestId: number;
}

/** One whole frame (length prefix + header + body) in one buffer. */
export function encodePeerFrame(opcode: number, flags: number, requestId: number, body: Uint8Array): Buffer {
  const payloadSizeBytes = binaryHeaderSizeBytes + body.length;
  const frame = Buffer.allocUnsafe(prefixSizeBytes + payloadSizeBytes);
  frame.writeUInt32LE(payloadSizeBytes, 0);
  frame[4] = binaryMarker;
  frame[5] = 1;
  frame[6] = opcode;
  frame[7] = flags;
  frame.writeUInt32LE(requestId, peerFrameRequestIdOffset);
  frame.set(body, peerFrameOverheadBytes);
  return frame;
}

/** A whole frame carrying an error reply (flags REPLY|ERROR) to `opcode`/`requestId`. */
export function encodePeerErrorFrame(opcode: number, requestId: number, error: ErrorReply): Buffer {
  const w = new ByteWriter(64 + error.message.length);
  writeErrorBody(w, {
    code: error.code,
    message: error.message,
    ...(error.leaderHint === undefined ? {} : { leaderHint: error.leaderHint }),
  });
  return encodePeerFrame(opcode, BinaryFlag.REPLY | BinaryFlag.ERROR, requestId, w.finish());
}

/** Parses the header of a frame payload (no prefix). Throws WalrusError `code` when it is not one. */
export function decodePeerHeader(payload: Buffer, code: ErrorCode = ErrorCode.BAD_REQUEST): PeerHeader {
  if (payload.length < binaryHeaderSizeBytes || payload[0] !== binaryMarker) {
    throw new WalrusError(code, 'not a binary peer frame');
  }
  if (payload[1] !== 1) throw new WalrusError(code, `unsupported binary protocol version ${payload[1]}`);
  const flags = payload[3]!;
  if ((flags & ~binaryFlagsKnownMask) !== 0)
    throw new WalrusError(code, `unknown flags 0x${flags.toString(16)}`);
  return { opcode: payload[2]!, flags, requestId: payload.readUInt32LE(4) };
}

/** The body of a frame payload: a view after the header. */
export function peerBody(payload: Buffer): Buffer {
  return payload.subarray(binaryHeaderSizeBytes);
}

/** The error a caller sees for any failure to turn into a WalrusError (never a raw Error). */
export function asWalrusError(err: unknown): WalrusError {
  if (err instanceof WalrusError) return err;
  const message = err instanceof Error ? err.message : String(err);
  return new WalrusError(ErrorCode.INTERNAL, message, { cause: err });
}

/**
 * Collects whole frames during one event-loop turn and writes them as ONE buffer on the next tick.
 * `write` gets the concatenation; the owner decides what happens when the socket is backed up.
 */
export class FrameBatcher {
  private frames: Buffer[] = [];
  private bytes = 0;
  private scheduled = false;

  constructor(private readonly write: (batch: Buffer) => void) {}

  get pendingBytes(): number {
    return this.bytes;
  }

  push(frame: Buffer): void {
    this.frames.push(frame);
    this.bytes += frame.length;
    if (this.scheduled) return;
    this.scheduled = true;
    process.nextTick(() => this.flush());
  }

  /** Writes what is pending now (also called by the tick scheduled in push). */
  flush(): void {
    this.scheduled = false;
    if (this.frames.length === 0) return;
    const batch = this.frames.length === 1 ? this.frames[0]! : Buffer.concat(this.frames, this.bytes);
    this.frames = [];
    this.bytes = 0;
    this.write(batch);
  }

  /** Drops what is pending (the socket is gone). */
  clear(): void {
    this.frames = [];
    this.bytes = 0;
  }
}
