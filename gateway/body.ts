/**
 * Request bodies with the size limit enforced while reading (413 BATCH_TOO_LARGE, from the
 * Content-Length alone when it is declared). On Node it reads the IncomingMessage directly:
 * going through a web ReadableStream costs more than the rest of an append's handling.
 */
import { Buffer } from 'node:buffer';
import { ErrorCode, WalrusError } from '../node/protocol/error-codes.js';
import { bodySizeMaxBytes } from './limits.js';
import { requestHeader } from './response-headers.js';
import type { GatewayContext } from './routes/deps.js';

function tooLarge(): WalrusError {
  return new WalrusError(ErrorCode.BATCH_TOO_LARGE, `the body is larger than ${bodySizeMaxBytes} bytes`);
}

export async function readBody(c: GatewayContext): Promise<Buffer> {
  const declared = requestHeader(c, 'content-length');
  if (declared !== undefined && Number(declared) > bodySizeMaxBytes) throw tooLarge();
  const incoming = c.env?.incoming;
  if (
    incoming !== undefined &&
    !incoming.readableEnded &&
    incoming.readableLength === 0 &&
    !incoming.readableDidRead
  ) {
    return new Promise<Buffer>((resolve, reject) => {
      const chunks: Buffer[] = [];
      let size = 0;
      incoming.on('data', (chunk: Buffer) => {
        size += chunk.byteLength;
        if (size > bodySizeMaxBytes) {
          incoming.pause();
          reject(tooLarge());
          return;
        }
        chunks.push(chunk);
      });
      // `on`, not `once`: the stream ends once and is dropped with the request (once wraps each).
      incoming.on('end', () => resolve(chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks, size)));
      incoming.on('error', (error) =>
        reject(
          new WalrusError(ErrorCode.BAD_REQUEST, 'the request body could not be read', { cause: error }),
        ),
      );
    });
  }
  const body = c.req.raw.body;
  if (body === null) return Buffer.alloc(0);
  const chunks: Uint8Array[] = [];
  let size = 0;
  for await (const chunk of body as AsyncIterable<Uint8Array>) {
    size += chunk.byteLength;
    if (size > bodySizeMaxBytes) throw tooLarge();
    chunks.push(chunk);
  }
  return Buffer.concat(chunks, size);
}
