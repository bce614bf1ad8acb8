/**
 * Peer frames on the raft port, as both ends encode and decode them.
 *
 * Every peer frame is a length-prefixed binary-protocol message (frame.ts, binary-header.ts):
 * u32 length | 0xB1 | version 1 | opcode | flags | u32 request id | body. Encoding builds the whole
 * frame (prefix included) in one allocation, so a batch is one Buffer.concat of frames.
 *
 * The per-turn batcher lives in frame-batcher.ts (re-exported here for the peer server).
 */
import {
  BinaryFlag,
  binaryFlagsKnownMask,
  binaryHeaderSizeBytes,
  binaryRequestIdOffset,
} from '../protocol/binary-header.js';
import { ByteReader, ByteWriter } from '../protocol/byte-io.js';
import { readErrorBody, writeErrorBody } from '../protocol/binary-bodies.js';
import { ErrorCode, WalrusError } from '../protocol/error-codes.js';
import { binaryMarker } from '../protocol/frame.js';
import { protocolLimits } from '../protocol/limits.js';
import type { ErrorReply } from '../protocol/messages.js';

export { FrameBatcher } from './frame-batcher.js';

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

/** The error an error reply's body carries (code, message, leader hint), naming who sent it. */
export function peerErrorOf(body: Buffer, who: string): WalrusError {
  const e = readErrorBody(new ByteReader(body, 0, ErrorCode.UNAVAILABLE));
  return new WalrusError(e.code, `${who}: ${e.message}`, {
    ...(e.leaderHint === undefined ? {} : { leaderHint: e.leaderHint }),
  });
}

/** The error a caller sees for any failure to turn into a WalrusError (never a raw Error). */
export function asWalrusError(err: unknown): WalrusError {
  if (err instanceof WalrusError) return err;
  const message = err instanceof Error ? err.message : String(err);
  return new WalrusError(ErrorCode.INTERNAL, message, { cause: err });
}
