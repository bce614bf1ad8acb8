/**
 * The binary protocol codec: every `Request` of messages.ts and every reply, to and from frame
 * payloads (the 4-byte length prefix is framing, not part of these payloads). Layout: the 8-byte
 * header of binary-header.ts, then an op-specific body (docs/protocol.md has every byte).
 *
 * Decoders never throw: malformed input gives `{ kind: 'malformed', error }` with a typed
 * `WalrusError`, and the request id when it could be read so that the server can still answer it.
 * Encoders throw `WalrusError` for input the protocol cannot carry (bad topic name, out-of-range
 * numbers, oversized batches), which is how the client reports bad arguments before sending.
 *
 * Hot-path bodies (append, read, consumerReadNext) are raw bytes; record values in decoded
 * messages are views into the payload buffer (copy them to keep them beyond the request).
 */
import {
  binaryFlagsKnownMask,
  binaryHeaderSizeBytes,
  BinaryFlag,
  binaryProtocolVersion,
  Opcode,
  opOfOpcode,
  readRequestId,
} from './binary-header.js';
import {
  checkBatch,
  checkString,
  checkUint,
  readConsumerInfo,
  readErrorBody,
  readJson,
  readPartialRetention,
  readRecordInputs,
  readStoredRecords,
  readTopicInfo,
  writeConsumerInfo,
  writeErrorBody,
  writeJson,
  writeRecordInputs,
  writeRetention,
  writeStoredRecords,
  writeTopicInfo,
} from './binary-bodies.js';
import { ByteReader, ByteWriter, writeU64At } from './byte-io.js';
import { readTopicName, topicNameBytes, writeTopicName } from './topic-bytes.js';
import { ErrorCode, WalrusError } from './error-codes.js';
import { binaryMarker } from './frame.js';
import { protocolLimits as L } from './limits.js';
import {
  type AppendAcks,
  type ErrorReply,
  type Request,
  type RequestOp,
  type ResponseByOp,
  replicationFactorMax,
  type StreamAction,
  type StreamReply,
  type TopicInfo,
} from './messages.js';

export type RequestDecodeResult =
  | { readonly kind: 'request'; readonly requestId: number; readonly request: Request }
  | {
      readonly kind: 'malformed';
      /** Known when the header could be read: answer with encodeErrorReply(requestId, error, opcode). */
      readonly requestId: number | undefined;
      readonly opcode: number;
      readonly error: WalrusError;
    };

export type AnyResponse = ResponseByOp[RequestOp];

export type ReplyDecodeResult =
  | {
      readonly kind: 'response';
      readonly requestId: number;
      readonly op: RequestOp;
      readonly response: AnyResponse;
    }
  | {
      readonly kind: 'error';
      readonly requestId: number;
      /** Undefined when the peer could not tell which request op it answers (opcode 0). */
      readonly op: RequestOp | undefined;
      readonly error: ErrorReply;
    }
  | { readonly kind: 'malformed'; readonly requestId: number | undefined; readonly error: WalrusError };

function writeHeader(w: ByteWriter, opcode: number, flags: number, requestId: number): void {
  checkUint(requestId, 'request id', 0xffffffff);
  w.u8(binaryMarker);
  w.u8(binaryProtocolVersion);
  w.u8(opcode);
  w.u8(flags);
  w.u32(requestId);
}

function initialSize(request: Request): number {
  if (request.op !== 'append') return 64;
  let size = 64;
  for (const rec of request.records) size += rec.value.length + 8;
  return size;
}

// ---- requests ------------------------------------------------------------------------------------

/** Encodes a request payload. Throws WalrusError (INVALID_TOPIC_NAME, BAD_REQUEST, BATCH_TOO_LARGE) for bad input. */
export function encodeRequest(requestId: number, request: Request): Buffer {
  if (request.op === 'append') {
    const plain = encodePlainAppend(requestId, request);
    if (plain !== null) return plain;
  }
  const w = new ByteWriter(initialSize(request));
  const opcode = Opcode[request.op];
  if (opcode === undefined)
    throw new WalrusError(ErrorCode.UNKNOWN_COMMAND, `unknown op '${String(request.op)}'`);
  writeHeader(w, opcode, 0, requestId);
  switch (request.op) {
    case 'ping':
    case 'listTopics':
    case 'metrics':
      break;
    case 'createTopic':
      writeTopicName(w, request.topic);
      writeRetention(w, request.retention);
      writeReplicationFactor(w, request.replicationFactor);
      break;
    case 'configureTopic':
      writeTopicName(w, request.topic);
      writeRetention(w, request.retention);
      break;
    case 'describeTopic':
    case 'deleteTopic':
    case 'state':
      writeTopicName(w, request.topic);
      break;
    case 'stream':
      writeTopicName(w, request.topic);
      writeJson(w, request.action);
      break;
    case 'removeNode':
    case 'handOff':
    case 'transferLeader':
    case 'nodeStopping':
      w.u32(checkUint(request.nodeId, 'nodeId', 0xffffffff));
      break;
    case 'authenticate':
      if (request.token.length === 0 || Buffer.byteLength(request.token) > L.tokenSizeMaxBytes)
        throw new WalrusError(ErrorCode.BAD_REQUEST, `a token is 1..${L.tokenSizeMaxBytes} bytes`);
      w.str16(request.token);
      break;
    case 'append': {
      writeTopicName(w, request.topic);
      const hasProducerId = request.producerId !== undefined;
      const hasProducerSeq = request.producerSeq !== undefined;
      const hasExpected = request.expectedOffset !== undefined;
      const acksLeader = checkAcks(request.acks) === 'leader';
      const extension =
        (request.producerEpoch !== undefined ? AppendExtension.producerEpoch : 0) |
        (request.close === true ? AppendExtension.close : 0) |
        (request.streamSeq !== undefined ? AppendExtension.streamSeq : 0);
      w.u8(
        (hasProducerId ? AppendOption.producerId : 0) |
          (hasProducerSeq ? AppendOption.producerSeq : 0) |
          (hasExpected ? AppendOption.expectedOffset : 0) |
          (acksLeader ? AppendOption.acksLeader : 0) |
          (request.noForward === true ? AppendOption.noForward : 0) |
          (extension !== 0 ? AppendOption.extended : 0),
      );
      if (hasProducerId) w.str16(checkString(request.producerId!, 'producerId', L.producerIdSizeMaxBytes, 1));
      if (hasProducerSeq) w.u64(checkUint(request.producerSeq!, 'producerSeq'));
      if (hasExpected) w.u64(checkUint(request.expectedOffset!, 'expectedOffset'));
      if (extension !== 0) {
        w.u8(extension);
        if (request.producerEpoch !== undefined) w.u64(checkUint(request.producerEpoch, 'producerEpoch'));
        if (request.streamSeq !== undefined) w.str8(checkString(request.streamSeq, 'streamSeq', 255, 1));
      }
      writeRecordInputs(w, request.records);
      break;
    }
    case 'read':
      writeTopicName(w, request.topic);
      w.u64(checkUint(request.offset, 'offset'));
      w.u32(checkUint(request.recordCountMax, 'recordCountMax', L.batchRecordCountMax, 1));
      w.u32(checkUint(request.byteCountMax, 'byteCountMax', L.batchSizeMaxBytes, 1));
      w.u32(checkUint(request.waitMs, 'waitMs', L.readWaitMsMax));
      break;
    case 'offsetForTimestamp':
    case 'localOffsetForTimestamp':
      writeTopicName(w, request.topic);
      w.u64(checkUint(request.timestampMs, 'timestampMs'));
      break;
    case 'consumerReadNext':
      writeTopicName(w, request.topic);
      w.str8(checkString(request.consumer, 'consumer name', L.consumerNameSizeMaxBytes, 1));
      w.u32(checkUint(request.recordCountMax, 'recordCountMax', L.batchRecordCountMax, 1));
      w.u32(checkUint(request.byteCountMax, 'byteCountMax', L.batchSizeMaxBytes, 1));
      w.bool(request.autoCommit);
      break;
    case 'consumerCommit':
      writeTopicName(w, request.topic);
      w.str8(checkString(request.consumer, 'consumer name', L.consumerNameSizeMaxBytes, 1));
      w.u64(checkUint(request.offset, 'offset'));
      // Presence u8 (0/1), then the expected cursor u64 when present.
      w.bool(request.expectedOffset !== undefined);
      if (request.expectedOffset !== undefined) w.u64(checkUint(request.expectedOffset, 'expectedOffset'));
      break;
    case 'consumerGet':
    case 'consumerDelete':
      writeTopicName(w, request.topic);
      w.str8(checkString(request.consumer, 'consumer name', L.consumerNameSizeMaxBytes, 1));
      break;
    case 'consumerList':
      writeTopicName(w, request.topic);
      break;
  }
  return w.finish();
}

type AppendRequest = Extract<Request, { op: 'append' }>;

/** Bits of the append options byte (docs/protocol.md 3.4). */
const AppendOption = {
  producerId: 1,
  producerSeq: 2,
  expectedOffset: 4,
  acksLeader: 8,
  noForward: 16,
  /** An extension byte (AppendExtension) follows the expected offset, then its fields. */
  extended: 128,
} as const;
/**
 * Bits of the append extension byte (Durable Streams): a u64 producer epoch, then a str8
 * Stream-Seq, in this order, each when its bit is set; close has no field.
 */
const AppendExtension = {
  producerEpoch: 1,
  close: 2,
  streamSeq: 4,
} as const;
const appendExtensionKnownMask =
  AppendExtension.producerEpoch | AppendExtension.close | AppendExtension.streamSeq;
const appendOptionsKnownMask =
  AppendOption.extended |
  AppendOption.producerId |
  AppendOption.producerSeq |
  AppendOption.expectedOffset |
  AppendOption.acksLeader |
  AppendOption.noForward;

/** The acks byte of an append reply. */
const AcksCode = { quorum: 0, leader: 1 } as const satisfies Record<AppendAcks, number>;

function checkAcks(acks: AppendAcks | undefined): AppendAcks | undefined {
  if (acks !== undefined && acks !== 'leader' && acks !== 'quorum')
    throw new WalrusError(ErrorCode.BAD_REQUEST, `acks must be 'leader' or 'quorum', got ${String(acks)}`);
  return acks;
}

/** createTopic's replication factor: presence u8 (0/1), then the factor u8 (1..7) when present. */
function writeReplicationFactor(w: ByteWriter, replicationFactor: number | undefined): void {
  if (replicationFactor === undefined || replicationFactor === 0) {
    w.bool(false);
    return;
  }
  w.bool(true);
  w.u8(checkUint(replicationFactor, 'replicationFactor', replicationFactorMax, 1));
}

function readReplicationFactor(r: ByteReader): number | undefined {
  if (!r.bool('replicationFactor present')) return undefined;
  const v = r.u8('replicationFactor');
  if (v < 1 || v > replicationFactorMax)
    r.fail(`replicationFactor must be in [1, ${replicationFactorMax}], got ${v}`);
  return v;
}

function readTopic(r: ByteReader): string {
  return readTopicName(r);
}

function readConsumer(r: ByteReader): string {
  return r.str8('consumer name', L.consumerNameSizeMaxBytes, 1);
}

function readRange(r: ByteReader, what: string, min: number, max: number): number {
  const v = r.u32(what);
  if (v < min || v > max) r.fail(`${what} must be in [${min}, ${max}], got ${v}`);
  return v;
}

function readRequestBody(r: ByteReader, op: RequestOp): Request {
  switch (op) {
    case 'ping':
    case 'listTopics':
    case 'metrics':
      return { op };
    case 'createTopic': {
      const topic = readTopic(r);
      const retention = readPartialRetention(r);
      const replicationFactor = readReplicationFactor(r);
      return {
        op,
        topic,
        ...(Object.keys(retention).length === 0 ? {} : { retention }),
        ...(replicationFactor === undefined ? {} : { replicationFactor }),
      };
    }
    case 'configureTopic':
      return { op, topic: readTopic(r), retention: readPartialRetention(r) };
    case 'describeTopic':
    case 'deleteTopic':
    case 'state':
      return { op, topic: readTopic(r) };
    case 'stream':
      return { op, topic: readTopic(r), action: readJson(r, 'stream action') as StreamAction };
    case 'authenticate':
      return { op, token: r.str16('token', L.tokenSizeMaxBytes, 1) };
    case 'removeNode':
    case 'handOff':
    case 'transferLeader':
    case 'nodeStopping': {
      const nodeId = r.u32('nodeId');
      if (nodeId === 0) r.fail('nodeId must be positive');
      return { op, nodeId };
    }
    case 'append': {
      const topic = readTopic(r);
      const present = r.u8('append options');
      if ((present & ~appendOptionsKnownMask) !== 0) r.fail(`append options ${present} has unknown bits`);
      const producerId =
        present & AppendOption.producerId ? r.str16('producerId', L.producerIdSizeMaxBytes, 1) : undefined;
      const producerSeq = present & AppendOption.producerSeq ? r.u64('producerSeq') : undefined;
      const expectedOffset = present & AppendOption.expectedOffset ? r.u64('expectedOffset') : undefined;
      const extension = present & AppendOption.extended ? r.u8('append extension') : 0;
      if (
        (extension & ~appendExtensionKnownMask) !== 0 ||
        (present & AppendOption.extended && extension === 0)
      )
        r.fail(`append extension ${extension} has unknown bits`);
      const producerEpoch = extension & AppendExtension.producerEpoch ? r.u64('producerEpoch') : undefined;
      const streamSeq = extension & AppendExtension.streamSeq ? r.str8('streamSeq', 255, 1) : undefined;
      const records = readRecordInputs(r);
      // Field by field (no spreads of temporary objects): every append passes here.
      const append: { -readonly [K in keyof AppendRequest]: AppendRequest[K] } = { op, topic, records };
      if (producerId !== undefined) append.producerId = producerId;
      if (producerSeq !== undefined) append.producerSeq = producerSeq;
      if (expectedOffset !== undefined) append.expectedOffset = expectedOffset;
      // Bit clear is the default, quorum: it decodes as absent, as older requests do.
      if (present & AppendOption.acksLeader) append.acks = 'leader';
      if (present & AppendOption.noForward) append.noForward = true;
      if (producerEpoch !== undefined) append.producerEpoch = producerEpoch;
      if (extension & AppendExtension.close) append.close = true;
      if (streamSeq !== undefined) append.streamSeq = streamSeq;
      return append;
    }
    case 'read': {
      const topic = readTopic(r);
      const offset = r.u64('offset');
      const recordCountMax = readRange(r, 'recordCountMax', 1, L.batchRecordCountMax);
      const byteCountMax = readRange(r, 'byteCountMax', 1, L.batchSizeMaxBytes);
      const waitMs = readRange(r, 'waitMs', 0, L.readWaitMsMax);
      return { op, topic, offset, recordCountMax, byteCountMax, waitMs };
    }
    case 'offsetForTimestamp':
    case 'localOffsetForTimestamp':
      return { op, topic: readTopic(r), timestampMs: r.u64('timestampMs') };
    case 'consumerReadNext': {
      const topic = readTopic(r);
      const consumer = readConsumer(r);
      const recordCountMax = readRange(r, 'recordCountMax', 1, L.batchRecordCountMax);
      const byteCountMax = readRange(r, 'byteCountMax', 1, L.batchSizeMaxBytes);
      const autoCommit = r.bool('autoCommit');
      return { op, topic, consumer, recordCountMax, byteCountMax, autoCommit };
    }
    case 'consumerCommit': {
      const topic = readTopic(r);
      const consumer = readConsumer(r);
      const offset = r.u64('offset');
      const expectedOffset = r.bool('expectedOffset present') ? r.u64('expectedOffset') : undefined;
      return { op, topic, consumer, offset, ...(expectedOffset === undefined ? {} : { expectedOffset }) };
    }
    case 'consumerGet':
    case 'consumerDelete':
      return { op, topic: readTopic(r), consumer: readConsumer(r) };
    case 'consumerList':
      return { op, topic: readTopic(r) };
  }
}

function errorOf(e: unknown): WalrusError {
  if (e instanceof WalrusError) return e;
  return new WalrusError(ErrorCode.BAD_REQUEST, 'malformed message', { cause: e });
}

/** Decodes a request payload (starting with the 0xB1 marker). Never throws. */
function malformedRequest(
  requestId: number | undefined,
  opcode: number,
  error: WalrusError,
): RequestDecodeResult {
  return { kind: 'malformed', requestId, opcode, error };
}

export function decodeRequest(payload: Buffer): RequestDecodeResult {
  const requestId = readRequestId(payload);
  const opcode = payload.length > 2 ? payload[2]! : 0;
  if (payload.length === 0 || payload[0] !== binaryMarker) {
    return malformedRequest(
      requestId,
      opcode,
      new WalrusError(ErrorCode.BAD_REQUEST, 'not a binary-protocol message (marker 0xB1 missing)'),
    );
  }
  if (requestId === undefined) {
    return malformedRequest(
      requestId,
      opcode,
      new WalrusError(
        ErrorCode.BAD_REQUEST,
        `binary message shorter than its ${binaryHeaderSizeBytes}-byte header`,
      ),
    );
  }
  const version = payload[1]!;
  if (version !== binaryProtocolVersion) {
    return malformedRequest(
      requestId,
      opcode,
      new WalrusError(ErrorCode.BAD_REQUEST, `unsupported binary protocol version ${version}`),
    );
  }
  const flags = payload[3]!;
  if (flags !== 0) {
    return malformedRequest(
      requestId,
      opcode,
      new WalrusError(ErrorCode.BAD_REQUEST, `a request must have flags 0, got 0x${flags.toString(16)}`),
    );
  }
  const op = opOfOpcode(opcode);
  if (op === undefined) {
    return malformedRequest(
      requestId,
      opcode,
      new WalrusError(ErrorCode.UNKNOWN_COMMAND, `unknown opcode 0x${opcode.toString(16).padStart(2, '0')}`),
    );
  }
  try {
    const r = new ByteReader(payload, binaryHeaderSizeBytes);
    const request = readRequestBody(r, op);
    r.end(`${op} request`);
    return { kind: 'request', requestId, request };
  } catch (e) {
    return malformedRequest(requestId, opcode, errorOf(e));
  }
}

// ---- replies -------------------------------------------------------------------------------------

function replySize(op: RequestOp, reply: AnyResponse): number {
  if (op !== 'read' && op !== 'consumerReadNext') return 128;
  let size = 64;
  for (const rec of (reply as ResponseByOp['read']).records) size += rec.value.length + 24;
  return size;
}

/**
 * A plain append (no producer, expected offset or extension; records without headers) in one
 * buffer of its exact size, without a writer: the client encodes one per append, and the general
 * path's writer, its growth checks and its final view were a fifth of the client's CPU per append.
 * The same bytes and the same checks, in the same order, as the general path; null for any other
 * append (it takes the general path).
 */
function encodePlainAppend(requestId: number, request: AppendRequest): Buffer | null {
  if (
    request.producerId !== undefined ||
    request.producerSeq !== undefined ||
    request.expectedOffset !== undefined ||
    request.producerEpoch !== undefined ||
    request.close === true ||
    request.streamSeq !== undefined
  )
    return null;
  const records = request.records;
  let valueBytes = 0;
  for (let i = 0; i < records.length; i++) {
    const record = records[i]!;
    if (record.headers !== undefined || !(record.value instanceof Uint8Array)) return null;
    valueBytes += record.value.length;
  }
  checkUint(requestId, 'request id', 0xffffffff);
  const topic = topicNameBytes(request.topic);
  const acksLeader = checkAcks(request.acks) === 'leader';
  checkBatch(records.length, valueBytes);
  // Header, topic (u8 length + bytes), options u8, record count u32; per record: u16 header count
  // (0), u32 value length, the value.
  const out = Buffer.allocUnsafe(
    binaryHeaderSizeBytes + 1 + topic.length + 1 + 4 + records.length * 6 + valueBytes,
  );
  out[0] = binaryMarker;
  out[1] = binaryProtocolVersion;
  out[2] = Opcode.append;
  out[3] = 0;
  out.writeUInt32LE(requestId, 4);
  let at = binaryHeaderSizeBytes;
  out[at++] = topic.length;
  out.set(topic, at);
  at += topic.length;
  out[at++] =
    (acksLeader ? AppendOption.acksLeader : 0) | (request.noForward === true ? AppendOption.noForward : 0);
  out.writeUInt32LE(records.length, at);
  at += 4;
  for (let i = 0; i < records.length; i++) {
    const value = records[i]!.value;
    out[at] = 0;
    out[at + 1] = 0;
    out.writeUInt32LE(value.length, at + 2);
    out.set(value, at + 6);
    at += 6 + value.length;
  }
  return out;
}

/** Bytes of an append reply: the header, three u64, the duplicate flag and the acks code. */
const appendReplySizeBytes = binaryHeaderSizeBytes + 3 * 8 + 2;

/**
 * Encodes an append reply in one buffer of its exact size, without a writer or a reply object:
 * the node answers every append with one (and each member of a joined append, server/append-join.ts).
 * The same bytes as any reply (encodeReply passes appends here). Throws WalrusError like it.
 */
export function encodeAppendReply(
  requestId: number,
  firstOffset: number,
  lastOffset: number,
  timestampMs: number,
  duplicate: boolean,
  acks: AppendAcks | undefined,
): Buffer {
  checkUint(requestId, 'request id', 0xffffffff);
  const out = Buffer.allocUnsafe(appendReplySizeBytes);
  out[0] = binaryMarker;
  out[1] = binaryProtocolVersion;
  out[2] = Opcode.append;
  out[3] = BinaryFlag.REPLY;
  out.writeUInt32LE(requestId, 4);
  writeU64At(out, binaryHeaderSizeBytes, checkUint(firstOffset, 'firstOffset'));
  writeU64At(out, binaryHeaderSizeBytes + 8, checkUint(lastOffset, 'lastOffset'));
  writeU64At(out, binaryHeaderSizeBytes + 16, checkUint(timestampMs, 'timestampMs'));
  out[binaryHeaderSizeBytes + 24] = duplicate ? 1 : 0;
  out[binaryHeaderSizeBytes + 25] = AcksCode[checkAcks(acks) ?? 'quorum'];
  return out;
}

/** Encodes a successful reply to the request `requestId` of op `op`. Throws WalrusError for values the protocol cannot carry. */
export function encodeReply<Op extends RequestOp>(
  requestId: number,
  op: Op,
  reply: ResponseByOp[Op],
): Buffer {
  if (op === 'append') {
    const r = reply as ResponseByOp['append'];
    return encodeAppendReply(requestId, r.firstOffset, r.lastOffset, r.timestampMs, r.duplicate, r.acks);
  }
  const w = new ByteWriter(replySize(op, reply));
  writeHeader(w, Opcode[op], BinaryFlag.REPLY, requestId);
  const any = reply as AnyResponse;
  switch (op) {
    case 'ping':
      w.u32(checkUint((any as ResponseByOp['ping']).nodeId, 'nodeId', 0xffffffff));
      break;
    case 'createTopic': {
      const r = any as ResponseByOp['createTopic'];
      w.bool(r.created);
      writeTopicInfo(w, r.topic);
      break;
    }
    case 'describeTopic':
    case 'configureTopic':
      writeTopicInfo(w, (any as ResponseByOp['describeTopic']).topic);
      break;
    case 'listTopics': {
      const topics = (any as ResponseByOp['listTopics']).topics;
      w.u32(checkUint(topics.length, 'topic count', L.topicListCountMax));
      for (const t of topics) writeTopicInfo(w, t);
      break;
    }
    case 'deleteTopic':
      w.bool((any as ResponseByOp['deleteTopic']).deleted);
      break;
    case 'removeNode':
      w.bool((any as ResponseByOp['removeNode']).removed);
      break;
    case 'handOff':
      w.u32(checkUint((any as ResponseByOp['handOff']).handedOff, 'handedOff', 0xffffffff));
      break;
    case 'transferLeader':
      w.u32(checkUint((any as ResponseByOp['transferLeader']).leaderId, 'leaderId', 0xffffffff));
      break;
    case 'nodeStopping':
      w.bool((any as ResponseByOp['nodeStopping']).marked);
      break;
    case 'authenticate': {
      const granted = (any as ResponseByOp['authenticate']).scopes;
      w.u8(checkUint(granted.length, 'scope count', L.scopeCountMax));
      for (const scope of granted) w.str8(scope);
      break;
    }
    case 'read': {
      const r = any as ResponseByOp['read'];
      w.u64(checkUint(r.nextOffset, 'nextOffset'));
      w.u64(checkUint(r.startOffset, 'startOffset'));
      w.u64(checkUint(r.endOffset, 'endOffset'));
      writeStoredRecords(w, r.records);
      break;
    }
    case 'offsetForTimestamp':
      w.u64(checkUint((any as ResponseByOp['offsetForTimestamp']).offset, 'offset'));
      break;
    case 'localOffsetForTimestamp': {
      const offset = (any as ResponseByOp['localOffsetForTimestamp']).offset;
      w.bool(offset !== null);
      w.u64(offset === null ? 0 : checkUint(offset, 'offset'));
      break;
    }
    case 'consumerReadNext': {
      const r = any as ResponseByOp['consumerReadNext'];
      w.u64(checkUint(r.nextOffset, 'nextOffset'));
      w.u64(checkUint(r.endOffset, 'endOffset'));
      writeStoredRecords(w, r.records);
      break;
    }
    case 'consumerCommit':
    case 'consumerGet':
      writeConsumerInfo(w, (any as ResponseByOp['consumerGet']).consumer);
      break;
    case 'consumerList': {
      const consumers = (any as ResponseByOp['consumerList']).consumers;
      w.u32(checkUint(consumers.length, 'consumer count', L.consumerListCountMax));
      for (const c of consumers) writeConsumerInfo(w, c);
      break;
    }
    case 'consumerDelete':
      w.bool((any as ResponseByOp['consumerDelete']).deleted);
      break;
    case 'metrics':
      writeJson(w, (any as ResponseByOp['metrics']).metrics);
      break;
    case 'state':
      writeJson(w, (any as ResponseByOp['state']).state);
      break;
    case 'stream':
      writeJson(w, any);
      break;
    default:
      throw new WalrusError(ErrorCode.UNKNOWN_COMMAND, `unknown op '${String(op)}'`);
  }
  return w.finish();
}

/**
 * Encodes an error reply. `op` is the request's op or raw opcode when known (0 when the request
 * could not be parsed that far). Messages longer than the limit are truncated.
 */
export function encodeErrorReply(requestId: number, error: ErrorReply, op: RequestOp | number = 0): Buffer {
  const w = new ByteWriter(64 + error.message.length);
  const opcode = typeof op === 'number' ? op : Opcode[op];
  writeHeader(w, checkUint(opcode, 'opcode', 0xff), BinaryFlag.REPLY | BinaryFlag.ERROR, requestId);
  writeErrorBody(w, error);
  return w.finish();
}

function readResponseBody(r: ByteReader, op: RequestOp): AnyResponse {
  switch (op) {
    case 'ping':
      return { nodeId: r.u32('nodeId') };
    case 'createTopic': {
      const created = r.bool('created');
      return { created, topic: readTopicInfo(r) };
    }
    case 'describeTopic':
    case 'configureTopic':
      return { topic: readTopicInfo(r) };
    case 'listTopics': {
      const count = r.u32('topic count');
      if (count > L.topicListCountMax)
        r.fail(`topic count ${count} is above the limit of ${L.topicListCountMax}`);
      const topics: TopicInfo[] = [];
      for (let i = 0; i < count; i += 1) topics.push(readTopicInfo(r));
      return { topics };
    }
    case 'deleteTopic':
      return { deleted: r.bool('deleted') };
    case 'removeNode':
      return { removed: r.bool('removed') };
    case 'handOff':
      return { handedOff: r.u32('handedOff') };
    case 'transferLeader':
      return { leaderId: r.u32('leaderId') };
    case 'nodeStopping':
      return { marked: r.bool('marked') };
    case 'authenticate': {
      const count = r.u8('scope count');
      if (count > L.scopeCountMax) r.fail(`scope count ${count} is above the limit of ${L.scopeCountMax}`);
      const granted: string[] = [];
      for (let i = 0; i < count; i += 1) granted.push(r.str8('scope', 255, 1));
      return { scopes: granted };
    }
    case 'append': {
      const firstOffset = r.u64('firstOffset');
      const lastOffset = r.u64('lastOffset');
      const timestampMs = r.u64('timestampMs');
      const duplicate = r.bool('duplicate');
      const acksCode = r.u8('acks');
      if (acksCode !== AcksCode.quorum && acksCode !== AcksCode.leader)
        r.fail(`acks ${acksCode} is not valid`);
      const acks: AppendAcks = acksCode === AcksCode.leader ? 'leader' : 'quorum';
      return { firstOffset, lastOffset, timestampMs, duplicate, acks };
    }
    case 'read': {
      const nextOffset = r.u64('nextOffset');
      const startOffset = r.u64('startOffset');
      const endOffset = r.u64('endOffset');
      return { nextOffset, startOffset, endOffset, records: readStoredRecords(r) };
    }
    case 'offsetForTimestamp':
      return { offset: r.u64('offset') };
    case 'localOffsetForTimestamp': {
      const found = r.bool('found');
      const offset = r.u64('offset');
      return { offset: found ? offset : null };
    }
    case 'consumerReadNext': {
      const nextOffset = r.u64('nextOffset');
      const endOffset = r.u64('endOffset');
      return { nextOffset, endOffset, records: readStoredRecords(r) };
    }
    case 'consumerCommit':
    case 'consumerGet':
      return { consumer: readConsumerInfo(r) };
    case 'consumerList': {
      const count = r.u32('consumer count');
      if (count > L.consumerListCountMax)
        r.fail(`consumer count ${count} is above the limit of ${L.consumerListCountMax}`);
      const consumers = [];
      for (let i = 0; i < count; i += 1) consumers.push(readConsumerInfo(r));
      return { consumers };
    }
    case 'consumerDelete':
      return { deleted: r.bool('deleted') };
    case 'metrics':
      return { metrics: readJson(r, 'metrics JSON') };
    case 'state':
      return { state: readJson(r, 'state JSON') };
    case 'stream':
      return readJson(r, 'stream JSON') as StreamReply;
  }
}

/** Decodes a reply payload. Never throws. */
export function decodeReply(payload: Buffer): ReplyDecodeResult {
  const requestId = readRequestId(payload);
  const malformed = (message: string, cause?: unknown): ReplyDecodeResult => ({
    kind: 'malformed',
    requestId,
    error: cause instanceof WalrusError ? cause : new WalrusError(ErrorCode.BAD_REQUEST, message, { cause }),
  });
  if (payload.length === 0 || payload[0] !== binaryMarker) return malformed('not a binary-protocol message');
  if (requestId === undefined) return malformed('binary message shorter than its header');
  if (payload[1] !== binaryProtocolVersion)
    return malformed(`unsupported binary protocol version ${payload[1]}`);
  const opcode = payload[2]!;
  const flags = payload[3]!;
  if ((flags & BinaryFlag.REPLY) === 0 || (flags & ~binaryFlagsKnownMask) !== 0) {
    return malformed(`reply flags 0x${flags.toString(16)} are not valid`);
  }
  const op = opOfOpcode(opcode);
  try {
    const r = new ByteReader(payload, binaryHeaderSizeBytes);
    if (flags & BinaryFlag.ERROR) {
      const error = readErrorBody(r);
      r.end('error reply');
      return { kind: 'error', requestId, op, error };
    }
    if (op === undefined) return malformed(`unknown opcode 0x${opcode.toString(16)} in a reply`);
    const response = readResponseBody(r, op);
    r.end(`${op} reply`);
    return { kind: 'response', requestId, op, response };
  } catch (e) {
    return malformed('malformed reply', e);
  }
}
