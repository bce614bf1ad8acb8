/**
 * The peer handshake on the raft port: a mutual HMAC-SHA256 challenge-response over a shared
 * cluster secret that also exchanges both nodes' identities, as pure encode/verify functions (the
 * sockets are in peer-server.ts and peer-link.ts). Byte layouts are in docs/protocol.md, "Peer
 * protocol (raft port)".
 *
 *   server → client  HELLO  mode | serverNonce
 *   client → server  PROVE  nodeId | mode | clientNonce | clientMac | clusterId | incarnation
 *   server → client  ACCEPT mode | serverMac | clusterId | nodeId | incarnation
 *                           (or an UNAUTHENTICATED / IDENTITY_MISMATCH error reply, then close)
 *
 *   clientMac = HMAC(secret, label | 0x01 | serverNonce | clientNonce | nodeId | clusterId | incarnation)
 *   serverMac = HMAC(secret, label | 0x02 | serverNonce | clientNonce | client nodeId
 *                    | server clusterId | server nodeId | server incarnation)
 *
 * Identities (cluster id, node id, incarnation; ids are 16 bytes, zeros when not known) let each
 * side refuse a peer of another cluster or a wiped node under its old id: the judgement is a
 * PeerIdentityPolicy the node supplies (node/metadata/cluster-identity.ts); without one (tests,
 * tools) the ids are zeros and every peer is accepted.
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

/** Domain-separation label at the start of every MAC input (v2: the MACs cover the identities). */
export const peerAuthLabel = 'walrus-peer-v2';
export const peerNonceSizeBytes = 32;
export const peerMacSizeBytes = 32;
/** A cluster id or an incarnation on the wire: 16 bytes, all zero when not known. */
export const peerIdentityIdSizeBytes = 16;
/** Body sizes of the v1 handshake (before identities), to name an older node when it is refused. */
const v1ProveSizeBytes = 4 + 1 + peerNonceSizeBytes + peerMacSizeBytes;
const v1AcceptSizeBytes = 1 + peerMacSizeBytes;
const identityIdPattern = /^[0-9a-f]{32}$/;

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

/** A node as the handshake presents it: ids as 32 hex digits, null when not known (or none). */
export interface PeerIdentity {
  readonly clusterId: string | null;
  readonly nodeId: number;
  readonly incarnation: string | null;
}

/**
 * How a node judges the other end of a handshake, on either side: `self()` is read at every
 * handshake (a joiner learns its cluster id); `check` throws a WalrusError (IDENTITY_MISMATCH) to
 * refuse the peer before any message or request of its is accepted.
 */
export interface PeerIdentityPolicy {
  self(): PeerIdentity;
  check(peer: PeerIdentity): void;
}

/** No identity (zeros) and no checks: for tests and tools; walrus-node always supplies a policy. */
export function anonymousIdentityPolicy(nodeId: number): PeerIdentityPolicy {
  const self: PeerIdentity = { clusterId: null, nodeId, incarnation: null };
  return { self: () => self, check: () => {} };
}

export interface PeerHello {
  readonly mode: PeerAuthMode;
  readonly serverNonce: Buffer;
}

/** The client's proof; its identity fields are the client's PeerIdentity. */
export interface PeerProve extends PeerIdentity {
  readonly mode: PeerAuthMode;
  readonly clientNonce: Buffer;
  readonly mac: Buffer;
}

/** The server's proof; its identity fields are the server's PeerIdentity (node id 0: anonymous). */
export interface PeerAccept extends PeerIdentity {
  readonly mode: PeerAuthMode;
  readonly mac: Buffer;
}

/** The identity part of a proof or an accept. */
export function identityOf(p: PeerIdentity): PeerIdentity {
  return { clusterId: p.clusterId, nodeId: p.nodeId, incarnation: p.incarnation };
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

function idBytes(id: string | null): Buffer {
  assert(id === null || identityIdPattern.test(id), `not an identity id: ${id}`);
  return id === null ? Buffer.alloc(peerIdentityIdSizeBytes) : Buffer.from(id, 'hex');
}

function idFromBytes(bytes: Buffer): string | null {
  return bytes.every((b) => b === 0) ? null : bytes.toString('hex');
}

function u32Bytes(value: number): Buffer {
  const out = Buffer.allocUnsafe(4);
  out.writeUInt32LE(value, 0);
  return out;
}

/** The client's MAC covers its identity; the server's covers the client's node id and its own identity. */
function computeMac(
  secret: string,
  role: number,
  serverNonce: Buffer,
  clientNonce: Buffer,
  clientNodeId: number,
  identity: PeerIdentity,
): Buffer {
  const hmac = crypto
    .createHmac('sha256', secret)
    .update(labelBytes)
    .update(Buffer.from([role]))
    .update(serverNonce)
    .update(clientNonce)
    .update(u32Bytes(clientNodeId))
    .update(idBytes(identity.clusterId));
  if (role === MacRole.server) hmac.update(u32Bytes(identity.nodeId));
  return hmac.update(idBytes(identity.incarnation)).digest();
}

function macFor(
  secret: string | null,
  role: number,
  s: Buffer,
  c: Buffer,
  clientNodeId: number,
  identity: PeerIdentity,
): Buffer {
  return secret === null ? zeroMac : computeMac(secret, role, s, c, clientNodeId, identity);
}

function olderVersion(what: string): WalrusError {
  return unauthenticated(
    `the peer sent a v1 ${what} (an older walrus-node, without node identities): upgrade every node ` +
      'of the cluster together (stop all, upgrade, start all)',
  );
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
  const w = new ByteWriter(v1ProveSizeBytes + 2 * peerIdentityIdSizeBytes);
  w.u32(prove.nodeId);
  w.u8(prove.mode);
  w.raw(prove.clientNonce);
  w.raw(prove.mac);
  w.raw(idBytes(prove.clusterId));
  w.raw(idBytes(prove.incarnation));
  return w.finish();
}

export function decodeProveBody(body: Buffer): PeerProve {
  if (body.length === v1ProveSizeBytes) throw olderVersion('proof');
  const r = new ByteReader(body, 0, ErrorCode.UNAUTHENTICATED);
  const nodeId = r.u32('node id');
  const mode = readMode(r);
  const clientNonce = Buffer.from(r.bytesView(peerNonceSizeBytes, 'client nonce'));
  const mac = Buffer.from(r.bytesView(peerMacSizeBytes, 'client mac'));
  const clusterId = idFromBytes(r.bytesView(peerIdentityIdSizeBytes, 'cluster id'));
  const incarnation = idFromBytes(r.bytesView(peerIdentityIdSizeBytes, 'incarnation'));
  r.end('prove');
  return { nodeId, mode, clientNonce, mac, clusterId, incarnation };
}

export function encodeAcceptBody(accept: PeerAccept): Buffer {
  assert(accept.mac.length === peerMacSizeBytes);
  const w = new ByteWriter(v1AcceptSizeBytes + 4 + 2 * peerIdentityIdSizeBytes);
  w.u8(accept.mode);
  w.raw(accept.mac);
  w.raw(idBytes(accept.clusterId));
  w.u32(accept.nodeId);
  w.raw(idBytes(accept.incarnation));
  return w.finish();
}

export function decodeAcceptBody(body: Buffer): PeerAccept {
  if (body.length === v1AcceptSizeBytes) throw olderVersion('accept');
  const r = new ByteReader(body, 0, ErrorCode.UNAUTHENTICATED);
  const mode = readMode(r);
  const mac = Buffer.from(r.bytesView(peerMacSizeBytes, 'server mac'));
  const clusterId = idFromBytes(r.bytesView(peerIdentityIdSizeBytes, 'cluster id'));
  const nodeId = r.u32('node id');
  const incarnation = idFromBytes(r.bytesView(peerIdentityIdSizeBytes, 'incarnation'));
  r.end('accept');
  return { mode, mac, clusterId, nodeId, incarnation };
}

// ---- the two sides' steps --------------------------------------------------------------------

/** Client: answers a hello with its identity. Throws UNAUTHENTICATED when the modes differ. */
export function answerHello(
  secret: string | null,
  self: PeerIdentity,
  hello: PeerHello,
): { prove: PeerProve; clientNonce: Buffer } {
  assert(Number.isInteger(self.nodeId) && self.nodeId > 0 && self.nodeId <= 0xffffffff);
  checkModes(modeOfSecret(secret), hello.mode, 'the server');
  const clientNonce = newPeerNonce();
  const mac = macFor(secret, MacRole.client, hello.serverNonce, clientNonce, self.nodeId, self);
  return { prove: { ...identityOf(self), mode: hello.mode, clientNonce, mac }, clientNonce };
}

/**
 * Server: checks a proof against the nonce it sent on this connection and returns its accept,
 * carrying `self` (the server's identity). Throws UNAUTHENTICATED on a mode mismatch, node id 0 or a
 * wrong MAC (with a secret the MAC covers the client's identity). Judging the identity is the
 * caller's (PeerIdentityPolicy.check).
 */
export function verifyProve(
  secret: string | null,
  serverNonce: Buffer,
  prove: PeerProve,
  self: PeerIdentity = anonymousIdentityPolicy(0).self(),
): PeerAccept {
  const mode = modeOfSecret(secret);
  checkModes(mode, prove.mode, `peer node ${prove.nodeId}`);
  if (prove.nodeId === 0) throw unauthenticated('node id 0 is not valid');
  if (secret !== null) {
    const expected = computeMac(
      secret,
      MacRole.client,
      serverNonce,
      prove.clientNonce,
      prove.nodeId,
      identityOf(prove),
    );
    if (!crypto.timingSafeEqual(expected, prove.mac)) {
      throw unauthenticated(`peer node ${prove.nodeId} failed the cluster-secret challenge`);
    }
  }
  const mac = macFor(secret, MacRole.server, serverNonce, prove.clientNonce, prove.nodeId, self);
  return { ...identityOf(self), mode, mac };
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
  const expected = computeMac(
    secret,
    MacRole.server,
    serverNonce,
    clientNonce,
    selfNodeId,
    identityOf(accept),
  );
  if (!crypto.timingSafeEqual(expected, accept.mac)) {
    throw unauthenticated('the server failed the cluster-secret challenge');
  }
}
