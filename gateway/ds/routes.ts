/**
 * The Durable Streams protocol at /v1/stream/{path}: PUT create (and fork), POST append (raw or
 * JSON mode; close; idempotent producers), GET read (catch-up, long-poll, SSE in sse.ts), HEAD,
 * DELETE, OPTIONS. Each stream is a topic (path-map.ts) whose DS metadata the nodes keep
 * (store.ts); this file only translates HTTP to those calls and their answers back.
 */
import type { Hono } from 'hono';
import { ErrorCode, WalrusError } from '../../node/protocol/error-codes.js';
import type { RecordInput, StreamAction } from '../../node/protocol/messages.js';
import { readBody } from '../body.js';
import { requireScope } from '../middleware/auth.js';
import { problemFromError, problemResponse } from '../middleware/problem.js';
import type { GatewayContext, GatewayEnv, RouteDeps } from '../routes/deps.js';
import { dsCorsHeaders, dsPreflight } from './cors.js';
import { dsRoutePrefix, streamPathOf } from './path-map.js';
import {
  DsFailure,
  H,
  Q,
  badRequest,
  decodeOffset,
  dsLimits,
  encodeOffset,
  isJsonType,
  mediaType,
  responseCursor,
} from './protocol.js';
import { serveSse } from './sse.js';
import { type DsStream, DsStore } from './store.js';

const integerPattern = /^(0|[1-9]\d*)$/;
const contentTypePattern = /^[\w-]+\/[\w.+-]+/;

/** Headers every DS answer carries (errors included). */
function baseHeaders(c: GatewayContext, deps: RouteDeps): Record<string, string> {
  return {
    'x-content-type-options': 'nosniff',
    'cross-origin-resource-policy': 'cross-origin',
    ...dsCorsHeaders(deps.corsOrigins, c.req.header('origin')),
  };
}

function failure(c: GatewayContext, deps: RouteDeps, error: unknown): Response {
  const problem = problemFromError(error, c.req.path);
  const headers = { ...baseHeaders(c, deps), ...(error instanceof DsFailure ? error.headers : {}) };
  if (c.req.method === 'HEAD') return new Response(null, { status: problem.status, headers });
  return problemResponse(problem, headers);
}

function notFound(path: string): DsFailure {
  return new DsFailure(ErrorCode.TOPIC_NOT_FOUND, `stream ${path} does not exist`);
}

/** The stream for a client operation: 404 when absent, 410 when soft-deleted. */
async function liveStream(store: DsStore, path: string): Promise<DsStream> {
  const stream = await store.get(path);
  if (stream === null) throw notFound(path);
  if (stream.softDeleted) throw new DsFailure(ErrorCode.STREAM_GONE, `stream ${path} was deleted`);
  return stream;
}

function etagOf(path: string, start: string, next: string, closed: boolean): string {
  return `"${Buffer.from(path).toString('base64')}:${start}:${next}${closed ? ':c' : ''}"`;
}

/** A JSON-mode body as records (one per array element); BAD_REQUEST when not JSON. */
function jsonRecords(body: Uint8Array, allowEmptyArray: boolean): RecordInput[] {
  let parsed: unknown;
  try {
    parsed = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(body));
  } catch {
    throw badRequest('the body is not valid JSON');
  }
  const values = Array.isArray(parsed) ? parsed : [parsed];
  if (values.length === 0 && !allowEmptyArray) throw badRequest('an empty JSON array appends nothing');
  if (values.length > dsLimits.appendRecordCountMax)
    throw badRequest(`a JSON append holds at most ${dsLimits.appendRecordCountMax} values`);
  const encoder = new TextEncoder();
  return values.map((v) => ({ value: encoder.encode(JSON.stringify(v)) }));
}

/** A byte-stream body as records of at most recordBytesMax each. */
function byteRecords(body: Uint8Array): RecordInput[] {
  const records: RecordInput[] = [];
  for (let at = 0; at < body.length; at += dsLimits.recordBytesMax)
    records.push({ value: body.subarray(at, at + dsLimits.recordBytesMax) });
  return records;
}

function recordsFor(stream: { contentType: string }, body: Uint8Array, creating: boolean): RecordInput[] {
  if (body.length === 0) return [];
  return isJsonType(stream.contentType) ? jsonRecords(body, creating) : byteRecords(body);
}

/** A read's body: concatenated bytes, or a JSON array of the values in JSON mode. */
export function formatValues(stream: DsStream, values: readonly Uint8Array[]): Uint8Array {
  if (isJsonType(stream.contentType)) {
    const decoder = new TextDecoder();
    return new TextEncoder().encode(`[${values.map((v) => decoder.decode(v)).join(',')}]`);
  }
  return Buffer.concat(values);
}

async function body(c: GatewayContext): Promise<Uint8Array> {
  const declared = Number(c.req.header('content-length') ?? 0);
  if (declared > dsLimits.appendBodyBytesMax) {
    // Read (and drop) what the client sends before refusing, so it hears the 413 rather than a
    // reset connection; bounded by drainBytesMax.
    const reader = c.req.raw.body?.getReader();
    let drained = 0;
    while (reader !== undefined && drained <= dsLimits.drainBytesMax) {
      const { done, value } = await reader.read();
      if (done) break;
      drained += value.length;
    }
    throw new DsFailure(
      ErrorCode.BATCH_TOO_LARGE,
      `a stream append is at most ${dsLimits.appendBodyBytesMax} bytes`,
    );
  }
  const data = await readBody(c);
  if (data.length > dsLimits.appendBodyBytesMax)
    throw new DsFailure(
      ErrorCode.BATCH_TOO_LARGE,
      `a stream append is at most ${dsLimits.appendBodyBytesMax} bytes`,
    );
  return data;
}

/** Parses Stream-TTL / Stream-Expires-At; both at once, or malformed, is BAD_REQUEST. */
function expiryOf(c: GatewayContext): { ttlSeconds: number | null; expiresAtMs: number | null } {
  const ttl = c.req.header(H.ttl);
  const expires = c.req.header(H.expiresAt);
  if (ttl !== undefined && expires !== undefined)
    throw badRequest('Stream-TTL and Stream-Expires-At cannot both be given', H.ttl);
  if (ttl !== undefined && (!integerPattern.test(ttl) || !Number.isSafeInteger(Number(ttl))))
    throw badRequest('Stream-TTL must be a non-negative integer of seconds', H.ttl);
  let expiresAtMs: number | null = null;
  if (expires !== undefined) {
    expiresAtMs = Date.parse(expires);
    if (!Number.isFinite(expiresAtMs) || expiresAtMs < 0)
      throw badRequest('Stream-Expires-At must be an RFC 3339 timestamp', H.expiresAt);
  }
  return { ttlSeconds: ttl === undefined ? null : Number(ttl), expiresAtMs };
}

/** The headers describing a stream's expiry (HEAD). */
function expiryHeaders(stream: DsStream): Record<string, string> {
  const headers: Record<string, string> = {};
  if (stream.ttlSeconds !== null) headers[H.ttl] = String(stream.ttlSeconds);
  if (stream.expiresAtMs !== null) headers[H.expiresAt] = new Date(stream.expiresAtMs).toISOString();
  return headers;
}

export function dsRoutes(app: Hono<GatewayEnv>, deps: RouteDeps): void {
  const store = new DsStore(deps.upstream);
  const route = `${dsRoutePrefix}*`;

  const handle =
    (fn: (c: GatewayContext, path: string) => Promise<Response>) =>
    async (c: GatewayContext): Promise<Response> => {
      try {
        const path = streamPathOf(new URL(c.req.url).pathname);
        // Token topic prefixes apply to the stream path (after /v1/stream/), as users name it.
        const scope = c.req.method === 'GET' || c.req.method === 'HEAD' ? 'read' : 'write';
        requireScope(c.get('principal'), scope, path.slice(dsRoutePrefix.length));
        return await fn(c, path);
      } catch (error) {
        return failure(c, deps, error);
      }
    };

  app.options(route, (c) => dsPreflight(c, deps.corsOrigins));

  app.put(
    route,
    handle(async (c, path) => {
      const { ttlSeconds, expiresAtMs } = expiryOf(c);
      const forkedFrom = c.req.header(H.forkedFrom);
      const forkOffsetHeader = c.req.header(H.forkOffset);
      const subOffset = c.req.header(H.forkSubOffset);
      if (subOffset !== undefined) {
        if (forkedFrom === undefined)
          throw badRequest('Stream-Fork-Sub-Offset needs Stream-Forked-From', H.forkSubOffset);
        if (!integerPattern.test(subOffset))
          throw badRequest('Stream-Fork-Sub-Offset must be an integer', H.forkSubOffset);
      }
      let contentType = c.req.header('content-type');
      if (contentType === undefined || !contentTypePattern.test(contentType.trim())) contentType = undefined;
      let forkOf: { topic: string; offset: number; subOffset?: number } | null = null;
      let prefix: RecordInput[] = [];
      let ttl = ttlSeconds;
      let expiresAt = expiresAtMs;
      if (forkedFrom !== undefined) {
        const sourcePath = streamPathOf(new URL(forkedFrom, 'http://x').pathname);
        const source = await store.get(sourcePath);
        if (source === null)
          throw new DsFailure(ErrorCode.TOPIC_NOT_FOUND, `fork source ${sourcePath} does not exist`);
        if (source.softDeleted)
          throw new DsFailure(
            ErrorCode.CONFLICT,
            `fork source ${sourcePath} was deleted while forks read from it`,
          );
        let offset = source.tailPosition;
        if (forkOffsetHeader !== undefined) {
          const decoded = /^\d+_\d+$/.test(forkOffsetHeader) ? decodeOffset(forkOffsetHeader) : null;
          if (decoded === null) throw badRequest('Stream-Fork-Offset is not a stream offset', H.forkOffset);
          if (decoded > source.tailPosition)
            throw badRequest('Stream-Fork-Offset is beyond the source stream', H.forkOffset);
          offset = decoded;
        }
        if (contentType !== undefined && mediaType(contentType) !== mediaType(source.contentType))
          throw new DsFailure(ErrorCode.CONFLICT, 'the content type differs from the fork source');
        contentType = contentType ?? source.contentType;
        forkOf = { topic: source.topic, offset };
        const sub = subOffset === undefined ? 0 : Number(subOffset);
        if (sub > 0) {
          // Inside the message at `offset`: JSON values are records of their own (the fork point
          // moves past `sub` of them); bytes are cut from the record there and become the fork's
          // first record.
          const invalid = (): never => {
            throw badRequest(
              'Stream-Fork-Sub-Offset is beyond the message at the fork offset',
              H.forkSubOffset,
            );
          };
          if (isJsonType(source.contentType)) {
            if (offset + sub > source.tailPosition) invalid();
            forkOf = { topic: source.topic, offset: offset + sub, subOffset: sub };
          } else {
            const at = await store.read(source, offset);
            const first = at.values[0];
            if (first === undefined || sub > first.length) invalid();
            forkOf = { topic: source.topic, offset, subOffset: sub };
            prefix = [{ value: first!.subarray(0, sub) }];
          }
        }
        if (ttl === null && expiresAt === null) {
          ttl = source.ttlSeconds;
          expiresAt = source.ttlSeconds === null ? source.expiresAtMs : null;
        }
      }
      const data = await body(c);
      const closed = c.req.header(H.closed) === 'true';
      const action: Extract<StreamAction, { kind: 'create' }> = {
        kind: 'create',
        path,
        contentType: contentType ?? 'application/octet-stream',
        ttlSeconds: ttl,
        expiresAtMs: expiresAt,
        forkOf,
        // Initial data goes in before the close.
        closed: closed && data.length === 0 && prefix.length === 0,
      };
      const records = [...prefix, ...recordsFor(action, data, true)];
      let result: { stream: DsStream; created: boolean };
      try {
        result = await store.create(action);
      } catch (error) {
        const code = (error as WalrusError).code;
        if (code === ErrorCode.TOPIC_EXISTS || code === ErrorCode.STREAM_GONE)
          throw new DsFailure(ErrorCode.CONFLICT, (error as Error).message);
        if (code === ErrorCode.TOPIC_NOT_FOUND)
          throw new DsFailure(ErrorCode.TOPIC_NOT_FOUND, (error as Error).message);
        throw error;
      }
      let stream = result.stream;
      if (result.created && records.length > 0) {
        const appended = await store.append(stream, records, { close: closed });
        const tail = records.length === 0 ? appended.firstOffset : appended.lastOffset + 1;
        stream = { ...stream, closed, endOffset: tail, tailPosition: stream.basePosition + tail };
      } else if (!result.created && closed !== stream.closed) {
        throw new DsFailure(ErrorCode.CONFLICT, `stream ${path} exists with other settings`);
      }
      const headers: Record<string, string> = {
        ...baseHeaders(c, deps),
        'content-type': stream.contentType,
        [H.nextOffset]: encodeOffset(stream.tailPosition),
      };
      if (result.created) headers.location = new URL(c.req.url).href;
      if (stream.closed) headers[H.closed] = 'true';
      return new Response(null, { status: result.created ? 201 : 200, headers });
    }),
  );

  const head = async (c: GatewayContext, path: string): Promise<Response> => {
    const stream = await liveStream(store, path);
    const next = encodeOffset(stream.tailPosition);
    const headers: Record<string, string> = {
      ...baseHeaders(c, deps),
      'content-type': stream.contentType,
      [H.nextOffset]: next,
      'cache-control': 'no-store',
      etag: etagOf(path, '-1', next, stream.closed),
      ...expiryHeaders(stream),
    };
    if (stream.closed) headers[H.closed] = 'true';
    return new Response(null, { status: 200, headers });
  };

  app.delete(
    route,
    handle(async (c, path) => {
      const existing = await store.get(path);
      if (existing?.softDeleted === true)
        throw new DsFailure(ErrorCode.STREAM_GONE, `stream ${path} was deleted`);
      let deleted: boolean;
      try {
        deleted = await store.delete(path);
      } catch (error) {
        if ((error as WalrusError).code === ErrorCode.STREAM_GONE)
          throw new DsFailure(ErrorCode.STREAM_GONE, (error as Error).message);
        throw error;
      }
      if (!deleted) throw notFound(path);
      return new Response(null, { status: 204, headers: baseHeaders(c, deps) });
    }),
  );

  app.post(
    route,
    handle(async (c, path) => {
      const producerId = c.req.header(H.producerId);
      const epochText = c.req.header(H.producerEpoch);
      const seqText = c.req.header(H.producerSeq);
      const anyProducer = producerId !== undefined || epochText !== undefined || seqText !== undefined;
      const producer = producerId !== undefined && epochText !== undefined && seqText !== undefined;
      if (anyProducer && !producer)
        throw badRequest('Producer-Id, Producer-Epoch and Producer-Seq go together', H.producerId);
      if (producer && producerId === '') throw badRequest('Producer-Id must not be empty', H.producerId);
      const strict = (text: string | undefined, name: string): number | undefined => {
        if (text === undefined) return undefined;
        const n = Number(text);
        if (!/^\d+$/.test(text) || !Number.isSafeInteger(n))
          throw badRequest(`${name} must be a non-negative integer`, name);
        return n;
      };
      const producerEpoch = strict(epochText, H.producerEpoch);
      const producerSeq = strict(seqText, H.producerSeq);
      const close = c.req.header(H.closed) === 'true';
      const streamSeq = c.req.header(H.seq);
      if (streamSeq !== undefined && (streamSeq === '' || Buffer.byteLength(streamSeq) > 255))
        throw badRequest('Stream-Seq must be 1 to 255 bytes', H.seq);
      const data = await body(c);
      const stream = await liveStream(store, path);
      if (data.length === 0 && !close) throw badRequest('an append needs a body');
      const contentType = c.req.header('content-type');
      if (data.length > 0) {
        if (contentType === undefined) throw badRequest('an append needs a Content-Type', 'content-type');
        if (mediaType(contentType) !== mediaType(stream.contentType))
          throw new DsFailure(ErrorCode.CONFLICT, `the stream's content type is ${stream.contentType}`);
      }
      const records = data.length === 0 ? [] : recordsFor(stream, data, false);
      const producerHeaders: Record<string, string> = producer
        ? { [H.producerEpoch]: String(producerEpoch), [H.producerSeq]: String(producerSeq) }
        : {};
      const closedHeaders = (s: DsStream): Record<string, string> => ({
        [H.closed]: 'true',
        [H.nextOffset]: encodeOffset(s.tailPosition),
      });
      let appended: Awaited<ReturnType<DsStore['append']>>;
      try {
        appended = await store.append(stream, records, {
          ...(producer ? { producerId, producerEpoch, producerSeq } : {}),
          ...(streamSeq === undefined ? {} : { streamSeq }),
          close,
        });
      } catch (error) {
        const code = (error as WalrusError).code;
        if (code === ErrorCode.STREAM_CLOSED) {
          const now = (await store.get(path)) ?? stream;
          // Closing a closed stream again (no body, no producer) is idempotent.
          if (close && records.length === 0 && !producer)
            return new Response(null, {
              status: 204,
              headers: { ...baseHeaders(c, deps), ...closedHeaders(now) },
            });
          throw new DsFailure(ErrorCode.STREAM_CLOSED, `stream ${path} is closed`, closedHeaders(now));
        }
        if (code === ErrorCode.PRODUCER_FENCED) {
          const known = await store.producer(stream, producerId!);
          throw new DsFailure(ErrorCode.PRODUCER_FENCED, (error as Error).message, {
            [H.producerEpoch]: String(known?.epoch ?? producerEpoch),
          });
        }
        if (code === ErrorCode.SEQUENCE_MISMATCH && producer) {
          const known = await store.producer(stream, producerId!);
          const expected = known === null || known.epoch !== producerEpoch ? 0 : known.seq + 1;
          throw new DsFailure(ErrorCode.SEQUENCE_MISMATCH, (error as Error).message, {
            [H.producerExpectedSeq]: String(expected),
            [H.producerReceivedSeq]: String(producerSeq),
          });
        }
        if (code === ErrorCode.TOPIC_NOT_FOUND) throw notFound(path);
        throw error;
      }
      // Awaited: a sliding TTL is renewed before the writer hears of its append.
      await store.touch(stream);
      const base = baseHeaders(c, deps);
      if (appended.duplicate) {
        const known = producer ? await store.producer(stream, producerId!) : null;
        const now = await store.get(path);
        const headers: Record<string, string> = {
          ...base,
          ...producerHeaders,
          [H.producerSeq]: String(known?.seq ?? producerSeq),
        };
        if (now?.closed === true) Object.assign(headers, closedHeaders(now));
        return new Response(null, { status: 204, headers });
      }
      const tail =
        stream.basePosition + (records.length === 0 ? appended.firstOffset : appended.lastOffset + 1);
      const headers: Record<string, string> = {
        ...base,
        ...producerHeaders,
        [H.nextOffset]: encodeOffset(tail),
      };
      if (close) headers[H.closed] = 'true';
      return new Response(null, { status: producer && records.length > 0 ? 200 : 204, headers });
    }),
  );

  app.get(
    route,
    handle(async (c, path) => {
      // Hono answers HEAD with the GET route.
      if (c.req.method === 'HEAD') return head(c, path);
      const url = new URL(c.req.url);
      const offsets = url.searchParams.getAll(Q.offset);
      if (offsets.length > 1) throw badRequest('one offset parameter at most', Q.offset);
      const offset = offsets[0];
      if (offset === '') throw badRequest('the offset parameter is empty', Q.offset);
      if (offset !== undefined && offset !== 'now' && decodeOffset(offset) === null)
        throw badRequest('offset must be -1, now or a Stream-Next-Offset value', Q.offset);
      const live = url.searchParams.get(Q.live);
      if (live !== null && live !== 'long-poll' && live !== 'sse')
        throw badRequest('live must be long-poll or sse', Q.live);
      if (live !== null && offset === undefined) throw badRequest(`live=${live} needs an offset`, Q.offset);
      const cursor = url.searchParams.get(Q.cursor) ?? undefined;
      const stream = await liveStream(store, path);
      await store.touch(stream);
      const start = offset === undefined || offset === 'now' ? null : decodeOffset(offset)!;
      if (live === 'sse')
        return serveSse(c, store, stream, start ?? stream.tailPosition, cursor, baseHeaders(c, deps));
      const base = baseHeaders(c, deps);
      if (offset === 'now' && live === null) {
        const headers: Record<string, string> = {
          ...base,
          'content-type': stream.contentType,
          [H.nextOffset]: encodeOffset(stream.tailPosition),
          [H.upToDate]: 'true',
          'cache-control': 'no-store',
        };
        if (stream.closed) headers[H.closed] = 'true';
        return new Response(isJsonType(stream.contentType) ? '[]' : '', { status: 200, headers });
      }
      let position = Math.min(start ?? stream.tailPosition, stream.tailPosition);
      if (offset === undefined) position = 0;
      let current = stream;
      let read = await store.read(current, position);
      if (live === 'long-poll' && read.values.length === 0) {
        const deadline = Date.now() + dsLimits.longPollMs;
        for (;;) {
          if (current.closed && position >= current.tailPosition) {
            return new Response(null, {
              status: 204,
              headers: {
                ...base,
                [H.nextOffset]: encodeOffset(current.tailPosition),
                [H.upToDate]: 'true',
                [H.closed]: 'true',
                [H.cursor]: responseCursor(cursor, Date.now()),
              },
            });
          }
          const leftMs = deadline - Date.now();
          if (leftMs <= 0) {
            return new Response(null, {
              status: 204,
              headers: {
                ...base,
                [H.nextOffset]: encodeOffset(position),
                [H.upToDate]: 'true',
                [H.cursor]: responseCursor(cursor, Date.now()),
              },
            });
          }
          read = await store.read(
            current,
            position,
            Math.min(leftMs, dsLimits.upstreamWaitMs),
            c.req.raw.signal,
          );
          if (read.values.length > 0) break;
          const again = await store.get(path);
          if (again === null || again.softDeleted) throw notFound(path);
          current = again;
        }
        void store.touch(current).catch(() => {});
      }
      const next = read.nextPosition;
      const latest =
        read.values.length > 0 && next >= current.tailPosition
          ? ((await store.get(path)) ?? current)
          : current;
      const upToDate = next >= latest.tailPosition;
      const closedAtTail = latest.closed && upToDate;
      const nextOffset = encodeOffset(next);
      const etag = etagOf(path, offset ?? '-1', nextOffset, closedAtTail);
      const headers: Record<string, string> = {
        ...base,
        'content-type': stream.contentType,
        [H.nextOffset]: nextOffset,
        etag,
      };
      if (upToDate) headers[H.upToDate] = 'true';
      if (closedAtTail) headers[H.closed] = 'true';
      if (live === 'long-poll') headers[H.cursor] = responseCursor(cursor, Date.now());
      if (c.req.header('if-none-match') === etag)
        return new Response(null, { status: 304, headers: { ...base, etag } });
      return new Response(formatValues(stream, read.values), { status: 200, headers });
    }),
  );

  app.all(route, (c) =>
    failure(
      c,
      deps,
      new WalrusError(ErrorCode.METHOD_NOT_ALLOWED, `${c.req.method} is not allowed on a stream`),
    ),
  );
}
