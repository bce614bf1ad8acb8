/**
 * A TCP server for length-prefixed framed protocols, with a limit on everything: frame size,
 * connections, frames in flight per connection and reply bytes pending per connection
 * (backpressure), a node-wide budget of buffered input, bytes waiting to be written, the time a
 * frame may take to arrive, and idle time. It knows framing, not protocols: every complete frame
 * goes to `onFrame`, every frame refused by the budget to `onRefused`, and the handler answers with
 * exactly one `send()` per frame, in any order and at any later time.
 *
 * Why these limits: a node must survive any client. A client that sends faster than the node
 * answers is slowed down: the server stops reading its socket once `inFlightMaxPerConnection`
 * frames wait for replies or `replyPendingMaxBytesPerConnection` reply bytes wait for the kernel,
 * so TCP flow control pushes back (nothing is queued beyond). A client that never reads its replies
 * is disconnected once `writeBufferMaxBytes` wait for it. Partial frames of all connections share
 * one `InputBudget` (input-budget.ts): a frame that does not fit is dropped as it arrives and
 * answered BUSY, and while nothing is left new connections get `ERR BUSY`. A frame must arrive
 * whole within `frameDeadlineMs` of its first byte, however its bytes trickle in (slowloris); the
 * idle timeout is separate and only closes connections with no frame started and nothing in
 * flight. A broken length prefix closes that one connection after one framed `ERR` (a byte stream
 * cannot be resynchronised).
 *
 * Writes are coalesced: replies sent in one event-loop turn go out in one write of one buffer
 * (frame-batcher.ts: copied as they are sent into a shared arena, no allocation per reply).
 */
import type { Logger } from '../log.js';
import assert from 'node:assert';
import type net from 'node:net';
import { ErrorCode, WalrusError } from '../protocol/error-codes.js';
import { encodeFrameHeader } from '../protocol/frame.js';
import { FrameDecoder } from '../protocol/frame-decoder.js';
import { protocolLimits } from '../protocol/limits.js';
import { encodeTextError } from '../protocol/text-codec.js';
import { DeadlineSweep } from './deadline-sweep.js';
import { FrameBatcher } from './frame-batcher.js';
import { InputBudget, type InputBudgetStats } from './input-budget.js';
import { listenOn } from './listen.js';
import { createListener, type Listener, type TlsServerSettings } from './tls-listener.js';

/** The node's one Logger (node/log.ts), under this module's name. */
export type TransportLogger = Logger;

export interface FrameServerOptions {
  readonly host: string;
  /** 0 = an ephemeral port; listen() returns the bound one. */
  readonly port: number;
  /** Largest frame payload accepted; above it the connection gets `ERR FRAME_TOO_LARGE` and is closed. */
  readonly frameSizeMaxBytes: number;
  /** Open connections; one more gets `ERR BUSY` and is closed. */
  readonly connectionCountMax: number;
  /** A connection with no bytes received and nothing in flight for this long is closed. */
  readonly idleTimeoutMs: number;
  /**
   * A frame must arrive whole within this long of its first byte (its length prefix included), or
   * the connection gets `ERR TIMEOUT` and is closed. Default `frameServerDefaults.frameDeadlineMs`.
   */
  readonly frameDeadlineMs?: number;
  /** Frames received minus replies sent; at this count the server stops reading the socket. */
  readonly inFlightMaxPerConnection: number;
  /**
   * Reply bytes not yet taken by the kernel at or above which the server stops reading the socket
   * (further requests wait in TCP). Default `frameServerDefaults.replyPendingMaxBytesPerConnection`.
   */
  readonly replyPendingMaxBytesPerConnection?: number;
  /** Bytes queued for a peer that does not read; above it the connection is destroyed. */
  readonly writeBufferMaxBytes: number;
  /**
   * The node-wide budget of partial frames plus unflushed replies, bytes. Default
   * `frameServerDefaults.bufferedInputMaxBytes`.
   */
  readonly bufferedInputMaxBytes?: number;
  /** Called once per received frame; the payload may be a view into a receive buffer (copy to keep). */
  onFrame(conn: FrameConnection, payload: Buffer): void;
  /**
   * Called, in stream order, for a frame refused because the input budget was spent: `head` is its
   * first bytes (refusedHeadSizeBytes), `error` a BUSY to answer it with, by exactly one send().
   * Default: a text `ERR BUSY` reply.
   */
  onRefused?(conn: FrameConnection, head: Buffer, error: WalrusError): void;
  /** Called when a connection has closed (for cancelling its long polls); optional. */
  onClose?(conn: FrameConnection): void;
  /** TLS for the port (tls-listener.ts); default plain TCP. */
  readonly tls?: TlsServerSettings;
  readonly logger?: TransportLogger;
}

export interface FrameConnection {
  readonly id: number;
  readonly remoteAddress: string;
  /** Sends one reply frame (payload without length prefix). A send after close is ignored. */
  send(payload: Uint8Array): void;
  close(): void;
  readonly closed: boolean;
  /**
   * Resolves once the replies waiting for this connection's client are under its bound
   * (`replyPendingMaxBytesPerConnection`), checked after the current turn's replies are sent, or
   * once the connection is closed. Work that makes large replies waits for it, so a client that does
   * not read stops getting work done for it, not just stops being read.
   */
  replyRoom(): Promise<void>;
}

const mib = 1024 * 1024;

export const frameServerDefaults = {
  frameSizeMaxBytes: protocolLimits.frameSizeMaxBytes,
  connectionCountMax: 1024,
  idleTimeoutMs: 5 * 60_000,
  frameDeadlineMs: 30_000,
  inFlightMaxPerConnection: 1024,
  /** Four maximum read replies: a reader keeps its pipeline full, one that does not read stops. */
  replyPendingMaxBytesPerConnection: 16 * mib,
  writeBufferMaxBytes: 64 * mib,
  /**
   * Unsent reply bytes that make a connection a candidate for closing while the node's input
   * budget is spent (the one with the most goes first).
   */
  slowReaderBytesMin: 1 * mib,
  bufferedInputMaxBytes: 256 * mib,
  /** Frames up to this size may use the budget's reserve (METRICS, PING, small appends). */
  smallFrameSizeMaxBytes: 64 * 1024,
  /** Part of the budget large frames leave to small ones. */
  smallFrameReserveFraction: 1 / 8,
  /** A connection being closed after a final ERR is destroyed after this long if the peer does not read it. */
  closeGraceMs: 2_000,
  /** How often frame deadlines are checked: a slow frame is cut at most this late. */
  frameDeadlineSweepMsMax: 250,
} as const;

assert(frameServerDefaults.replyPendingMaxBytesPerConnection < frameServerDefaults.writeBufferMaxBytes);
assert(frameServerDefaults.replyPendingMaxBytesPerConnection >= protocolLimits.frameSizeMaxBytes);
assert(
  frameServerDefaults.bufferedInputMaxBytes * (1 - frameServerDefaults.smallFrameReserveFraction) >=
    4 * protocolLimits.frameSizeMaxBytes,
);

const silentLogger: TransportLogger = { info() {}, warn() {}, error() {} };

/** A frame refused by the input budget, held in stream order with the received ones. */
interface Refused {
  readonly head: Buffer;
  readonly error: WalrusError;
}

class ServerConnection implements FrameConnection {
  readonly id: number;
  readonly remoteAddress: string;
  closed = false;
  private readonly decoder: FrameDecoder;
  /**
   * Frames received and not yet handed to onFrame (held while a per-connection bound is reached),
   * from index `heldHead` on; bounded by the frames of one chunk because reading pauses while any wait.
   */
  private held: (Buffer | Refused)[] = [];
  private heldHead = 0;
  private inFlight = 0;
  /** Reply frames of this turn, written as one buffer on the next tick. */
  private readonly outgoing: FrameBatcher;
  /** Reply bytes sent (outgoing or written) and not yet taken by the kernel; charged to the budget. */
  private replyPendingBytes = 0;
  /**
   * Sizes of the frames received whole and not yet answered, oldest first, from `requestBytesHead`
   * on: charged to the budget until their replies are sent (a handler holds a request's bytes
   * until it answers: 1,024 requests of 4 MiB in flight on one connection were not counted). A
   * reply gives back the oldest: replies may come out of order, so the figure can lag by the
   * difference in size between two requests, but it is exact whenever all are answered.
   */
  private requestBytes: number[] = [];
  private requestBytesHead = 0;
  private requestBytesTotal = 0;
  /** Set while a refused frame is answered: that reply gives back no request bytes. */
  private answeringRefusal = false;
  /** Callers of replyRoom() waiting for the replies to drain under the bound; woken all at once. */
  private roomWaiters: (() => void)[] = [];
  private paused = false;
  private delivering = false;
  /** Date.now() when the frame being received began (its first byte); undefined between frames. */
  frameStartedMs: number | undefined;
  /** Date.now() when bytes last arrived (for a drain: is the client still sending?). */
  lastDataMs = Date.now();

  constructor(
    private readonly server: FrameServer,
    private readonly socket: net.Socket,
    id: number,
  ) {
    this.id = id;
    this.remoteAddress = `${socket.remoteAddress ?? '?'}:${socket.remotePort ?? 0}`;
    const budget = server.budget;
    this.outgoing = new FrameBatcher((batch) => this.write(batch), 'nextTick');
    this.decoder = new FrameDecoder(server.options.frameSizeMaxBytes, {
      reserve: (length) => budget.tryReserveFrame(length),
      release: (length) => budget.release(length),
      completed: (length, reserved) => {
        if (!reserved) budget.charge(length);
        this.requestBytes.push(length);
        this.requestBytesTotal += length;
      },
    });
    socket.setNoDelay(true);
    socket.setTimeout(server.options.idleTimeoutMs);
    socket.on('data', (chunk: Buffer) => this.onData(chunk));
    socket.on('timeout', () => this.onIdle());
    socket.on('error', (err: NodeJS.ErrnoException) => {
      this.server.log.info(
        { conn: this.id, remote: this.remoteAddress, code: err.code },
        'client connection error',
      );
    });
    socket.on('close', () => this.onSocketClose());
  }

  inFlightCount(): number {
    return this.inFlight;
  }

  /** Reply bytes sent and not yet taken by the kernel. */
  get unsentReplyBytes(): number {
    return this.replyPendingBytes;
  }

  /** True while the server does not read this socket (a per-connection bound is reached). */
  get readingPaused(): boolean {
    return this.paused;
  }

  private heldCount(): number {
    return this.held.length - this.heldHead;
  }

  send(payload: Uint8Array): void {
    if (this.closed) return;
    if (this.inFlight > 0) this.inFlight -= 1;
    if (!this.answeringRefusal) this.requestAnswered();
    // Replies of one turn leave in ONE write of one buffer: many small writev chunks cost more in
    // Node's stream layer than the syscall itself (profiled at 256 replies per turn).
    const bytes = 4 + payload.length;
    this.outgoing.pushPayload(payload);
    this.replyPendingBytes += bytes;
    this.server.budget.charge(bytes);
    if (this.server.budget.spent()) this.server.dropSlowestReader();
    if (this.socket.writableLength + this.outgoing.pendingBytes > this.server.options.writeBufferMaxBytes) {
      this.server.log.warn(
        { conn: this.id, remote: this.remoteAddress, bufferedBytes: this.socket.writableLength },
        'client does not read its replies; closing the connection',
      );
      this.destroy();
      return;
    }
    this.deliverHeld();
  }

  /** Gives back the oldest unanswered request's bytes. */
  private requestAnswered(): void {
    if (this.requestBytesHead === this.requestBytes.length) return;
    const bytes = this.requestBytes[this.requestBytesHead]!;
    this.requestBytesHead += 1;
    if (this.requestBytesHead === this.requestBytes.length) {
      this.requestBytes = [];
      this.requestBytesHead = 0;
    }
    this.requestBytesTotal -= bytes;
    this.server.budget.release(bytes);
  }

  private write(batch: Buffer): void {
    if (this.socket.destroyed) return; // onSocketClose gives the pending bytes back
    // The callback runs once the kernel has the bytes (or the socket failed): they are no longer ours.
    const total = batch.length;
    this.socket.write(batch, () => this.onFlushed(total));
  }

  private onFlushed(bytes: number): void {
    if (this.replyPendingBytes === 0) return; // closed: everything was given back
    this.replyPendingBytes -= bytes;
    this.server.budget.release(bytes);
    if (this.roomWaiters.length > 0 && this.replyPendingBytes < this.server.replyPendingMaxBytes)
      this.wakeRoomWaiters();
    if (this.paused) this.deliverHeld();
  }

  replyRoom(): Promise<void> {
    return new Promise((resolve) => {
      // After this turn: a reply that work finished just now is sent (and counted) by then.
      setImmediate(() => {
        if (this.closed || this.replyPendingBytes < this.server.replyPendingMaxBytes) resolve();
        else this.roomWaiters.push(resolve);
      });
    });
  }

  private wakeRoomWaiters(): void {
    const waiters = this.roomWaiters;
    this.roomWaiters = [];
    for (const wake of waiters) wake();
  }

  close(): void {
    if (this.closed) return;
    this.outgoing.flush();
    this.closed = true;
    this.server.frameDone(this);
    this.socket.end();
    const timer = setTimeout(() => this.socket.destroy(), frameServerDefaults.closeGraceMs);
    timer.unref();
  }

  destroy(): void {
    this.closed = true;
    this.server.frameDone(this);
    this.socket.destroy();
  }

  private onData(chunk: Buffer): void {
    if (this.closed) return;
    this.lastDataMs = Date.now();
    const { frames, refused, error } = this.decoder.push(chunk);
    if (refused === undefined) {
      for (const frame of frames) this.held.push(frame);
    } else {
      let r = 0;
      for (let i = 0; i <= frames.length; i++) {
        for (; r < refused.length && refused[r]!.index === i; r++) this.held.push(this.refusal(refused[r]!));
        if (i < frames.length) this.held.push(frames[i]!);
      }
    }
    // The deadline runs from the first byte of the frame being received: a frame completed in this
    // chunk means the partial one (if any) began in it.
    if (this.decoder.hasPartialFrame()) {
      if (this.frameStartedMs === undefined || frames.length > 0 || refused !== undefined)
        this.server.frameStarted(this);
    } else if (this.frameStartedMs !== undefined) {
      this.server.frameDone(this);
    }
    this.deliverHeld();
    if (error !== undefined) this.failFraming(error);
  }

  private refusal(frame: { head: Buffer; length: number }): Refused {
    const budget = this.server.budget;
    const message = `the node's buffered-input budget of ${budget.bytesMax} bytes is spent; a frame of ${frame.length} bytes was refused; retry later`;
    this.server.log.warn({ conn: this.id, remote: this.remoteAddress, length: frame.length }, message);
    return { head: frame.head, error: new WalrusError(ErrorCode.BUSY, message) };
  }

  private deliverHeld(): void {
    // A handler that replies synchronously calls send() → deliverHeld() from inside onFrame; the
    // outer loop picks up the freed slot, so no recursion that grows with the number of held frames.
    if (this.delivering) return;
    this.delivering = true;
    const limit = this.server.options.inFlightMaxPerConnection;
    const replyMax = this.server.replyPendingMaxBytes;
    try {
      while (
        this.heldCount() > 0 &&
        this.inFlight < limit &&
        this.replyPendingBytes < replyMax &&
        !this.closed
      ) {
        const frame = this.held[this.heldHead]!;
        this.heldHead += 1;
        if (this.heldHead === this.held.length) {
          this.held = [];
          this.heldHead = 0;
        }
        this.inFlight += 1;
        try {
          if (Buffer.isBuffer(frame)) {
            this.server.options.onFrame(this, frame);
          } else {
            this.answeringRefusal = true;
            try {
              this.server.refuse(this, frame.head, frame.error);
            } finally {
              this.answeringRefusal = false;
            }
          }
        } catch (err) {
          this.server.log.error({ conn: this.id, err }, 'frame handler threw; closing the connection');
          this.destroy();
          return;
        }
      }
    } finally {
      this.delivering = false;
    }
    // Reading stops while frames wait, and while replies wait for a client that reads slowly.
    const shouldPause = this.heldCount() > 0 || this.replyPendingBytes >= replyMax;
    if (shouldPause && !this.paused) {
      this.paused = true;
      this.socket.pause();
    } else if (!shouldPause && this.paused && !this.closed) {
      this.paused = false;
      this.socket.resume();
    }
  }

  /** Framing broke: answer one framed text ERR and close; the stream cannot be resynchronised. */
  private failFraming(error: WalrusError): void {
    this.server.log.warn({ conn: this.id, remote: this.remoteAddress, code: error.code }, error.message);
    this.send(encodeTextError(error));
    this.close();
  }

  /** The frame being received missed its deadline: one framed `ERR TIMEOUT`, then close. */
  failDeadline(deadlineMs: number): void {
    const message = `a frame did not arrive whole within ${deadlineMs} ms of its first byte`;
    this.failFraming(new WalrusError(ErrorCode.TIMEOUT, message));
  }

  private onIdle(): void {
    // Nothing moved either way for a whole idle period while replies wait: the client does not read.
    if (this.socket.writableLength > 0) {
      this.server.log.warn(
        { conn: this.id, remote: this.remoteAddress, bufferedBytes: this.socket.writableLength },
        'client has not read its replies for an idle period; closing the connection',
      );
      this.destroy();
      return;
    }
    if (this.inFlight > 0 || this.heldCount() > 0) {
      this.socket.setTimeout(this.server.options.idleTimeoutMs);
      return;
    }
    this.server.log.info({ conn: this.id, remote: this.remoteAddress }, 'closing idle client connection');
    this.destroy();
  }

  private onSocketClose(): void {
    this.closed = true;
    this.wakeRoomWaiters();
    this.held = [];
    this.heldHead = 0;
    this.decoder.dispose();
    this.server.budget.release(this.replyPendingBytes + this.requestBytesTotal);
    this.replyPendingBytes = 0;
    this.requestBytes = [];
    this.requestBytesHead = 0;
    this.requestBytesTotal = 0;
    this.outgoing.clear();
    this.server.forget(this);
  }
}

export class FrameServer {
  readonly options: FrameServerOptions;
  readonly log: TransportLogger;
  /** @internal the node-wide budget of buffered input. */
  readonly budget: InputBudget;
  /** @internal */
  readonly replyPendingMaxBytes: number;
  private readonly frameDeadlineMs: number;
  private readonly server: net.Server;
  private readonly listener: Listener;
  private readonly connections = new Map<number, ServerConnection>();
  /** Connections receiving a frame now, for the deadline sweep. */
  private readonly receiving = new Set<ServerConnection>();
  private readonly deadlineSweep: DeadlineSweep;
  private connectionIdNext = 1;
  private listening = false;

  constructor(options: FrameServerOptions) {
    assert(options.frameSizeMaxBytes > 0 && options.frameSizeMaxBytes < 2 ** 32);
    assert(options.connectionCountMax > 0 && options.inFlightMaxPerConnection > 0);
    assert(options.idleTimeoutMs > 0 && options.writeBufferMaxBytes > 0);
    const d = frameServerDefaults;
    this.options = options;
    this.log = options.logger ?? silentLogger;
    this.frameDeadlineMs = options.frameDeadlineMs ?? d.frameDeadlineMs;
    this.replyPendingMaxBytes =
      options.replyPendingMaxBytesPerConnection ?? d.replyPendingMaxBytesPerConnection;
    const budgetBytes = options.bufferedInputMaxBytes ?? d.bufferedInputMaxBytes;
    assert(this.frameDeadlineMs > 0 && this.replyPendingMaxBytes > 0);
    assert(budgetBytes >= options.frameSizeMaxBytes, 'the input budget must hold one maximum frame');
    this.budget = new InputBudget(
      budgetBytes,
      d.smallFrameSizeMaxBytes,
      Math.floor(budgetBytes * d.smallFrameReserveFraction),
    );
    this.deadlineSweep = new DeadlineSweep(
      Math.max(1, Math.min(d.frameDeadlineSweepMsMax, Math.floor(this.frameDeadlineMs / 4))),
      (now) => this.expireFrames(now),
    );
    this.listener = createListener(options.tls, options.connectionCountMax, (socket) =>
      this.onConnection(socket),
    );
    this.server = this.listener.server;
    this.server.on('error', (err) => this.log.error({ err }, 'frame server error'));
  }

  /** Binds and listens; resolves with the bound address (the real port when `port` was 0). */
  async listen(): Promise<{ host: string; port: number }> {
    const bound = await listenOn(this.server, this.options.port, this.options.host);
    this.listening = true;
    return bound;
  }

  /** TLS handshakes refused so far (a plaintext client on a TLS port, a bad certificate). */
  tlsFailureCount(): number {
    return this.listener.tlsFailureCount();
  }

  /** Stops accepting new connections; those open stay (drain: see stopAccepting's caller). */
  stopAccepting(): void {
    if (this.listening) this.server.close();
    this.listening = false;
  }

  /**
   * Ends every connection gracefully: what was sent is flushed, then the socket is half-closed
   * (destroyed after closeGraceMs if the client does not close its side).
   */
  endConnections(): void {
    for (const conn of this.connections.values()) conn.close();
  }

  /** Stops accepting, destroys every connection, resolves when the listener is closed. */
  close(): Promise<void> {
    this.deadlineSweep.stop();
    for (const conn of this.connections.values()) conn.destroy();
    if (!this.listening) return Promise.resolve();
    this.listening = false;
    return new Promise((resolve) => this.server.close(() => resolve()));
  }

  connectionCount(): number {
    return this.connections.size;
  }

  /** Frames in flight over all connections (for metrics and tests). */
  inFlightCount(): number {
    let n = 0;
    for (const conn of this.connections.values()) n += conn.inFlightCount();
    return n;
  }

  /** Date.now() when any client last sent bytes (0: no connection). */
  lastClientDataMs(): number {
    let last = 0;
    for (const conn of this.connections.values()) last = Math.max(last, conn.lastDataMs);
    return last;
  }

  /** The input budget's figures (for METRICS). */
  budgetStats(): InputBudgetStats {
    return this.budget.stats();
  }

  /** @internal a connection began receiving a frame: its deadline runs from now. */
  frameStarted(conn: ServerConnection): void {
    conn.frameStartedMs = Date.now();
    this.receiving.add(conn);
    this.deadlineSweep.ensure();
  }

  /** @internal a connection has no frame in progress any more. */
  frameDone(conn: ServerConnection): void {
    conn.frameStartedMs = undefined;
    this.receiving.delete(conn);
  }

  /**
   * @internal The budget is spent, and replies count in it: the connection with the most unsent
   * reply bytes (at least `slowReaderBytesMin`) is closed, as NATS closes a "slow consumer", so
   * clients that do not read cannot lock everyone else out (new connections and large frames are
   * refused while the budget is spent). True when one was closed (its bytes come back on close).
   */
  dropSlowestReader(): boolean {
    let slowest: ServerConnection | undefined;
    for (const conn of this.connections.values()) {
      if (conn.closed || conn.unsentReplyBytes < frameServerDefaults.slowReaderBytesMin) continue;
      if (slowest === undefined || conn.unsentReplyBytes > slowest.unsentReplyBytes) slowest = conn;
    }
    if (slowest === undefined) return false;
    this.log.warn(
      { conn: slowest.id, remote: slowest.remoteAddress, unsentReplyBytes: slowest.unsentReplyBytes },
      "the node's buffered-input budget is spent and this client does not read its replies; closing the connection",
    );
    slowest.destroy();
    return true;
  }

  /** @internal answers a frame the budget refused: the handler's onRefused, else a text ERR. */
  refuse(conn: ServerConnection, head: Buffer, error: WalrusError): void {
    if (this.options.onRefused !== undefined) this.options.onRefused(conn, head, error);
    else conn.send(encodeTextError(error));
  }

  private expireFrames(nowMs: number): boolean {
    for (const conn of [...this.receiving]) {
      // A connection this server stopped reading (backpressure) cannot finish its frame: its
      // deadline runs again from when reading resumes.
      if (conn.readingPaused) {
        conn.frameStartedMs = nowMs;
        continue;
      }
      if (nowMs - (conn.frameStartedMs ?? nowMs) < this.frameDeadlineMs) continue;
      this.log.warn(
        { conn: conn.id, remote: conn.remoteAddress, deadlineMs: this.frameDeadlineMs },
        'a frame did not arrive in time; closing the connection',
      );
      this.frameDone(conn);
      conn.failDeadline(this.frameDeadlineMs);
    }
    return this.receiving.size > 0;
  }

  /** @internal called by a connection when its socket has closed. */
  forget(conn: ServerConnection): void {
    this.frameDone(conn);
    if (!this.connections.delete(conn.id)) return;
    try {
      this.options.onClose?.(conn);
    } catch (err) {
      this.log.error({ conn: conn.id, err }, 'onClose handler threw');
    }
  }

  private onConnection(socket: net.Socket): void {
    const full = this.connections.size >= this.options.connectionCountMax;
    // A budget spent on replies that clients do not read: the slowest of them makes room.
    const spent = this.budget.spent() && !this.dropSlowestReader() && this.budget.refuseConnection();
    if (full || spent) {
      socket.on('error', () => {});
      socket.resume(); // discard what it sends, so that its close is seen
      const message = full
        ? `the node has reached its limit of ${this.options.connectionCountMax} client connections`
        : `the node's buffered-input budget of ${this.budget.bytesMax} bytes is spent; retry later`;
      this.log.warn({ remote: socket.remoteAddress, limit: this.options.connectionCountMax }, message);
      const reply = encodeTextError(new WalrusError(ErrorCode.BUSY, message));
      socket.end(Buffer.concat([encodeFrameHeader(reply.length), reply]));
      setTimeout(() => socket.destroy(), frameServerDefaults.closeGraceMs).unref();
      return;
    }
    const id = this.connectionIdNext;
    this.connectionIdNext += 1;
    this.connections.set(id, new ServerConnection(this, socket, id));
  }
}
