/**
 * DS reads with live=sse: `event: data` (the values of one read: bytes as text or base64, JSON
 * mode as one array) each followed by `event: control` ({streamNextOffset, streamCursor,
 * upToDate} or {streamNextOffset, streamClosed: true}, after which the stream ends). Live waits
 * are upstream long polls; the connection ends after dsLimits.sseLifetimeMs (clients resume from
 * the last streamNextOffset), when the client goes, or when the stream is closed and read to its end.
 */
import type { GatewayContext } from '../routes/deps.js';
import { H, dsLimits, encodeOffset, isTextType, responseCursor, sseField } from './protocol.js';
import { formatValues } from './routes.js';
import type { DsStore, DsStream } from './store.js';

function sseData(payload: string): string {
  return `${payload
    .split(/\r\n|\r|\n/)
    .map((line) => `data:${line}`)
    .join('\n')}\n\n`;
}

export function serveSse(
  c: GatewayContext,
  store: DsStore,
  opened: DsStream,
  startPosition: number,
  clientCursor: string | undefined,
  baseHeaders: Record<string, string>,
): Response {
  const base64 = !isTextType(opened.contentType);
  const abort = new AbortController();
  const clientSignal = c.req.raw.signal;
  clientSignal.addEventListener('abort', () => abort.abort(), { once: true });
  const lifetime = setTimeout(() => abort.abort(), dsLimits.sseLifetimeMs);
  const encoder = new TextEncoder();
  const decoder = new TextDecoder();
  let position = Math.min(startPosition, opened.tailPosition);
  let stream = opened;
  let done = false;
  let first = true;

  const control = (upToDate: boolean, closed: boolean): string => {
    const data: Record<string, unknown> = { [sseField.nextOffset]: encodeOffset(position) };
    if (closed) data[sseField.closed] = true;
    else {
      data[sseField.cursor] = responseCursor(clientCursor, Date.now());
      if (upToDate) data[sseField.upToDate] = true;
    }
    return `event: control\n${sseData(JSON.stringify(data))}`;
  };

  const body = new ReadableStream<Uint8Array>({
    async pull(controller) {
      if (done || abort.signal.aborted) {
        clearTimeout(lifetime);
        controller.close();
        return;
      }
      try {
        const atTail = position >= stream.tailPosition;
        const waitMs = atTail && !first ? dsLimits.upstreamWaitMs : 0;
        const read = await store.read(stream, position, waitMs, abort.signal);
        let out = '';
        if (read.values.length > 0) {
          const bytes = formatValues(stream, read.values);
          const payload = base64 ? Buffer.from(bytes).toString('base64') : decoder.decode(bytes);
          out += `event: data\n${sseData(payload)}`;
          position = read.nextPosition;
        }
        const latest = await store.get(stream.path);
        if (latest === null || latest.softDeleted) {
          done = true;
        } else {
          stream = latest;
          const upToDate = position >= stream.tailPosition;
          const closed = stream.closed && upToDate;
          if (read.values.length > 0 || atTail || first) out += control(upToDate, closed);
          first = false;
          if (closed) done = true;
        }
        if (out !== '') controller.enqueue(encoder.encode(out));
      } catch {
        done = true;
        controller.enqueue(new Uint8Array(0));
      }
    },
    cancel() {
      clearTimeout(lifetime);
      abort.abort();
    },
  });
  const headers: Record<string, string> = {
    ...baseHeaders,
    'content-type': 'text/event-stream',
    'cache-control': 'no-cache',
    connection: 'keep-alive',
  };
  if (base64) headers[H.sseDataEncoding] = 'base64';
  return new Response(body, { status: 200, headers });
}
