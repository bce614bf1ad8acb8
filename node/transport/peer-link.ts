/**
 * One outbound link to one peer's raft port, as a layer over one FramedConnection at a time
 * (framed-connection.ts owns the socket, the framing, per-turn write batching, the request table,
 * timeouts and failing what is in flight). This layer adds what only the peer link has:
 *
 * - the handshake (peer-client-handshake.ts) run by every connection before it is usable, judging
 *   the server's identity (`identity`, and `peerNodeId`: the node expected at the address);
 * - reconnecting forever with capped exponential backoff (plus jitter) until closed;
 * - one-way messages (`send`): they never throw and never block, and wait in a queue bounded by
 *   count and bytes while the link is down or the socket is backed up; beyond the bounds the OLDEST
 *   are dropped and counted (Raft retransmits whatever matters);
 * - the peer frame format: requests are `peerRequest` or `snapshotChunk` (the opcode is the tag a
 *   reply must carry); an error reply becomes a WalrusError with the peer's code and leader hint.
 *
 * Requests are bounded in number (`requestCountMax`; one more is BUSY); each has a time limit
 * (TIMEOUT). While connecting they wait for the outcome; while the link backs off after a failed
 * attempt they fail fast with that attempt's code (UNAVAILABLE, or UNAUTHENTICATED /
 * IDENTITY_MISMATCH / BUSY when either side refused). A lost connection fails the requests in
 * flight UNAVAILABLE with `sent: true` (outcome unknown).
 */
import assert from 'node:assert';
import type tls from 'node:tls';
import { LogThrottle, silentLogger } from '../log.js';
import { BinaryFlag, PeerOpcode } from '../protocol/binary-header.js';
import { ErrorCode, WalrusError } from '../protocol/error-codes.js';
import { protocolLimits } from '../protocol/limits.js';
import {
  type CloseReason,
  FramedConnection,
  type FramedConnectionState,
  type Reply,
} from './framed-connection.js';
import type { TransportLogger } from './frame-server.js';
import { anonymousIdentityPolicy, type PeerIdentityPolicy } from './peer-auth.js';
import { PeerClientHandshake, peerClientHandshakeLimits } from './peer-client-handshake.js';
import {
  decodePeerHeader,
  encodePeerFrame,
  peerBody,
  peerErrorOf,
  peerFrameOverheadBytes,
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
  /** Failed attempts are logged at most once per this interval (with the count suppressed). Default 30 s. */
  failureLogIntervalMs?: number;
  /** TLS to the peer's raft port (CA; cert and key for mutual TLS). Default plain TCP. */
  tls?: tls.ConnectionOptions;
}

export const peerLinkDefaults = {
  requestCountMax: 1_024,
  writeBufferHighBytes: 8 * 1024 * 1024,
  /** Fraction of the backoff added at random, so that links to a restarted node do not reconnect in lockstep. */
  backoffJitterFraction: 0.2,
  /** Exponent cap of the backoff doubling (the backoff is capped by reconnectBackoffMsMax long before). */
  backoffDoublingCountMax: 30,
  /**
   * A down peer fails an attempt every backoff (1 s at most): its `peer link attempt failed` line
   * is written at most once per this interval, carrying how many attempts failed unlogged since.
   */
  failureLogIntervalMs: 30_000,
  /** Characters of the reason sent to a refused server (its handshake frames are tiny). */
  tellServerMessageLengthMax: peerClientHandshakeLimits.tellServerMessageLengthMax,
} as const;

// A connection reads handshake-size frames until the handshake is done, then full ones.
assert(peerWireLimits.handshakeReplySizeMaxBytes < protocolLimits.frameSizeMaxBytes);
assert(peerLinkDefaults.backoffJitterFraction >= 0 && peerLinkDefaults.backoffJitterFraction < 1);

/** 'backoff': waiting to reconnect after a failed attempt or a lost connection. */
type LinkState = Exclude<FramedConnectionState, 'closed'> | 'backoff' | 'closed';

/** Peer opcodes that are request/response calls (a reply carries the request's opcode and id). */
export type PeerRequestOpcode = typeof PeerOpcode.peerRequest | typeof PeerOpcode.snapshotChunk;

function isRequestOpcode(opcode: number): opcode is PeerRequestOpcode {
  return opcode === PeerOpcode.peerRequest || opcode === PeerOpcode.snapshotChunk;
}

/** Reads a frame of an open link: a reply (or error reply) to a request, tagged by its opcode. */
function readPeerReply(frame: Buffer, label: string): Reply {
  const header = decodePeerHeader(frame, ErrorCode.UNAVAILABLE);
  const body = peerBody(frame);
  if (header.flags & BinaryFlag.ERROR) {
    const err = peerErrorOf(body, label);
    if (!isRequestOpcode(header.opcode)) throw err; // an error about the connection itself
    return { requestId: header.requestId, tag: header.opcode, outcome: err };
  }
  if (!isRequestOpcode(header.opcode) || header.flags !== BinaryFlag.REPLY) {
    throw new WalrusError(
      ErrorCode.UNAVAILABLE,
      `unexpected frame opcode 0x${header.opcode.toString(16)} from ${label}`,
    );
  }
  return { requestId: header.requestId, tag: header.opcode, outcome: Buffer.from(body) };
}

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
  private readonly label: string;
  private readonly log: TransportLogger;
  private readonly requestCountMax: number;
  private readonly frameSizeMaxBytes: number;
  private readonly writeBufferHighBytes: number;
  private readonly identity: PeerIdentityPolicy;
  /** The connection of the current attempt; undefined while backing off or once closed. */
  private conn: FramedConnection | undefined;
  private closed = false;
  private reconnectTimer: NodeJS.Timeout | undefined;
  private failureCount = 0;
  private lastFailure: WalrusError | undefined;
  private readonly failureLog: LogThrottle;
  /** One-way frames not yet handed to the connection, oldest first from `queueHead`. */
  private queue: Buffer[] = [];
  private queueHead = 0;
  private queueBytes = 0;
  private dropped = 0;
  private opened = 0;

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
    this.label = `peer ${o.addr}`;
    this.log = o.logger ?? silentLogger;
    this.requestCountMax = o.requestCountMax ?? peerLinkDefaults.requestCountMax;
    this.frameSizeMaxBytes = o.frameSizeMaxBytes ?? protocolLimits.frameSizeMaxBytes;
    this.writeBufferHighBytes = o.writeBufferHighBytes ?? peerLinkDefaults.writeBufferHighBytes;
    this.identity = o.identity ?? anonymousIdentityPolicy(o.selfNodeId);
    this.failureLog = new LogThrottle(o.failureLogIntervalMs ?? peerLinkDefaults.failureLogIntervalMs);
    assert(this.identity.self().nodeId === o.selfNodeId, 'the identity policy speaks for this node');
    assert(o.peerNodeId === undefined || (Number.isInteger(o.peerNodeId) && o.peerNodeId > 0));
    assert(this.requestCountMax > 0 && this.writeBufferHighBytes > 0);
    assert(this.frameSizeMaxBytes > peerWireLimits.handshakeReplySizeMaxBytes);
    this.connect();
  }

  private get state(): LinkState {
    if (this.closed) return 'closed';
    const s = this.conn?.state;
    return s === undefined || s === 'closed' ? 'backoff' : s;
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
    if (this.closed) {
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
    this.pumpQueue();
  }

  /**
   * One request; resolves with the peer's reply payload, rejects with a WalrusError. `opcode` is
   * `peerRequest` (join, forwarded proposal) unless given (`snapshotChunk`). The payload is copied
   * at once: the caller may reuse its buffer.
   */
  request(
    payload: Uint8Array,
    options: { timeoutMs?: number; opcode?: PeerRequestOpcode } = {},
  ): Promise<Buffer> {
    return new Promise<Buffer>((resolve, reject) => {
      const conn = this.conn;
      if (this.closed) {
        reject(new TransportError(ErrorCode.UNAVAILABLE, `peer link to ${this.addr} is closed`, false));
        return;
      }
      if (conn === undefined) {
        const last = this.lastFailure;
        const why = last?.message ?? 'the connection was lost; reconnecting';
        const message = `peer ${this.addr} is not reachable: ${why}`;
        reject(new TransportError(last?.code ?? ErrorCode.UNAVAILABLE, message, false));
        return;
      }
      if (payload.length + peerFrameOverheadBytes - 4 > this.frameSizeMaxBytes) {
        const message = `peer request of ${payload.length} bytes exceeds the frame limit`;
        reject(new TransportError(ErrorCode.FRAME_TOO_LARGE, message, false));
        return;
      }
      const opcode = options.opcode ?? PeerOpcode.peerRequest;
      const timeoutMs = options.timeoutMs ?? this.o.requestTimeoutMs;
      assert(timeoutMs > 0);
      conn.request({
        // The payload of a whole frame, without its length prefix (the connection adds one, and
        // the request id).
        payload: encodePeerFrame(opcode, 0, 0, payload).subarray(4),
        tag: opcode,
        deadlineMs: Date.now() + timeoutMs,
        timeoutMs,
        resolve,
        reject,
      });
    });
  }

  /** Stops reconnecting, fails pending requests UNAVAILABLE, drops the queue, closes the socket. */
  close(): Promise<void> {
    if (this.closed) return Promise.resolve();
    this.closed = true;
    clearTimeout(this.reconnectTimer);
    this.dropped += this.queuedCount;
    this.queue = [];
    this.queueHead = 0;
    this.queueBytes = 0;
    const conn = this.conn;
    this.conn = undefined;
    return conn?.close(`peer link to ${this.addr} was closed`) ?? Promise.resolve();
  }

  // ---- connection lifecycle ---------------------------------------------------------------------

  private connect(): void {
    this.conn = new FramedConnection({
      host: this.host,
      port: this.port,
      label: this.label,
      connectTimeoutMs: this.o.connectTimeoutMs,
      frameSizeMaxBytes: this.frameSizeMaxBytes,
      inFlightMax: this.requestCountMax,
      writeBufferHighBytes: this.writeBufferHighBytes,
      flush: 'nextTick',
      handshake: new PeerClientHandshake({
        label: this.label,
        addr: this.addr,
        clusterSecret: this.o.clusterSecret,
        selfNodeId: this.o.selfNodeId,
        identity: this.identity,
        peerNodeId: this.o.peerNodeId,
      }),
      ...(this.o.tls === undefined ? {} : { tls: this.o.tls }),
      readReply: (frame) => readPeerReply(frame, this.label),
      events: {
        onOpen: () => this.onOpen(),
        onClose: (err, reason) => this.onClose(err, reason),
        onDrain: () => this.pumpQueue(),
      },
    });
  }

  private onOpen(): void {
    this.opened += 1;
    this.failureCount = 0;
    this.lastFailure = undefined;
    this.log.info({ addr: this.addr }, 'peer link authenticated');
    this.pumpQueue();
  }

  private onClose(err: TransportError, reason: CloseReason): void {
    this.conn = undefined;
    if (reason === 'connect') {
      this.failAttempt(err);
      return;
    }
    if (reason === 'lost') this.log.info({ addr: this.addr }, 'peer link lost; reconnecting');
    else this.log.warn({ addr: this.addr, code: err.code }, `peer protocol error: ${err.message}`);
    this.scheduleReconnect(this.o.reconnectBackoffMsMin);
  }

  /**
   * A connect or handshake attempt failed (its requests failed with its code, sent false): back
   * off. Logged at warn (error for a refusal by identity, which needs the operator), at most once
   * per failureLogIntervalMs, with `suppressedCount` the failures not logged since the last line.
   */
  private failAttempt(err: TransportError): void {
    this.failureCount += 1;
    this.lastFailure = err;
    const doublings = Math.min(this.failureCount - 1, peerLinkDefaults.backoffDoublingCountMax);
    const backoffMs = Math.min(this.o.reconnectBackoffMsMax, this.o.reconnectBackoffMsMin * 2 ** doublings);
    const suppressedCount = this.failureLog.take();
    if (suppressedCount !== null) {
      const level = err.code === ErrorCode.IDENTITY_MISMATCH ? 'error' : 'warn';
      this.log[level](
        {
          addr: this.addr,
          peerNodeId: this.o.peerNodeId,
          code: err.code,
          err: err.message,
          failureCount: this.failureCount,
          suppressedCount,
          backoffMs,
        },
        'peer link attempt failed',
      );
    }
    this.scheduleReconnect(backoffMs);
  }

  private scheduleReconnect(baseMs: number): void {
    const delayMs = baseMs + Math.floor(Math.random() * baseMs * peerLinkDefaults.backoffJitterFraction);
    this.reconnectTimer = setTimeout(() => {
      if (!this.closed) this.connect();
    }, delayMs);
  }

  // ---- the one-way queue -------------------------------------------------------------------------

  /** Moves queued messages to the connection while it keeps up (its 'drain' pumps again). */
  private pumpQueue(): void {
    const conn = this.conn;
    if (conn === undefined) return;
    while (this.queuedCount > 0 && conn.writable) {
      const frame = this.queue[this.queueHead]!;
      this.queueHead += 1;
      this.queueBytes -= frame.length;
      conn.sendFrame(frame);
    }
    if (this.queuedCount === 0) {
      this.queue = [];
      this.queueHead = 0;
    }
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
  tls?: tls.ConnectionOptions;
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
    ...(o.tls === undefined ? {} : { tls: o.tls }),
    ...(o.logger === undefined ? {} : { logger: o.logger }),
  });
  try {
    return await link.request(o.payload);
  } finally {
    await link.close();
  }
}
