/**
 * Record routes: append (JSON batch or one raw record; idempotent producer and conditional
 * headers; `?acks=leader|quorum`, the achieved acks in the JSON answer), read a range (by offset,
 * timestamp or from the tail; clamp; long poll), and the SSE tail on the same URL with
 * `Accept: text/event-stream`. SSE is written straight to the Node
 * response when there is one (raw-node fan-out cost), else to a web stream (app.request()).
 */
import { Buffer } from 'node:buffer';
import { createHash } from 'node:crypto';
import { RESPONSE_ALREADY_SENT } from '@hono/node-server/utils/response';
import type { Hono } from 'hono';
import { ErrorCode, WalrusError } from '../../node/protocol/error-codes.js';
import type { AppendAcks, RecordInput, TopicInfo } from '../../node/protocol/messages.js';
import {
  producerIdLengthMax,
  readByteCountDefault,
  readByteCountMax,
  readRecordCountDefault,
  readRecordCountMax,
  readWaitMsMax,
  upstreamTimeoutMs,
} from '../limits.js';
import { readBody } from '../body.js';
import { corsHeaders } from '../middleware/cors.js';
import { ProblemError, problemFromError } from '../middleware/problem.js';
import {
  badParameter,
  checkQuery,
  isJsonContentType,
  parseBoolParam,
  parseEnumParam,
  parseIntParam,
  queryParamsByOperation,
} from '../params.js';
import { parseAppendBody, recordToJson } from '../records-json.js';
import { parseStrictJson } from '../strict-json.js';
import { jsonResponse, requestHeader } from '../response-headers.js';
import { NodeResponseSink, type SseSink, WebStreamSink } from '../sse/sink.js';
import type { GatewayContext, GatewayEnv, RouteDeps } from './deps.js';
import { topicFor } from './deps.js';

const appendAcksValues: readonly AppendAcks[] = ['leader', 'quorum'];

const producerIdPattern = new RegExp(`^[\\x21-\\x7e]{1,${producerIdLengthMax}}$`);

export interface StartQuery {
  readonly offset: number | undefined;
  readonly timestamp: number | undefined;
  readonly tailOffset: number | undefined;
  readonly clamp: boolean;
}

function startQuery(c: GatewayContext): StartQuery {
  const q: StartQuery = {
    offset: parseIntParam('offset', c.req.query('offset'), 0),
    timestamp: parseIntParam('timestamp', c.req.query('timestamp'), 0),
    tailOffset: parseIntParam('tailOffset', c.req.query('tailOffset'), 0),
    clamp: parseBoolParam('clamp', c.req.query('clamp')) ?? false,
  };
  const given = [q.offset, q.timestamp, q.tailOffset].filter((v) => v !== undefined).length;
  if (given > 1) {
    const names = (['offset', 'timestamp', 'tailOffset'] as const).filter((n) => q[n] !== undefined);
    throw badParameter(
      names[1]!,
      `give at most one of offset, timestamp and tailOffset (got ${names.join(' and ')})`,
    );
  }
  return q;
}

function outOfRange(topic: TopicInfo, offset: number): ProblemError {
  return new ProblemError(
    ErrorCode.OFFSET_OUT_OF_RANGE,
    `offset ${offset} is outside the stored range [${topic.startOffset}, ${topic.endOffset}] of topic '${topic.name}'`,
    { startOffset: topic.startOffset, endOffset: topic.endOffset },
  );
}

/** The first offset to read, given the query; `info` when the topic had to be described. */
export async function resolveStart(
  deps: RouteDeps,
  topic: string,
  q: StartQuery,
  fallback: 'start' | 'end',
  mustDescribe: boolean,
): Promise<number> {
  let info: TopicInfo | undefined;
  if (
    mustDescribe ||
    q.clamp ||
    q.tailOffset !== undefined ||
    (q.offset === undefined && q.timestamp === undefined && fallback === 'end')
  ) {
    info = (await deps.upstream.request({ op: 'describeTopic', topic })).topic;
  }
  let offset: number;
  if (q.timestamp !== undefined) {
    offset = (await deps.upstream.request({ op: 'offsetForTimestamp', topic, timestampMs: q.timestamp }))
      .offset;
  } else if (q.tailOffset !== undefined) {
    offset = Math.max(info!.startOffset, info!.endOffset - q.tailOffset);
  } else if (q.offset !== undefined) {
    offset = q.offset;
  } else {
    offset = fallback === 'end' ? info!.endOffset : 0;
  }
  if (info !== undefined) {
    if (offset < info.startOffset || offset > info.endOffset) {
      if (!q.clamp) throw outOfRange(info, offset);
      offset = Math.min(Math.max(offset, info.startOffset), info.endOffset);
    }
  }
  return offset;
}

/** Adds startOffset/endOffset to an OFFSET_OUT_OF_RANGE from the node (best effort). */
async function enrichOutOfRange(
  deps: RouteDeps,
  topic: string,
  offset: number,
  error: unknown,
): Promise<never> {
  if (
    error instanceof WalrusError &&
    error.code === ErrorCode.OFFSET_OUT_OF_RANGE &&
    !(error instanceof ProblemError)
  ) {
    const info = await deps.upstream.request({ op: 'describeTopic', topic }).catch(() => undefined);
    if (info !== undefined) throw outOfRange(info.topic, offset);
  }
  throw error;
}

function wantsEventStream(accept: string | undefined): boolean {
  return accept !== undefined && /(^|,)\s*text\/event-stream\s*(;|,|$)/i.test(accept);
}

function acceptsJson(accept: string | undefined): boolean {
  return (
    accept === undefined ||
    accept.trim() === '' ||
    /(^|,)\s*(application\/json|application\/\*|\*\/\*)\s*(;|,|$)/i.test(accept)
  );
}

export function recordRoutes(app: Hono<GatewayEnv>, deps: RouteDeps): void {
  app.post('/v1/topics/:topic/records', async (c) => {
    checkQuery(c.req.url, queryParamsByOperation.appendRecords);
    const topic = topicFor(c, 'write');
    const producerId = requestHeader(c, 'producer-id');
    const producerSeq = parseIntParam('Producer-Seq', requestHeader(c, 'producer-seq'), 0);
    const expectedOffset = parseIntParam('Expected-Offset', requestHeader(c, 'expected-offset'), 0);
    const acks = parseEnumParam('acks', c.req.query('acks'), appendAcksValues);
    if (producerId !== undefined && !producerIdPattern.test(producerId)) {
      throw new WalrusError(
        ErrorCode.BAD_REQUEST,
        `Producer-Id must be 1..${producerIdLengthMax} visible ASCII characters`,
      );
    }
    if ((producerId === undefined) !== (producerSeq === undefined)) {
      throw new WalrusError(ErrorCode.BAD_REQUEST, 'Producer-Id and Producer-Seq go together');
    }
    const contentType = requestHeader(c, 'content-type');
    const bytes = await readBody(c);
    let records: RecordInput[];
    if (isJsonContentType(contentType)) {
      records = parseAppendBody(parseStrictJson(bytes));
    } else {
      const type = contentType ?? 'application/octet-stream';
      if (/[\r\n\0]/.test(type) || type.length > 256)
        throw new WalrusError(ErrorCode.BAD_REQUEST, 'bad Content-Type');
      records = [{ value: bytes, headers: { 'content-type': type } }];
    }
    const reply =
      producerId === undefined && expectedOffset === undefined
        ? await deps.appends.append(topic, records, acks)
        : await deps.upstream.request({
            op: 'append',
            topic,
            records,
            ...(producerId === undefined ? {} : { producerId, producerSeq: producerSeq! }),
            ...(expectedOffset === undefined ? {} : { expectedOffset }),
            ...(acks === undefined ? {} : { acks }),
          });
    return jsonResponse(
      c,
      {
        firstOffset: reply.firstOffset,
        lastOffset: reply.lastOffset,
        count: reply.lastOffset - reply.firstOffset + 1,
        timestamp: reply.timestampMs,
        duplicate: reply.duplicate,
        acks: reply.acks ?? 'quorum',
      },
      201,
      { 'walrus-first-offset': String(reply.firstOffset) },
    );
  });

  app.get('/v1/topics/:topic/records', async (c) => {
    checkQuery(c.req.url, queryParamsByOperation.readRecords);
    const accept = c.req.header('accept');
    if (wantsEventStream(accept)) {
      if (c.req.query('waitMs') !== undefined)
        throw badParameter('waitMs', 'waitMs is for JSON reads; an SSE tail waits by itself');
      return sseAnswer(c, deps, () => startTail(c, deps));
    }
    if (!acceptsJson(accept))
      throw new WalrusError(ErrorCode.NOT_ACCEPTABLE, 'ask for application/json or text/event-stream');
    const topic = topicFor(c, 'read');
    const q = startQuery(c);
    const recordCountMax =
      parseIntParam('limit', c.req.query('limit'), 1, readRecordCountMax) ?? readRecordCountDefault;
    const byteCountMax =
      parseIntParam('maxBytes', c.req.query('maxBytes'), 1, readByteCountMax) ?? readByteCountDefault;
    const waitMs = parseIntParam('waitMs', c.req.query('waitMs'), 0, readWaitMsMax) ?? 0;
    const offset = await resolveStart(deps, topic, q, 'start', false);
    const reply = await deps.upstream
      .request(
        { op: 'read', topic, offset, recordCountMax, byteCountMax, waitMs },
        { timeoutMs: waitMs + upstreamTimeoutMs, signal: c.req.raw.signal },
      )
      .catch((error: unknown) => enrichOutOfRange(deps, topic, offset, error));
    const records = reply.records.map(recordToJson);
    if (await isImmutableRead(deps, topic, q, offset, reply)) {
      // The same URL answers these same bytes for as long as they are stored: a CDN may keep it.
      const body = JSON.stringify({ records, nextOffset: reply.nextOffset });
      const etag = `"${createHash('sha256').update(body).digest('base64url').slice(0, 32)}"`;
      const headers = {
        etag,
        'cache-control': immutableCacheControl,
        'walrus-next-offset': String(reply.nextOffset),
      };
      if (ifNoneMatchHits(c.req.header('if-none-match'), etag)) return c.body(null, 304, headers);
      return c.body(body, 200, { ...headers, 'content-type': 'application/json' });
    }
    c.header('walrus-next-offset', String(reply.nextOffset));
    c.header('cache-control', 'no-cache');
    return c.json({
      records,
      nextOffset: reply.nextOffset,
      startOffset: reply.startOffset,
      endOffset: reply.endOffset,
    });
  });
}

/** What a read wholly inside sealed segments is answered with. */
export const immutableCacheControl = 'public, max-age=31536000, immutable';

/**
 * True when the read's answer can never change: it started at an explicit offset (not a time, not
 * the moving tail, not clamped into a range that retention moves), returned records, and ended
 * at or below the base of the active segment, i.e. wholly inside sealed segments. A read that
 * reached the end is settled without asking; any other is checked against the topic's segments.
 */
async function isImmutableRead(
  deps: RouteDeps,
  topic: string,
  q: StartQuery,
  offset: number,
  reply: { readonly records: readonly unknown[]; readonly nextOffset: number; readonly endOffset: number },
): Promise<boolean> {
  if (q.timestamp !== undefined || q.tailOffset !== undefined || q.clamp) return false;
  if (reply.records.length === 0 || reply.nextOffset >= reply.endOffset) return false;
  const info = (await deps.upstream.request({ op: 'describeTopic', topic })).topic;
  const active = info.segments.find((s) => !s.sealed);
  return active !== undefined && offset >= info.startOffset && reply.nextOffset <= active.baseOffset;
}

/** If-None-Match against one strong ETag: `*`, or the tag among the listed ones (weak or strong). */
function ifNoneMatchHits(header: string | undefined, etag: string): boolean {
  if (header === undefined) return false;
  if (header.trim() === '*') return true;
  return header.split(',').some((tag) => tag.trim().replace(/^W\//, '') === etag);
}

const sseHeadersBase: Readonly<Record<string, string>> = {
  'content-type': 'text/event-stream; charset=utf-8',
  'cache-control': 'no-cache, no-transform',
  'x-accel-buffering': 'no',
  'x-content-type-options': 'nosniff',
};

/** Reconnect delay suggested with a transient refusal. */
const sseRetryAfterRefusalMs = 2_000;

/**
 * The SSE tail. Lasting errors (bad request, 401/403/404/416) are problem+json, which an
 * EventSource treats as final. Transient ones (cluster unavailable, gateway draining or full) are
 * a 200 stream holding one `problem` event and a `retry:` hint, then closed: any non-200 would
 * make a browser EventSource give up, while this makes it come back and resume by itself.
 */
export async function sseAnswer(
  c: GatewayContext,
  deps: RouteDeps,
  start: () => Promise<Response>,
): Promise<Response> {
  try {
    return await start();
  } catch (error) {
    if (!(error instanceof WalrusError) || !error.retryable) throw error;
    const problem = problemFromError(error, c.req.path);
    const body = `retry: ${sseRetryAfterRefusalMs}\nevent: problem\ndata: ${JSON.stringify(problem)}\n\n`;
    return new Response(body, {
      status: 200,
      headers: {
        ...sseHeadersBase,
        ...corsHeaders(deps.corsOrigins, c.req.header('origin')),
        connection: 'close',
      },
    });
  }
}

async function startTail(c: GatewayContext, deps: RouteDeps): Promise<Response> {
  const topic = topicFor(c, 'read');
  const q = startQuery(c);
  const lastEventId = c.req.header('last-event-id')?.trim();
  let offset: number;
  if (lastEventId !== undefined && lastEventId !== '') {
    // `-1` is what a stream that started at offset 0 announces before its first record.
    const last = lastEventId === '-1' ? -1 : parseIntParam('Last-Event-ID', lastEventId, 0)!;
    offset = last + 1;
    await resolveStart(
      deps,
      topic,
      { ...q, offset, timestamp: undefined, tailOffset: undefined },
      'end',
      true,
    );
  } else {
    offset = await resolveStart(deps, topic, q, 'end', true);
  }
  deps.hub.admit(topic);
  // `id:` without data sets the client's last event id, so even a reconnect before the first
  // record resumes at this position (WHATWG SSE: the id is kept when an event has no data).
  const preamble = `retry: 1000\nid: ${offset - 1}\n: tail of ${topic} from offset ${offset}\n\n`;
  return openSse(c, deps, preamble, (sink) => deps.hub.subscribe(topic, offset, sink));
}

/**
 * Opens the SSE answer: straight on the Node response when there is one, else a web stream;
 * writes the preamble and lets `subscribe` attach the sink to the hub. Call after hub.admit().
 */
export function openSse(
  c: GatewayContext,
  deps: RouteDeps,
  preamble: string,
  subscribe: (sink: SseSink) => void,
): Response {
  const headers: Record<string, string> = {
    ...sseHeadersBase,
    ...corsHeaders(deps.corsOrigins, c.req.header('origin')),
  };
  const outgoing = c.env?.outgoing;
  if (outgoing !== undefined) {
    const sink = new NodeResponseSink(outgoing, { ...headers, connection: 'keep-alive' });
    sink.write(Buffer.from(preamble));
    subscribe(sink);
    return RESPONSE_ALREADY_SENT;
  }
  const web = new WebStreamSink();
  web.write(Buffer.from(preamble));
  subscribe(web);
  return new Response(web.stream, { status: 200, headers });
}
