/**
 * The Durable Streams wire names and small codecs (PROTOCOL.md of durable-streams/durable-streams,
 * as conformance suite 0.3.6 tests it): header names, the offset codec, the long-poll cursor and
 * the DS limits. Every wire name the gateway's DS routes use is a constant here.
 *
 * Offsets: `<16 digits>_<16 digits>`, the first part always 0, the second the stream position
 * (records before it: a fork's position counts its source's records below the fork point). Both
 * parts are fixed width, so offsets compare as strings the way positions compare as numbers; `-1`
 * is the start and `now` the tail.
 */
import { ErrorCode } from '../../node/protocol/error-codes.js';
import { ProblemError } from '../middleware/problem.js';

/** A refusal with DS headers to send along (Stream-Closed, Producer-Epoch, ...). */
export class DsFailure extends ProblemError {
  readonly headers: Readonly<Record<string, string>>;
  constructor(code: ErrorCode, detail: string, headers: Record<string, string> = {}) {
    super(code, detail, {});
    this.headers = headers;
  }
}

export const H = {
  nextOffset: 'Stream-Next-Offset',
  upToDate: 'Stream-Up-To-Date',
  cursor: 'Stream-Cursor',
  closed: 'Stream-Closed',
  ttl: 'Stream-TTL',
  expiresAt: 'Stream-Expires-At',
  seq: 'Stream-Seq',
  forkedFrom: 'Stream-Forked-From',
  forkOffset: 'Stream-Fork-Offset',
  forkSubOffset: 'Stream-Fork-Sub-Offset',
  producerId: 'Producer-Id',
  producerEpoch: 'Producer-Epoch',
  producerSeq: 'Producer-Seq',
  producerExpectedSeq: 'Producer-Expected-Seq',
  producerReceivedSeq: 'Producer-Received-Seq',
  sseDataEncoding: 'Stream-SSE-Data-Encoding',
} as const;

/** Query parameters of a read. */
export const Q = { offset: 'offset', live: 'live', cursor: 'cursor' } as const;

/** SSE control event fields. */
export const sseField = {
  nextOffset: 'streamNextOffset',
  cursor: 'streamCursor',
  upToDate: 'upToDate',
  closed: 'streamClosed',
} as const;

export const dsLimits = {
  /** A DS append body (one upstream batch, under the node's 4 MiB batch). */
  appendBodyBytesMax: 3 * 1024 * 1024,
  /** A refused oversized body is read and dropped up to this many bytes before the 413. */
  drainBytesMax: 64 * 1024 * 1024,
  /** Bytes of one record a byte-stream append is cut into (under the node's 1 MiB record limit). */
  recordBytesMax: 256 * 1024,
  /** Records of one JSON-mode append (array elements). */
  appendRecordCountMax: 10_000,
  /** One GET answers at most this much; the client reads on from Stream-Next-Offset. */
  readBytesMax: 1024 * 1024,
  readRecordCountMax: 1000,
  /** A long poll that sees nothing waits this long, then answers 204. */
  longPollMs: 10_000,
  /** One upstream long-poll wait (the node's bound is 30 s). */
  upstreamWaitMs: 5_000,
  /** An SSE connection is closed after this long; clients reconnect from the last offset. */
  sseLifetimeMs: 60_000,
  /** An idle SSE connection gets an up-to-date control event this often. */
  sseKeepAliveMs: 5_000,
  /** Fork chains followed when reading (each step a source stream). */
  forkDepthMax: 32,
  /** The long-poll cursor's interval (seconds) and epoch, as the reference server uses them. */
  cursorIntervalSeconds: 20,
  cursorEpochMs: Date.UTC(2024, 9, 9),
} as const;

const offsetPattern = /^(\d{1,16})_(\d{1,16})$/;

export function encodeOffset(position: number): string {
  return `${'0'.repeat(16)}_${String(position).padStart(16, '0')}`;
}

/** The position of an offset, -1 for the start; null when it is not an offset of ours. */
export function decodeOffset(offset: string): number | null {
  if (offset === '-1') return 0;
  const m = offsetPattern.exec(offset);
  if (m === null) return null;
  const position = Number(m[2]);
  return Number.isSafeInteger(position) ? position : null;
}

export function badRequest(detail: string, param?: string): ProblemError {
  return new ProblemError(ErrorCode.BAD_REQUEST, detail, param === undefined ? {} : { param });
}

/** The media type of a Content-Type, lower case, without parameters. */
export function mediaType(contentType: string | undefined): string {
  return (contentType ?? '').split(';')[0]!.trim().toLowerCase();
}

export function isJsonType(contentType: string): boolean {
  return mediaType(contentType) === 'application/json';
}

/** Text types travel in SSE as text; the rest as base64. */
export function isTextType(contentType: string): boolean {
  const t = mediaType(contentType);
  return t.startsWith('text/') || t === 'application/json';
}

/**
 * The cursor a long poll or SSE answer carries (the reference server's rule): the current
 * interval number, moved past the client's cursor when the client already holds it, so that
 * CDN-collapsed requests do not loop on one cached answer.
 */
export function responseCursor(clientCursor: string | undefined, nowMs: number): string {
  const interval = Math.floor((nowMs - dsLimits.cursorEpochMs) / 1000 / dsLimits.cursorIntervalSeconds);
  const client = clientCursor === undefined ? Number.NaN : Number(clientCursor);
  if (!Number.isSafeInteger(client) || client < interval) return String(interval);
  return String(client + 1 + Math.floor(Math.random() * 180));
}
