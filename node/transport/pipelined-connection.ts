/**
 * One client-side binary-protocol connection with pipelining: many requests in flight, replies
 * matched by request id in any order. A layer over one FramedConnection at a time
 * (framed-connection.ts owns the socket, the framing, per-turn write batching, the in-flight table
 * with its bound and timeouts, text-frame refusals and failing what is in flight). This layer adds
 * what only the client has:
 *
 * - lazy connect: on the first request, and again on the next request after a disconnect;
 * - the wait queue: beyond `inFlightMax` requests wait in a queue of `waitQueueMax` (beyond that
 *   `BUSY`), each under its own time limit (`TIMEOUT`) and abort signal;
 * - backoff-fast-fail: after a failed connect, requests fail at once with `UNAVAILABLE` until a
 *   capped exponential backoff has passed, so a caller can move on to another node;
 * - the idle close (`idleTimeoutMs`), before the server's own.
 *
 * On disconnect every request in flight is rejected `UNAVAILABLE` (`sent: true`: the outcome is
 * unknown; `sent: false` if the connection never opened) and every queued one `UNAVAILABLE`
 * (`sent: false`). A text frame from the server (e.g. `ERR BUSY` at its connection limit,
 * `ERR FRAME_TOO_LARGE`) ends the connection with that code.
 */
import assert from 'node:assert';
import type tls from 'node:tls';
import { silentLogger } from '../log.js';
import { readRequestId } from '../protocol/binary-header.js';
import { ErrorCode, WalrusError } from '../protocol/error-codes.js';
import { protocolLimits } from '../protocol/limits.js';
import { DeadlineSweep } from './deadline-sweep.js';
import {
  type CloseReason,
  FramedConnection,
  type FramedRequest,
  framedConnectionLimits,
  type Reply,
} from './framed-connection.js';
import { frameServerDefaults, type TransportLogger } from './frame-server.js';
import { ClientAuthHandshake } from './client-auth-handshake.js';
import { TransportError } from './transport-error.js';

export interface PipelinedConnectionOptions {
  readonly host: string;
  readonly port: number;
  /** Time to establish the TCP connection. Default 5000. */
  readonly connectTimeoutMs?: number;
  /** Default per-request time limit, from the call to the reply. Default 30000. */
  readonly requestTimeoutMs?: number;
  /** Requests written and not answered. Default 256. */
  readonly inFlightMax?: number;
  /** Requests waiting for an in-flight slot; one more is rejected BUSY. Default 4096. */
  readonly waitQueueMax?: number;
  /** Largest reply frame accepted. Default protocolLimits.frameSizeMaxBytes. */
  readonly frameSizeMaxBytes?: number;
  /** First reconnect backoff after a failed connect; doubles per failure. Default 50. */
  readonly reconnectBackoffMsMin?: number;
  /** Cap of the reconnect backoff. Default 2000. */
  readonly reconnectBackoffMsMax?: number;
  /**
   * With nothing in flight for this long the connection closes itself (and reconnects on the next
   * request). Shorter than the server's idle timeout (5 min), so that the server never closes a
   * connection just as a request is sent on it, which would make that request's outcome unknown.
   * Default 240000.
   */
  readonly idleTimeoutMs?: number;
  /**
   * The client token this connection proves (an `authenticate` request) before any other request,
   * for nodes started with client tokens, or a function that gives it, read at each connect (a
   * gateway replaces its token on SIGHUP: connections made afterwards prove the new one). Default: none.
   */
  readonly token?: string | (() => string);
  /** TLS to the node's client port (CA file contents, and cert/key for mutual TLS). Default: plain TCP. */
  readonly tls?: tls.ConnectionOptions;
  readonly logger?: TransportLogger;
}

export interface RequestOptions {
  readonly signal?: AbortSignal;
  /** Overrides the connection's requestTimeoutMs. */
  readonly timeoutMs?: number;
}

export const pipelinedConnectionDefaults = {
  connectTimeoutMs: 5_000,
  requestTimeoutMs: 30_000,
  inFlightMax: 256,
  waitQueueMax: 4_096,
  reconnectBackoffMsMin: 50,
  reconnectBackoffMsMax: 2_000,
  keepAliveInitialDelayMs: framedConnectionLimits.keepAliveInitialDelayMs,
  idleTimeoutMs: 240_000,
  /** How often request deadlines are checked: a request times out at most this late. */
  timeoutSweepMs: framedConnectionLimits.timeoutSweepMs,
  /** Exponent cap of the backoff doubling (reconnectBackoffMsMax caps the backoff long before). */
  backoffDoublingCountMax: 20,
} as const;

// The client closes an idle connection before the server would, so that a request never races the
// server's idle close; and a deadline is checked well within the shortest time limit.
assert(pipelinedConnectionDefaults.idleTimeoutMs < frameServerDefaults.idleTimeoutMs);
assert(pipelinedConnectionDefaults.timeoutSweepMs * 10 <= pipelinedConnectionDefaults.requestTimeoutMs);
assert(
  pipelinedConnectionDefaults.reconnectBackoffMsMin <= pipelinedConnectionDefaults.reconnectBackoffMsMax,
);

/** A request waiting for an in-flight slot; it has no request id yet. */
interface Waiting {
  readonly request: FramedRequest;
  cleanupAbort: (() => void) | undefined;
}

type State = 'idle' | 'connecting' | 'open' | 'closed';

export class PipelinedConnection {
  readonly address: string;
  private readonly o: Required<Omit<PipelinedConnectionOptions, 'logger' | 'token' | 'tls'>>;
  private readonly token: string | (() => string) | undefined;
  private readonly tls: tls.ConnectionOptions | undefined;
  private readonly log: TransportLogger;
  /** The connection of the current attempt; undefined while idle or once closed. */
  private conn: FramedConnection | undefined;
  private closed = false;
  private readonly waiting: Waiting[] = [];
  private readonly waitSweep = new DeadlineSweep(pipelinedConnectionDefaults.timeoutSweepMs, (now) =>
    this.expireWaiting(now),
  );
  private connectFailureCount = 0;
  private reconnectNotBeforeMs = 0;

  constructor(options: PipelinedConnectionOptions) {
    const d = pipelinedConnectionDefaults;
    this.o = {
      host: options.host,
      port: options.port,
      connectTimeoutMs: options.connectTimeoutMs ?? d.connectTimeoutMs,
      requestTimeoutMs: options.requestTimeoutMs ?? d.requestTimeoutMs,
      inFlightMax: options.inFlightMax ?? d.inFlightMax,
      waitQueueMax: options.waitQueueMax ?? d.waitQueueMax,
      frameSizeMaxBytes: options.frameSizeMaxBytes ?? protocolLimits.frameSizeMaxBytes,
      reconnectBackoffMsMin: options.reconnectBackoffMsMin ?? d.reconnectBackoffMsMin,
      reconnectBackoffMsMax: options.reconnectBackoffMsMax ?? d.reconnectBackoffMsMax,
      idleTimeoutMs: options.idleTimeoutMs ?? d.idleTimeoutMs,
    };
    assert(this.o.inFlightMax > 0 && this.o.inFlightMax <= 2 ** 31);
    assert(this.o.waitQueueMax >= 0 && this.o.connectTimeoutMs > 0 && this.o.requestTimeoutMs > 0);
    assert(this.o.reconnectBackoffMsMin > 0 && this.o.reconnectBackoffMsMax >= this.o.reconnectBackoffMsMin);
    this.address = `${this.o.host}:${this.o.port}`;
    this.log = options.logger ?? silentLogger;
    this.token = options.token;
    this.tls = options.tls;
  }

  get state(): State {
    if (this.closed) return 'closed';
    const s = this.conn?.state;
    return s === undefined || s === 'closed' ? 'idle' : s === 'open' ? 'open' : 'connecting';
  }

  /** Requests written and not yet answered. */
  inFlightCount(): number {
    return this.conn?.inFlightCount ?? 0;
  }

  /** Requests waiting for an in-flight slot. */
  waitingCount(): number {
    return this.waiting.length;
  }

  /**
   * Sends one request and resolves with its reply payload (a binary message with the same request
   * id; decode it with decodeReply). `payload` is an encoded request under any request id: the
   * connection sends a copy under the id it gives it, and never changes `payload` (so retries may
   * send it again). Rejects with TransportError (UNAVAILABLE, TIMEOUT, BUSY) or the signal's
   * reason when aborted.
   */
  request(payload: Uint8Array, options: RequestOptions = {}): Promise<Buffer> {
    return new Promise<Buffer>((resolve, reject) => {
      if (this.closed) {
        reject(new TransportError(ErrorCode.UNAVAILABLE, `connection to ${this.address} is closed`, false));
        return;
      }
      const signal = options.signal;
      if (signal?.aborted) {
        reject(signal.reason);
        return;
      }
      if (this.conn === undefined && Date.now() < this.reconnectNotBeforeMs) {
        const waitMs = this.reconnectNotBeforeMs - Date.now();
        const message = `connecting to ${this.address} failed recently; next attempt in ${waitMs} ms`;
        reject(new TransportError(ErrorCode.UNAVAILABLE, message, false));
        return;
      }
      if (this.inFlightCount() >= this.o.inFlightMax && this.waiting.length >= this.o.waitQueueMax) {
        const message = `${this.inFlightCount()} requests in flight and ${this.waiting.length} waiting on ${this.address}`;
        reject(new TransportError(ErrorCode.BUSY, message, false));
        return;
      }
      const timeoutMs = options.timeoutMs ?? this.o.requestTimeoutMs;
      const request: FramedRequest = {
        payload,
        tag: 0,
        deadlineMs: Date.now() + timeoutMs,
        timeoutMs,
        signal,
        resolve,
        reject,
      };
      const conn = this.conn ?? this.connect();
      if (conn.inFlightCount < this.o.inFlightMax) conn.request(request);
      else this.enqueue(request);
    });
  }

  /** Rejects everything pending with UNAVAILABLE and closes the socket; later requests fail. */
  close(): Promise<void> {
    if (this.closed) return Promise.resolve();
    this.closed = true;
    const message = `connection to ${this.address} was closed`;
    this.failWaiting(message);
    const conn = this.conn;
    this.conn = undefined;
    return conn?.close(message) ?? Promise.resolve();
  }

  // ---- internals ---------------------------------------------------------------------------------

  private connect(): FramedConnection {
    const conn = new FramedConnection({
      host: this.o.host,
      port: this.o.port,
      label: this.address,
      connectTimeoutMs: this.o.connectTimeoutMs,
      frameSizeMaxBytes: this.o.frameSizeMaxBytes,
      inFlightMax: this.o.inFlightMax,
      flush: 'setImmediate',
      idleTimeoutMs: this.o.idleTimeoutMs,
      ...(this.token === undefined
        ? {}
        : { handshake: new ClientAuthHandshake(typeof this.token === 'string' ? this.token : this.token()) }),
      ...(this.tls === undefined ? {} : { tls: this.tls }),
      readReply: (frame) => this.readReply(frame),
      events: {
        onOpen: () => {
          this.connectFailureCount = 0;
        },
        onClose: (err, reason) => this.onClose(err, reason),
        onSlotFree: () => this.pumpWaiting(),
        onIdle: () => this.onIdle(),
      },
    });
    this.conn = conn;
    return conn;
  }

  private readReply(frame: Buffer): Reply {
    const requestId = readRequestId(frame);
    if (requestId === undefined) {
      throw new WalrusError(ErrorCode.UNAVAILABLE, `short binary frame from ${this.address}`);
    }
    return { requestId, tag: 0, outcome: frame };
  }

  private onClose(err: TransportError, reason: CloseReason): void {
    this.conn = undefined;
    if (reason === 'connect') {
      this.connectFailureCount += 1;
      const doublings = Math.min(
        this.connectFailureCount - 1,
        pipelinedConnectionDefaults.backoffDoublingCountMax,
      );
      const backoffMs = Math.min(this.o.reconnectBackoffMsMax, this.o.reconnectBackoffMsMin * 2 ** doublings);
      this.reconnectNotBeforeMs = Date.now() + backoffMs;
      this.log.info({ addr: this.address, err: err.message, backoffMs }, 'connect failed');
    } else {
      this.log.info({ addr: this.address, code: err.code, err: err.message }, 'connection ended');
    }
    this.failWaiting(err.message);
  }

  private onIdle(): void {
    const conn = this.conn;
    if (conn === undefined || this.waiting.length > 0) return;
    this.log.info({ addr: this.address }, 'closing idle connection');
    this.conn = undefined;
    void conn.close(`idle connection to ${this.address} closed`);
  }

  private enqueue(request: FramedRequest): void {
    const entry: Waiting = { request, cleanupAbort: undefined };
    const signal = request.signal;
    if (signal !== undefined) {
      const onAbort = (): void => {
        this.unqueue(entry);
        request.reject(signal.reason);
      };
      signal.addEventListener('abort', onAbort, { once: true });
      entry.cleanupAbort = () => signal.removeEventListener('abort', onAbort);
    }
    this.waiting.push(entry);
    this.waitSweep.ensure();
  }

  private unqueue(entry: Waiting): void {
    const i = this.waiting.indexOf(entry);
    if (i !== -1) this.waiting.splice(i, 1);
    entry.cleanupAbort?.();
  }

  /** A slot came free: hand waiting requests to the connection, oldest first. */
  private pumpWaiting(): void {
    const conn = this.conn;
    while (this.waiting.length > 0 && conn !== undefined && conn.inFlightCount < this.o.inFlightMax) {
      const entry = this.waiting.shift()!;
      entry.cleanupAbort?.();
      conn.request(entry.request);
    }
  }

  private expireWaiting(nowMs: number): boolean {
    for (const entry of this.waiting.filter((e) => e.request.deadlineMs <= nowMs)) {
      this.unqueue(entry);
      const message = `no reply from ${this.address} within ${entry.request.timeoutMs} ms`;
      entry.request.reject(new TransportError(ErrorCode.TIMEOUT, message, false));
    }
    return this.waiting.length > 0;
  }

  /** Nothing queued reached a server: each may be retried elsewhere. */
  private failWaiting(message: string): void {
    const notSent = new TransportError(ErrorCode.UNAVAILABLE, message, false);
    for (const entry of this.waiting.splice(0)) {
      entry.cleanupAbort?.();
      entry.request.reject(notSent);
    }
    this.waitSweep.stop();
  }
}
