/**
 * A socket the test drives by hand, for FramedConnection's `connect` option: the test decides when
 * it connects, which bytes arrive in which chunks, when it errors or closes and how backed up it
 * is, and reads back every write. Only what FramedConnection uses of net.Socket is here.
 */
import { EventEmitter } from 'node:events';
import type net from 'node:net';
import { FrameDecoder } from '../../../node/protocol/frame-decoder.js';

export class ScriptedSocket extends EventEmitter {
  /** Every write (and end) call's bytes, in order. */
  readonly writes: Buffer[] = [];
  destroyed = false;
  closed = false;
  ended = false;
  writableLength = 0;
  idleTimeoutMs: number | undefined;

  setNoDelay(): this {
    return this;
  }

  setKeepAlive(): this {
    return this;
  }

  setTimeout(ms: number): this {
    this.idleTimeoutMs = ms;
    return this;
  }

  write(bytes: Uint8Array): boolean {
    if (this.destroyed || this.ended) throw new Error('write after the socket was ended');
    this.writes.push(Buffer.from(bytes));
    return true;
  }

  end(bytes?: Uint8Array): this {
    if (bytes !== undefined) this.write(bytes);
    this.ended = true;
    return this;
  }

  destroy(): this {
    if (this.destroyed) return this;
    this.destroyed = true;
    setImmediate(() => {
      this.closed = true;
      this.emit('close', false);
    });
    return this;
  }

  // ---- what the test does -------------------------------------------------------------------------

  asSocket(): net.Socket {
    return this as unknown as net.Socket;
  }

  connectNow(): void {
    this.emit('connect');
  }

  feed(bytes: Uint8Array): void {
    this.emit('data', Buffer.from(bytes));
  }

  /** The peer closes (after an error, when given). */
  hangUp(err?: NodeJS.ErrnoException): void {
    if (err !== undefined) this.emit('error', err);
    this.destroy();
  }

  /** Every frame payload written so far, decoded. */
  frames(): Buffer[] {
    const decoder = new FrameDecoder(64 * 1024 * 1024);
    const { frames, error } = decoder.push(Buffer.concat(this.writes));
    if (error !== undefined || decoder.hasPartialFrame())
      throw new Error('the connection wrote broken framing');
    return frames.map((f) => Buffer.from(f));
  }
}
