/**
 * Encoders and decoders of the composite bodies shared by several binary messages: records (as
 * sent and as stored), retention settings, TopicInfo, ConsumerInfo and error bodies. Layouts are
 * documented byte by byte in docs/protocol.md. Decoders throw `WalrusError` (caught by
 * binary-codec.ts and turned into a result); encoders throw `WalrusError` for input that the
 * protocol cannot carry (a topic name that is not valid, a value above its limit).
 */
import { ErrorCode, isErrorCode, WalrusError } from './error-codes.js';
import type { ByteReader, ByteWriter } from './byte-io.js';
import { protocolLimits as L } from './limits.js';
import {
  type ConsumerInfo,
  type ErrorReply,
  type RecordInput,
  type RetentionSettings,
  replicationFactorMax,
  type SegmentInfo,
  type StoredRecord,
  type TopicInfo,
} from './messages.js';
import { topicNameProblem } from './topic-name.js';

// ---- validation shared by encoders and decoders --------------------------------------------------

export function checkTopic(topic: string): string {
  const problem = typeof topic === 'string' ? topicNameProblem(topic) : 'topic name must be a string';
  if (problem !== undefined) throw new WalrusError(ErrorCode.INVALID_TOPIC_NAME, problem);
  return topic;
}

/** A non-negative safe integer at most `max`. */
export function checkUint(
  value: number,
  what: string,
  max: number = Number.MAX_SAFE_INTEGER,
  min = 0,
): number {
  if (!Number.isSafeInteger(value) || value < min || value > max) {
    throw new WalrusError(
      ErrorCode.BAD_REQUEST,
      `${what} must be an integer in [${min}, ${max}], got ${value}`,
    );
  }
  return value;
}

export function checkString(value: string, what: string, sizeMaxBytes: number, minBytes = 0): string {
  if (typeof value !== 'string') throw new WalrusError(ErrorCode.BAD_REQUEST, `${what} must be a string`);
  const size = Buffer.byteLength(value, 'utf8');
  if (size < minBytes) throw new WalrusError(ErrorCode.BAD_REQUEST, `${what} is empty`);
  if (size > sizeMaxBytes) {
    throw new WalrusError(
      ErrorCode.BAD_REQUEST,
      `${what} is ${size} bytes, above the limit of ${sizeMaxBytes}`,
    );
  }
  return value;
}

/** Sets a property without going through setters such as `__proto__`. */
function defineOwn(target: Record<string, string>, key: string, value: string): void {
  Object.defineProperty(target, key, { value, enumerable: true, writable: true, configurable: true });
}

// ---- headers and records -------------------------------------------------------------------------

function writeHeaders(w: ByteWriter, headers: Readonly<Record<string, string>> | undefined): void {
  if (headers === undefined) {
    w.u16(0);
    return;
  }
  const entries = Object.entries(headers);
  if (entries.length > L.recordHeaderCountMax) {
    throw new WalrusError(ErrorCode.BAD_REQUEST, `a record has more than ${L.recordHeaderCountMax} headers`);
  }
  w.u16(entries.length);
  for (const [name, value] of entries) {
    w.str16(checkString(name, 'header name', L.recordHeaderNameSizeMaxBytes, 1));
    w.str16(checkString(value, 'header value', L.recordHeaderValueSizeMaxBytes));
  }
}

function readHeaders(r: ByteReader, reservedAllowed = false): Record<string, string> {
  return readHeadersOrNone(r, reservedAllowed) ?? {};
}

/** Headers, or undefined when there are none (no object for the common record without any). */
function readHeadersOrNone(r: ByteReader, reservedAllowed = false): Record<string, string> | undefined {
  const count = r.u16('header count');
  if (count === 0) return undefined;
  if (count > L.recordHeaderCountMax)
    r.fail(`header count ${count} is above the limit of ${L.recordHeaderCountMax}`);
  const headers: Record<string, string> = {};
  for (let i = 0; i < count; i += 1) {
    const name = r.str16('header name', L.recordHeaderNameSizeMaxBytes, 1);
    // Names starting with NUL are the node's own (the idempotent producer's tag on stored records).
    if (name.charCodeAt(0) === 0 && !reservedAllowed) r.fail('header names starting with NUL are reserved');
    const value = r.str16('header value', L.recordHeaderValueSizeMaxBytes);
    if (Object.hasOwn(headers, name)) r.fail(`header '${name}' appears twice`);
    defineOwn(headers, name, value);
  }
  return headers;
}

/** BATCH_TOO_LARGE for more records or value bytes than one batch may hold. */
export function checkBatch(count: number, sizeBytes: number): void {
  if (count > L.batchRecordCountMax) {
    throw new WalrusError(
      ErrorCode.BATCH_TOO_LARGE,
      `${count} records exceed the limit of ${L.batchRecordCountMax}`,
    );
  }
  if (sizeBytes > L.batchSizeMaxBytes) {
    throw new WalrusError(
      ErrorCode.BATCH_TOO_LARGE,
      `record values of ${sizeBytes} bytes exceed the batch limit of ${L.batchSizeMaxBytes}`,
    );
  }
}

export function writeRecordInputs(w: ByteWriter, records: readonly RecordInput[]): void {
  let sizeBytes = 0;
  for (let i = 0; i < records.length; i++) sizeBytes += records[i]!.value.length;
  checkBatch(records.length, sizeBytes);
  w.u32(records.length);
  for (const rec of records) {
    writeHeaders(w, rec.headers);
    w.bytes32(rec.value);
  }
}

export function readRecordInputs(r: ByteReader): RecordInput[] {
  const count = r.u32('record count');
  checkBatch(count, 0);
  const records: RecordInput[] = [];
  let sizeBytes = 0;
  for (let i = 0; i < count; i += 1) {
    const headers = readHeadersOrNone(r);
    const value = r.bytes32('record value', L.batchSizeMaxBytes);
    sizeBytes += value.length;
    records.push(headers === undefined ? { value } : { value, headers });
  }
  checkBatch(count, sizeBytes);
  return records;
}

export function writeStoredRecords(w: ByteWriter, records: readonly StoredRecord[]): void {
  checkBatch(
    records.length,
    records.reduce((sum, rec) => sum + rec.value.length, 0),
  );
  w.u32(records.length);
  for (const rec of records) {
    w.u64(checkUint(rec.offset, 'record offset'));
    w.u64(checkUint(rec.timestampMs, 'record timestampMs'));
    writeHeaders(w, rec.headers);
    w.bytes32(rec.value);
  }
}

export function readStoredRecords(r: ByteReader): StoredRecord[] {
  const count = r.u32('record count');
  checkBatch(count, 0);
  const records: StoredRecord[] = [];
  let sizeBytes = 0;
  for (let i = 0; i < count; i += 1) {
    const offset = r.u64('record offset');
    const timestampMs = r.u64('record timestampMs');
    const headers = readHeaders(r);
    const value = r.bytes32('record value', L.batchSizeMaxBytes);
    sizeBytes += value.length;
    records.push({ offset, timestampMs, headers, value });
  }
  checkBatch(count, sizeBytes);
  return records;
}

/**
 * Records between replicas (node/protocol/replication-codec.ts): consecutive offsets from the
 * first, each with its timestamp, headers (the node's reserved ones included) and value.
 */
export function writeReplicaRecords(
  w: ByteWriter,
  records: readonly { timestampMs: number; headers?: Readonly<Record<string, string>>; value: Uint8Array }[],
): void {
  checkBatch(
    records.length,
    records.reduce((sum, rec) => sum + rec.value.length, 0),
  );
  w.u32(records.length);
  for (const rec of records) {
    w.u64(checkUint(rec.timestampMs, 'record timestampMs'));
    writeHeaders(w, rec.headers);
    w.bytes32(rec.value);
  }
}

export function readReplicaRecords(
  r: ByteReader,
): { timestampMs: number; headers: Record<string, string>; value: Buffer }[] {
  const count = r.u32('record count');
  checkBatch(count, 0);
  const records: { timestampMs: number; headers: Record<string, string>; value: Buffer }[] = [];
  let sizeBytes = 0;
  for (let i = 0; i < count; i += 1) {
    const timestampMs = r.u64('record timestampMs');
    const headers = readHeaders(r, true);
    const value = r.bytes32('record value', L.batchSizeMaxBytes);
    sizeBytes += value.length;
    records.push({ timestampMs, headers, value });
  }
  checkBatch(count, sizeBytes);
  return records;
}

// ---- retention -----------------------------------------------------------------------------------

/** Tag of one retention field: absent (only in partial settings), null (no limit), or a value. */
const RetentionTag = { absent: 0, none: 1, value: 2 } as const;

function writeRetentionField(w: ByteWriter, v: number | null | undefined, what: string): void {
  if (v === undefined) w.u8(RetentionTag.absent);
  else if (v === null) w.u8(RetentionTag.none);
  else {
    w.u8(RetentionTag.value);
    w.u64(checkUint(v, what));
  }
}

function readRetentionField(r: ByteReader, what: string, allowAbsent: boolean): number | null | undefined {
  const tag = r.u8(`${what} tag`);
  if (tag === RetentionTag.absent && allowAbsent) return undefined;
  if (tag === RetentionTag.none) return null;
  if (tag === RetentionTag.value) return r.u64(what);
  return r.fail(`${what} tag ${tag} is not valid`);
}

export function writeRetention(w: ByteWriter, retention: Partial<RetentionSettings> | undefined): void {
  writeRetentionField(w, retention?.retentionMs, 'retentionMs');
  writeRetentionField(w, retention?.retentionBytes, 'retentionBytes');
}

export function readPartialRetention(r: ByteReader): Partial<RetentionSettings> {
  const retentionMs = readRetentionField(r, 'retentionMs', true);
  const retentionBytes = readRetentionField(r, 'retentionBytes', true);
  const out: { retentionMs?: number | null; retentionBytes?: number | null } = {};
  if (retentionMs !== undefined) out.retentionMs = retentionMs;
  if (retentionBytes !== undefined) out.retentionBytes = retentionBytes;
  return out;
}

function readFullRetention(r: ByteReader): RetentionSettings {
  const retentionMs = readRetentionField(r, 'retentionMs', false) ?? null;
  const retentionBytes = readRetentionField(r, 'retentionBytes', false) ?? null;
  return { retentionMs, retentionBytes };
}

// ---- topic and consumer info ---------------------------------------------------------------------

export function writeTopicInfo(w: ByteWriter, t: TopicInfo): void {
  w.str8(checkTopic(t.name));
  writeRetentionField(w, t.retention.retentionMs, 'retentionMs');
  writeRetentionField(w, t.retention.retentionBytes, 'retentionBytes');
  w.u64(checkUint(t.startOffset, 'startOffset'));
  w.u64(checkUint(t.endOffset, 'endOffset'));
  w.u32(checkUint(t.currentSegmentId, 'currentSegmentId', 0xffffffff));
  w.u32(checkUint(t.leaderNodeId, 'leaderNodeId', 0xffffffff));
  w.u64(checkUint(t.createdAtMs, 'createdAtMs'));
  checkUint(t.segments.length, 'segment count', L.topicSegmentCountMax);
  w.u32(t.segments.length);
  for (const s of t.segments) {
    w.u32(checkUint(s.id, 'segment id', 0xffffffff));
    w.u64(checkUint(s.baseOffset, 'segment baseOffset'));
    w.u64(checkUint(s.endOffset, 'segment endOffset'));
    w.bool(s.sealed);
    w.u32(checkUint(s.leaderNodeId, 'segment leaderNodeId', 0xffffffff));
    checkUint(s.replicas.length, 'segment replica count', replicationFactorMax);
    w.u8(s.replicas.length);
    for (const id of s.replicas) w.u32(checkUint(id, 'segment replica nodeId', 0xffffffff));
    w.u32(checkUint(s.epoch, 'segment epoch', 0xffffffff));
  }
  w.u8(checkUint(t.replicationFactor, 'replicationFactor', replicationFactorMax, 1));
  w.u32(checkUint(t.underReplicatedSegmentCount, 'underReplicatedSegmentCount', t.segments.length));
}

export function readTopicInfo(r: ByteReader): TopicInfo {
  const name = checkTopic(r.str8('topic name', L.topicNameSizeMaxBytes, 1));
  const retention = readFullRetention(r);
  const startOffset = r.u64('startOffset');
  const endOffset = r.u64('endOffset');
  const currentSegmentId = r.u32('currentSegmentId');
  const leaderNodeId = r.u32('leaderNodeId');
  const createdAtMs = r.u64('createdAtMs');
  const count = r.u32('segment count');
  if (count > L.topicSegmentCountMax)
    r.fail(`segment count ${count} is above the limit of ${L.topicSegmentCountMax}`);
  const segments: SegmentInfo[] = [];
  for (let i = 0; i < count; i += 1) {
    const id = r.u32('segment id');
    const baseOffset = r.u64('segment baseOffset');
    const segmentEnd = r.u64('segment endOffset');
    const sealed = r.bool('segment sealed');
    const segmentLeader = r.u32('segment leaderNodeId');
    const replicaCount = r.u8('segment replica count');
    if (replicaCount > replicationFactorMax)
      r.fail(`segment replica count ${replicaCount} is above the limit of ${replicationFactorMax}`);
    const replicas: number[] = [];
    for (let j = 0; j < replicaCount; j += 1) replicas.push(r.u32('segment replica nodeId'));
    const epoch = r.u32('segment epoch');
    segments.push({
      id,
      baseOffset,
      endOffset: segmentEnd,
      sealed,
      leaderNodeId: segmentLeader,
      replicas,
      epoch,
    });
  }
  const replicationFactor = r.u8('replicationFactor');
  if (replicationFactor < 1 || replicationFactor > replicationFactorMax)
    r.fail(`replicationFactor must be in [1, ${replicationFactorMax}], got ${replicationFactor}`);
  const underReplicatedSegmentCount = r.u32('underReplicatedSegmentCount');
  if (underReplicatedSegmentCount > count)
    r.fail(`underReplicatedSegmentCount ${underReplicatedSegmentCount} is above the segment count ${count}`);
  return {
    name,
    retention,
    startOffset,
    endOffset,
    currentSegmentId,
    leaderNodeId,
    segments,
    createdAtMs,
    replicationFactor,
    underReplicatedSegmentCount,
  };
}

export function writeConsumerInfo(w: ByteWriter, c: ConsumerInfo): void {
  w.str8(checkTopic(c.topic));
  w.str8(checkString(c.consumer, 'consumer name', L.consumerNameSizeMaxBytes, 1));
  w.u64(checkUint(c.offset, 'consumer offset'));
}

export function readConsumerInfo(r: ByteReader): ConsumerInfo {
  const topic = checkTopic(r.str8('topic name', L.topicNameSizeMaxBytes, 1));
  const consumer = r.str8('consumer name', L.consumerNameSizeMaxBytes, 1);
  const offset = r.u64('consumer offset');
  return { topic, consumer, offset };
}

// ---- JSON admin bodies ---------------------------------------------------------------------------

export function writeJson(w: ByteWriter, value: unknown): void {
  const bytes = Buffer.from(JSON.stringify(value) ?? 'null', 'utf8');
  if (bytes.length > L.jsonBodySizeMaxBytes) {
    throw new WalrusError(
      ErrorCode.INTERNAL,
      `JSON body of ${bytes.length} bytes exceeds ${L.jsonBodySizeMaxBytes}`,
    );
  }
  w.bytes32(bytes);
}

export function readJson(r: ByteReader, what: string): unknown {
  const bytes = r.bytes32(what, L.jsonBodySizeMaxBytes);
  try {
    return JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(bytes)) as unknown;
  } catch {
    return r.fail(`${what} is not valid UTF-8 JSON`);
  }
}

// ---- errors --------------------------------------------------------------------------------------

/** Cuts a UTF-8 string to at most `sizeMaxBytes` without splitting a character. */
export function truncateUtf8(s: string, sizeMaxBytes: number): string {
  if (Buffer.byteLength(s, 'utf8') <= sizeMaxBytes) return s;
  const bytes = Buffer.from(s, 'utf8');
  let end = sizeMaxBytes;
  while (end > 0 && (bytes[end]! & 0xc0) === 0x80) end -= 1;
  return bytes.subarray(0, end).toString('utf8');
}

export function writeErrorBody(w: ByteWriter, err: ErrorReply): void {
  w.str8(err.code);
  w.str16(truncateUtf8(String(err.message), L.errorMessageSizeMaxBytes));
  const hint = err.leaderHint;
  if (hint === undefined) {
    w.bool(false);
    return;
  }
  w.bool(true);
  w.u32(checkUint(hint.nodeId, 'leader hint nodeId', 0xffffffff));
  w.str16(checkString(hint.clientAddr, 'leader hint clientAddr', L.leaderAddrSizeMaxBytes));
}

/** Unknown codes (from a newer peer) are kept readable as INTERNAL with the raw code in the message. */
export function readErrorBody(r: ByteReader): ErrorReply {
  const rawCode = r.str8('error code', 255, 1);
  const rawMessage = r.str16('error message', L.errorMessageSizeMaxBytes);
  const code = isErrorCode(rawCode) ? rawCode : ErrorCode.INTERNAL;
  const message = isErrorCode(rawCode) ? rawMessage : `${rawCode}: ${rawMessage}`;
  if (!r.bool('leader hint present')) return { code, message };
  const nodeId = r.u32('leader hint nodeId');
  const clientAddr = r.str16('leader hint clientAddr', L.leaderAddrSizeMaxBytes);
  return { code, message, leaderHint: { nodeId, clientAddr } };
}
