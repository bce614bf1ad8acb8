/**
 * A TCP server for length-prefixed framed protocols, with a limit on everything: frame size,
 * connections, frames in flight per connection (backpressure), bytes waiting to be written, and
 * idle time. It knows framing, not protocols: every complete frame goes to `onFrame`, and the
 * handler answers with exactly one `send()` per frame, in any order and at any later time.
 *
 * Why these limits: a node must survive any client. A client that sends faster than the node
 * answers is slowed down (the server stops reading its socket once `inFlightMaxPerConnection`
 * frames wait for replies, so TCP flow control pushes back); a client that never reads its replies
 * is disconnected once `writeBufferMaxBytes` wait for it; a broken length prefix closes that one
 * connection after one framed `ERR` (a byte stream cannot be resynchronised).
 *
 * Writes are coalesced: replies sent in one event-loop turn go out in one corked writev.
 */
import type { Logger } from '../log.js';
import assert from 'node:assert';
import net from 'node:net';
import { ErrorCode, WalrusError } from '../protocol/error-codes.js';
import { encodeFrameHeader } from '../protocol/frame.js';
import { FrameDecoder } from '../protocol/frame-decoder.js';
import { protocolLimits } from '../protocol/limits.js';
import { encodeTextError } from '../protocol/text-codec.js';
import { listenOn } from './listen.js';

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
  /** Frames received minus replies sent; at this count the server stops reading the socket. */
  readonly inFlightMaxPerConnection: number;
  /** Bytes queued for a peer that does not read; above it the connection is destroyed. */
  readonly writeBufferMaxBytes: number;
  /** Called once per received frame; the payload may be a view into a receive buffer (copy to keep). */
  onFrame(conn: FrameConnection, payload: Buffer): void;
  /** Called when a connection has closed (for cancelling its long polls); optional. */
  onClose?(conn: FrameConnection): void;
  readonly logger?: TransportLogger;
}

export interface FrameConnection {
  readonly id: number;
  readonly remoteAddress: string;
  /** Sends one reply frame (payload without length prefix). A send after close is ignored. */
  send(payload: Uint8Array): void;
  close(): void;
  readonly closed: boolean;
}

export const frameServerDefaults = {
  frameSizeMaxBytes: protocolLimits.frameSizeMaxBytes,
  connectionCountMax: 1024,
  idleTimeoutMs: 5 * 60_000,
  inFlightMaxPerConnection: 1024,
  writeBufferMaxBytes: 64 * 1024 * 1024,
  /** A connection being closed after a final ERR is destroyed after this long if the peer does not read it. */
  closeGraceMs: 2_000,
} as const;

const silentLogger: TransportLogger = { info() {}, warn() {}, error() {} };

class ServerConnection implements FrameConnection {
  readonly id: number;
  readonly remoteAddress: string;
  closed = false;
  private readonly decoder: FrameDecoder;
  /**
   * Frames received and not yet handed to onFrame (held while in flight is at its limit), from
   * index `heldHead` on; bounded by the frames of one chunk because reading pauses while any wait.
   */
  private held: Buffer[] = [];
  private heldHead = 0;
  private inFlight = 0;
  private corked = false;
  /** Reply bytes of this turn, written as one buffer on the next tick. */
  private outgoing: Uint8Array[] = [];
  private outgoingBytes = 0;
  private paused = false;
  private delivering = false;

  constructor(
    private readonly server: FrameServer,
    private readonly socket: net.Socket,
    id: number,
  ) {
    this.id = id;
    this.remoteAddress = `${socket.remoteAddress ?? '?'}:${socket.remotePort ?? 0}`;
    this.decoder = new FrameDecoder(server.options.frameSizeMaxBytes);
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

  private heldCount(): number {
    return this.held.length - this.heldHead;
  }

  send(payload: Uint8Array): void {
    if (this.closed) return;
    if (this.inFlight > 0) this.inFlight -= 1;
    // Replies of one turn leave in ONE write of one buffer: many small writev chunks cost more in
    // Node's stream layer than the syscall itself (profiled at 256 replies per turn).
    if (!this.corked) {
      this.corked = true;
      process.nextTick(() => this.flush());
    }
    this.outgoing.push(encodeFrameHeader(payload.length), payload);
    this.outgoingBytes += 4 + payload.length;
    if (this.socket.writableLength + this.outgoingBytes > this.server.options.writeBufferMaxBytes) {
      this.server.log.warn(
        { conn: this.id, remote: this.remoteAddress, bufferedBytes: this.socket.writableLength },
        'client does not read its replies; closing the connection',
      );
      this.destroy();
      return;
    }
    this.deliverHeld();
  }

  private flush(): void {
    this.corked = false;
    if (this.outgoing.length === 0) return;
    const chunks = this.outgoing;
    const total = this.outgoingBytes;
    this.outgoing = [];
    this.outgoingBytes = 0;
    if (!this.socket.destroyed)
      this.socket.write(chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks, total));
  }

  close(): void {
    if (this.closed) return;
    this.flush();
    this.closed = true;
    this.socket.end();
    const timer = setTimeout(() => this.socket.destroy(), frameServerDefaults.closeGraceMs);
    timer.unref();
  }

  destroy(): void {
    this.closed = true;
    this.socket.destroy();
  }

  private onData(chunk: Buffer): void {
    if (this.closed) return;
    const { frames, error } = this.decoder.push(chunk);
    for (const frame of frames) this.held.push(frame);
    this.deliverHeld();
    if (error !== undefined) this.failFraming(error);
  }

  private deliverHeld(): void {
    // A handler that replies synchronously calls send() → deliverHeld() from inside onFrame; the
    // outer loop picks up the freed slot, so no recursion that grows with the number of held frames.
    if (this.delivering) return;
    this.delivering = true;
    const limit = this.server.options.inFlightMaxPerConnection;
    try {
      while (this.heldCount() > 0 && this.inFlight < limit && !this.closed) {
        const frame = this.held[this.heldHead]!;
        this.heldHead += 1;
        if (this.heldHead === this.held.length) {
          this.held = [];
          this.heldHead = 0;
        }
        this.inFlight += 1;
        try {
          this.server.options.onFrame(this, frame);
        } catch (err) {
          this.server.log.error({ conn: this.id, err }, 'frame handler threw; closing the connection');
          this.destroy();
          return;
        }
      }
    } finally {
      this.delivering = false;
    }
    const shouldPause = this.heldCount() > 0;
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

  private onIdle(): void {
    if (this.inFlight > 0 || this.heldCount() > 0) {
      this.socket.setTimeout(this.server.options.idleTimeoutMs);
      return;
    }
    this.server.log.info({ conn: this.id, remote: this.remoteAddress }, 'closing idle client connection');
    this.destroy();
  }

  private onSocketClose(): void {
    this.closed = true;
    this.held = [];
    this.heldHead = 0;
    this.server.forget(this);
  }
}

export class FrameServer {
  readonly options: FrameServerOptions;
  readonly log: TransportLogger;
  private readonly server: net.Server;
  private readonly connections = new Map<number, ServerConnection>();
  private connectionIdNext = 1;
  private listening = false;

  constructor(options: FrameServerOptions) {
    assert(options.frameSizeMaxBytes > 0 && options.frameSizeMaxBytes < 2 ** 32);
    assert(options.connectionCountMax > 0 && options.inFlightMaxPerConnection > 0);
    assert(options.idleTimeoutMs > 0 && options.writeBufferMaxBytes > 0);
    this.options = options;
    this.log = options.logger ?? silentLogger;
    this.server = net.createServer({ pauseOnConnect: false }, (socket) => this.onConnection(socket));
    this.server.on('error', (err) => this.log.error({ err }, 'frame server error'));
  }

  /** Binds and listens; resolves with the bound address (the real port when `port` was 0). */
  async listen(): Promise<{ host: string; port: number }> {
    const bound = await listenOn(this.server, this.options.port, this.options.host);
    this.listening = true;
    return bound;
  }

  /** Stops accepting, destroys every connection, resolves when the listener is closed. */
  close(): Promise<void> {
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

  /** @internal called by a connection when its socket has closed. */
  forget(conn: ServerConnection): void {
    if (!this.connections.delete(conn.id)) return;
    try {
      this.options.onClose?.(conn);
    } catch (err) {
      this.log.error({ conn: conn.id, err }, 'onClose handler threw');
    }
  }

  private onConnection(socket: net.Socket): void {
    if (this.connections.size >= this.options.connectionCountMax) {
      socket.on('error', () => {});
      socket.resume(); // discard what it sends, so that its close is seen
      const message = `the node has reached its limit of ${this.options.connectionCountMax} client connections`;
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
