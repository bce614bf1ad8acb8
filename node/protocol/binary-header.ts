/**
 * The fixed 8-byte header of every binary-protocol message and the opcode table.
 *
 *   byte 0     marker 0xB1 (frame.ts)
 *   byte 1     protocol version (1)
 *   byte 2     opcode (u8, table below)
 *   byte 3     flags: bit 0 REPLY, bit 1 ERROR; other bits are reserved and must be 0
 *   bytes 4-7  request id (u32 little-endian), chosen by the requester, echoed by the reply
 *   bytes 8-   body, whose layout depends on opcode and flags (binary-codec.ts, docs/protocol.md)
 *
 * Opcode ranges (documented in docs/protocol.md): 0x00 invalid; 0x01-0x3F client requests;
 * 0x40-0x5F reserved for Raft peer messages; 0x60-0x7F reserved for segment replication;
 * 0x80-0x8F reserved for auth challenge-response; 0x90-0x9F reserved for request forwarding;
 * 0xA0-0xFF reserved. A request with a reserved or unknown opcode is answered UNKNOWN_COMMAND.
 */
import type { RequestOp } from './messages.js';

export const binaryProtocolVersion = 1;
export const binaryHeaderSizeBytes = 8;
/** Offset of the u32 request id in the header. */
export const binaryRequestIdOffset = 4;

export const BinaryFlag = {
  REPLY: 0x01,
  ERROR: 0x02,
} as const;
export const binaryFlagsKnownMask = BinaryFlag.REPLY | BinaryFlag.ERROR;

/** Opcode of each client request; replies carry the opcode of their request. */
export const Opcode = {
  ping: 0x01,
  createTopic: 0x02,
  describeTopic: 0x03,
  listTopics: 0x04,
  deleteTopic: 0x05,
  configureTopic: 0x06,
  stream: 0x07,
  append: 0x10,
  read: 0x11,
  offsetForTimestamp: 0x12,
  localOffsetForTimestamp: 0x13,
  consumerReadNext: 0x20,
  consumerCommit: 0x21,
  consumerGet: 0x22,
  consumerList: 0x23,
  consumerDelete: 0x24,
  metrics: 0x30,
  state: 0x31,
  removeNode: 0x38,
  handOff: 0x39,
  transferLeader: 0x3a,
  nodeStopping: 0x3b,
  authenticate: 0x3c,
} as const satisfies Record<RequestOp, number>;

/** Reserved ranges for messages that later work adds; inclusive bounds. */
export const opcodeRanges = {
  client: [0x01, 0x3f],
  raft: [0x40, 0x5f],
  segmentReplication: [0x60, 0x7f],
  auth: [0x80, 0x8f],
  forwarding: [0x90, 0x9f],
  reserved: [0xa0, 0xff],
} as const;

/**
 * Opcodes of the peer protocol on the raft port (node/transport/peer-*.ts, docs/protocol.md "Peer
 * protocol"), inside the reserved raft (0x40-0x5F), auth (0x80-0x8F) and forwarding (0x90-0x9F)
 * ranges. The client port answers them UNKNOWN_COMMAND like any reserved opcode.
 */
export const PeerOpcode = {
  /** One-way Raft message; request id 0; the body is the opaque payload. */
  raftMessage: 0x40,
  /**
   * Request/response: one chunk of a Raft snapshot transfer (node/metadata/snapshot-transfer.ts);
   * the reply acknowledges it. A snapshot larger than a frame travels as many of these.
   */
  snapshotChunk: 0x41,
  /** Server → client: auth mode and the server's nonce. */
  authHello: 0x80,
  /** Client → server: node id, auth mode, the client's nonce and its MAC. */
  authProve: 0x81,
  /** Server → client: auth mode and the server's MAC; peer frames may follow. */
  authAccept: 0x82,
  /** Request/response peer call (join, forwarded proposal); the body is the opaque payload. */
  peerRequest: 0x90,
} as const;

const opByOpcode = new Map<number, RequestOp>(
  (Object.entries(Opcode) as [RequestOp, number][]).map(([op, code]) => [code, op]),
);

/** The request op of an opcode byte, or undefined when the opcode is not a client request. */
export function opOfOpcode(opcode: number): RequestOp | undefined {
  return opByOpcode.get(opcode);
}

export interface BinaryHeader {
  readonly version: number;
  readonly opcode: number;
  readonly flags: number;
  readonly requestId: number;
}

/** Reads the request id of a binary message, or undefined when the payload is too short. */
export function readRequestId(payload: Uint8Array): number | undefined {
  if (payload.length < binaryHeaderSizeBytes) return undefined;
  const at = binaryRequestIdOffset;
  return (payload[at]! | (payload[at + 1]! << 8) | (payload[at + 2]! << 16)) + payload[at + 3]! * 2 ** 24;
}

/** A copy of an encoded binary message with another request id (to re-send encoded bytes). */
export function withRequestId(payload: Uint8Array, requestId: number): Buffer {
  const copy = Buffer.from(payload);
  copy.writeUInt32LE(requestId, binaryRequestIdOffset);
  return copy;
}
