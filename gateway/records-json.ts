/**
 * The JSON shape of records on the HTTP API, both ways: UTF-8 text values as strings and other
 * bytes as base64 (`encoding: "base64"`), string headers checked against the limits. Also the SSE
 * event text of a record, built once and shared by every subscriber of a topic.
 */
import { Buffer, isUtf8 } from 'node:buffer';
import { ErrorCode, WalrusError } from '../node/protocol/error-codes.js';
import type { RecordInput, StoredRecord } from '../node/protocol/messages.js';
import {
  appendRecordCountMax,
  recordHeaderCountMax,
  recordHeaderNameLengthMax,
  recordHeaderValueLengthMax,
} from './limits.js';

export interface RecordJson {
  readonly offset: number;
  readonly timestamp: number;
  readonly headers: Readonly<Record<string, string>>;
  readonly value: string;
  readonly encoding?: 'base64';
}

export function recordToJson(record: StoredRecord): RecordJson {
  const bytes = Buffer.from(record.value.buffer, record.value.byteOffset, record.value.byteLength);
  if (isUtf8(bytes)) {
    return {
      offset: record.offset,
      timestamp: record.timestampMs,
      headers: record.headers,
      value: bytes.toString('utf8'),
    };
  }
  return {
    offset: record.offset,
    timestamp: record.timestampMs,
    headers: record.headers,
    value: bytes.toString('base64'),
    encoding: 'base64',
  };
}

/** One SSE event per record: `id:` the offset, `data:` the record JSON (JSON never holds a raw newline). */
export function recordEvent(record: StoredRecord): string {
  return `id: ${record.offset}\ndata: ${JSON.stringify(recordToJson(record))}\n\n`;
}

const headerNamePattern = /^[A-Za-z0-9!#$%&'*+.^_`|~-]+$/;
const base64Pattern = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;
const headerValueBadChars = /[\r\n\0]/;

function bad(detail: string): never {
  throw new WalrusError(ErrorCode.BAD_REQUEST, detail);
}

export function parseRecordHeaders(value: unknown, where: string): Record<string, string> {
  if (value === undefined) return {};
  if (typeof value !== 'object' || value === null || Array.isArray(value))
    bad(`${where}.headers must be an object`);
  const entries = Object.entries(value);
  if (entries.length > recordHeaderCountMax)
    bad(`${where}.headers has more than ${recordHeaderCountMax} entries`);
  const out: Record<string, string> = {};
  for (const [name, v] of entries) {
    if (name.length > recordHeaderNameLengthMax || !headerNamePattern.test(name)) {
      bad(
        `${where}.headers: name '${name.slice(0, 64)}' is not an HTTP token of at most ${recordHeaderNameLengthMax} characters`,
      );
    }
    if (typeof v !== 'string') bad(`${where}.headers.${name} must be a string`);
    if (v.length > recordHeaderValueLengthMax)
      bad(`${where}.headers.${name} is longer than ${recordHeaderValueLengthMax}`);
    if (headerValueBadChars.test(v)) bad(`${where}.headers.${name} contains CR, LF or NUL`);
    out[name] = v;
  }
  return out;
}

/** Validates an AppendRequest body (already JSON-parsed) into protocol records. */
export function parseAppendBody(body: unknown): RecordInput[] {
  if (typeof body !== 'object' || body === null || Array.isArray(body))
    bad('body must be an object {"records": [...]}');
  for (const key of Object.keys(body)) if (key !== 'records') bad(`unknown field '${key.slice(0, 64)}'`);
  const list = (body as { records?: unknown }).records;
  if (!Array.isArray(list)) bad('records must be an array');
  if (list.length === 0) bad('records must hold at least one record');
  if (list.length > appendRecordCountMax) {
    throw new WalrusError(ErrorCode.BATCH_TOO_LARGE, `at most ${appendRecordCountMax} records per request`);
  }
  return list.map((item: unknown, i) => {
    const where = `records[${i}]`;
    if (typeof item !== 'object' || item === null || Array.isArray(item)) bad(`${where} must be an object`);
    const r = item as Record<string, unknown>;
    for (const key of Object.keys(r)) {
      if (key !== 'value' && key !== 'encoding' && key !== 'headers')
        bad(`${where}: unknown field '${key.slice(0, 64)}'`);
    }
    if (typeof r['value'] !== 'string') bad(`${where}.value must be a string`);
    const encoding = r['encoding'] ?? 'utf8';
    let value: Uint8Array;
    if (encoding === 'utf8') value = Buffer.from(r['value'], 'utf8');
    else if (encoding === 'base64') {
      if (!base64Pattern.test(r['value'])) bad(`${where}.value is not valid base64`);
      value = Buffer.from(r['value'], 'base64');
    } else bad(`${where}.encoding must be "utf8" or "base64"`);
    if (r['headers'] === undefined) return { value };
    const headers = parseRecordHeaders(r['headers'], where);
    return Object.keys(headers).length === 0 ? { value } : { value, headers };
  });
}
