/**
 * The peer handshake on the raft port: a mutual HMAC-SHA256 challenge-response over a shared
 * cluster secret, as pure encode/verify functions (the sockets are in peer-server.ts and
 * peer-link.ts). Byte layouts are in docs/protocol.md, "Peer protocol (raft port)".
 *
 *   server → client  HELLO  mode | serverNonce
 *   client → server  PROVE  nodeId | mode | clientNonce | clientMac
 *   server → client  ACCEPT mode | serverMac            (or an UNAUTHENTICATED error reply, then close)
 *
 *   clientMac = HMAC(secret, label | 0x01 | serverNonce | clientNonce | nodeId)
 *   serverMac = HMAC(secret, label | 0x02 | serverNonce | clientNonce | nodeId)
 *
 * Why this shape: the secret never crosses the wire; the server's fresh nonce makes every client
 * proof good for one connection only (captured bytes cannot be replayed); the client's nonce makes
 * the server's proof fresh too, so a client knows the server holds the secret; the role byte keeps
 * one side's proof from being reflected as the other's. It authenticates, it does not encrypt: an
 * on-path attacker can still read or hijack a connection after the handshake (DESIGN.md: the peer
 * network is trusted for confidentiality).
 *
 * With no secret (open cluster) the handshake still runs so node ids are exchanged; MACs are zero
 * and not checked. A node with a secret refuses a peer without one and vice versa (the modes differ).
 */
import assert from 'node:assert';
import crypto from 'node:crypto';
import { ByteReader, ByteWriter } from '../protocol/byte-io.js';
import { ErrorCode, WalrusError } from '../protocol/error-codes.js';

/** Domain-separation label at the start of every MAC input. */
export const peerAuthLabel = 'walrus-peer-v1';
export const peerNonceSizeBytes = 32;
export const peerMacSizeBytes = 32;

export const PeerAuthMode = {
  /** No cluster secret: MACs are zero and not checked. */
  open: 0,
  /** Shared cluster secret: MACs are HMAC-SHA256 and checked in constant time. */
  secret: 1,
} as const;
export type PeerAuthMode = (typeof PeerAuthMode)[keyof typeof PeerAuthMode];

const MacRole = { client: 1, server: 2 } as const;
const labelBytes = Buffer.from(peerAuthLabel, 'ascii');
const zeroMac = Buffer.alloc(peerMacSizeBytes);

export interface PeerHello {
  readonly mode: PeerAuthMode;
  readonly serverNonce: Buffer;
}

export interface PeerProve {
  readonly nodeId: number;
  readonly mode: PeerAuthMode;
  readonly clientNonce: Buffer;
  readonly mac: Buffer;
}

export interface PeerAccept {
  readonly mode: PeerAuthMode;
  readonly mac: Buffer;
}

export function modeOfSecret(secret: string | null): PeerAuthMode {
  assert(secret === null || secret.length > 0, 'a cluster secret must be null (open) or non-empty');
  return secret === null ? PeerAuthMode.open : PeerAuthMode.secret;
}

export function newPeerNonce(): Buffer {
  return crypto.randomBytes(peerNonceSizeBytes);
}

function unauthenticated(message: string): WalrusError {
  return new WalrusError(ErrorCode.UNAUTHENTICATED, message);
}

function computeMac(
  secret: string,
  role: number,
  serverNonce: Buffer,
  clientNonce: Buffer,
  nodeId: number,
): Buffer {
  const tail = Buffer.allocUnsafe(5);
  tail[0] = role;
  tail.writeUInt32LE(nodeId, 1);
  return crypto
    .createHmac('sha256', secret)
    .update(labelBytes)
    .update(tail.subarray(0, 1))
    .update(serverNonce)
    .update(clientNonce)
    .update(tail.subarray(1))
    .digest();
}

function macFor(secret: string | null, role: number, s: Buffer, c: Buffer, nodeId: number): Buffer {
  return secret === null ? zeroMac : computeMac(secret, role, s, c, nodeId);
}

function readMode(r: ByteReader): PeerAuthMode {
  const mode = r.u8('auth mode');
  if (mode !== PeerAuthMode.open && mode !== PeerAuthMode.secret) r.fail(`unknown auth mode ${mode}`);
  return mode;
}

function checkModes(ours: PeerAuthMode, theirs: PeerAuthMode, who: string): void {
  if (ours === theirs) return;
  throw unauthenticated(
    ours === PeerAuthMode.secret
      ? `${who} has no cluster secret and this node requires one`
      : `${who} uses a cluster secret and this node runs an open cluster`,
  );
}

// ---- bodies (after the 8-byte binary header) ---------------------------------------------------

export function encodeHelloBody(hello: PeerHello): Buffer {
  assert(hello.serverNonce.length === peerNonceSizeBytes);
  const w = new ByteWriter(1 + peerNonceSizeBytes);
  w.u8(hello.mode);
  w.raw(hello.serverNonce);
  return w.finish();
}

/** Throws WalrusError UNAUTHENTICATED on anything malformed. */
export function decodeHelloBody(body: Buffer): PeerHello {
  const r = new ByteReader(body, 0, ErrorCode.UNAUTHENTICATED);
  const mode = readMode(r);
  const serverNonce = Buffer.from(r.bytesView(peerNonceSizeBytes, 'server nonce'));
  r.end('hello');
  return { mode, serverNonce };
}

export function encodeProveBody(prove: PeerProve): Buffer {
  assert(prove.clientNonce.length === peerNonceSizeBytes && prove.mac.length === peerMacSizeBytes);
  const w = new ByteWriter(4 + 1 + peerNonceSizeBytes + peerMacSizeBytes);
  w.u32(prove.nodeId);
  w.u8(prove.mode);
  w.raw(prove.clientNonce);
  w.raw(prove.mac);
  return w.finish();
}

export function decodeProveBody(body: Buffer): PeerProve {
  const r = new ByteReader(body, 0, ErrorCode.UNAUTHENTICATED);
  const nodeId = r.u32('node id');
  const mode = readMode(r);
  const clientNonce = Buffer.from(r.bytesView(peerNonceSizeBytes, 'client nonce'));
  const mac = Buffer.from(r.bytesView(peerMacSizeBytes, 'client mac'));
  r.end('prove');
  return { nodeId, mode, clientNonce, mac };
}

export function encodeAcceptBody(accept: PeerAccept): Buffer {
  assert(accept.mac.length === peerMacSizeBytes);
  const w = new ByteWriter(1 + peerMacSizeBytes);
  w.u8(accept.mode);
  w.raw(accept.mac);
  return w.finish();
}

export function decodeAcceptBody(body: Buffer): PeerAccept {
  const r = new ByteReader(body, 0, ErrorCode.UNAUTHENTICATED);
  const mode = readMode(r);
  const mac = Buffer.from(r.bytesView(peerMacSizeBytes, 'server mac'));
  r.end('accept');
  return { mode, mac };
}

// ---- the two sides' steps --------------------------------------------------------------------

/** Client: answers a hello. Throws UNAUTHENTICATED when the modes differ. */
export function answerHello(
  secret: string | null,
  selfNodeId: number,
  hello: PeerHello,
): { prove: PeerProve; clientNonce: Buffer } {
  assert(Number.isInteger(selfNodeId) && selfNodeId > 0 && selfNodeId <= 0xffffffff);
  checkModes(modeOfSecret(secret), hello.mode, 'the server');
  const clientNonce = newPeerNonce();
  const mac = macFor(secret, MacRole.client, hello.serverNonce, clientNonce, selfNodeId);
  return { prove: { nodeId: selfNodeId, mode: hello.mode, clientNonce, mac }, clientNonce };
}

/**
 * Server: checks a proof against the nonce it sent on this connection and returns its accept.
 * Throws UNAUTHENTICATED on a mode mismatch, node id 0 or a wrong MAC.
 */
export function verifyProve(secret: string | null, serverNonce: Buffer, prove: PeerProve): PeerAccept {
  const mode = modeOfSecret(secret);
  checkModes(mode, prove.mode, `peer node ${prove.nodeId}`);
  if (prove.nodeId === 0) throw unauthenticated('node id 0 is not valid');
  if (secret !== null) {
    const expected = computeMac(secret, MacRole.client, serverNonce, prove.clientNonce, prove.nodeId);
    if (!crypto.timingSafeEqual(expected, prove.mac)) {
      throw unauthenticated(`peer node ${prove.nodeId} failed the cluster-secret challenge`);
    }
  }
  const mac = macFor(secret, MacRole.server, serverNonce, prove.clientNonce, prove.nodeId);
  return { mode, mac };
}

/** Client: checks the server's proof. Throws UNAUTHENTICATED when the server lacks the secret. */
export function verifyAccept(
  secret: string | null,
  serverNonce: Buffer,
  clientNonce: Buffer,
  selfNodeId: number,
  accept: PeerAccept,
): void {
  checkModes(modeOfSecret(secret), accept.mode, 'the server');
  if (secret === null) return;
  const expected = computeMac(secret, MacRole.server, serverNonce, clientNonce, selfNodeId);
  if (!crypto.timingSafeEqual(expected, accept.mac)) {
    throw unauthenticated('the server failed the cluster-secret challenge');
  }
}
