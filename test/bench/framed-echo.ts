/**
 * The ceiling of the binary append bench (binary-bench.ts): a bare Node-to-Node framed TCP echo of
 * the same shape. Same framing (u32 little-endian length, then the payload), 128-byte messages, 256
 * in flight spread over 4 connections, the server in its own process on loopback like the node,
 * the client in the bench's process like the WalrusClient. Nothing else: no request ids, no
 * decoding, no promises, no storage. `binaryRatio` = binary appends/s ÷ echoes/s says what share of
 * this ceiling the protocol, transport and append path leave.
 *
 * Bare but not naive: the server writes back the complete frames of each chunk it reads in one
 * write, and the client answers the replies of each chunk it reads with as many new frames in one
 * write (one message each, each message waits for its own echo).
 *
 * `node dist/test/bench/framed-echo.js [durationMs]` prints one JSON line. Figures only.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import net from 'node:net';
import { once } from 'node:events';

export const framedEchoShape = {
  messageSizeBytes: 128,
  inFlight: 256,
  connectionCount: 4,
} as const;

const prefixSizeBytes = 4;
/** Time for the server process to start and say its port, and to exit when asked. */
const serverStartTimeoutMs = 15_000;
const serverStopTimeoutMs = 5_000;
/** A frame longer than this breaks the bench's own framing: the server exits with an error. */
const frameSizeMaxBytes = 1024 * 1024;

// ---- the server (child process) -------------------------------------------------------------------

/** Answers every frame with its own reply frame (a copy); the replies of one chunk in one write. */
function serveEcho(): void {
  const server = net.createServer((socket) => {
    socket.setNoDelay(true);
    let rest: Buffer | undefined;
    socket.on('data', (chunk: Buffer) => {
      const data = rest === undefined ? chunk : Buffer.concat([rest, chunk]);
      const replies: Buffer[] = [];
      let bytes = 0;
      let at = 0;
      while (data.length - at >= prefixSizeBytes) {
        const length = data.readUInt32LE(at);
        if (length === 0 || length > frameSizeMaxBytes) throw new Error(`bad frame length ${length}`);
        if (data.length - at < prefixSizeBytes + length) break;
        const payload = data.subarray(at + prefixSizeBytes, at + prefixSizeBytes + length);
        at += prefixSizeBytes + length;
        const reply = Buffer.allocUnsafe(prefixSizeBytes + length);
        reply.writeUInt32LE(length, 0);
        payload.copy(reply, prefixSizeBytes);
        replies.push(reply);
        bytes += reply.length;
      }
      if (replies.length > 0)
        socket.write(replies.length === 1 ? replies[0]! : Buffer.concat(replies, bytes));
      rest = at === data.length ? undefined : data.subarray(at);
    });
    socket.on('error', () => socket.destroy());
  });
  server.listen(0, '127.0.0.1', () => {
    const address = server.address() as net.AddressInfo;
    process.stdout.write(`${JSON.stringify({ port: address.port })}\n`);
  });
  // The bench closes our stdin when it ends (or dies): never outlive it.
  process.stdin.on('end', () => process.exit(0));
  process.stdin.resume();
}

// ---- the client (bench process) -------------------------------------------------------------------

/** One echo connection keeping `inFlight` messages outstanding while running. */
class EchoLane {
  private rest: Buffer | undefined;
  private outstanding = 0;
  running = false;
  count = 0;
  private idle: (() => void) | undefined;

  constructor(
    private readonly socket: net.Socket,
    private readonly inFlight: number,
    private readonly frame: Buffer,
  ) {
    socket.setNoDelay(true);
    socket.on('data', (chunk: Buffer) => this.onData(chunk));
  }

  start(): void {
    this.running = true;
    this.send(this.inFlight - this.outstanding);
  }

  /** Stops sending; resolves once every outstanding message has come back. */
  drain(): Promise<void> {
    this.running = false;
    if (this.outstanding === 0) return Promise.resolve();
    return new Promise((resolve) => {
      this.idle = resolve;
    });
  }

  close(): void {
    this.socket.destroy();
  }

  /** Sends `n` messages, each its own frame (a copy), in one write. */
  private send(n: number): void {
    if (n <= 0) return;
    const frames: Buffer[] = [];
    for (let i = 0; i < n; i++) frames.push(Buffer.from(this.frame));
    this.outstanding += n;
    this.socket.write(n === 1 ? frames[0]! : Buffer.concat(frames, n * this.frame.length));
  }

  private onData(chunk: Buffer): void {
    const data = this.rest === undefined ? chunk : Buffer.concat([this.rest, chunk]);
    let at = 0;
    let replies = 0;
    while (data.length - at >= prefixSizeBytes) {
      const length = data.readUInt32LE(at);
      if (data.length - at < prefixSizeBytes + length) break;
      at += prefixSizeBytes + length;
      replies += 1;
    }
    this.rest = at === data.length ? undefined : data.subarray(at);
    this.outstanding -= replies;
    if (this.running) {
      this.count += replies;
      this.send(replies);
    } else if (this.outstanding === 0 && this.idle !== undefined) {
      const idle = this.idle;
      this.idle = undefined;
      idle();
    }
  }
}

/**
 * The echo server process and `connectionCount` client connections. `runSlice(ms)` keeps 256
 * messages in flight for `ms`, then drains; slices alternate with the binary bench's.
 */
export class FramedEcho {
  private constructor(
    private readonly server: ChildProcess,
    private readonly lanes: readonly EchoLane[],
  ) {}

  /** The server process, for its CPU time. */
  get serverPid(): number | undefined {
    return this.server.pid;
  }

  static async start(): Promise<FramedEcho> {
    const server = spawn(process.execPath, [import.meta.filename, 'serve'], {
      stdio: ['pipe', 'pipe', 'inherit'],
    });
    try {
      const port = await readPort(server);
      const { inFlight, connectionCount, messageSizeBytes } = framedEchoShape;
      const frame = Buffer.alloc(prefixSizeBytes + messageSizeBytes, 0x61);
      frame.writeUInt32LE(messageSizeBytes, 0);
      const lanes: EchoLane[] = [];
      for (let i = 0; i < connectionCount; i++) {
        const socket = net.connect({ host: '127.0.0.1', port });
        await once(socket, 'connect');
        const share = Math.floor(inFlight / connectionCount) + (i < inFlight % connectionCount ? 1 : 0);
        lanes.push(new EchoLane(socket, share, frame));
      }
      return new FramedEcho(server, lanes);
    } catch (error) {
      server.kill('SIGKILL');
      throw error;
    }
  }

  /** Echoes for `ms`; returns the echoes completed within it and the time it took. */
  async runSlice(ms: number): Promise<{ count: number; elapsedMs: number }> {
    const before = this.lanes.reduce((sum, lane) => sum + lane.count, 0);
    const t0 = performance.now();
    for (const lane of this.lanes) lane.start();
    await new Promise((r) => setTimeout(r, ms));
    for (const lane of this.lanes) lane.running = false;
    const elapsedMs = performance.now() - t0;
    const count = this.lanes.reduce((sum, lane) => sum + lane.count, 0) - before;
    await Promise.all(this.lanes.map((lane) => lane.drain()));
    return { count, elapsedMs };
  }

  async stop(): Promise<void> {
    for (const lane of this.lanes) lane.close();
    if (this.server.exitCode !== null || this.server.signalCode !== null) return;
    const exited = once(this.server, 'exit');
    this.server.stdin?.end();
    const timer = setTimeout(() => this.server.kill('SIGKILL'), serverStopTimeoutMs);
    await exited;
    clearTimeout(timer);
  }
}

async function readPort(server: ChildProcess): Promise<number> {
  return new Promise((resolve, reject) => {
    let text = '';
    const timer = setTimeout(
      () => reject(new Error(`the echo server did not start within ${serverStartTimeoutMs} ms`)),
      serverStartTimeoutMs,
    );
    server.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`the echo server exited with ${code}`));
    });
    server.stdout!.on('data', (chunk: Buffer) => {
      text += chunk.toString('utf8');
      const newline = text.indexOf('\n');
      if (newline < 0) return;
      clearTimeout(timer);
      resolve((JSON.parse(text.slice(0, newline)) as { port: number }).port);
    });
  });
}

/** Runs the echo alone for `durationMs` and returns framedEchoPerSec. */
export async function runFramedEcho(durationMs: number): Promise<{ framedEchoPerSec: number }> {
  const echo = await FramedEcho.start();
  try {
    await echo.runSlice(Math.min(1000, durationMs / 4)); // warm-up
    const { count, elapsedMs } = await echo.runSlice(durationMs);
    return { framedEchoPerSec: Math.round((count / elapsedMs) * 1000) };
  } finally {
    await echo.stop();
  }
}

if (process.argv[1] === import.meta.filename) {
  if (process.argv[2] === 'serve') serveEcho();
  else console.log(JSON.stringify(await runFramedEcho(Number(process.argv[2] ?? 5000))));
}
