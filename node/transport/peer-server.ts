/**
 * The raft-port server: accepts peer connections, runs the server side of the challenge-response
 * (peer-auth.ts), judges the peer's identity (`identity`: another cluster or a wiped member under
 * its old id is refused IDENTITY_MISMATCH) and only then hands frames to the driver: one-way Raft
 * messages to `onMessage`, request/response calls to `onRequest` and snapshot chunks to
 * `onSnapshotChunk` (their WalrusError becomes a typed error reply carrying the request's opcode
 * and id).
 *
 * A connection that sends anything but a good proof first — a wrong MAC, a replayed proof, a text
 * command, garbage, or nothing within `handshakeTimeoutMs` — gets one framed UNAUTHENTICATED
 * error (a text `ERR` when it spoke text or broke framing, a binary error reply otherwise) and is
 * closed; neither callback is ever called for it.
 *
 * Why not FrameServer: its handler contract is one reply per frame (in-flight accounting), while
 * Raft messages get none, and it has no hook to speak first (the server sends the nonce). This
 * file composes the same pieces (FrameDecoder, framing, error bodies) instead.
 *
 * Bounds: connections, frame size (tiny before auth), requests in flight per connection (one more
 * is answered BUSY), bytes waiting to be written (a peer that does not read is dropped), idle time,
 * and the time a frame may take from its first byte to its last (`frameDeadlineMs`: a trickle
 * cannot hold a connection, as on the client port). Peer frames are not charged to the client
 * port's input budget: Raft and replication are never refused for what clients hold.
 */
import assert from 'node:assert';
import type net from 'node:net';
import { BinaryFlag, PeerOpcode } from '../protocol/binary-header.js';
import { ErrorCode, WalrusError } from '../protocol/error-codes.js';
import { encodeFrame, isBinaryFrame } from '../protocol/frame.js';
import { FrameDecoder } from '../protocol/frame-decoder.js';
import { encodeTextError } from '../protocol/text-codec.js';
import type { TransportLogger } from './frame-server.js';
import {
  anonymousIdentityPolicy,
  decodeProveBody,
  encodeAcceptBody,
  encodeHelloBody,
  identityOf,
  modeOfSecret,
  newPeerNonce,
  type PeerIdentityPolicy,
  verifyProve,
} from './peer-auth.js';
import { listenOn } from './listen.js';
import { createListener, type TlsServerSettings } from './tls-listener.js';
import {
  asWalrusError,
  decodePeerHeader,
  encodePeerErrorFrame,
  encodePeerFrame,
  FrameBatcher,
  peerBody,
  peerFrameOverheadBytes,
  peerWireLimits,
} from './peer-wire.js';

export interface PeerServerOptions {
  host: string;
  /** The raft port; 0 = ephemeral (listen() returns the bound one). */
  port: number;
  /** null = open cluster (the handshake still exchanges node ids; MACs are not checked). */
  clusterSecret: string | null;
  /**
   * This node's identity and its judgement of peers (node/metadata/cluster-identity.ts). Default: no
   * ids, every peer accepted (tests, tools).
   */
  identity?: PeerIdentityPolicy;
  connectionCountMax: number;
  frameSizeMaxBytes: number;
  idleTimeoutMs: number;
  /** One-way peer messages (Raft messages): opaque payload bytes, with the authenticated peer's claimed node id. */
  onMessage(fromNodeId: number, payload: Buffer): void;
  /** Request/response peer calls: resolve with the reply payload or reject with a WalrusError (sent back with its code). */
  onRequest(fromNodeId: number, payload: Buffer): Promise<Uint8Array>;
  /** `snapshotChunk` requests, answered like onRequest; without it they get UNKNOWN_COMMAND. */
  onSnapshotChunk?(fromNodeId: number, payload: Buffer): Promise<Uint8Array>;
  logger?: TransportLogger;
  /** Time from accept to a verified proof. Default 5000. */
  handshakeTimeoutMs?: number;
  /** Requests awaiting onRequest per connection; one more is answered BUSY. Default 1024. */
  requestInFlightMaxPerConnection?: number;
  /** Bytes queued for a peer that does not read; above it the connection is destroyed. Default 64 MiB. */
  writeBufferMaxBytes?: number;
  /** A frame must arrive whole within this long of its first byte, or the connection is closed. Default 30000. */
  frameDeadlineMs?: number;
  /** TLS for the raft port, mutual when `requestCert` (tls-listener.ts); default plain TCP. */
  tls?: TlsServerSettings;
}

export const peerServerDefaults = {
  handshakeTimeoutMs: 5_000,
  requestInFlightMaxPerConnection: 1_024,
  writeBufferMaxBytes: 64 * 1024 * 1024,
  frameDeadlineMs: 30_000,
  /** A connection closed after a final error is destroyed after this long if the peer does not read. */
  closeGraceMs: 2_000,
  /** Characters of a refusal's message sent to the peer (it must fit the peer's handshake reply limit). */
  refusalMessageLengthMax: 1_200,
} as const;

// A refusal frame: header, code, message (at most 3 UTF-8 bytes per UTF-16 unit), hint flag.
assert(peerServerDefaults.refusalMessageLengthMax * 3 + 64 <= peerWireLimits.handshakeReplySizeMaxBytes);

const silentLogger: TransportLogger = { info() {}, warn() {}, error() {} };

type ConnState = 'handshaking' | 'open' | 'closed';

class PeerConnection {
  private state: ConnState = 'handshaking';
  private decoder = new FrameDecoder(peerWireLimits.handshakeFrameSizeMaxBytes);
  private readonly serverNonce = newPeerNonce();
  private nodeId = 0;
  private requestsInFlight = 0;
  private readonly batcher: FrameBatcher;
  private readonly handshakeTimer: NodeJS.Timeout;
  /** Runs while a frame is being received: from its first byte to `frameDeadlineMs`. */
  private frameTimer: NodeJS.Timeout | undefined;
  readonly remoteAddress: string;

  constructor(
    private readonly server: PeerServer,
    private readonly socket: net.Socket,
  ) {
    this.remoteAddress = `${socket.remoteAddress ?? '?'}:${socket.remotePort ?? 0}`;
    this.batcher = new FrameBatcher((batch) => this.writeBatch(batch));
    socket.setNoDelay(true);
    socket.on('data', (chunk: Buffer) => this.onData(chunk));
    socket.on('error', (err: NodeJS.ErrnoException) => {
      this.server.log.info({ remote: this.remoteAddress, code: err.code }, 'peer connection error');
    });
    socket.on('close', () => {
      this.state = 'closed';
      clearTimeout(this.handshakeTimer);
      clearTimeout(this.frameTimer);
      this.batcher.clear();
      this.server.forget(this);
    });
    socket.on('timeout', () => this.onIdle());
    this.handshakeTimer = setTimeout(
      () => this.refuse(new WalrusError(ErrorCode.UNAUTHENTICATED, 'no peer handshake in time'), 'text'),
      this.server.handshakeTimeoutMs,
    );
    const mode = modeOfSecret(this.server.options.clusterSecret);
    this.batcher.push(
      encodePeerFrame(PeerOpcode.authHello, 0, 0, encodeHelloBody({ mode, serverNonce: this.serverNonce })),
    );
  }

  destroy(): void {
    this.state = 'closed';
    this.socket.destroy();
  }

  private writeBatch(batch: Buffer): void {
    if (this.socket.destroyed) return;
    this.socket.write(batch);
    if (this.socket.writableLength > this.server.writeBufferMaxBytes) {
      this.server.log.warn(
        { remote: this.remoteAddress, nodeId: this.nodeId, bufferedBytes: this.socket.writableLength },
        'peer does not read; closing the connection',
      );
      this.destroy();
    }
  }

  /** Sends one framed error, then closes; used for every refusal before or after auth. */
  private refuse(error: WalrusError, form: 'text' | 'binary', requestId = 0): void {
    if (this.state === 'closed') return;
    const wasOpen = this.state === 'open';
    this.state = 'closed';
    clearTimeout(this.handshakeTimer);
    // An identity refusal is logged by the policy (rate-limited: a refused peer retries every second).
    const level = error.code === ErrorCode.IDENTITY_MISMATCH ? 'info' : 'warn';
    this.server.log[level](
      { remote: this.remoteAddress, nodeId: this.nodeId, code: error.code, afterAuth: wasOpen },
      `refusing peer connection: ${error.message}`,
    );
    const message = error.message.slice(0, peerServerDefaults.refusalMessageLengthMax);
    const frame =
      form === 'text'
        ? encodeFrame(encodeTextError(new WalrusError(error.code, message)))
        : encodePeerErrorFrame(PeerOpcode.authProve, requestId, { code: error.code, message });
    this.batcher.push(frame);
    this.batcher.flush();
    if (!this.socket.destroyed) this.socket.end();
    setTimeout(() => this.socket.destroy(), peerServerDefaults.closeGraceMs).unref();
  }

  private get isClosed(): boolean {
    return this.state === 'closed';
  }

  private onData(chunk: Buffer): void {
    if (this.isClosed) return;
    const { frames, error } = this.decoder.push(chunk);
    for (const frame of frames) {
      if (this.isClosed) return;
      if (this.state === 'handshaking') this.onHandshakeFrame(frame);
      else this.onPeerFrame(frame);
    }
    if (error !== undefined && !this.isClosed) {
      const code = this.state === 'handshaking' ? ErrorCode.UNAUTHENTICATED : error.code;
      this.refuse(new WalrusError(code, error.message), 'text');
      return;
    }
    this.trackFrameDeadline(frames.length > 0);
  }

  /** The deadline runs from the first byte of the frame being received (one completed here: anew). */
  private trackFrameDeadline(completedOne: boolean): void {
    if (this.isClosed || !this.decoder.hasPartialFrame()) {
      clearTimeout(this.frameTimer);
      this.frameTimer = undefined;
      return;
    }
    if (this.frameTimer !== undefined && !completedOne) return;
    clearTimeout(this.frameTimer);
    const deadlineMs = this.server.frameDeadlineMs;
    this.frameTimer = setTimeout(() => {
      this.frameTimer = undefined;
      const message = `a frame did not arrive whole within ${deadlineMs} ms of its first byte`;
      this.refuse(new WalrusError(ErrorCode.TIMEOUT, message), 'text');
    }, deadlineMs);
  }

  private onHandshakeFrame(frame: Buffer): void {
    if (!isBinaryFrame(frame)) {
      this.refuse(new WalrusError(ErrorCode.UNAUTHENTICATED, 'the raft port needs a peer handshake'), 'text');
      return;
    }
    let requestId = 0;
    try {
      const header = decodePeerHeader(frame, ErrorCode.UNAUTHENTICATED);
      requestId = header.requestId;
      if (header.opcode !== PeerOpcode.authProve || header.flags !== 0) {
        throw new WalrusError(ErrorCode.UNAUTHENTICATED, 'the raft port needs a peer handshake first');
      }
      if (this.decoder.hasPartialFrame()) {
        throw new WalrusError(ErrorCode.UNAUTHENTICATED, 'bytes after the proof before it was accepted');
      }
      const prove = decodeProveBody(peerBody(frame));
      const accept = verifyProve(
        this.server.options.clusterSecret,
        this.serverNonce,
        prove,
        this.server.identity.self(),
      );
      this.nodeId = prove.nodeId;
      try {
        this.server.identity.check(identityOf(prove));
      } catch (err) {
        const e = asWalrusError(err);
        if (e.code !== ErrorCode.IDENTITY_MISMATCH) throw e;
        this.refuse(e, 'binary', requestId);
        return;
      }
      this.state = 'open';
      clearTimeout(this.handshakeTimer);
      this.decoder = new FrameDecoder(this.server.options.frameSizeMaxBytes);
      this.socket.setTimeout(this.server.options.idleTimeoutMs);
      this.batcher.push(encodePeerFrame(PeerOpcode.authAccept, 0, 0, encodeAcceptBody(accept)));
      this.server.log.info({ remote: this.remoteAddress, nodeId: this.nodeId }, 'peer authenticated');
    } catch (err) {
      const e = asWalrusError(err);
      this.refuse(new WalrusError(ErrorCode.UNAUTHENTICATED, e.message), 'binary', requestId);
    }
  }

  private onPeerFrame(frame: Buffer): void {
    let header: ReturnType<typeof decodePeerHeader>;
    try {
      header = decodePeerHeader(frame);
    } catch (err) {
      this.refuse(asWalrusError(err), 'text');
      return;
    }
    if (header.flags !== 0) {
      this.refuse(new WalrusError(ErrorCode.BAD_REQUEST, 'a peer sent a reply to the server'), 'text');
      return;
    }
    if (header.opcode === PeerOpcode.raftMessage) {
      try {
        this.server.options.onMessage(this.nodeId, Buffer.from(peerBody(frame)));
      } catch (err) {
        this.server.log.error({ nodeId: this.nodeId, err }, 'onMessage threw; message dropped');
      }
      return;
    }
    if (header.opcode === PeerOpcode.peerRequest) {
      this.onRequest(header.opcode, header.requestId, Buffer.from(peerBody(frame)));
      return;
    }
    if (header.opcode === PeerOpcode.snapshotChunk && this.server.options.onSnapshotChunk !== undefined) {
      this.onRequest(header.opcode, header.requestId, Buffer.from(peerBody(frame)));
      return;
    }
    const message = `unknown peer opcode 0x${header.opcode.toString(16)}`;
    this.batcher.push(
      encodePeerErrorFrame(header.opcode, header.requestId, { code: ErrorCode.UNKNOWN_COMMAND, message }),
    );
  }

  /** A request (`peerRequest` or `snapshotChunk`); the reply carries the same opcode and id. */
  private onRequest(opcode: number, requestId: number, payload: Buffer): void {
    if (this.requestsInFlight >= this.server.requestInFlightMax) {
      const message = `${this.requestsInFlight} peer requests in flight on this connection`;
      this.batcher.push(encodePeerErrorFrame(opcode, requestId, { code: ErrorCode.BUSY, message }));
      return;
    }
    this.requestsInFlight += 1;
    const options = this.server.options;
    let reply: Promise<Uint8Array>;
    try {
      reply =
        opcode === PeerOpcode.snapshotChunk && options.onSnapshotChunk !== undefined
          ? options.onSnapshotChunk(this.nodeId, payload)
          : options.onRequest(this.nodeId, payload);
    } catch (err) {
      reply = Promise.reject(err);
    }
    reply.then(
      (bytes) => this.answer(opcode, requestId, bytes),
      (err: unknown) => this.answerError(opcode, requestId, asWalrusError(err)),
    );
  }

  private answer(opcode: number, requestId: number, bytes: Uint8Array): void {
    this.requestsInFlight -= 1;
    if (this.state !== 'open') return;
    if (bytes.length + peerFrameOverheadBytes - 4 > this.server.options.frameSizeMaxBytes) {
      const message = `reply of ${bytes.length} bytes exceeds the peer frame limit`;
      this.answerError(opcode, requestId, new WalrusError(ErrorCode.FRAME_TOO_LARGE, message), false);
      return;
    }
    this.batcher.push(encodePeerFrame(opcode, BinaryFlag.REPLY, requestId, bytes));
  }

  private answerError(opcode: number, requestId: number, err: WalrusError, counted = true): void {
    if (counted) this.requestsInFlight -= 1;
    if (this.state !== 'open') return;
    const leaderHint = err.leaderHint;
    this.batcher.push(
      encodePeerErrorFrame(opcode, requestId, {
        code: err.code,
        message: err.message,
        ...(leaderHint === undefined ? {} : { leaderHint }),
      }),
    );
  }

  private onIdle(): void {
    if (this.requestsInFlight > 0) {
      this.socket.setTimeout(this.server.options.idleTimeoutMs);
      return;
    }
    this.server.log.info({ remote: this.remoteAddress, nodeId: this.nodeId }, 'closing idle peer connection');
    this.destroy();
  }
}

export class PeerServer {
  readonly options: PeerServerOptions;
  readonly log: TransportLogger;
  readonly handshakeTimeoutMs: number;
  readonly requestInFlightMax: number;
  readonly writeBufferMaxBytes: number;
  readonly frameDeadlineMs: number;
  readonly identity: PeerIdentityPolicy;
  private readonly server: net.Server;
  private readonly connections = new Set<PeerConnection>();
  private listening = false;

  constructor(o: PeerServerOptions) {
    modeOfSecret(o.clusterSecret); // asserts the secret is null or non-empty
    assert(o.connectionCountMax > 0 && o.idleTimeoutMs > 0);
    assert(o.frameSizeMaxBytes > peerWireLimits.handshakeFrameSizeMaxBytes && o.frameSizeMaxBytes < 2 ** 32);
    this.options = o;
    this.log = o.logger ?? silentLogger;
    this.handshakeTimeoutMs = o.handshakeTimeoutMs ?? peerServerDefaults.handshakeTimeoutMs;
    this.requestInFlightMax =
      o.requestInFlightMaxPerConnection ?? peerServerDefaults.requestInFlightMaxPerConnection;
    this.writeBufferMaxBytes = o.writeBufferMaxBytes ?? peerServerDefaults.writeBufferMaxBytes;
    this.frameDeadlineMs = o.frameDeadlineMs ?? peerServerDefaults.frameDeadlineMs;
    assert(this.frameDeadlineMs > 0);
    this.identity = o.identity ?? anonymousIdentityPolicy(0);
    assert(this.handshakeTimeoutMs > 0 && this.requestInFlightMax > 0 && this.writeBufferMaxBytes > 0);
    this.server = createListener(o.tls, o.connectionCountMax, (socket) => this.onConnection(socket)).server;
    this.server.on('error', (err) => this.log.error({ err }, 'peer server error'));
  }

  /** Binds and listens; resolves with the bound address (the real port when `port` was 0). */
  async listen(): Promise<{ host: string; port: number }> {
    const bound = await listenOn(this.server, this.options.port, this.options.host);
    this.listening = true;
    return bound;
  }

  /** Stops accepting, destroys every connection, resolves when the listener is closed. */
  close(): Promise<void> {
    for (const conn of this.connections) conn.destroy();
    if (!this.listening) return Promise.resolve();
    this.listening = false;
    return new Promise((resolve) => this.server.close(() => resolve()));
  }

  connectionCount(): number {
    return this.connections.size;
  }

  /** @internal */
  forget(conn: PeerConnection): void {
    this.connections.delete(conn);
  }

  private onConnection(socket: net.Socket): void {
    if (this.connections.size >= this.options.connectionCountMax) {
      socket.on('error', () => {});
      socket.resume();
      const message = `the node has reached its limit of ${this.options.connectionCountMax} peer connections`;
      this.log.warn({ remote: socket.remoteAddress }, message);
      socket.end(encodeFrame(encodeTextError(new WalrusError(ErrorCode.BUSY, message))));
      setTimeout(() => socket.destroy(), peerServerDefaults.closeGraceMs).unref();
      return;
    }
    this.connections.add(new PeerConnection(this, socket));
  }
}
