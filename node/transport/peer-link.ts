/**
 * One outbound link to one peer's raft port: connects, runs the client side of the handshake
 * (peer-auth.ts) and judges the server's identity (`identity`, and `peerNodeId`: the node expected
 * at the address), then carries one-way messages and request/response calls. It reconnects forever
 * with capped exponential backoff (plus jitter) until closed.
 *
 * One-way messages (`send`) never throw and never block: they wait in a queue bounded by count and
 * bytes while the link is down or the socket is backed up; beyond the bounds the OLDEST are dropped
 * and counted (Raft retransmits whatever matters). Everything queued in one event-loop turn goes out
 * as ONE buffer (peer-wire.ts says why).
 *
 * Requests (`request`) are bounded in number; each has a time limit (TIMEOUT). While the link is in
 * backoff after a failed attempt they fail fast with that attempt's code (UNAVAILABLE, or
 * UNAUTHENTICATED / IDENTITY_MISMATCH when either side refused the other); while connecting they
 * wait for the outcome. A lost
 * connection fails the requests in flight UNAVAILABLE with `sent: true` (outcome unknown).
 * An error reply from the peer becomes a WalrusError with the peer's code and leader hint.
 */
import assert from 'node:assert';
import net from 'node:net';
import { BinaryFlag, PeerOpcode } from '../protocol/binary-header.js';
import { readErrorBody } from '../protocol/binary-bodies.js';
import { ByteReader } from '../protocol/byte-io.js';
import { ErrorCode, isErrorCode, WalrusError } from '../protocol/error-codes.js';
import { isBinaryFrame } from '../protocol/frame.js';
import { FrameDecoder } from '../protocol/frame-decoder.js';
import { protocolLimits } from '../protocol/limits.js';
import { parseTextReply } from '../protocol/text-codec.js';
import type { TransportLogger } from './frame-server.js';
import {
  anonymousIdentityPolicy,
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
  FrameBatcher,
  peerBody,
  peerFrameOverheadBytes,
  peerFrameRequestIdOffset,
  peerWireLimits,
} from './peer-wire.js';
import { TransportError } from './transport-error.js';

export interface PeerLinkOptions {
  selfNodeId: number;
  /** host:port of the peer's raft port (`[::1]:7000` for IPv6). */
  addr: string;
  clusterSecret: string | null;
  /**
   * This node's identity (read at every handshake) and its judgement of the server's. Default: no
   * ids, every server accepted (tests, tools).
   */
  identity?: PeerIdentityPolicy;
  /** The node expected at `addr`: a server presenting another node id is refused. Default: any. */
  peerNodeId?: number;
  /** One-way messages waiting while disconnected or slow; beyond it the oldest are dropped and counted. */
  queueCountMax: number;
  queueBytesMax: number;
  /** Time for TCP connect plus handshake. */
  connectTimeoutMs: number;
  /** Default per-request time limit. */
  requestTimeoutMs: number;
  reconnectBackoffMsMin: number;
  reconnectBackoffMsMax: number;
  logger?: TransportLogger;
  /** Requests waiting or in flight; one more is rejected BUSY. Default 1024. */
  requestCountMax?: number;
  /** Largest frame payload accepted or sent. Default protocolLimits.frameSizeMaxBytes. */
  frameSizeMaxBytes?: number;
  /** Socket bytes not yet flushed above which queued messages wait (and may be dropped). Default 8 MiB. */
  writeBufferHighBytes?: number;
}

export const peerLinkDefaults = {
  requestCountMax: 1_024,
  writeBufferHighBytes: 8 * 1024 * 1024,
  /** Fraction of the backoff added at random, so that links to a restarted node do not reconnect in lockstep. */
  backoffJitterFraction: 0.2,
  keepAliveInitialDelayMs: 30_000,
  /** Characters of the reason sent to a refused server (its handshake frames are tiny). */
  tellServerMessageLengthMax: 64,
} as const;

// The error frame told to a refused server: header, code, reason (≤ 3 UTF-8 bytes a unit), hint flag.
assert(peerLinkDefaults.tellServerMessageLengthMax * 3 + 48 <= peerWireLimits.handshakeFrameSizeMaxBytes);

type LinkState = 'connecting' | 'handshaking' | 'open' | 'backoff' | 'closed';

/** Peer opcodes that are request/response calls (a reply carries the request's opcode and id). */
export type PeerRequestOpcode = typeof PeerOpcode.peerRequest | typeof PeerOpcode.snapshotChunk;

function isRequestOpcode(opcode: number): opcode is PeerRequestOpcode {
  return opcode === PeerOpcode.peerRequest || opcode === PeerOpcode.snapshotChunk;
}

interface Pending {
  readonly opcode: PeerRequestOpcode;
  /** The whole request frame, encoded at request() time (the caller may reuse its buffer); id patched when written. */
  readonly frame: Buffer;
  readonly resolve: (reply: Buffer) => void;
  readonly reject: (err: unknown) => void;
  requestId: number;
  timer: NodeJS.Timeout | undefined;
}

const silentLogger: TransportLogger = { info() {}, warn() {}, error() {} };

/** Splits `host:port` (IPv6 in brackets). Throws BAD_REQUEST when it is not one. */
export function parsePeerAddr(addr: string): { host: string; port: number } {
  const m = /^(?:\[([^\]]+)\]|([^:[\]]+)):(\d{1,5})$/.exec(addr);
  const port = m === null ? Number.NaN : Number(m[3]);
  if (m === null || !(port > 0 && port < 65_536)) {
    throw new WalrusError(ErrorCode.BAD_REQUEST, `peer address '${addr}' is not host:port`);
  }
  return { host: m[1] ?? m[2]!, port };
}

export class PeerLink {
  readonly addr: string;
  private readonly o: PeerLinkOptions;
  private readonly host: string;
  private readonly port: number;
  private readonly log: TransportLogger;
  private readonly requestCountMax: number;
  private readonly frameSizeMaxBytes: number;
  private readonly writeBufferHighBytes: number;
  private readonly identity: PeerIdentityPolicy;
  private state: LinkState = 'connecting';
  private socket: net.Socket | undefined;
  private decoder: FrameDecoder | undefined;
  private batcher: FrameBatcher | undefined;
  private hello: PeerHello | undefined;
  private clientNonce: Buffer | undefined;
  private attemptTimer: NodeJS.Timeout | undefined;
  private failureCount = 0;
  private lastFailure: WalrusError | undefined;
  /** One-way frames not yet handed to the socket, oldest first from `queueHead`. */
  private queue: Buffer[] = [];
  private queueHead = 0;
  private queueBytes = 0;
  private dropped = 0;
  private opened = 0;
  /** Requests waiting for the connection to open (no id yet). */
  private unsent: Pending[] = [];
  private readonly inFlight = new Map<number, Pending>();
  private requestIdNext = 1;

  constructor(o: PeerLinkOptions) {
    assert(Number.isInteger(o.selfNodeId) && o.selfNodeId > 0 && o.selfNodeId <= 0xffffffff);
    assert(o.queueCountMax > 0 && o.queueBytesMax > 0 && o.connectTimeoutMs > 0 && o.requestTimeoutMs > 0);
    assert(o.reconnectBackoffMsMin > 0 && o.reconnectBackoffMsMax >= o.reconnectBackoffMsMin);
    assert(
      o.clusterSecret === null || o.clusterSecret.length > 0,
      'a cluster secret must be null or non-empty',
    );
    const { host, port } = parsePeerAddr(o.addr);
    this.o = o;
    this.addr = o.addr;
    this.host = host;
    this.port = port;
    this.log = o.logger ?? silentLogger;
    this.requestCountMax = o.requestCountMax ?? peerLinkDefaults.requestCountMax;
    this.frameSizeMaxBytes = o.frameSizeMaxBytes ?? protocolLimits.frameSizeMaxBytes;
    this.writeBufferHighBytes = o.writeBufferHighBytes ?? peerLinkDefaults.writeBufferHighBytes;
    this.identity = o.identity ?? anonymousIdentityPolicy(o.selfNodeId);
    assert(this.identity.self().nodeId === o.selfNodeId, 'the identity policy speaks for this node');
    assert(o.peerNodeId === undefined || (Number.isInteger(o.peerNodeId) && o.peerNodeId > 0));
    assert(this.requestCountMax > 0 && this.writeBufferHighBytes > 0);
    assert(this.frameSizeMaxBytes > peerWireLimits.handshakeFrameSizeMaxBytes);
    this.connect();
  }

  /** True once the handshake has succeeded and until the connection is lost. */
  get connected(): boolean {
    return this.state === 'open';
  }

  /** One-way messages dropped so far (queue overflow, oversized, or lost with a socket). */
  get droppedCount(): number {
    return this.dropped;
  }

  /** Handshakes that succeeded so far (1 after the first connect; +1 per reconnect). */
  get openCount(): number {
    return this.opened;
  }

  /** One-way messages waiting in the queue. */
  get queuedCount(): number {
    return this.queue.length - this.queueHead;
  }

  /** One-way message; never throws, never blocks. Dropped and counted when it cannot be queued. */
  send(payload: Uint8Array): void {
    if (this.state === 'closed') {
      this.dropped += 1;
      return;
    }
    const frameBytes = payload.length + peerFrameOverheadBytes;
    if (frameBytes - 4 > this.frameSizeMaxBytes || frameBytes > this.o.queueBytesMax) {
      this.dropped += 1;
      this.log.warn({ addr: this.addr, sizeBytes: payload.length }, 'peer message too large; dropped');
      return;
    }
    while (
      this.queuedCount > 0 &&
      (this.queuedCount >= this.o.queueCountMax || this.queueBytes + frameBytes > this.o.queueBytesMax)
    ) {
      this.dropOldest();
    }
    this.queue.push(encodePeerFrame(PeerOpcode.raftMessage, 0, 0, payload));
    this.queueBytes += frameBytes;
    if (this.state === 'open') this.pumpQueue();
  }

  /**
   * One request; resolves with the peer's reply payload, rejects with a WalrusError. `opcode` is
   * `peerRequest` (join, forwarded proposal) unless given (`snapshotChunk`).
   */
  request(
    payload: Uint8Array,
    options: { timeoutMs?: number; opcode?: PeerRequestOpcode } = {},
  ): Promise<Buffer> {
    return new Promise<Buffer>((resolve, reject) => {
      if (this.state === 'closed') {
        reject(new TransportError(ErrorCode.UNAVAILABLE, `peer link to ${this.addr} is closed`, false));
        return;
      }
      if (this.state === 'backoff') {
        const last = this.lastFailure;
        const code = last?.code ?? ErrorCode.UNAVAILABLE;
        reject(
          new TransportError(code, `peer ${this.addr} is not reachable: ${last?.message ?? '?'}`, false),
        );
        return;
      }
      if (payload.length + peerFrameOverheadBytes - 4 > this.frameSizeMaxBytes) {
        const message = `peer request of ${payload.length} bytes exceeds the frame limit`;
        reject(new TransportError(ErrorCode.FRAME_TOO_LARGE, message, false));
        return;
      }
      if (this.inFlight.size + this.unsent.length >= this.requestCountMax) {
        const message = `${this.requestCountMax} peer requests already pending on ${this.addr}`;
        reject(new TransportError(ErrorCode.BUSY, message, false));
        return;
      }
      const opcode = options.opcode ?? PeerOpcode.peerRequest;
      const frame = encodePeerFrame(opcode, 0, 0, payload);
      const pending: Pending = { opcode, frame, resolve, reject, requestId: 0, timer: undefined };
      const timeoutMs = options.timeoutMs ?? this.o.requestTimeoutMs;
      assert(timeoutMs > 0);
      pending.timer = setTimeout(() => {
        const sent = pending.requestId !== 0;
        const message = `no reply from peer ${this.addr} within ${timeoutMs} ms`;
        this.settle(pending, new TransportError(ErrorCode.TIMEOUT, message, sent));
      }, timeoutMs);
      if (this.state === 'open') this.writeRequest(pending);
      else this.unsent.push(pending);
    });
  }

  /** Stops reconnecting, fails pending requests UNAVAILABLE, drops the queue, closes the socket. */
  close(): Promise<void> {
    if (this.state === 'closed') return Promise.resolve();
    const socket = this.socket;
    this.dropConnection(
      new TransportError(ErrorCode.UNAVAILABLE, `peer link to ${this.addr} was closed`, true),
    );
    this.state = 'closed';
    clearTimeout(this.attemptTimer);
    this.dropped += this.queuedCount;
    this.queue = [];
    this.queueHead = 0;
    this.queueBytes = 0;
    if (socket === undefined || socket.destroyed) return Promise.resolve();
    return new Promise((resolve) => {
      socket.once('close', () => resolve());
      socket.destroy();
    });
  }

  // ---- connection lifecycle ---------------------------------------------------------------------

  private connect(): void {
    this.state = 'connecting';
    const socket = net.connect({ host: this.host, port: this.port });
    this.socket = socket;
    this.decoder = new FrameDecoder(peerWireLimits.handshakeReplySizeMaxBytes);
    this.batcher = new FrameBatcher((batch) => this.writeBatch(socket, batch));
    socket.setNoDelay(true);
    this.attemptTimer = setTimeout(() => {
      const message = `connect and handshake with ${this.addr} took over ${this.o.connectTimeoutMs} ms`;
      this.failAttempt(socket, new WalrusError(ErrorCode.UNAVAILABLE, message));
    }, this.o.connectTimeoutMs);
    socket.once('connect', () => {
      if (this.socket !== socket) return;
      this.state = 'handshaking';
      socket.setKeepAlive(true, peerLinkDefaults.keepAliveInitialDelayMs);
    });
    socket.on('data', (chunk: Buffer) => this.onData(socket, chunk));
    socket.on('drain', () => {
      if (this.socket !== socket) return;
      this.pumpQueue();
    });
    socket.on('error', (err: NodeJS.ErrnoException) => {
      if (this.socket !== socket) return;
      if (this.state === 'open') this.log.info({ addr: this.addr, code: err.code }, 'peer link error');
      else
        this.failAttempt(
          socket,
          new WalrusError(ErrorCode.UNAVAILABLE, `cannot reach ${this.addr}: ${err.message}`),
        );
    });
    socket.on('close', () => {
      if (this.socket !== socket) return;
      if (this.state !== 'open') {
        this.failAttempt(
          socket,
          new WalrusError(ErrorCode.UNAVAILABLE, `${this.addr} closed during the handshake`),
        );
        return;
      }
      this.log.info({ addr: this.addr }, 'peer link lost; reconnecting');
      this.dropConnection(
        new TransportError(ErrorCode.UNAVAILABLE, `connection to peer ${this.addr} was lost`, true),
      );
      this.scheduleReconnect(this.o.reconnectBackoffMsMin);
    });
  }

  /** A connect or handshake attempt failed: fail waiting requests with its code, back off. */
  private failAttempt(socket: net.Socket, err: WalrusError): void {
    if (this.socket !== socket || this.state === 'open' || this.state === 'closed') return;
    const repeated = this.lastFailure?.code === err.code && this.lastFailure.message === err.message;
    this.failureCount += 1;
    this.lastFailure = err;
    const backoffMs = Math.min(
      this.o.reconnectBackoffMsMax,
      this.o.reconnectBackoffMsMin * 2 ** Math.min(this.failureCount - 1, 30),
    );
    // A refusal by identity needs the operator: an error, once per run of identical refusals.
    const level = repeated
      ? 'info'
      : err.code === ErrorCode.IDENTITY_MISMATCH
        ? 'error'
        : err.code === ErrorCode.UNAUTHENTICATED
          ? 'warn'
          : 'info';
    this.log[level](
      { addr: this.addr, code: err.code, backoffMs },
      `peer link attempt failed: ${err.message}`,
    );
    // Nothing was sent on a connection that never opened: every waiting request may be retried.
    this.dropConnection(new TransportError(err.code, err.message, false));
    this.scheduleReconnect(backoffMs);
  }

  private scheduleReconnect(baseMs: number): void {
    this.state = 'backoff';
    const delayMs = baseMs + Math.floor(Math.random() * baseMs * peerLinkDefaults.backoffJitterFraction);
    this.attemptTimer = setTimeout(() => {
      if (this.state === 'backoff') this.connect();
    }, delayMs);
  }

  /** Forgets the socket; rejects every request (in flight with `err.sent`, unsent with sent false). */
  private dropConnection(err: TransportError): void {
    const socket = this.socket;
    this.socket = undefined;
    this.decoder = undefined;
    this.batcher?.clear();
    this.batcher = undefined;
    this.hello = undefined;
    this.clientNonce = undefined;
    clearTimeout(this.attemptTimer);
    const notSent = err.sent ? new TransportError(err.code, err.message, false) : err;
    for (const pending of [...this.inFlight.values()]) this.settle(pending, err);
    for (const pending of this.unsent.splice(0)) this.settle(pending, notSent);
    if (socket !== undefined && !socket.destroyed) socket.destroy();
  }

  private onOpen(): void {
    clearTimeout(this.attemptTimer);
    this.state = 'open';
    this.opened += 1;
    this.failureCount = 0;
    this.lastFailure = undefined;
    this.decoder = new FrameDecoder(this.frameSizeMaxBytes);
    this.log.info({ addr: this.addr }, 'peer link authenticated');
    for (const pending of this.unsent.splice(0)) this.writeRequest(pending);
    this.pumpQueue();
  }

  // ---- writing -----------------------------------------------------------------------------------

  private writeBatch(socket: net.Socket, batch: Buffer): void {
    if (this.socket !== socket || socket.destroyed) return;
    socket.write(batch);
  }

  /** Moves queued messages to the batcher while the socket keeps up. */
  private pumpQueue(): void {
    const socket = this.socket;
    const batcher = this.batcher;
    if (this.state !== 'open' || socket === undefined || batcher === undefined) return;
    while (this.queuedCount > 0) {
      if (socket.writableLength + batcher.pendingBytes >= this.writeBufferHighBytes) {
        return; // the socket's 'drain' pumps again
      }
      const frame = this.queue[this.queueHead]!;
      this.queueHead += 1;
      this.queueBytes -= frame.length;
      batcher.push(frame);
    }
    this.queue = [];
    this.queueHead = 0;
  }

  private dropOldest(): void {
    const frame = this.queue[this.queueHead]!;
    this.queueHead += 1;
    this.queueBytes -= frame.length;
    this.dropped += 1;
    if (this.queueHead === this.queue.length) {
      this.queue = [];
      this.queueHead = 0;
    } else if (this.queueHead > 1024 && this.queueHead * 2 > this.queue.length) {
      this.queue = this.queue.slice(this.queueHead);
      this.queueHead = 0;
    }
  }

  private writeRequest(pending: Pending): void {
    assert(this.batcher !== undefined);
    let id = this.requestIdNext;
    while (this.inFlight.has(id)) id = id >= 0xffffffff ? 1 : id + 1;
    this.requestIdNext = id >= 0xffffffff ? 1 : id + 1;
    pending.requestId = id;
    this.inFlight.set(id, pending);
    pending.frame.writeUInt32LE(id, peerFrameRequestIdOffset);
    this.batcher.push(pending.frame);
  }

  private settle(pending: Pending, outcome: Buffer | WalrusError): void {
    if (pending.timer === undefined) return;
    clearTimeout(pending.timer);
    pending.timer = undefined;
    if (pending.requestId !== 0) this.inFlight.delete(pending.requestId);
    else {
      const i = this.unsent.indexOf(pending);
      if (i !== -1) this.unsent.splice(i, 1);
    }
    if (Buffer.isBuffer(outcome)) pending.resolve(outcome);
    else pending.reject(outcome);
  }

  // ---- reading -----------------------------------------------------------------------------------

  private onData(socket: net.Socket, chunk: Buffer): void {
    if (this.socket !== socket || this.decoder === undefined) return;
    const { frames, error } = this.decoder.push(chunk);
    for (const frame of frames) {
      if (this.socket !== socket) return;
      try {
        this.onFrame(socket, frame);
      } catch (err) {
        this.onProtocolError(socket, asWalrusError(err));
        return;
      }
    }
    if (error !== undefined && this.socket === socket) {
      this.onProtocolError(
        socket,
        new WalrusError(ErrorCode.UNAVAILABLE, `bad framing from ${this.addr}: ${error.message}`),
      );
    }
  }

  private onProtocolError(socket: net.Socket, err: WalrusError): void {
    if (this.state === 'open') {
      this.log.warn({ addr: this.addr, code: err.code }, `peer protocol error: ${err.message}`);
      this.dropConnection(new TransportError(err.code, err.message, true));
      this.scheduleReconnect(this.o.reconnectBackoffMsMin);
    } else {
      this.failAttempt(socket, err);
    }
  }

  private onFrame(socket: net.Socket, frame: Buffer): void {
    if (!isBinaryFrame(frame)) {
      // A text frame is the server refusing us: ERR BUSY, ERR UNAUTHENTICATED, ERR FRAME_TOO_LARGE.
      const reply = parseTextReply(frame);
      const code =
        reply.kind === 'ERR' && reply.code !== undefined && isErrorCode(reply.code) ? reply.code : null;
      const message = reply.kind === 'ERR' ? reply.message : 'unexpected text frame';
      throw new WalrusError(code ?? ErrorCode.UNAVAILABLE, `${this.addr}: ${message}`);
    }
    const header = decodePeerHeader(frame, ErrorCode.UNAVAILABLE);
    const body = peerBody(frame);
    if (header.flags & BinaryFlag.ERROR) {
      const r = new ByteReader(body, 0, ErrorCode.UNAVAILABLE);
      const e = readErrorBody(r);
      const err = new WalrusError(e.code, `peer ${this.addr}: ${e.message}`, {
        ...(e.leaderHint === undefined ? {} : { leaderHint: e.leaderHint }),
      });
      if (this.state !== 'open' || !isRequestOpcode(header.opcode)) throw err;
      const pending = this.inFlight.get(header.requestId);
      if (pending !== undefined && pending.opcode === header.opcode) this.settle(pending, err);
      return;
    }
    if (this.state === 'handshaking') {
      this.onHandshakeFrame(socket, header.opcode, body);
      return;
    }
    if (this.state !== 'open' || !isRequestOpcode(header.opcode) || header.flags !== BinaryFlag.REPLY) {
      throw new WalrusError(
        ErrorCode.UNAVAILABLE,
        `unexpected frame opcode 0x${header.opcode.toString(16)} from ${this.addr}`,
      );
    }
    const pending = this.inFlight.get(header.requestId);
    // No pending (or another opcode under that id): a late reply to a timed-out request.
    if (pending !== undefined && pending.opcode === header.opcode) this.settle(pending, Buffer.from(body));
  }

  private onHandshakeFrame(socket: net.Socket, opcode: number, body: Buffer): void {
    const secret = this.o.clusterSecret;
    if (this.hello === undefined) {
      if (opcode !== PeerOpcode.authHello)
        throw new WalrusError(ErrorCode.UNAVAILABLE, `${this.addr} did not start a peer handshake`);
      const hello = decodeHelloBody(body);
      let answer: ReturnType<typeof answerHello>;
      try {
        answer = answerHello(secret, this.identity.self(), hello);
      } catch (err) {
        this.tellServer(socket, asWalrusError(err));
        throw err;
      }
      this.hello = hello;
      this.clientNonce = answer.clientNonce;
      this.batcher?.push(encodePeerFrame(PeerOpcode.authProve, 0, 0, encodeProveBody(answer.prove)));
      return;
    }
    if (opcode !== PeerOpcode.authAccept)
      throw new WalrusError(ErrorCode.UNAUTHENTICATED, `${this.addr} broke the handshake`);
    try {
      const accept = decodeAcceptBody(body);
      verifyAccept(secret, this.hello.serverNonce, this.clientNonce!, this.o.selfNodeId, accept);
      const expected = this.o.peerNodeId;
      if (expected !== undefined && accept.nodeId !== 0 && accept.nodeId !== expected) {
        throw new WalrusError(
          ErrorCode.IDENTITY_MISMATCH,
          `${this.addr} is node ${accept.nodeId}, not node ${expected} (the member's address changed or ` +
            'was reused)',
        );
      }
      this.identity.check(identityOf(accept));
    } catch (err) {
      this.tellServer(socket, asWalrusError(err));
      throw err;
    }
    this.onOpen();
  }

  /** Best effort: one framed error to a server we refuse (UNAUTHENTICATED or IDENTITY_MISMATCH). */
  private tellServer(socket: net.Socket, err: WalrusError): void {
    if (socket.destroyed) return;
    const code = err.code === ErrorCode.IDENTITY_MISMATCH ? err.code : ErrorCode.UNAUTHENTICATED;
    const frame = encodePeerErrorFrame(PeerOpcode.authProve, 0, {
      code,
      // The server reads at most a handshake frame before the handshake is done.
      message: err.message.slice(0, peerLinkDefaults.tellServerMessageLengthMax),
    });
    socket.end(frame);
  }
}

/**
 * One request over a fresh link, for the join step: connect, handshake, one request, close.
 * Rejects like PeerLink.request, with the connect attempt's code when it fails.
 */
export async function peerRequestOnce(o: {
  addr: string;
  selfNodeId: number;
  clusterSecret: string | null;
  identity?: PeerIdentityPolicy;
  payload: Uint8Array;
  timeoutMs: number;
  logger?: TransportLogger;
}): Promise<Buffer> {
  const link = new PeerLink({
    selfNodeId: o.selfNodeId,
    addr: o.addr,
    clusterSecret: o.clusterSecret,
    ...(o.identity === undefined ? {} : { identity: o.identity }),
    queueCountMax: 1,
    queueBytesMax: peerFrameOverheadBytes,
    connectTimeoutMs: o.timeoutMs,
    requestTimeoutMs: o.timeoutMs,
    reconnectBackoffMsMin: o.timeoutMs,
    reconnectBackoffMsMax: o.timeoutMs,
    ...(o.logger === undefined ? {} : { logger: o.logger }),
  });
  try {
    return await link.request(o.payload);
  } finally {
    await link.close();
  }
}
