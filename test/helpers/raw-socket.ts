/**
 * Raw TCP helpers for protocol tests: send exact bytes, collect what comes back until the server
 * closes or a quiet period passes, and split the reply stream into frames.
 */
import net from 'node:net';

export interface RawExchange {
  readonly data: Buffer;
  /** True when the server closed the connection. */
  readonly closed: boolean;
}

export function frame(text: string | Uint8Array): Buffer {
  const payload = typeof text === 'string' ? Buffer.from(text, 'utf8') : Buffer.from(text);
  const header = Buffer.alloc(4);
  header.writeUInt32LE(payload.length, 0);
  return Buffer.concat([header, payload]);
}

/** Writes `chunks` (in order, one write each), then waits up to quietMs after the last byte or for close. */
export function rawExchange(
  port: number,
  chunks: readonly Uint8Array[],
  options: { quietMs?: number; endAfterWrite?: boolean; expectFrames?: number } = {},
): Promise<RawExchange> {
  const quietMs = options.quietMs ?? 400;
  return new Promise((resolve, reject) => {
    const socket = net.connect({ host: '127.0.0.1', port });
    const received: Buffer[] = [];
    let timer: NodeJS.Timeout | undefined;
    let done = false;
    const finish = (closed: boolean): void => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      socket.destroy();
      resolve({ data: Buffer.concat(received), closed });
    };
    const arm = (): void => {
      clearTimeout(timer);
      timer = setTimeout(() => finish(false), quietMs);
    };
    socket.on('connect', () => {
      for (const chunk of chunks) socket.write(chunk);
      if (options.endAfterWrite) socket.end();
      arm();
    });
    socket.on('data', (chunk) => {
      received.push(chunk);
      if (
        options.expectFrames !== undefined &&
        splitFrames(Buffer.concat(received)).length >= options.expectFrames
      ) {
        finish(false);
        return;
      }
      arm();
    });
    socket.on('close', () => finish(true));
    socket.on('error', (error) => {
      if (!done && received.length === 0 && (error as NodeJS.ErrnoException).code === 'ECONNREFUSED')
        reject(error);
    });
  });
}

/** Splits a byte stream into frame payloads (a trailing partial frame is ignored). */
export function splitFrames(data: Buffer): Buffer[] {
  const frames: Buffer[] = [];
  let pos = 0;
  while (pos + 4 <= data.length) {
    const length = data.readUInt32LE(pos);
    if (pos + 4 + length > data.length) break;
    frames.push(data.subarray(pos + 4, pos + 4 + length));
    pos += 4 + length;
  }
  return frames;
}

export function portOf(addr: string): number {
  return Number(addr.slice(addr.lastIndexOf(':') + 1));
}
