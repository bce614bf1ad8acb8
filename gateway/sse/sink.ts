/**
 * Where SSE bytes go. Two sinks: the Node response itself (the production path: written straight to
 * `c.env.outgoing`, which keeps fan-out at raw-node cost) and a web ReadableStream (for
 * `app.request()` in tests and non-Node runtimes). Both report how many bytes are queued so the hub
 * can bound every subscriber's buffer.
 */
import type { ServerResponse } from 'node:http';
import { sseCloseGraceMs } from '../limits.js';

export interface SseSink {
  /** Queues bytes; never blocks. Ignored once closed. */
  write(chunk: Uint8Array): void;
  /** Bytes queued and not yet handed to the kernel. */
  queuedBytes(): number;
  /** Resolves when the queue is empty again or the sink closed. */
  waitForDrain(): Promise<void>;
  /** Ends the stream after what is queued (destroyed if it does not drain in time). */
  end(): void;
  readonly closed: boolean;
  /** Called once when the stream is closed by either side. */
  onClose(listener: () => void): void;
}

export class NodeResponseSink implements SseSink {
  private readonly res: ServerResponse;
  private isClosed = false;
  private readonly closeListeners: (() => void)[] = [];

  constructor(res: ServerResponse, headers: Record<string, string>) {
    this.res = res;
    res.socket?.setNoDelay(true);
    res.writeHead(200, headers);
    res.flushHeaders();
    res.once('close', () => this.markClosed());
  }

  get closed(): boolean {
    return this.isClosed;
  }

  write(chunk: Uint8Array): void {
    if (!this.isClosed && !this.res.writableEnded) this.res.write(chunk);
  }

  queuedBytes(): number {
    return this.res.writableLength;
  }

  waitForDrain(): Promise<void> {
    if (this.isClosed || this.res.writableLength === 0) return Promise.resolve();
    return new Promise((resolve) => {
      const done = (): void => {
        this.res.off('drain', done);
        this.res.off('close', done);
        resolve();
      };
      this.res.once('drain', done);
      this.res.once('close', done);
    });
  }

  end(): void {
    if (this.res.writableEnded) return;
    // An ended tail closes its connection too: the client reconnects on a fresh one anyway, and
    // a kept-alive idle socket would only hold a file descriptor.
    this.res.once('finish', () => this.res.socket?.end());
    this.res.end();
    const timer = setTimeout(() => this.res.destroy(), sseCloseGraceMs);
    timer.unref();
    this.res.once('close', () => clearTimeout(timer));
  }

  onClose(listener: () => void): void {
    if (this.isClosed) listener();
    else this.closeListeners.push(listener);
  }

  private markClosed(): void {
    if (this.isClosed) return;
    this.isClosed = true;
    for (const listener of this.closeListeners.splice(0)) listener();
  }
}

/** A sink backed by a ReadableStream; queued bytes are what the reader has not pulled yet. */
export class WebStreamSink implements SseSink {
  readonly stream: ReadableStream<Uint8Array>;
  private controller!: ReadableStreamDefaultController<Uint8Array>;
  private isClosed = false;
  private queued = 0;
  private readonly closeListeners: (() => void)[] = [];
  private drainWaiters: (() => void)[] = [];

  constructor() {
    this.stream = new ReadableStream<Uint8Array>(
      {
        start: (controller) => {
          this.controller = controller;
        },
        pull: () => {
          this.queued = Math.max(0, -(this.controller.desiredSize ?? 0));
          if (this.queued === 0) for (const w of this.drainWaiters.splice(0)) w();
        },
        cancel: () => this.markClosed(),
      },
      new ByteLengthQueuingStrategy({ highWaterMark: 0 }),
    );
  }

  get closed(): boolean {
    return this.isClosed;
  }

  write(chunk: Uint8Array): void {
    if (this.isClosed) return;
    this.controller.enqueue(chunk);
    this.queued = Math.max(0, -(this.controller.desiredSize ?? 0));
  }

  queuedBytes(): number {
    return this.queued;
  }

  waitForDrain(): Promise<void> {
    if (this.isClosed || this.queued === 0) return Promise.resolve();
    return new Promise((resolve) => this.drainWaiters.push(resolve));
  }

  end(): void {
    if (this.isClosed) return;
    this.controller.close();
    this.markClosed();
  }

  onClose(listener: () => void): void {
    if (this.isClosed) listener();
    else this.closeListeners.push(listener);
  }

  private markClosed(): void {
    if (this.isClosed) return;
    this.isClosed = true;
    for (const w of this.drainWaiters.splice(0)) w();
    for (const listener of this.closeListeners.splice(0)) listener();
  }
}
