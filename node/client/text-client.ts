/**
 * A small client of the Walrus text protocol (REGISTER, PUT, GET, STATE, METRICS) for the CLI,
 * health checks and tests. The text protocol has no request ids: replies come back in command
 * order, so a `TextClient` matches them first-in first-out, keeps at most `pendingMax` commands
 * outstanding, and closes the connection on a timeout (after a lost reply the order is unknown).
 */
import assert from 'node:assert';
import net from 'node:net';
import { ErrorCode, WalrusError } from '../protocol/error-codes.js';
import { encodeFrame } from '../protocol/frame.js';
import { FrameDecoder } from '../protocol/frame-decoder.js';
import { protocolLimits } from '../protocol/limits.js';
import { parseNodeAddress } from './node-address.js';

export const textClientDefaults = {
  timeoutMs: 10_000,
  /** Commands sent and not yet answered on one connection. */
  pendingMax: 1_024,
} as const;

export interface TextClientOptions {
  /** Per-command time limit (connect included for the first). Default 10000. */
  readonly timeoutMs?: number;
  readonly pendingMax?: number;
}

interface PendingCommand {
  readonly resolve: (reply: Buffer) => void;
  readonly reject: (err: unknown) => void;
  readonly timer: NodeJS.Timeout;
}

export class TextClient {
  readonly address: string;
  private readonly socket: net.Socket;
  private readonly decoder = new FrameDecoder(protocolLimits.frameSizeMaxBytes);
  private readonly pending: PendingCommand[] = [];
  private readonly timeoutMs: number;
  private readonly pendingMax: number;
  private failure: WalrusError | undefined;

  constructor(addr: string, options: TextClientOptions = {}) {
    const { host, port, key } = parseNodeAddress(addr);
    this.address = key;
    this.timeoutMs = options.timeoutMs ?? textClientDefaults.timeoutMs;
    this.pendingMax = options.pendingMax ?? textClientDefaults.pendingMax;
    assert(this.timeoutMs > 0 && this.pendingMax > 0);
    this.socket = net.connect({ host, port });
    this.socket.setNoDelay(true);
    this.socket.on('data', (chunk: Buffer) => this.onData(chunk));
    this.socket.on('error', (err) =>
      this.fail(new WalrusError(ErrorCode.UNAVAILABLE, `${key}: ${err.message}`)),
    );
    this.socket.on('close', () =>
      this.fail(new WalrusError(ErrorCode.UNAVAILABLE, `connection to ${key} closed`)),
    );
  }

  /** Sends one command (e.g. `PUT logs hello`) and resolves with the raw reply payload. */
  sendRaw(command: string | Uint8Array): Promise<Buffer> {
    return new Promise((resolve, reject) => {
      if (this.failure !== undefined) {
        reject(this.failure);
        return;
      }
      if (this.pending.length >= this.pendingMax) {
        reject(new WalrusError(ErrorCode.BUSY, `${this.pendingMax} text commands are already outstanding`));
        return;
      }
      const payload = typeof command === 'string' ? Buffer.from(command, 'utf8') : command;
      const timer = setTimeout(() => {
        this.fail(
          new WalrusError(ErrorCode.TIMEOUT, `no reply from ${this.address} within ${this.timeoutMs} ms`),
        );
      }, this.timeoutMs);
      this.pending.push({ resolve, reject, timer });
      this.socket.write(encodeFrame(payload));
    });
  }

  /**
   * Sends one command and resolves with the reply as a UTF-8 string (`OK …`, `EMPTY`, `ERR …`, or
   * for STATE and METRICS the JSON object alone).
   */
  async send(command: string | Uint8Array): Promise<string> {
    return (await this.sendRaw(command)).toString('utf8');
  }

  close(): Promise<void> {
    this.fail(new WalrusError(ErrorCode.UNAVAILABLE, 'the text client is closed'));
    if (this.socket.closed) return Promise.resolve();
    return new Promise((resolve) => {
      this.socket.once('close', () => resolve());
      this.socket.destroy();
    });
  }

  private onData(chunk: Buffer): void {
    const { frames, error } = this.decoder.push(chunk);
    for (const frame of frames) {
      const next = this.pending.shift();
      if (next === undefined) {
        this.fail(new WalrusError(ErrorCode.INTERNAL, `${this.address} sent a reply nobody asked for`));
        return;
      }
      clearTimeout(next.timer);
      next.resolve(Buffer.from(frame));
    }
    if (error !== undefined) this.fail(new WalrusError(error.code, `${this.address}: ${error.message}`));
  }

  private fail(err: WalrusError): void {
    if (this.failure === undefined) this.failure = err;
    for (const p of this.pending.splice(0)) {
      clearTimeout(p.timer);
      p.reject(err);
    }
    if (!this.socket.destroyed) this.socket.destroy();
  }
}

/** One command on a fresh connection: connect, send, read one reply, close. Resolves with the reply string. */
export async function sendTextCommand(
  addr: string,
  command: string | Uint8Array,
  options: { readonly timeoutMs?: number } = {},
): Promise<string> {
  const client = new TextClient(addr, options);
  try {
    return await client.send(command);
  } finally {
    await client.close();
  }
}
