/**
 * The client side of client-port authentication (docs/protocol.md "Authentication"): once
 * connected, the client sends one `authenticate` request with its token, and the connection is
 * usable once the node answers with the scopes it grants. A refusal (UNAUTHENTICATED, or BUSY
 * after too many failures from this host) fails the connect attempt with the node's code and
 * message; nothing else was sent, so every waiting request may be retried or reported as is.
 */
import { decodeReply, encodeRequest } from '../protocol/binary-codec.js';
import { ErrorCode, WalrusError } from '../protocol/error-codes.js';
import { encodeFrame } from '../protocol/frame.js';
import { protocolLimits } from '../protocol/limits.js';
import type { ClientHandshake, HandshakeIo } from './framed-connection.js';

export const clientAuthHandshakeLimits = {
  /** Largest reply read during the handshake: an error message, or a few scopes. */
  frameSizeMaxBytes: 2 * protocolLimits.errorMessageSizeMaxBytes,
  /** The request id of the authenticate request (nothing else is in flight yet). */
  requestId: 0,
} as const;

export class ClientAuthHandshake implements ClientHandshake {
  readonly frameSizeMaxBytes = clientAuthHandshakeLimits.frameSizeMaxBytes;
  /** What the node granted, once the handshake is done. */
  scopes: readonly string[] = [];

  constructor(private readonly token: string) {}

  start(io: HandshakeIo): void {
    io.write(
      encodeFrame(
        encodeRequest(clientAuthHandshakeLimits.requestId, { op: 'authenticate', token: this.token }),
      ),
    );
  }

  onFrame(frame: Buffer): boolean {
    const reply = decodeReply(frame);
    if (reply.kind === 'malformed')
      throw new WalrusError(ErrorCode.UNAVAILABLE, `malformed authenticate reply: ${reply.error.message}`);
    if (reply.kind === 'error') throw new WalrusError(reply.error.code, reply.error.message);
    if (reply.op !== 'authenticate')
      throw new WalrusError(ErrorCode.UNAVAILABLE, `the node answered ${reply.op} to authenticate`);
    this.scopes = (reply.response as { scopes: readonly string[] }).scopes;
    return true;
  }
}
