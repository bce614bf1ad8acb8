/**
 * The connecting side of the peer handshake (peer-auth.ts has the bytes and the proofs), as the
 * step a FramedConnection runs before the link is usable: answer the server's hello with this
 * node's proof and identity, then check the server's accept (its MAC, the node expected at the
 * address, and its identity by the node's PeerIdentityPolicy).
 *
 * A refusal either way fails the attempt with its code: the server's error reply
 * (UNAUTHENTICATED, IDENTITY_MISMATCH) as it sent it; our refusal of the server after one framed
 * error to it (so its operator learns why), UNAUTHENTICATED or IDENTITY_MISMATCH. One object per
 * connection: it holds the nonces of that connection.
 */
import assert from 'node:assert';
import { BinaryFlag, PeerOpcode } from '../protocol/binary-header.js';
import { ErrorCode, WalrusError } from '../protocol/error-codes.js';
import type { ClientHandshake, HandshakeIo } from './framed-connection.js';
import {
  answerHello,
  decodeAcceptBody,
  decodeHelloBody,
  encodeProveBody,
  identityOf,
  type PeerHello,
  type PeerIdentityPolicy,
  verifyAccept,
} from './peer-auth.js';
import {
  asWalrusError,
  decodePeerHeader,
  encodePeerErrorFrame,
  encodePeerFrame,
  peerBody,
  peerErrorOf,
  peerWireLimits,
} from './peer-wire.js';

export const peerClientHandshakeLimits = {
  /** Characters of the reason sent to a refused server (it reads only handshake-size frames). */
  tellServerMessageLengthMax: 64,
} as const;

// The error frame told to a refused server: header, code, reason (≤ 3 UTF-8 bytes a unit), hint flag.
assert(
  peerClientHandshakeLimits.tellServerMessageLengthMax * 3 + 48 <= peerWireLimits.handshakeFrameSizeMaxBytes,
);

export interface PeerClientHandshakeOptions {
  /** Names the server in messages ("peer 10.0.0.2:7000"). */
  readonly label: string;
  readonly addr: string;
  readonly clusterSecret: string | null;
  readonly selfNodeId: number;
  readonly identity: PeerIdentityPolicy;
  /** The node expected at `addr`; another node id is refused. */
  readonly peerNodeId?: number | undefined;
}

export class PeerClientHandshake implements ClientHandshake {
  /** A refusal carries the operator's instructions: longer than a handshake frame. */
  readonly frameSizeMaxBytes = peerWireLimits.handshakeReplySizeMaxBytes;
  private hello: PeerHello | undefined;
  private clientNonce: Buffer | undefined;

  constructor(private readonly o: PeerClientHandshakeOptions) {}

  onFrame(frame: Buffer, io: HandshakeIo): boolean {
    const header = decodePeerHeader(frame, ErrorCode.UNAVAILABLE);
    const body = peerBody(frame);
    if (header.flags & BinaryFlag.ERROR) throw peerErrorOf(body, this.o.label); // the server refused us
    if (this.hello === undefined) {
      if (header.opcode !== PeerOpcode.authHello) {
        throw new WalrusError(ErrorCode.UNAVAILABLE, `${this.o.addr} did not start a peer handshake`);
      }
      const hello = decodeHelloBody(body);
      const answer = this.refusingOnThrow(io, () =>
        answerHello(this.o.clusterSecret, this.o.identity.self(), hello),
      );
      this.hello = hello;
      this.clientNonce = answer.clientNonce;
      io.write(encodePeerFrame(PeerOpcode.authProve, 0, 0, encodeProveBody(answer.prove)));
      return false;
    }
    if (header.opcode !== PeerOpcode.authAccept) {
      throw new WalrusError(ErrorCode.UNAUTHENTICATED, `${this.o.addr} broke the handshake`);
    }
    this.refusingOnThrow(io, () => this.checkAccept(decodeAcceptBody(body)));
    return true;
  }

  private checkAccept(accept: ReturnType<typeof decodeAcceptBody>): void {
    const { clusterSecret, selfNodeId, peerNodeId } = this.o;
    verifyAccept(clusterSecret, this.hello!.serverNonce, this.clientNonce!, selfNodeId, accept);
    if (peerNodeId !== undefined && accept.nodeId !== 0 && accept.nodeId !== peerNodeId) {
      throw new WalrusError(
        ErrorCode.IDENTITY_MISMATCH,
        `${this.o.addr} is node ${accept.nodeId}, not node ${peerNodeId} (the member's address changed or ` +
          'was reused)',
      );
    }
    this.o.identity.check(identityOf(accept));
  }

  /** Runs a step of ours; when it refuses the server, tells the server (best effort) and rethrows. */
  private refusingOnThrow<T>(io: HandshakeIo, step: () => T): T {
    try {
      return step();
    } catch (thrown) {
      const err = asWalrusError(thrown);
      const code = err.code === ErrorCode.IDENTITY_MISMATCH ? err.code : ErrorCode.UNAUTHENTICATED;
      const message = err.message.slice(0, peerClientHandshakeLimits.tellServerMessageLengthMax);
      io.end(encodePeerErrorFrame(PeerOpcode.authProve, 0, { code, message }));
      throw err;
    }
  }
}
