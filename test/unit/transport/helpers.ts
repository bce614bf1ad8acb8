/**
 * Test helpers for real loopback sockets: a FrameServer with a handler written by the test, and a
 * raw client that reads frames, so the tests see exactly the bytes on the wire.
 */
import net from 'node:net';
import { FrameDecoder } from '../../../node/protocol/frame-decoder.js';
import {
  type FrameConnection,
  FrameServer,
  type FrameServerOptions,
} from '../../../node/transport/frame-server.js';

export interface TestServer {
  readonly server: FrameServer;
  readonly port: number;
  readonly addr: string;
  readonly warnings: string[];
  close(): Promise<void>;
}

export async function startServer(
  onFrame: (conn: FrameConnection, payload: Buffer) => void,
  overrides: Partial<FrameServerOptions> = {},
): Promise<TestServer> {
  const warnings: string[] = [];
  const server = new FrameServer({
    host: '127.0.0.1',
    port: 0,
    frameSizeMaxBytes: 1024 * 1024,
    connectionCountMax: 64,
    idleTimeoutMs: 60_000,
    inFlightMaxPerConnection: 64,
    writeBufferMaxBytes: 8 * 1024 * 1024,
    onFrame,
    logger: { info() {}, warn: (_o, m) => warnings.push(m), error: (_o, m) => warnings.push(m) },
    ...overrides,
  });
  const { port } = await server.listen();
  return { server, port, addr: `127.0.0.1:${port}`, warnings, close: () => server.close() };
}

/** Polls `cond` every 10 ms until true; rejects after `limitMs` (a hang becomes a failure, not a timing claim). */
export async function waitFor(cond: () => boolean, what: string, limitMs = 20_000): Promise<void> {
  const start = Date.now();
  while (!cond()) {
    if (Date.now() - start > limitMs) throw new Error(`gave up waiting for: ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

export class RawClient {
  readonly socket: net.Socket;
  readonly frames: Buffer[] = [];
  closed = false;
  private readonly decoder = new FrameDecoder(64 * 1024 * 1024);

  private constructor(socket: net.Socket) {
    this.socket = socket;
    socket.on('data', (chunk: Buffer) => {
      for (const f of this.decoder.push(chunk).frames) this.frames.push(Buffer.from(f));
    });
    socket.on('error', () => {});
    socket.on('close', () => {
      this.closed = true;
    });
  }

  static connect(port: number): Promise<RawClient> {
    return new Promise((resolve, reject) => {
      const socket = net.connect({ host: '127.0.0.1', port });
      socket.once('connect', () => resolve(new RawClient(socket)));
      socket.once('error', reject);
    });
  }

  write(bytes: Uint8Array | string): void {
    this.socket.write(typeof bytes === 'string' ? Buffer.from(bytes, 'latin1') : bytes);
  }

  async frame(index: number): Promise<Buffer> {
    await waitFor(() => this.frames.length > index || this.closed, `frame ${index}`);
    const f = this.frames[index];
    if (f === undefined) throw new Error(`connection closed before frame ${index}`);
    return f;
  }

  async waitClosed(): Promise<void> {
    await waitFor(() => this.closed, 'the server to close the connection');
  }

  destroy(): void {
    this.socket.destroy();
  }
}
