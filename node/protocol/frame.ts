/**
 * The framing shared by both protocols on a client port: a frame is a 4-byte little-endian
 * unsigned length followed by that many payload bytes. A payload whose first byte is
 * `binaryMarker` (0xB1) is a binary-protocol message; anything else is a Walrus text command.
 *
 * Why 0xB1: it is a UTF-8 continuation byte, so it can never start a valid UTF-8 text command, and
 * the two protocols can share one port and one connection framing without negotiation.
 */
import { protocolLimits } from './limits.js';

/** First payload byte of every binary-protocol frame. */
export const binaryMarker = 0xb1;

/** True when the payload is a binary-protocol message (its first byte is the marker). */
export function isBinaryFrame(payload: Uint8Array): boolean {
  return payload.length > 0 && payload[0] === binaryMarker;
}

/** The 4-byte little-endian length prefix for a payload of `payloadSizeBytes`. */
export function encodeFrameHeader(payloadSizeBytes: number): Buffer {
  const header = Buffer.allocUnsafe(protocolLimits.frameLengthPrefixSizeBytes);
  header.writeUInt32LE(payloadSizeBytes, 0);
  return header;
}

/** Length prefix + payload in one buffer (one copy). Prefer writing header and payload with writev on hot paths. */
export function encodeFrame(payload: Uint8Array): Buffer {
  const frame = Buffer.allocUnsafe(protocolLimits.frameLengthPrefixSizeBytes + payload.length);
  frame.writeUInt32LE(payload.length, 0);
  frame.set(payload, protocolLimits.frameLengthPrefixSizeBytes);
  return frame;
}
