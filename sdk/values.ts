/**
 * Record values between the caller and the wire, with web-platform APIs only (no Buffer), so the
 * SDK runs wherever fetch does. On the wire a value is a JSON string: UTF-8 text as it is, other
 * bytes base64 with `encoding: "base64"`. Callers choose what they get back, `'string'` (default;
 * UTF-8 decoded, invalid sequences become U+FFFD) or `'bytes'` (a Uint8Array), and send either.
 */
import type { components } from './generated/api.js';

type WireRecordInput = components['schemas']['RecordInput'];
type WireRecord = components['schemas']['Record'];

/** What record values are handed back as: `'string'` (UTF-8 text, default) or `'bytes'`. */
export type ValueType = 'string' | 'bytes';
export type ValueOf<V extends ValueType> = V extends 'bytes' ? Uint8Array : string;

/** A value to append: text (sent as UTF-8) or bytes, with optional string headers. */
export type AppendRecord =
  | string
  | Uint8Array
  | { value: string | Uint8Array; headers?: Record<string, string> };

/** A record as the SDK hands it back, its value decoded as the caller chose. */
export interface WalrusRecord<V extends string | Uint8Array = string> {
  readonly offset: number;
  /** Milliseconds since the epoch, set by the segment leader. */
  readonly timestamp: number;
  readonly headers: Record<string, string>;
  readonly value: V;
}

/** Characters of a binary string handed to String.fromCharCode at once (its argument count is bounded). */
const fromCharCodeChunkLength = 0x8000;

const utf8Encoder = new TextEncoder();
const utf8Decoder = new TextDecoder();

export function bytesToBase64(bytes: Uint8Array): string {
  let binary = '';
  for (let i = 0; i < bytes.length; i += fromCharCodeChunkLength)
    binary += String.fromCharCode(...bytes.subarray(i, i + fromCharCodeChunkLength));
  return btoa(binary);
}

export function base64ToBytes(text: string): Uint8Array {
  const binary = atob(text);
  const bytes = new Uint8Array(binary.length);
  for (let i = 0; i < binary.length; i++) bytes[i] = binary.charCodeAt(i);
  return bytes;
}

/** True for a Uint8Array of this realm or another (a page's, a worker's, a vm context's). */
function isBytes(value: unknown): value is Uint8Array {
  return value instanceof Uint8Array || Object.prototype.toString.call(value) === '[object Uint8Array]';
}

/** The wire form of one record to append. */
export function encodeRecord(record: AppendRecord | WireRecordInput): WireRecordInput {
  if (typeof record === 'string') return { value: record };
  if (isBytes(record)) return { value: bytesToBase64(record), encoding: 'base64' };
  const headers = record.headers === undefined ? {} : { headers: record.headers };
  if (isBytes(record.value)) return { value: bytesToBase64(record.value), encoding: 'base64', ...headers };
  return record as WireRecordInput;
}

/** A wire record with its value decoded as asked. */
export function decodeRecord<V extends ValueType>(record: WireRecord, as: V): WalrusRecord<ValueOf<V>> {
  const base64 = record.encoding === 'base64';
  let value: string | Uint8Array;
  if (as === 'bytes') value = base64 ? base64ToBytes(record.value) : utf8Encoder.encode(record.value);
  else value = base64 ? utf8Decoder.decode(base64ToBytes(record.value)) : record.value;
  return {
    offset: record.offset,
    timestamp: record.timestamp,
    headers: record.headers ?? {},
    value: value as ValueOf<V>,
  };
}
