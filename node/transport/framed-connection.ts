/**
 * One framed, pipelined connection: one socket's life, from connect to close, once. The client
 * connection (pipelined-connection.ts) and the peer link (peer-link.ts) are thin layers over it;
 * reconnecting, and what waits while there is no connection, are theirs.
 *
 * It owns:
 * - connecting within `connectTimeoutMs` (TCP connect plus the optional handshake), keepalive, and
 *   an optional idle timer (`onIdle` when nothing is in flight);
 * - an optional client handshake run before the connection is usable (the peer link plugs in
 *   peer-client-handshake.ts); until it is done, frames are limited to the handshake's own size;
 * - reading: one FrameDecoder limited to `frameSizeMaxBytes`. A text frame is the server refusing
 *   us (`ERR BUSY`, `ERR FRAME_TOO_LARGE`, …) and ends the connection with its code. A binary frame
 *   is a reply: the layer's `readReply` names its request id and tag, and it settles the request
 *   in flight under that id if the tags agree (else it is a late reply and is dropped);
 * - writing: the frames of one event-loop turn leave as ONE buffer (frame-batcher.ts). Requests
 *   admitted before the connection opens wait and go first once it does. `writable` says whether
 *   the socket's backlog is under `writeBufferHighBytes`; one-way senders wait for `onDrain`
 *   (requests do not: the in-flight bound already bounds them);
 * - the in-flight table: u32 request ids (skipped while in use, so ids repeat only after 2^32
 *   requests), at most `inFlightMax` (one more is BUSY), a deadline each checked by one sweep
 *   (TIMEOUT), abort signals;
 * - failing: when the connection ends, every request in flight is rejected with a TransportError
 *   whose `sent` is false unless the connection had opened (nothing left before that).
 *
 * A connection that ends by itself reports it once, through `onClose(err, reason)`; one closed by
 * its owner (`close()`) reports nothing. No event fires after either.
 */
import assert from 'node:assert';
import net from 'node:net';
import tls from 'node:tls';
import { binaryHeaderSizeBytes, binaryRequestIdOffset } from '../protocol/binary-header.js';
import { ErrorCode, isErrorCode, WalrusError } from '../protocol/error-codes.js';
import { encodeFrame, isBinaryFrame } from '../protocol/frame.js';
import { FrameDecoder } from '../protocol/frame-decoder.js';
import { protocolLimits } from '../protocol/limits.js';
import { parseTextReply } from '../protocol/text-codec.js';
import { DeadlineSweep } from './deadline-sweep.js';
import { FrameBatcher, type FlushSchedule } from './frame-batcher.js';
import { TransportError } from './transport-error.js';

export const framedConnectionLimits = {
  keepAliveInitialDelayMs: 30_000,
  /** How often request deadlines are checked: a request times out at most this late. */
  timeoutSweepMs: 10,
  requestIdMax: 0xffffffff,
} as const;

assert(framedConnectionLimits.timeoutSweepMs < framedConnectionLimits.keepAliveInitialDelayMs);

export type FramedConnectionState = 'connecting' | 'handshaking' | 'open' | 'closed';

/**
 * Why a connection ended by itself. `connect`: it never opened (connect, handshake or the connect
 * time failed), so nothing was sent. `lost`: the socket closed after it opened. `protocol`: after
 * it opened, the server broke the protocol or refused us with a text frame.
 */
export type CloseReason = 'connect' | 'lost' | 'protocol';

/** What a handshake may do with the socket: write whole frames, or write a last one and close. */
export interface HandshakeIo {
  write(frame: Uint8Array): void;
  end(frame: Uint8Array): void;
}

/** The client side of a handshake; one object per connection (it keeps the handshake's state). */
export interface ClientHandshake {
  /** Largest frame payload read before the handshake is done. */
  readonly frameSizeMaxBytes: number;
  /** Called once connected, for a handshake in which the client speaks first. */
  start?(io: HandshakeIo): void;
  /**
   * One binary frame from the server; returns true when the handshake is done. Throws a
   * WalrusError to refuse the server: the attempt fails with its code and message.
   */
  onFrame(frame: Buffer, io: HandshakeIo): boolean;
}

/** A reply as the layer reads it: which request it answers, and the result for the caller. */
export interface Reply {
  readonly requestId: number;
  /** Must equal the request's `tag` (the peer protocol's opcode; 0 when the format has none). */
  readonly tag: number;
  readonly outcome: Buffer | WalrusError;
}

export interface FramedRequest {
  /**
   * The payload (no length prefix): a binary message, whose request id (bytes 4-7) the connection
   * sets, in the copy it sends, to the id it gives the request. Never changed, so that one
   * encoding serves every attempt (an earlier attempt's bytes may still wait to be written).
   */
  readonly payload: Uint8Array;
  readonly tag: number;
  /** Date.now() after which the request fails TIMEOUT. */
  readonly deadlineMs: number;
  /** The time limit, for the message. */
  readonly timeoutMs: number;
  readonly signal?: AbortSignal | undefined;
  readonly resolve: (reply: Buffer) => void;
  readonly reject: (err: unknown) => void;
}

export interface FramedConnectionEvents {
  /** The connection ended by itself; everything in flight has been rejected with `err`. */
  onClose(err: TransportError, reason: CloseReason): void;
  /** Connected (and the handshake done): requests admitted so far are about to be written. */
  onOpen?(): void;
  /** The socket's backlog drained: one-way senders may go on. */
  onDrain?(): void;
  /** A request left the in-flight table while the connection lives: a slot is free. */
  onSlotFree?(): void;
  /** Nothing in flight and no bytes for `idleTimeoutMs`. */
  onIdle?(): void;
}

export interface FramedConnectionOptions {
  readonly host: string;
  readonly port: number;
  /** Names the server in messages: "127.0.0.1:9000", "peer 10.0.0.2:7000". */
  readonly label: string;
  /** Time for the TCP connect plus the handshake. */
  readonly connectTimeoutMs: number;
  /** Largest frame payload read once open. */
  readonly frameSizeMaxBytes: number;
  readonly inFlightMax: number;
  readonly flush: FlushSchedule;
  /** Backlog (socket + batch) at or above which `writable` is false. Default: no bound. */
  readonly writeBufferHighBytes?: number;
  readonly idleTimeoutMs?: number;
  readonly handshake?: ClientHandshake;
  /** Reads a binary frame once open; throws a WalrusError when the frame breaks the protocol. */
  readonly readReply: (frame: Buffer) => Reply;
  readonly events: FramedConnectionEvents;
  /** Opens the socket. Default net.connect (tls.connect with `tls`); tests pass a scripted one. */
  readonly connect?: (host: string, port: number) => net.Socket;
  /**
   * TLS settings (CA, and for mutual TLS the client's cert and key): the connection opens once the
   * TLS handshake is done and the server's certificate verified. Default: plain TCP.
   */
  readonly tls?: tls.ConnectionOptions;
}

interface InFlight {
  readonly request: FramedRequest;
  readonly requestId: number;
  cleanupAbort: (() => void) | undefined;
}

export class FramedConnection {
  private stateNow: FramedConnectionState = 'connecting';
  private opened = false;
  private readonly socket: net.Socket;
  private readonly decoder: FrameDecoder;
  private readonly batcher: FrameBatcher;
  /** Bytes of requests admitted before the connection opened, in order. */
  private held: Uint8Array[] = [];
  private readonly inFlight = new Map<number, InFlight>();
  private requestIdNext = 1;
  private readonly connectTimer: NodeJS.Timeout;
  private readonly sweep = new DeadlineSweep(framedConnectionLimits.timeoutSweepMs, (now) =>
    this.expire(now),
  );
  private socketError: NodeJS.ErrnoException | undefined;
  /** The handshake writes straight to the socket: nothing else is written before open. */
  private readonly handshakeIo: HandshakeIo = {
    write: (frame) => {
      if (!this.socket.destroyed) this.socket.write(frame);
    },
    end: (frame) => {
      if (!this.socket.destroyed) this.socket.end(frame);
    },
  };

  constructor(private readonly o: FramedConnectionOptions) {
    assert(o.connectTimeoutMs > 0 && o.inFlightMax > 0 && o.inFlightMax <= 2 ** 31);
    assert(o.writeBufferHighBytes === undefined || o.writeBufferHighBytes > 0);
    assert(o.idleTimeoutMs === undefined || o.idleTimeoutMs > 0);
    assert(o.handshake === undefined || o.handshake.frameSizeMaxBytes <= o.frameSizeMaxBytes);
    this.decoder = new FrameDecoder(o.handshake?.frameSizeMaxBytes ?? o.frameSizeMaxBytes);
    this.batcher = new FrameBatcher((batch) => {
      if (!this.socket.destroyed) this.socket.write(batch);
    }, o.flush);
    const tlsOptions = o.tls;
    const socket = (
      o.connect ??
      (tlsOptions === undefined
        ? (host: string, port: number) => net.connect({ host, port })
        : (host: string, port: number) =>
            tls.connect({ ...tlsOptions, host, port, servername: net.isIP(host) === 0 ? host : undefined }))
    )(o.host, o.port);
    this.socket = socket;
    socket.setNoDelay(true);
    this.connectTimer = setTimeout(() => {
      const what = o.handshake === undefined ? 'connect' : 'connect and handshake';
      this.failConnect(`${what} timed out after ${o.connectTimeoutMs} ms`);
    }, o.connectTimeoutMs);
    // Over TLS the connection is usable once the TLS handshake verified the server.
    socket.once(socket instanceof tls.TLSSocket ? 'secureConnect' : 'connect', () => this.onConnect());
    socket.on('data', (chunk: Buffer) => this.onData(chunk));
    socket.on('drain', () => {
      if (this.stateNow === 'open') o.events.onDrain?.();
    });
    socket.on('timeout', () => {
      if (this.stateNow === 'open' && this.inFlight.size === 0) o.events.onIdle?.();
    });
    socket.on('error', (err: NodeJS.ErrnoException) => {
      this.socketError = err;
      if (this.stateNow !== 'open') this.failConnect(err.message, err); // once open, 'close' follows
    });
    socket.on('close', () => {
      if (this.isClosed()) return;
      if (!this.opened) {
        this.failConnect(
          this.o.handshake === undefined
            ? 'connection closed while connecting'
            : 'closed during the handshake',
        );
        return;
      }
      const code = this.socketError?.code;
      const message = `connection to ${o.label} was lost${code === undefined ? '' : ` (${code})`}`;
      this.fail(
        new TransportError(ErrorCode.UNAVAILABLE, message, true, { cause: this.socketError }),
        'lost',
      );
    });
  }

  get state(): FramedConnectionState {
    return this.stateNow;
  }

  /** Requests admitted and not yet settled. */
  get inFlightCount(): number {
    return this.inFlight.size;
  }

  /** True when open and the write backlog is under `writeBufferHighBytes`. */
  get writable(): boolean {
    if (this.stateNow !== 'open') return false;
    const high = this.o.writeBufferHighBytes;
    return high === undefined || this.socket.writableLength + this.batcher.pendingBytes < high;
  }

  /**
   * Admits one request: it gets a request id and its bytes go out in this turn's batch (or when the
   * connection opens). Settles through `request.resolve` / `request.reject`: the reply's outcome,
   * or TransportError BUSY (full), TIMEOUT, UNAVAILABLE (closed), or the signal's reason.
   */
  request(request: FramedRequest): void {
    if (this.isClosed()) {
      request.reject(
        new TransportError(ErrorCode.UNAVAILABLE, `connection to ${this.o.label} is closed`, false),
      );
      return;
    }
    const signal = request.signal;
    if (signal?.aborted) {
      request.reject(signal.reason);
      return;
    }
    if (this.inFlight.size >= this.o.inFlightMax) {
      const message = `${this.inFlight.size} requests already in flight to ${this.o.label}`;
      request.reject(new TransportError(ErrorCode.BUSY, message, false));
      return;
    }
    const payload = request.payload;
    assert(payload.length >= binaryHeaderSizeBytes, 'a request is a binary message');
    const requestId = this.allocateRequestId();
    const entry: InFlight = { request, requestId, cleanupAbort: undefined };
    this.inFlight.set(requestId, entry);
    if (signal !== undefined) {
      const onAbort = (): void => this.settle(entry, signal.reason);
      signal.addEventListener('abort', onAbort, { once: true });
      entry.cleanupAbort = () => signal.removeEventListener('abort', onAbort);
    }
    if (this.stateNow === 'open') this.batcher.pushFrame(payload, requestId);
    else this.held.push(frameWithRequestId(payload, requestId));
    this.sweep.ensure();
  }

  /** Queues one whole frame (length prefix included) that expects no reply. Only when open. */
  sendFrame(frame: Uint8Array): void {
    assert(this.stateNow === 'open', 'one-way frames only on an open connection');
    this.batcher.push(frame);
  }

  /** Rejects everything in flight UNAVAILABLE with `message` and closes the socket. No onClose. */
  close(message: string): Promise<void> {
    if (this.isClosed()) return Promise.resolve();
    this.finish(new TransportError(ErrorCode.UNAVAILABLE, message, this.opened));
    const socket = this.socket;
    return new Promise((resolve) => {
      if (socket.closed) resolve();
      else socket.once('close', () => resolve());
      socket.destroy();
    });
  }

  // ---- internals ---------------------------------------------------------------------------------

  /** A method, not a comparison, so that TypeScript does not narrow the state across callbacks. */
  private isClosed(): boolean {
    return this.stateNow === 'closed';
  }

  private onConnect(): void {
    if (this.isClosed()) return;
    this.socket.setKeepAlive(true, framedConnectionLimits.keepAliveInitialDelayMs);
    if (this.o.handshake === undefined) this.open();
    else {
      this.stateNow = 'handshaking';
      this.o.handshake.start?.(this.handshakeIo);
    }
  }

  private open(): void {
    clearTimeout(this.connectTimer);
    this.stateNow = 'open';
    this.opened = true;
    this.decoder.raiseFrameSizeMax(this.o.frameSizeMaxBytes);
    if (this.o.idleTimeoutMs !== undefined) this.socket.setTimeout(this.o.idleTimeoutMs);
    for (const chunk of this.held) this.batcher.push(chunk);
    this.held = [];
    this.o.events.onOpen?.();
  }

  private allocateRequestId(): number {
    for (;;) {
      const id = this.requestIdNext;
      this.requestIdNext = id >= framedConnectionLimits.requestIdMax ? 1 : id + 1;
      if (!this.inFlight.has(id)) return id;
    }
  }

  private settle(entry: InFlight, outcome: Buffer | unknown): void {
    if (this.inFlight.get(entry.requestId) !== entry) return;
    this.inFlight.delete(entry.requestId);
    entry.cleanupAbort?.();
    if (Buffer.isBuffer(outcome)) entry.request.resolve(outcome);
    else entry.request.reject(outcome);
    if (!this.isClosed()) this.o.events.onSlotFree?.();
  }

  private expire(nowMs: number): boolean {
    // Runs every sweep period while requests are in flight: no copy of the table unless one is due.
    const due: InFlight[] = [];
    for (const e of this.inFlight.values()) if (e.request.deadlineMs <= nowMs) due.push(e);
    for (const e of due) {
      const message = `no reply from ${this.o.label} within ${e.request.timeoutMs} ms`;
      this.settle(e, new TransportError(ErrorCode.TIMEOUT, message, this.opened));
    }
    return this.inFlight.size > 0;
  }

  private onData(chunk: Buffer): void {
    if (this.isClosed()) return;
    const { frames, error } = this.decoder.push(chunk);
    for (const frame of frames) {
      if (this.isClosed()) return;
      this.onFrame(frame);
    }
    if (error !== undefined && !this.isClosed()) {
      this.failWith(ErrorCode.UNAVAILABLE, `bad framing from ${this.o.label}: ${error.message}`);
    }
  }

  private onFrame(frame: Buffer): void {
    if (!isBinaryFrame(frame)) {
      // A text frame on a binary connection is the server refusing the connection or the stream.
      const reply = parseTextReply(frame);
      const code =
        reply.kind === 'ERR' && reply.code !== undefined && isErrorCode(reply.code) ? reply.code : null;
      const message = reply.kind === 'ERR' ? reply.message : 'unexpected text frame';
      // BUSY at the connection limit is sent before the server reads anything: nothing was applied.
      this.failWith(code ?? ErrorCode.UNAVAILABLE, `${this.o.label}: ${message}`, code !== ErrorCode.BUSY);
      return;
    }
    try {
      if (this.stateNow === 'handshaking') {
        if (this.o.handshake!.onFrame(frame, this.handshakeIo)) this.open();
        return;
      }
      const reply = this.o.readReply(frame);
      const entry = this.inFlight.get(reply.requestId);
      // None (or another tag under that id): a late reply to a request that timed out or was aborted.
      if (entry !== undefined && entry.request.tag === reply.tag) this.settle(entry, reply.outcome);
    } catch (err) {
      if (!(err instanceof WalrusError)) throw err; // a bug in a layer: crash
      this.failWith(err.code, err.message);
    }
  }

  /** The server broke the protocol or refused us: a failed attempt before open, else `protocol`. */
  private failWith(code: ErrorCode, message: string, sent = true): void {
    const reason = this.opened ? 'protocol' : 'connect';
    this.fail(new TransportError(code, message, this.opened && sent), reason);
  }

  /** Connecting failed (socket error, close or time) before the connection opened. */
  private failConnect(reason: string, cause?: unknown): void {
    if (this.isClosed() || this.opened) return;
    const message = `cannot connect to ${this.o.label}: ${reason}`;
    const err = new TransportError(
      ErrorCode.UNAVAILABLE,
      message,
      false,
      cause === undefined ? undefined : { cause },
    );
    this.fail(err, 'connect');
  }

  private fail(err: TransportError, reason: CloseReason): void {
    this.finish(err);
    this.o.events.onClose(err, reason);
  }

  /** Forgets everything: rejects what is in flight with `err` and destroys the socket. */
  private finish(err: TransportError): void {
    this.stateNow = 'closed';
    clearTimeout(this.connectTimer);
    this.sweep.stop();
    this.batcher.clear();
    this.held = [];
    for (const entry of [...this.inFlight.values()]) this.settle(entry, err);
    if (!this.socket.destroyed) this.socket.destroy();
  }
}

/** A whole frame (length prefix included) of `payload` under `requestId`, in a buffer of its own. */
function frameWithRequestId(payload: Uint8Array, requestId: number): Buffer {
  const frame = encodeFrame(payload);
  frame.writeUInt32LE(requestId, protocolLimits.frameLengthPrefixSizeBytes + binaryRequestIdOffset);
  return frame;
}
